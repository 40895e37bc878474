"""The streaming k-means job on real Kafka, Spark and PostgreSQL: killed with SIGKILL mid-stream and
restarted it ends with the model of an uninterrupted run, its executor/driver split is ``learn_many``
exactly, and bad points land in the dead-letter table without touching the model."""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import orjson
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


# ---------------------------------------------------------------------- the k-means job's Spark SQL parse
def tricky_values() -> list[bytes | None]:
    """Records around every rule of parse_point: the plain form Spark SQL takes, and what it must not."""
    t = "2024-03-04T08:00:00"
    values: list[bytes | None] = [None, b"", b"   ", b"null", b"[]", b"[1, 2]", b'"point"', b"7", b"true", b"{}"]
    values += [s.encode() for s in (
        # plain points, in many spellings
        '{"id": 1, "x": [1.5, -2]}', '{"x":[1,2],"id":2}', ' \t\n{"id":3,"x":[1e5,2E-5]}\r\n', '{"id":-0,"x":[-0.0,0]}',
        '{"id":4,"x":[0.1,0.30000000000000004]}', '{"id":5,"x":[1.7976931348623157e308,5e-324]}',
        '{"id":6,"x":[2.4703282292062327e-324,1e-400]}', '{"id":7,"x":[9007199254740993,123456789012345678901234567890]}',
        '{"id":8,"x":[1,2],"ts":null,"truth":null}', f'{{"id":9,"x":[1,2],"ts":"{t}.100Z","truth":3}}',
        f'{{"id":10,"x":[1,2],"ts":"{t}"}}', f'{{"id":11,"x":[1,2],"ts":"{t}+05:30"}}', f'{{"id":12,"x":[1,2],"ts":"{t}-23:59"}}',
        f'{{"id":13,"x":[1,2],"ts":"{t}.123456Z"}}', '{"id":14,"x":[1,2],"ts":"2024-02-29T00:00:00Z"}',
        '{"id":15,"x":[1,2],"ts":"2000-02-29T23:59:59Z"}', '{"id":16,"x":[1,2],"truth":-2147483648}',
        '{"id":17,"x":[1,2],"truth":2147483647}', '{"id":999999999999999999,"x":[1,2]}', '{"id":18,"x":[3]}',
        '{"id":19,"x":[1,2,3,4,5,6,7,8,9,10,11,12]}', '{"id":20,"x":[1e308,-1e308]}',
        # what parse_point takes but Spark SQL leaves to it: other spellings
        '{"id":21,"x":[1,2],"note":"extra"}', '{"\\u0069d":22,"x":[1,2]}', f'{{"id":23,"x":[1,2],"ts":"{t}\\u005a"}}',
        '{"id":9223372036854775807,"x":[1,2]}', '{"id":-9223372036854775808,"x":[1,2]}', '{"id":24,"id":25,"x":[1,2]}',
        '{"id":26,"x":[1,2],"ts":"2024-03-04 08:00:00"}', '{"id":27,"x":[1,2],"ts":"2024-03-04"}',
        f'{{"id":28,"x":[1,2],"ts":"{t}+0530"}}', f'{{"id":29,"x":[1,2],"ts":"{t}.1234567Z"}}',
        '{"id":30,"x":[1,2],"ts":"1899-12-31T23:59:59Z"}', '{"id":31,"x":[1,2],"ts":"2024-03-04t08:00:00z"}',
        '{"id":32,"x":[1,2],"e":"\\u0000"}',
        # not points, each for its own reason
        '{"x":[1,2]}', '{"id":null,"x":[1,2]}', '{"id":"7","x":[1,2]}', '{"id":1.0,"x":[1,2]}', '{"id":1e2,"x":[1,2]}',
        '{"id":true,"x":[1,2]}', '{"id":9223372036854775808,"x":[1,2]}', '{"id":99999999999999999999,"x":[1,2]}',
        '{"id":40}', '{"id":41,"x":null}', '{"id":42,"x":[]}', '{"id":43,"x":"1,2"}', '{"id":44,"x":{"a":1}}',
        '{"id":45,"x":[1,[2]]}', '{"id":46,"x":[1,{"a":2}]}', '{"id":47,"x":[1,null]}', '{"id":48,"x":["1",2]}',
        '{"id":49,"x":[true,2]}', '{"id":50,"x":[NaN,2]}', '{"id":51,"x":[Infinity,2]}', '{"id":52,"x":[-Infinity,2]}',
        '{"id":53,"x":[1e999,2]}', '{"id":54,"x":[-1e999,2]}', '{"id":55,"x":[1' + "0" * 400 + ',2]}',
        '{"id":56,"x":[1.7976931348623159e308,2]}', '{"id":57,"x":[01,2]}', '{"id":58,"x":[1.,2]}', '{"id":59,"x":[.5,2]}',
        '{"id":60,"x":[+1,2]}', '{"id":61,"x":[1,2,]}', '{"id":62,"x":[1,2],}', "{'id':63,'x':[1,2]}", '{id:64,"x":[1,2]}',
        '{"id":65,"x":[1,2]}x', '{"id":66,"x":[1,2]}}', '{"id":67,"x":[1,2]}{"id":68}', '{"id":69,"x":[1,2]},[]',
        '{"id":70,"x":[1,2]', '{"id":71,"x":[1,2] /* c */}', '{"id":72,"x":[1,2],"e":1e999}',
        '{"id":73,"x":[1,2],"e":"\\ud800"}', '{"id":74,"x":[1,2],"ts":5}', '{"id":75,"x":[1,2],"ts":"yesterday"}',
        '{"id":76,"x":[1,2],"ts":"2024-02-30T00:00:00Z"}', '{"id":77,"x":[1,2],"ts":"2023-02-29T00:00:00Z"}',
        '{"id":78,"x":[1,2],"ts":"1900-02-29T00:00:00Z"}', '{"id":79,"x":[1,2],"ts":"2024-03-04T24:00:00"}',
        '{"id":80,"x":[1,2],"ts":"2024-03-04T23:59:60Z"}', '{"id":81,"x":[1,2],"ts":"0001-01-01T00:00:00+01:00"}',
        '{"id":82,"x":[1,2],"ts":"9999-12-31T23:59:59-01:00"}', f'{{"id":83,"x":[1,2],"ts":"{t}+24:00"}}',
        '{"id":84,"x":[1,2],"truth":2147483648}', '{"id":85,"x":[1,2],"truth":-2147483649}', '{"id":86,"x":[1,2],"truth":"3"}',
        '{"id":87,"x":[1,2],"truth":3.0}', '{"id":88,"x":[1,2],"truth":true}', '{"id":89,"x":[1,2],"ts":["x"]}',
    )]
    values += [b'\xef\xbb\xbf{"id":90,"x":[1,2]}', b'{"id":91,"x":[1,2]}\xe2\x80\xa8', b'{"id":92,"x":[1,2],"e":"\xff"}',
               b'{"id":93,"x":[1,2]}\xff', b'{"id":94,"x":[1,2],"e":"\xc3\x28"}', b'{"id":95,"x":[1,2]}\x00',
               b'{"id":96,"x":[1,2],"e":"a\x01b"}', b'{"id":97,"x":[1,2],"e":"caf\xc3\xa9"}',
               b'{"id":98,"x":[' + b"1.5," * 200 + b'2]}']  # 98: larger than the 512 bytes allowed below
    return values


