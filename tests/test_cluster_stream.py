"""The streaming k-means job on real Kafka, Spark and PostgreSQL: killed with SIGKILL mid-stream and
restarted it ends with the model of an uninterrupted run, its executor/driver split is ``learn_many``
exactly, and bad points land in the dead-letter table without touching the model."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from ssp.clustering.streaming_kmeans import StreamingKMeans
from ssp.config import ClusterConfig
from ssp.kafka.admin import ensure_topic
from ssp.kafka.producer import make_producer, produce
from ssp.sources.points import points_payloads
from ssp.storage.clusters import ClusterTables
from ssp.streaming.cluster_stream import run_cluster_stream
from test_dashboard import fresh_version

pytestmark = pytest.mark.integration

K, HALF_LIFE, SEED = 3, 4.0, 42
DP_LAMBDA = 16.0
PER_TRIGGER = 300


def send_points(topic: str, payloads, partitions: int = 2, empty_values: int = 0) -> None:
    """Produce points (dicts, keyed by id) and raw bad records (bytes) to ``topic``, then ``empty_values``
    records without a value."""
    bootstrap = os.environ["SSP_KAFKA_BOOTSTRAP"]
    ensure_topic(bootstrap, topic, partitions)
    producer = make_producer(bootstrap)
    try:
        produce(payloads, producer, topic, show_progress=False)
        for index in range(empty_values):
            producer.send(topic, value=None, key=f"empty-{index}".encode())
        producer.flush(timeout=60)
    finally:
        producer.close()


def config(**overrides) -> ClusterConfig:
    values = dict(k=K, half_life=HALF_LIFE, seed=SEED, max_offsets_per_trigger=PER_TRIGGER, trigger_seconds=0.2)
    return ClusterConfig(**{**values, **overrides})


def stored_model(db, job: str, version: int):
    from ssp.clustering import model_from_state

    with db.cursor() as cur:
        cur.execute("SELECT batch_id, state FROM cluster_models WHERE job = %s AND version = %s "
                    "ORDER BY batch_id DESC LIMIT 1", (job, version))
        batch_id, state = cur.fetchone()
    return batch_id, model_from_state(state)


def assignments(db, tables: ClusterTables, job: str) -> list[tuple]:
    with db.cursor() as cur:
        cur.execute(f"SELECT batch_id, kafka_partition, kafka_offset, point_id, cluster, x FROM {tables.assignments} "
                    "WHERE job = %s ORDER BY batch_id, kafka_partition, kafka_offset", (job,))
        return cur.fetchall()


def replay_with_learn_many(rows: list[tuple], dim: int, **model_args) -> StreamingKMeans:
    """The model ``learn_predict_many`` builds from the stored micro-batches, checking each stored cluster
    is the one the point fed (its nearest centre when the batch began)."""
    model = StreamingKMeans(K, dim=dim, half_life=HALF_LIFE, seed=SEED, init="kmeans++", init_sample=PER_TRIGGER,
                            **model_args)
    batches: dict[int, list[tuple]] = {}
    for row in rows:
        batches.setdefault(row[0], []).append(row)
    for batch_id in sorted(batches):
        batch = batches[batch_id]
        labels = model.learn_predict_many(np.array([row[5] for row in batch]))
        assert labels.tolist() == [row[4] for row in batch], f"batch {batch_id}: assignments differ from learn_many"
    return model


def assert_same_model(got, want) -> None:
    assert (got.n_batches, got.n_points) == (want.n_batches, want.n_points)
    assert got.cluster_ids.tolist() == want.cluster_ids.tolist()
    np.testing.assert_allclose(got.centres, want.centres, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.weights, want.weights, rtol=0, atol=1e-9)


def stream_command(topic: str, version: int, job: str, checkpoint, algorithm: str = "kmeans") -> list[str]:
    extra = ["--algorithm", algorithm] + (["--lambda", str(DP_LAMBDA)] if algorithm == "dpmeans" else [])
    return [
        sys.executable, "-m", "ssp.cli",
        "--gin-param", f"ClusterConfig.max_offsets_per_trigger = {PER_TRIGGER}",
        "--gin-param", "ClusterConfig.trigger_seconds = 0.2",
        "--gin-param", "InfraConfig.spark_master = 'local[2]'",
        "--gin-param", "InfraConfig.spark_driver_memory = '1g'",
        "cluster", "stream", "--topic", topic, "--version", str(version), "--job", job, "--k", str(K),
        "--half-life", str(HALF_LIFE), "--seed", str(SEED), "--checkpoint-dir", str(checkpoint), *extra,
    ]


def committed_batches(db, job: str, version: int) -> int:
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM cluster_models WHERE job = %s AND version = %s", (job, version))
        return cur.fetchone()[0]


def kill_after_batches(proc: subprocess.Popen, database_url: str, job: str, version: int, batches: int) -> None:
    """SIGKILL ``proc``'s process group a moment after it committed ``batches`` micro-batches."""
    import psycopg2

    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        deadline = time.monotonic() + 150
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if committed_batches(conn, job, version) >= batches:
                    break
            except psycopg2.Error:  # the tables appear with the first run
                pass
            time.sleep(0.1)
    finally:
        conn.close()
    time.sleep(random.Random(11).uniform(0.0, 0.4))
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("algorithm", ["kmeans", "dpmeans"])
def test_sigkill_and_restart_ends_with_the_uninterrupted_model(algorithm, spark, stack, db, unique_name, tmp_path):
    n = 2400
    topic, version = unique_name("points"), fresh_version()
    tables = ClusterTables.for_version(version)
    send_points(topic, points_payloads(n, seed=5, k=K, dim=2, scenario="drift"))

    # the run to kill starts first, so its Spark starts while the reference run works in this process
    command = stream_command(topic, version, "killed", tmp_path / "killed", algorithm)
    log = tmp_path / "killed.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(command + ["--until-idle", "30"], stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)
    killer = threading.Thread(target=kill_after_batches, args=(proc, stack.database_url, "killed", version, 3),
                              daemon=True)
    killer.start()
    try:
        reference = run_cluster_stream(spark, infra=stack, config=config(), topic=topic, version=version,
                                       job="reference", max_records=n, checkpoint_dir=tmp_path / "reference",
                                       algorithm=algorithm, lambda_=DP_LAMBDA if algorithm == "dpmeans" else None)
        killer.join(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text(errors="replace")[-2000:]
    assert reference.points == n and reference.dead == 0 and reference.committed >= n // PER_TRIGGER
    _, want = stored_model(db, "reference", version)
    reference_rows = assignments(db, tables, "reference")
    assert len(reference_rows) == n
    if algorithm == "kmeans":  # the executors' assign + sums and the driver's fold are learn_many, batch for batch
        assert_same_model(want, replay_with_learn_many(reference_rows, dim=2))

    at_kill = committed_batches(db, "killed", version)
    assert 3 <= at_kill < reference.committed, "the kill did not land mid-stream"

    finish = subprocess.run(command + ["--until-idle", "3"], capture_output=True, text=True, timeout=300)
    assert finish.returncode == 0, finish.stderr[-3000:]
    assert "resumed from batch" in finish.stdout, finish.stdout

    batch_id, got = stored_model(db, "killed", version)
    assert batch_id == reference.committed - 1
    assert_same_model(got, want)
    killed_rows = assignments(db, tables, "killed")
    assert [row[:5] for row in killed_rows] == [row[:5] for row in reference_rows]
    with db.cursor() as cur:
        cur.execute(f"SELECT job, count(*), count(DISTINCT batch_id) FROM {tables.centres} GROUP BY job ORDER BY job")
        assert cur.fetchall() == [("killed", K * reference.committed, reference.committed),
                                  ("reference", K * reference.committed, reference.committed)]
        cur.execute(f"SELECT count(*) FROM {tables.stage}")
        assert cur.fetchone()[0] == 0


BAD_RECORDS = {
    b"this is not json": "not_json",
    b'[1.0, 2.0]': "not_object",
    b'{"x": [1.0, 2.0]}': "no_id",
    b'{"id": "seven", "x": [1.0, 2.0]}': "wrong_type:id",
    b'{"id": 900001}': "no_x",
    b'{"id": 900002, "x": [1.0, 2.0, 3.0]}': "wrong_dimension",
    b'{"id": 900003, "x": [NaN, 2.0]}': "not_finite",
    b'{"id": 900004, "x": [1e999, 2.0]}': "not_finite",
    b'{"id": 900005, "x": ["1.0", 2.0]}': "wrong_type:x",
    b'{"id": 900006, "x": [true, 2.0]}': "wrong_type:x",
    b'{"id": 900007, "x": [1.0, 2.0], "ts": "yesterday"}': "wrong_type:ts",
}
LATE_BAD_RECORDS = {
    b'{"id": 900008, "x": [Infinity, 0]}': "not_finite",
    b'{"id": 900009, "x": [5.0]}': "wrong_dimension",
    b"{{{": "not_json",
}


def dead_letters(db, tables: ClusterTables, topic: str) -> dict[bytes | None, str]:
    with db.cursor() as cur:
        cur.execute(f"SELECT raw_value, reason, error FROM {tables.dead} WHERE target_table = %s AND kafka_topic = %s",
                    (tables.assignments, topic))
        rows = cur.fetchall()
    assert all(error.startswith(f"{topic}/") for _, _, error in rows)
    return {None if raw is None else bytes(raw): reason for raw, reason, _ in rows}


def test_bad_points_go_to_dead_letters_and_leave_the_model_alone(spark, stack, db, unique_name, tmp_path):
    good = 300
    topic, version = unique_name("badpoints"), fresh_version()
    tables = ClusterTables.for_version(version)
    # good points first: the stream takes its dimension from the first valid point
    send_points(topic, [*points_payloads(good, seed=9, k=K, dim=2, scenario="static"), *BAD_RECORDS], empty_values=1)
    run = dict(infra=stack, config=config(), topic=topic, version=version, checkpoint_dir=tmp_path / "checkpoint")

    first = run_cluster_stream(spark, max_records=good + len(BAD_RECORDS) + 1, **run)
    assert (first.points, first.dead) == (good, len(BAD_RECORDS) + 1)
    assert dead_letters(db, tables, topic) == {**BAD_RECORDS, None: "empty"}
    job = ClusterConfig().job_for(topic)
    batch_id, model = stored_model(db, job, version)
    rows = assignments(db, tables, job)
    assert len(rows) == good
    assert_same_model(model, replay_with_learn_many(rows, dim=2))

    # a micro-batch of bad points only: dead letters, and the model stays as it was
    send_points(topic, list(LATE_BAD_RECORDS))
    second = run_cluster_stream(spark, max_records=len(LATE_BAD_RECORDS), **run)
    assert (second.points, second.dead, second.resumed_from) == (0, len(LATE_BAD_RECORDS), batch_id)
    assert dead_letters(db, tables, topic) == {**BAD_RECORDS, **LATE_BAD_RECORDS, None: "empty"}
    later_batch, later = stored_model(db, job, version)
    assert later_batch > batch_id
    assert later.to_state() == model.to_state()
    assert len(assignments(db, tables, job)) == good

    # ssp cluster show and ssp cluster plot on what the stream wrote
    from click.testing import CliRunner

    from ssp.streaming.cluster_cli import cluster

    runner = CliRunner()
    shown = runner.invoke(cluster, ["show", "--version", str(version), "--job", job])
    assert shown.exit_code == 0, shown.output
    assert f"model of job {job} (version {version}) at micro-batch {later_batch}" in shown.output
    assert shown.output.count("  cluster ") == K
    png = tmp_path / "clusters.png"
    plotted = runner.invoke(cluster, ["plot", "--version", str(version), "--output", str(png)])
    assert plotted.exit_code == 0, plotted.output
    assert f"plotted {good} points" in plotted.output and png.read_bytes().startswith(b"\x89PNG")
    missing = runner.invoke(cluster, ["show", "--version", str(fresh_version())])
    assert missing.exit_code == 1 and "no clustering model for version" in missing.output


DP_SCENARIO = {"dim": 2, "std": 0.6, "centres": [
    {"at": [0, 0]}, {"at": [12, 0]}, {"at": [0, 12]},
    {"at": [12, 12], "appear": 6},  # born mid-stream: DP-means opens a cluster for it on the driver
]}


def dp_model(algorithm: str, lam: float):
    """The model the stream job builds for ``algorithm`` from ClusterConfig's defaults."""
    from ssp.clustering import DPGMM, DPMeans

    defaults = ClusterConfig()
    if algorithm == "dpgmm":
        return DPGMM(alpha=defaults.dp_alpha, max_components=defaults.dp_max_components,
                     covariance_type=defaults.dp_covariance, seed=SEED)
    return DPMeans(lambda_=lam, merge_within=defaults.dp_merge_within, retire_below=defaults.dp_retire_below, seed=SEED)


@pytest.mark.parametrize("algorithm", ["dpmeans", "dpgmm"])
def test_dp_stream_opens_clusters_and_resumes_to_the_model_learn_many_builds(algorithm, spark, stack, db, unique_name,
                                                                             tmp_path):
    from sklearn.metrics import adjusted_rand_score

    from ssp.clustering import model_from_state

    n, lam = 1600, 16.0  # 100 points a second of stream time: the fourth centre appears at point 600
    topic, version, job = unique_name("dppoints"), fresh_version(), "dp"
    tables = ClusterTables.for_version(version)
    send_points(topic, points_payloads(n, seed=4, rate=100, scenario=DP_SCENARIO))
    run = dict(infra=stack, config=config(algorithm=algorithm, dp_lambda=lam, half_life=None), topic=topic,
               version=version, job=job, checkpoint_dir=tmp_path / "checkpoint")
    first = run_cluster_stream(spark, max_records=n // 2, **run)
    second = run_cluster_stream(spark, max_records=n - first.seen, **run)  # a restart resumes the stored model
    assert second.resumed_from is not None and first.points + second.points == n

    rows = assignments(db, tables, job)
    with db.cursor() as cur:
        cur.execute("SELECT state FROM cluster_models WHERE job = %s AND version = %s ORDER BY batch_id DESC LIMIT 1",
                    (job, version))
        stored = model_from_state(cur.fetchone()[0])
    # the executors' local steps, merged in Kafka order, and the driver's global step are learn_many's,
    # batch for batch: the same final labels (births and merges applied) and the same model
    replay = dp_model(algorithm, lam)
    batches: dict[int, list[tuple]] = {}
    for row in rows:
        batches.setdefault(row[0], []).append(row)
    for batch_id in sorted(batches):
        labels = replay.learn_predict_many(np.array([row[5] for row in batches[batch_id]]))
        assert labels.tolist() == [row[4] for row in batches[batch_id]], f"batch {batch_id}"
    assert stored.cluster_ids.tolist() == replay.cluster_ids.tolist()
    np.testing.assert_allclose(stored.centres, replay.centres, rtol=0, atol=1e-9)
    # the clustering is right: four clusters, one for each centre, the late one included (a DPGMM holds its
    # first points back, unlabelled (-1), until it has enough to set its prior)
    assert len(stored.cluster_ids) == 4
    with db.cursor() as cur:
        cur.execute(f"SELECT truth, cluster FROM {tables.assignments} WHERE job = %s", (job,))
        truth, found = zip(*cur.fetchall(), strict=True)
        cur.execute(f"SELECT count(DISTINCT cluster) FROM {tables.centres} WHERE job = %s", (job,))
        assert cur.fetchone()[0] >= 4
    assert adjusted_rand_score(truth, found) > 0.98
