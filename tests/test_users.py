"""The users job: the generator, the k rule on planted personas, the whole run tracked in MLflow, the run
folder on an fsspec URL, Kafka input with dead letters, and the CLI's errors. Spark is the session fixture."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from ssp.config import UsersConfig
from ssp.users.generate import EVENTS, PERSONAS, generate_activity

PLANTED = 5


# ---------------------------------------------------------------- generator (no Spark)
def test_the_generator_is_deterministic_heavy_tailed_and_keeps_the_truth():
    events, truth = generate_activity(users=2000, mean_events=20, personas=PLANTED, seed=3)
    again, _ = generate_activity(users=2000, mean_events=20, personas=PLANTED, seed=3)
    other, _ = generate_activity(users=2000, mean_events=20, personas=PLANTED, seed=4)
    assert events.equals(again)
    assert not events["event_time"].equals(other["event_time"].iloc[:len(events)])
    assert truth["user_id"].tolist() == list(range(2000))
    assert truth["persona"].value_counts().to_dict() == {p.name: 400 for p in PERSONAS[:PLANTED]}
    counts = events.groupby("user_id").size()
    assert set(counts.index) == set(range(2000)) and counts.min() >= 3
    # heavy tail: the busiest 10% of users do far more than 10% of the events
    assert counts.sort_values().iloc[-200:].sum() / counts.sum() > 0.3
    assert set(events["event"].astype(str)) == set(EVENTS)
    assert events["event_time"].min() >= pd.Timestamp("2026-01-05", tz="UTC")
    assert events["event_time"].max() < pd.Timestamp("2026-01-12", tz="UTC")
    # generating in slices gives the same users as generating at once
    first, _ = generate_activity(users=1000, mean_events=20, personas=PLANTED, seed=3)
    second, _ = generate_activity(users=1000, mean_events=20, personas=PLANTED, seed=3, first_user=1000)
    assert sorted(first["user_id"].unique()) == list(range(1000))
    assert sorted(second["user_id"].unique()) == list(range(1000, 2000))


def test_the_generator_rejects_bad_input():
    with pytest.raises(ValueError, match="users must be at least 1, got 0"):
        generate_activity(users=0)
    with pytest.raises(ValueError, match="personas must be between 2 and 6"):
        generate_activity(users=10, personas=1)


# ---------------------------------------------------------------- the k rule on planted personas (Spark)
SEEDS = range(10)
SWEEP_CONFIG = UsersConfig(k_min=3, k_max=7, kmeans_restarts=5, kmeans_max_iter=20)


@pytest.fixture(scope="module")
def planted_sweeps(spark):
    """seed -> (chosen k, ARI of the fit at the planted k, ARI at the chosen k) on 1,500 generated users."""
    from ssp.users import pipeline

    def one(seed: int):
        events, truth = generate_activity(users=1500, mean_events=20, personas=PLANTED, seed=seed)
        frame = spark.createDataFrame(events.drop(columns=["day"]).astype({"event": str, "topic": str}))
        transformed = pipeline.fit_preprocess(pipeline.activity_features(frame), pipeline.ACTIVITY_FEATURES,
                                              SWEEP_CONFIG)
        reduced = transformed.frame.cache()
        sweep = pipeline.kmeans_sweep(reduced, SWEEP_CONFIG)
        planted = pipeline.ari_against_truth(pipeline.assignments(reduced, sweep.models[PLANTED]), truth)
        chosen = pipeline.ari_against_truth(pipeline.assignments(reduced, sweep.models[sweep.choice.k]), truth)
        reduced.unpersist()
        return sweep.choice.k, planted, chosen, sweep.choice

    return {seed: one(seed) for seed in SEEDS}


@pytest.mark.integration
@pytest.mark.parametrize("seed", SEEDS)
def test_the_features_separate_the_planted_personas(planted_sweeps, seed):
    k, planted_ari, chosen_ari, choice = planted_sweeps[seed]
    assert planted_ari >= 0.95, f"seed {seed}: ARI {planted_ari:.3f} at k = {PLANTED}"
    assert choice.ks == (3, 4, 5, 6, 7) and len(choice.wcss) == 5 and all(-1 <= s <= 1 for s in choice.silhouette)
    if k == PLANTED:
        assert chosen_ari == planted_ari


@pytest.mark.integration
def test_the_rule_picks_the_planted_number_of_personas_in_9_of_10_seeds(planted_sweeps):
    chosen = {seed: result[0] for seed, result in planted_sweeps.items()}
    assert sum(k == PLANTED for k in chosen.values()) >= 9, chosen


# ---------------------------------------------------------------- a whole run, tracked in MLflow
@pytest.fixture(scope="module")
def tracked_run(spark, tmp_path_factory):
    import os

    from ssp.users import steps
    from ssp.users.run import run_pipeline
    from ssp.users.store import Workdir

    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    root = tmp_path_factory.mktemp("users-run")
    config = UsersConfig(users=1500, k_min=2, k_max=7, kmeans_restarts=2, mlflow_dir=str(root / "mlflow"),
                         experiment="ssp-users-test", seed=11)
    generated = steps.generate(config, str(root / "input"))
    work = Workdir(root / "work")
    try:
        result = run_pipeline(spark, work, config, str(root / "input"))
    finally:
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    return config, work, result, generated


@pytest.mark.integration
def test_a_run_finds_the_personas_and_writes_every_output(tracked_run):
    config, work, result, generated = tracked_run
    assert generated.users == 1500 and generated.truth.endswith("/truth")
    assert result.users == 1500
    assert result.k == PLANTED
    assert result.ari >= 0.95
    assert set(result.seconds) == {"ingest", "transform", "train", "analyse", "visualise", "track"}
    profile = json.loads(open(work.path("profile.json")).read())
    assert [c["cluster"] for c in profile["clusters"]] == list(range(PLANTED))
    assert sum(c["users"] for c in profile["clusters"]) == 1500
    names = " / ".join(c["name"] for c in profile["clusters"])
    assert "high night" in names and "high view" in names and "high comment" in names, names
    for name in ("clusters.png", "elbow.png", "silhouette.png", "profiles.png"):
        with open(work.path("plots", name), "rb") as png:
            assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    assert result.plots == tuple(work.path("plots", n) for n in ("clusters.png", "elbow.png", "silhouette.png",
                                                                 "profiles.png"))


@pytest.mark.integration
def test_the_mlflow_run_has_params_metrics_per_k_model_and_artifacts(tracked_run, spark):
    import mlflow
    import mlflow.spark

    from ssp.clustering.elbow import RULE
    from ssp.users import tracking

    config, work, result, _ = tracked_run
    assert tracking.tracking_uri(config) == f"sqlite:///{config.mlflow_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking.tracking_uri(config))
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["k_min"] == "2" and params["k_max"] == "7" and params["kmeans_restarts"] == "2"
    assert params["k_rule"] == RULE and params["input_kind"] == "activity"
    assert params["features"].split(",")[0] == "log_events"
    assert run.data.metrics["chosen_k"] == PLANTED and run.data.metrics["users"] == 1500
    assert run.data.metrics["ari"] == pytest.approx(result.ari)
    sweep = json.loads(open(work.path("sweep.json")).read())
    for key in ("wcss", "silhouette"):
        history = sorted((m.step, m.value) for m in client.get_metric_history(result.run_id, key))
        assert [step for step, _ in history] == [2, 3, 4, 5, 6, 7]
        assert [value for _, value in history] == pytest.approx(sweep[key])
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"profile.csv", "profile.json", "sweep.json", "transform.json", "plots"} <= artifacts
    assert {a.path for a in client.list_artifacts(result.run_id, "plots")} == {
        "plots/clusters.png", "plots/elbow.png", "plots/silhouette.png", "plots/profiles.png"}
    # the logged model loads and predicts the clusters the run assigned
    model = mlflow.spark.load_model(result.model_uri)
    features = spark.read.parquet(work.path("features")).drop("pca")
    predicted = model.transform(features).select("user_id", "cluster").toPandas().set_index("user_id")["cluster"]
    assigned = spark.read.parquet(work.path("assignments")).select("user_id", "cluster").toPandas()
    assert len(predicted) == 1500
    assert (predicted.loc[assigned["user_id"]].to_numpy() == assigned["cluster"].to_numpy()).all()
    # ssp users runs lists it
    rows = tracking.past_runs(config)
    assert rows[0].run_id == result.run_id and rows[0].chosen_k == PLANTED


@pytest.mark.integration
def test_ssp_users_runs_lists_the_run_and_prints_the_ui_command(tracked_run):
    from ssp.cli import main

    config, _, result, _ = tracked_run
    out = CliRunner().invoke(main, ["--gin-param", f"UsersConfig.mlflow_dir = '{config.mlflow_dir}'",
                                    "--gin-param", f"UsersConfig.experiment = '{config.experiment}'",
                                    "users", "runs"])
    assert out.exit_code == 0, out.output
    assert result.run_id[:12] in out.output
    assert f"mlflow ui --backend-store-uri sqlite:///{config.mlflow_dir}/mlflow.db" in out.output
    assert out.output.strip().splitlines()[-1] == (f"1 runs in experiment {config.experiment} at "
                                                   f"sqlite:///{config.mlflow_dir}/mlflow.db")


# ---------------------------------------------------------------- fsspec URLs, Kafka, errors
@pytest.mark.integration
def test_a_memory_url_is_written_and_read_through_fsspec(spark):
    from ssp.users import steps
    from ssp.users.store import Workdir, read_parquet_frame

    config = UsersConfig(users=300, seed=5)
    generated = steps.generate(config, "memory://users-test/input")
    events = read_parquet_frame("memory://users-test/input/events")
    expected, truth = generate_activity(users=300, seed=5)
    assert generated.events == len(expected) == len(events)
    assert sorted(events["day"].astype(str).unique()) == sorted(expected["day"].astype(str).unique())
    work = Workdir("memory://users-test/work")
    ingested = steps.ingest(spark, work, "memory://users-test/input")
    assert ingested.rows == len(expected)
    assert steps.manifest(work)["truth"] == "memory://users-test/input/truth"
    assert read_parquet_frame("memory://users-test/input/truth")["persona"].tolist() == truth["persona"].tolist()


@pytest.mark.integration
def test_kafka_events_are_ingested_and_bad_records_go_to_dead_letters(spark, stack, unique_name, tmp_path):
    import os

    from ssp.kafka.producer import make_producer
    from ssp.users import steps
    from ssp.users.store import Workdir, read_parquet_frame

    bootstrap, topic = os.environ["SSP_KAFKA_BOOTSTRAP"], unique_name("users")
    config = UsersConfig(users=50, seed=2)
    generated = steps.generate(config, None, topic, bootstrap)
    producer = make_producer(bootstrap)
    for value in (b"not json", b'{"event_time": "2026-01-05T01:00:00Z", "event": "post"}',
                  b'{"user_id": 1, "event_time": "2026-01-05T01:00:00Z", "event": "dance"}'):
        producer.send(topic, value)
    producer.flush()
    producer.close()
    work = Workdir(tmp_path / "work")
    ingested = steps.ingest(spark, work, f"kafka:{topic}", bootstrap=bootstrap)
    assert ingested.rows == generated.events
    assert ingested.dead == 3
    dead = read_parquet_frame(work.path("dead_letters")).sort_values("reason")
    assert dead["reason"].tolist() == ["bad_event", "missing:user_id", "not_json"]
    events = read_parquet_frame(work.path("events"))
    expected, _ = generate_activity(users=50, seed=2)
    assert events.groupby("user_id").size().to_dict() == expected.groupby("user_id").size().to_dict()


def test_the_cli_names_what_is_wrong(tmp_path):
    from ssp.cli import main

    runner = CliRunner()
    out = runner.invoke(main, ["users", "generate", "--users", "10"])
    assert out.exit_code == 1 and "give --out PATH or --to-kafka" in out.output
    out = runner.invoke(main, ["users", "transform", "--workdir", str(tmp_path / "nothing")])
    assert out.exit_code == 1
    assert f"{tmp_path}/nothing/manifest.json does not exist: run `ssp users ingest --workdir" in out.output
    out = runner.invoke(main, ["users", "run", "--k-min", "5", "--k-max", "6"])
    assert out.exit_code == 1 and "at least 3 values of k, got 5..6" in out.output
    out = runner.invoke(main, ["users", "run", "--version", "3"])
    assert out.exit_code == 1 and "--version goes with --from-tweets" in out.output