def fuzzed_values(count: int, seed: int = 3) -> list[bytes]:
    """Plain points with a byte or two deleted, inserted or replaced: mostly not points any more."""
    rng = random.Random(seed)
    bases = [orjson.dumps(p) for p in points_payloads(40, seed=2, k=3, dim=2)] + [
        b'{"id": 5, "x": [1.5e-3, -0.0], "ts": "2024-03-04T08:00:00+01:00", "truth": null}']
    alphabet = b'{}[]",:0123456789eE.+- \\tnulrfasx\x00\x7f\xc3\xa9\xff'
    values = []
    for _ in range(count):
        value = bytearray(rng.choice(bases))
        for _ in range(rng.choice((1, 1, 2))):
            where, what = rng.randrange(len(value)), rng.choice(("delete", "insert", "replace"))
            if what == "delete":
                del value[where]
            elif what == "insert":
                value.insert(where, rng.choice(alphabet))
            else:
                value[where] = rng.choice(alphabet)
        values.append(bytes(value))
    return values


def records_frame(spark, values: list[bytes | None]):
    import pyarrow as pa

    return spark.createDataFrame(pa.table({
        "key": pa.array([b"k%d" % i for i in range(len(values))], pa.binary()),
        "value": pa.array(values, pa.binary()),
        "topic": pa.array(["t"] * len(values)),
        "partition": pa.array([i % 3 for i in range(len(values))], pa.int32()),
        "offset": pa.array(range(len(values)), pa.int64()),
    }))


def test_spark_sql_takes_as_points_only_what_parse_point_takes_with_the_same_values(spark):
    from datetime import datetime

    from ssp.streaming.cluster_stream import PointParseError, parse_point, plain_points

    max_bytes = 512
    typical = [orjson.dumps(p) for p in points_payloads(300, seed=8, k=4, dim=3, scenario="drift")]
    values = tricky_values() + fuzzed_values(3000) + typical
    rows = plain_points(records_frame(spark, values), job='job "q", one', max_bytes=max_bytes).toArrow().to_pylist()
    assert [row["value"] for row in rows] == values

    def parsed(value):
        try:
            return parse_point(value, None, max_bytes)
        except PointParseError:
            return None

    plain_count = python_only = 0
    for row in rows:
        point = parsed(row["value"])
        if not row["plain"]:
            python_only += point is not None
            assert (row["raw_value"], row["raw_key"], row["raw_topic"]) == (row["value"], row["key"], "t")
            continue
        plain_count += 1
        assert point is not None, f"Spark SQL took {row['value']!r}, parse_point does not"
        assert row["raw_value"] is None
        assert (row["id"], row["truth"]) == (point.id, point.truth), row["value"]
        assert [repr(v) for v in row["x"]] == [repr(v) for v in point.x], row["value"]  # the same floats, zeros' signs too
        assert (row["ts"] is None) == (point.ts is None), row["value"]
        if point.ts is not None:
            assert datetime.fromisoformat(row["ts"]) == datetime.fromisoformat(point.ts), row["value"]
        # the COPY line: the fields PostgreSQL reads, x as the very same floats
        line = next(csv.reader([row["line"]]))
        assert line[:2] == ['job "q", one', str(point.id)]
        assert [float(v) for v in line[3].strip("{}").split(",")] == list(point.x)
        assert line[4:] == ["" if point.truth is None else str(point.truth), str(row["partition"]), str(row["offset"])]
    assert all(row["plain"] for row in rows[-len(typical):]), "the producer's points must not need Python"
    # of the tricky records, Spark SQL takes the plain spellings (ids 0 to 20 but 12, whose offset -23:59 Java's
    # time zones lack) and leaves every other spelling to parse_point
    tricky = [orjson.loads(row["value"])["id"] for row in rows[:len(tricky_values())] if row["plain"]]
    assert sorted(tricky) == sorted([*range(12), *range(13, 21), 999999999999999999])
    assert plain_count > len(typical) + 20 and python_only > 10  # both ways are exercised


def test_a_task_assigns_and_sums_its_share_as_learn_many_does():
    """process_records, what each executor task runs: Spark SQL's plain points and parse_point's others,
    in Kafka order, against the broadcast centres; the sums fold bitwise into learn_many's model."""
    import pyarrow as pa

    from ssp.streaming.cluster_stream import STAGE_COPY_COLUMNS, WORKER_COLUMNS, process_records

    rng = np.random.default_rng(4)
    centres = rng.normal(size=(3, 2)) * 4
    x = rng.normal(size=(40, 2)) * 4
    positions = [(p, o) for o in range(20) for p in (1, 0)]  # not in Kafka order
    plain = [i % 4 != 3 for i in range(40)]  # every fourth point comes as a raw record, for parse_point
    columns = {name: [] for name in WORKER_COLUMNS}
    for i, ((a, b), (p, o)) in enumerate(zip(x.tolist(), positions, strict=True)):
        raw = None if plain[i] else orjson.dumps({"id": i, "x": [a, b]})
        for name, value in zip(WORKER_COLUMNS, (p, o, plain[i], [a, b] if plain[i] else None,
                                                f'"j",{i},,"{{{a!r},{b!r}}}",,{p},{o}' if plain[i] else None,
                                                None if plain[i] else b"k", raw, None if plain[i] else "t"),
                               strict=True):
            columns[name].append(value)
    for name, value in zip(WORKER_COLUMNS, (0, 99, False, None, None, b"k", b'{"id": 99, "x": [1, 2, 3]}', "t"),
                           strict=True):
        columns[name].append(value)
    data = pa.table({name: pa.array(values, type) for (name, values), type in zip(columns.items(), (
        pa.int32(), pa.int64(), pa.bool_(), pa.list_(pa.float64()), pa.string(), pa.binary(), pa.binary(),
        pa.string()), strict=True)})
    outcome = process_records(data, model=StreamingKMeans, state={"centres": centres}, dim=2, job="j", batch_id=7,
                              target_table="a", max_bytes=1024)

    order = sorted(range(40), key=lambda i: positions[i])
    model = StreamingKMeans(centres=centres)
    labels = model.learn_predict_many(x[order])
    assert (outcome.first_position, outcome.seen, outcome.good, len(outcome.dead_rows)) == ((0, 0), 41, 40, 1)
    assert outcome.dead_rows[0][6] == "wrong_dimension" and outcome.candidates == []
    want = StreamingKMeans(centres=centres)
    want.global_step(outcome.stats)
    assert want.to_state() == model.to_state()  # bitwise: the same floats added in the same order
    written = {}
    for fields in csv.reader(io.StringIO(outcome.stage_csv.decode())):
        row = dict(zip(STAGE_COPY_COLUMNS, fields, strict=True))
        assert (row["batch_id"], row["job"]) == ("7", "j")
        position = (int(row["kafka_partition"]), int(row["kafka_offset"]))
        i = positions.index(position)
        assert int(row["point_id"]) == i and [float(v) for v in row["x"].strip("{}").split(",")] == x[i].tolist()
        written[position] = int(row["cluster"])
    assert [written[positions[i]] for i in order] == labels.tolist()
