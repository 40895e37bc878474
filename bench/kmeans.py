"""Benchmark: ssp's streaming k-means against Spark MLlib's, in one run on one Kafka topic.

The run starts its own Kafka broker and PostgreSQL on free ports in a temporary state folder (the
helper bench/quality.py uses), produces the points once into a fresh topic (the points source's
``drift`` scenario, k=10, d=10, ``--partitions`` partitions, keyed by id, as ``ssp produce --source
points`` sends them) and times two things on it.

(a) The update alone: ``StreamingKMeans.learn_many`` against MLlib's ``StreamingKMeansModel.update``
on the same batches (k=10, d=10, batches of 10,000: the topic's first points, drawn again from the
same seed, which gives the same points), from the same initial centres. MLlib is timed two ways:

* ``mllib``: the batches already cached in the JVM as an ``RDD[Vector]`` and handed to MLlib's
  update (``PythonMLLibAPI.updateStreamingKMeansModel``, what ``StreamingKMeansModel.update`` calls),
  so the figure is MLlib's algorithm and Spark's job overhead, without Python conversion. This is the
  stronger competitor and the one the ratio uses;
* ``pyspark``: ``pyspark.mllib.clustering.StreamingKMeansModel.update`` on a cached Python RDD, what
  a Python user calls (each batch also goes through Python workers and pickling to the JVM).

Both MLlib runs and ssp's end with the same centres (printed as the largest difference).

(b) The stream: each side reads the topic from the earliest offset until ``--stream-n`` records have
gone through. Sustained points/s is the points of the batches after the first over the time from the
end of the first batch to the end of the one that reached ``--stream-n``: the first batch is each
side's warm-up (code generation, JIT, the first Kafka fetch) and is
printed apart, as are points/s with it and the run with its start-up. The sides run ``--rounds``
times, alternating, the fastest run of each counts (a busy machine in one run does not decide).

* ``ssp``: :func:`ssp.streaming.cluster_stream.run_cluster_stream`, the code behind ``ssp cluster
  stream --algorithm kmeans``, with ``ClusterConfig(max_offsets_per_trigger=--stream-batch,
  trigger_seconds=--trigger-seconds)``; the default 0 s trigger starts the next micro-batch as soon as
  the last one ends, so nothing waits for a clock. Each micro-batch is parsed by Spark SQL on the
  executors (``plain_points``), handed to Python workers there (``mapInArrow``) that assign the points
  to the broadcast centres, add up per-cluster sums and counts and COPY their assignments to the stage
  table; only the sums reach the driver, which folds them and commits assignments, centres and model in
  one PostgreSQL transaction. Its batches are Spark's progress events.
* ``dstream``: ``bench/dstream_kmeans`` (Java; built with Maven on first use and cached in the cache
  folder, ``$SSP_CACHE_DIR`` or ``~/.cache/ssp``), run with pyspark's ``spark-submit``: a direct Kafka
  DStream (``KafkaUtils.createDirectStream``, spark-streaming-kafka-0-10), each value's ``x`` parsed
  with Jackson into a ``Vector`` (values that are not a point of ``dim`` finite numbers are dropped),
  and ``StreamingKMeans().setK(k).setDecayFactor(decay).setInitialCenters(...).trainOn``. The batch
  size is ``spark.streaming.kafka.maxRatePerPartition`` x the batch duration per partition, set to
  ``--stream-batch / --partitions`` records, backpressure off; the batch duration
  (``--dstream-batch-ms``) is shorter than a batch takes to process, so batches queue and run back to
  back (the run checks it: the median scheduling delay must grow above the batch duration, else
  the DStream waited for its clock and its figure is a floor). It keeps the model in memory only and
  writes nothing anywhere. The registry this machine reaches serves no spark-streaming-kafka-0-10 of
  the 4.0 line; 4.2.0's fails on Spark 4.0.0 (its log calls name keys 4.0.0 lacks), so the connector
  is 3.5.1's, which runs on Spark 4.0.0 as it is (see the pom).

Both: the same topic, k, dimension, decay factor (per batch), initial centres (ssp's with
``init="random"``, MLlib's setRandomCenters rule drawn from ssp's seed, handed to MLlib), about the same
batch size, Spark master ``--master`` (local[2]) and 2 GB of driver memory, one at a time on the
machine (ssp's Spark session is stopped before the DStream's JVM starts).

Where ssp's micro-batch time goes is printed after: Spark's per-batch phases and, inside
``foreachBatch``, the executors' job (broadcast, the ``mapInArrow`` tasks, collect, fold), the fold
and the commit transaction (timers put on ssp's functions for the run); the parts of the executors'
work by themselves (:func:`profile_spark_job`: the Kafka read, Spark's hand-off to Python workers,
the tasks' Python work, the COPY); and parsing a micro-batch's points with ``parse_point`` in one plain
Python process (what each record SQL does not take costs).

The last line printed is one JSON object with the figures, among them ``update_ssp_over_mllib`` and
``stream_ssp_over_dstream`` (sustained points/s; the goal: both >= 1.0). About 5 minutes on 2 cores.

    .venv/bin/python bench/kmeans.py --batches 20 --stream-n 200000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from ssp.clustering import StreamingKMeans
from ssp.config import ClusterConfig, InfraConfig, default_cache_dir, load_config
from ssp.infra.spark import spark_session
from ssp.sources.points import PointsSource, points_payloads, scenario_preset

REPO = Path(__file__).resolve().parents[1]
DSTREAM_PROJECT = REPO / "bench" / "dstream_kmeans"
DSTREAM_CLASS = "ssp.bench.DStreamKMeans"
SCENARIO = "drift"


def make_batches(k: int, dim: int, size: int, count: int, seed: int) -> list[np.ndarray]:
    scenario = scenario_preset(SCENARIO, k=k, dim=dim, seed=seed)
    _, x, _ = PointsSource(scenario, seed=seed, rate=size).arrays(size * count)  # one batch a second
    return np.split(x, count)


def time_ssp(centres, weights, batches, decay, warmup):
    model = StreamingKMeans(centres=centres, weights=weights, decay_factor=decay)
    seconds = []
    for index, batch in enumerate(batches):
        start = time.perf_counter()
        model.learn_many(batch)
        if index >= warmup:
            seconds.append(time.perf_counter() - start)
    return model.centres, model.weights, seconds


def time_mllib_jvm(sc, centres, weights, batches, decay, warmup):
    """MLlib's update on batches cached in the JVM: no Python in the timed part but the call itself."""
    from pyspark.mllib.common import _to_java_object_rdd, callMLlibFunc
    from pyspark.mllib.linalg import _convert_to_vector

    cached = []
    for batch in batches:
        jrdd = _to_java_object_rdd(sc.parallelize(batch.tolist(), sc.defaultParallelism).map(_convert_to_vector))
        jrdd.cache()
        jrdd.count()
        cached.append(jrdd)
    current_centres = [_convert_to_vector(c) for c in centres]
    current_weights = [float(w) for w in weights]
    seconds = []
    for index, jrdd in enumerate(cached):
        start = time.perf_counter()
        updated = callMLlibFunc("updateStreamingKMeansModel", current_centres, current_weights, jrdd, decay,
                                "batches")
        if index >= warmup:
            seconds.append(time.perf_counter() - start)
        current_centres, current_weights = list(updated[0]), list(updated[1])
    for jrdd in cached:
        jrdd.unpersist()
    return np.array([c.toArray() for c in current_centres]), np.array(current_weights), seconds


def time_mllib_pyspark(sc, centres, weights, batches, decay, warmup):
    """``StreamingKMeansModel.update`` as a Python user calls it, on cached Python RDDs."""
    from pyspark.mllib.clustering import StreamingKMeansModel

    rdds = []
    for batch in batches:
        rdd = sc.parallelize(batch.tolist(), sc.defaultParallelism).cache()
        rdd.count()
        rdds.append(rdd)
    model = StreamingKMeansModel([c.tolist() for c in centres], [float(w) for w in weights])
    seconds = []
    for index, rdd in enumerate(rdds):
        start = time.perf_counter()
        model = model.update(rdd, decay, "batches")
        if index >= warmup:
            seconds.append(time.perf_counter() - start)
    for rdd in rdds:
        rdd.unpersist()
    return np.array(model.centers, dtype=float), np.array(model.clusterWeights, dtype=float), seconds


def describe(name: str, seconds: list[float], size: int) -> float:
    rate = size * len(seconds) / sum(seconds)
    print(f"{name:<8} {rate:>14,.0f} points/s   median batch {statistics.median(seconds) * 1000:9.2f} ms   "
          f"({len(seconds)} batches of {size:,})")
    return rate


# ---------------------------------------------------------------------- (b) the stream
def produce_points(bootstrap: str, topic: str, n: int, args) -> None:
    """``n`` points of the drift scenario into ``topic``, one batch's worth a second of stream time."""
    from ssp.kafka.admin import ensure_topic
    from ssp.kafka.producer import make_producer, produce

    ensure_topic(bootstrap, topic, args.partitions)
    producer = make_producer(bootstrap, linger_ms=50, batch_size=1024 * 1024)
    try:
        payloads = points_payloads(n, seed=args.seed, k=args.k, dim=args.dim, rate=args.batch, scenario=SCENARIO)
        produced = produce(payloads, producer, topic, max_records=n, show_progress=False)
    finally:
        producer.close()
    print(produced.line(topic, None, noun="points"), flush=True)


def batch_events(spark):
    """A listener keeping every micro-batch's progress: (rows, start epoch s, end epoch s, durations ms)."""
    from pyspark.sql.streaming import StreamingQueryListener

    class Batches(StreamingQueryListener):
        def __init__(self) -> None:
            self.batches: list[tuple[int, float, float, dict[str, int]]] = []

        def onQueryStarted(self, event) -> None:
            pass

        def onQueryProgress(self, event) -> None:
            progress = event.progress
            durations = dict(progress.durationMs)
            start = datetime.fromisoformat(progress.timestamp).timestamp()
            self.batches.append((progress.numInputRows, start, start + durations.get("triggerExecution", 0) / 1000,
                                 durations))

        def onQueryIdle(self, event) -> None:
            pass

        def onQueryTerminated(self, event) -> None:
            pass

        def until(self, rows: int, timeout: float = 30) -> list[tuple[int, float, float, dict[str, int]]]:
            """The batches with rows, once they add up to ``rows`` (events arrive asynchronously)."""
            deadline = time.monotonic() + timeout
            while sum(b[0] for b in self.batches) < rows:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the progress events never added up to {rows} rows")
                time.sleep(0.1)
            return [b for b in self.batches if b[0] > 0]

    listener = Batches()
    spark.streams.addListener(listener)
    return listener


class Stopwatch:
    """Seconds spent in a method, call by call, on the driver (a wrapper put on a class for the run)."""

    def __init__(self, owner, name: str) -> None:
        self.owner, self.name, self.original = owner, name, getattr(owner, name)
        self.seconds: list[float] = []
        original, seconds = self.original, self.seconds

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds.append(time.perf_counter() - start)

        setattr(owner, name, timed)

    def restore(self) -> None:
        setattr(self.owner, self.name, self.original)


def stream_figures(name: str, batches: list[tuple[int, float, float]], n: int, wall: float) -> dict:
    """A stream run's figures from its batches (points, start and end in epoch seconds): sustained points/s
    from the end of the first batch (the warm-up: code generation, JIT, the first Kafka fetch) to the end of
    the last, and points/s from the start of the first batch to the end of the last."""
    first_start, first_end, last_end = batches[0][1], batches[0][2], batches[-1][2]
    if len(batches) < 3:
        raise SystemExit(f"{name} read the topic in {len(batches)} batches; give --stream-n at least 3 x --stream-batch")
    figures = {
        "points_per_s": (n - batches[0][0]) / (last_end - first_end),
        "points_per_s_first_to_last": n / (last_end - first_start),
        "batches": len(batches),
        "median_batch_points": statistics.median(b[0] for b in batches),
        "median_batch_ms": statistics.median((b[2] - b[1]) * 1000 for b in batches),
        "first_batch_ms": (first_end - first_start) * 1000,
        "wall_seconds_with_startup": wall,
    }
    print(f"{name:<8} {figures['points_per_s']:>8,.0f} points/s sustained ({n:,} points in {len(batches)} batches of "
          f"median {figures['median_batch_points']:,.0f}, median batch {figures['median_batch_ms']:,.0f} ms, the first "
          f"{figures['first_batch_ms']:,.0f} ms; {figures['points_per_s_first_to_last']:,.0f} points/s with the first "
          f"batch; {wall:.1f} s with start-up)", flush=True)
    return figures


def ssp_settings(topic: str, run: int, args):
    """The settings of ssp's ``run``-th stream run: its own job name and table version."""
    from ssp.streaming.cluster_stream import cluster_settings

    # init "random": MLlib's setRandomCenters (seeded standard normal draws), known before the stream starts,
    # so the DStream side can start from the very same centres (ssp's default k-means++ draws them from the
    # first micro-batch)
    config = ClusterConfig(k=args.k, dim=args.dim, decay_factor=args.decay, seed=args.seed, init="random",
                           max_offsets_per_trigger=args.stream_batch, trigger_seconds=args.trigger_seconds,
                           starting_offsets="earliest")
    return config, cluster_settings(config, topic=topic, version=run + 1, job=f"bench-{run}")


def run_ssp_stream(spark, infra: InfraConfig, topic: str, n: int, state: Path, run: int, args):
    """ssp's stream job on the whole topic, from a fresh checkpoint, job and table version; returns
    (figures, its per-batch profile, its settings)."""
    import ssp.streaming.cluster_stream as cluster_stream
    from ssp.streaming.cluster_stream import ClusterJob, run_cluster_stream

    config, settings = ssp_settings(topic, run, args)
    listener = batch_events(spark)
    # timers on the driver's foreachBatch, its executors' job (broadcast, mapInArrow, collect, fold), the
    # fold alone and the commit transaction (any ssp renamed are skipped)
    timed = {"foreach_batch": (ClusterJob, "write_batch"), "executors_job": (ClusterJob, "_local_steps"),
             "driver_fold": (cluster_stream, "fold_partials"), "commit_transaction": (ClusterJob, "_commit")}
    watches = {name: Stopwatch(*where) for name, where in timed.items() if hasattr(*where)}
    start = time.perf_counter()
    try:
        result = run_cluster_stream(spark, infra=infra, config=config, topic=topic, version=settings.tables.version,
                                    job=settings.job, max_records=n, checkpoint_dir=state / f"ssp-checkpoint-{run}")
    finally:
        for watch in watches.values():
            watch.restore()
    wall = time.perf_counter() - start
    print(f"  {result.line()}", flush=True)
    if result.points < n or result.dead:
        raise SystemExit(f"ssp's job clustered {result.points} of {n} points ({result.dead} dead); the benchmark is void")
    events = listener.until(result.seen)
    spark.streams.removeListener(listener)
    # the batches up to the one that reached n: the job may run more before it stops (see below), and the
    # DStream side stops at n too
    counted, total = [], 0
    for event in events:
        if total >= n:
            break
        counted.append(event)
        total += event[0]
    if len(counted) < len(events):
        print(f"  (ssp's job ran {len(events) - len(counted)} micro-batches past the {n:,}th record before it stopped; "
              f"they are not counted)", flush=True)
    events = counted
    figures = stream_figures("ssp", [b[:3] for b in events], total, wall)
    phases = sorted({key for b in events for key in b[3]})
    profile = {f"spark_{key}_ms": statistics.median(b[3].get(key, 0) for b in events) for key in phases}
    # the medians over the micro-batches that ran them (the first is the warm-up, as in the figures)
    for name, watch in watches.items():
        if len(watch.seconds) > 1:
            profile[f"{name}_ms"] = statistics.median(watch.seconds[1:]) * 1000
    return figures, profile, settings


def profile_spark_job(spark, infra: InfraConfig, topic: str, settings, args, repeats: int = 2) -> dict:
    """What the parts of one micro-batch's executor work cost by themselves, on the topic's first
    ``--stream-batch`` records read as a batch (``--partitions`` Kafka partitions, so as many tasks as a
    micro-batch has; a batch read makes new Kafka consumers, so it runs slower than the stream's cached
    ones): the Kafka read counted in the JVM; the same records through ssp's Spark SQL parse
    (``plain_points``) handed to Python workers by a ``mapInArrow`` that only counts them (Spark's
    hand-off, without ssp's work); the Python work of the tasks (``process_records``: parse_point on what
    SQL left, assignment, sums, COPY lines) on the same Arrow data in this process; and the COPY of those
    lines into a stage table (rolled back). Milliseconds, median of ``repeats`` after a warm-up."""
    import psycopg2
    import pyarrow as pa

    from ssp.storage.clusters import ClusterTables, ensure_cluster_tables, stage_assignment_csv
    from ssp.storage.postgres import libpq_url, make_engine
    from ssp.streaming.cluster_stream import (
        KAFKA_COLUMNS,
        STAGE_COPY_COLUMNS,
        plain_points,
        process_records,
        worker_columns,
    )

    per_partition = args.stream_batch // args.partitions
    ending = json.dumps({topic: {str(p): per_partition for p in range(args.partitions)}})
    records = (spark.read.format("kafka").option("kafka.bootstrap.servers", infra.kafka_bootstrap)
               .option("subscribe", topic).option("startingOffsets", "earliest").option("endingOffsets", ending)
               .option("failOnDataLoss", "false").load().select(*KAFKA_COLUMNS))
    shares = plain_points(records, job=settings.job, max_bytes=settings.max_record_bytes).select(
        *worker_columns(args.dim))

    def count_only(batches):
        yield pa.RecordBatch.from_pydict({"n": [sum(batch.num_rows for batch in batches)]})

    data = shares.toArrow()
    centres = settings.new_model().local_state()
    outcome = {}

    def python_work():
        outcome["last"] = process_records(data, model=StreamingKMeans, state=centres, dim=args.dim, job=settings.job,
                                          batch_id=0, target_table=settings.tables.assignments,
                                          max_bytes=settings.max_record_bytes)

    tables = ClusterTables.for_version(990 + args.rounds)  # a scratch version; the COPY is rolled back
    engine = make_engine(infra.database_url)
    try:
        ensure_cluster_tables(engine, tables)
    finally:
        engine.dispose()
    conn = psycopg2.connect(libpq_url(infra.database_url))

    def stage_copy():
        stage_assignment_csv(conn, tables, outcome["last"].stage_csv, outcome["last"].good, STAGE_COPY_COLUMNS)
        conn.rollback()

    steps = {"kafka_read_count": lambda: records.count(),
             "sql_parse_map_in_arrow_count": lambda: shares.mapInArrow(count_only, "n long").collect(),
             "python_work_in_one_process": python_work,
             "stage_copy": stage_copy}
    records.count()  # the Kafka consumers' first fetch, before any step is timed
    timings = {}
    try:
        for name, step in steps.items():
            seconds = []
            for attempt in range(repeats + 1):
                start = time.perf_counter()
                step()
                if attempt:  # the first is a warm-up
                    seconds.append(time.perf_counter() - start)
            timings[f"{name}_ms"] = statistics.median(seconds) * 1000
    finally:
        conn.close()
    return timings


def parse_cost(args, repeats: int = 3) -> float:
    """Milliseconds to parse one micro-batch of point values with ssp's ``parse_point`` in one plain Python
    process (the bulk of the executors' Python work), median of ``repeats``."""
    import orjson

    from ssp.streaming.cluster_stream import parse_point

    values = [orjson.dumps(p) for p in points_payloads(args.stream_batch, seed=args.seed, k=args.k, dim=args.dim,
                                                         rate=args.batch, scenario=SCENARIO)]
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for value in values:
            parse_point(value, args.dim)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds) * 1000


def dstream_jar(cache: Path) -> Path:
    """The DStream program's jar, built with Maven the first time its sources change, kept in ``cache``."""
    sources = sorted([DSTREAM_PROJECT / "pom.xml", *(DSTREAM_PROJECT / "src").rglob("*.java")])
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()[:12]
    jar = cache / "bench" / f"dstream-kmeans-{digest}" / "dstream-kmeans.jar"
    if jar.exists():
        return jar
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SystemExit("Maven ('mvn') is not on the PATH; the DStream side of the benchmark is built with it")
    print(f"building {DSTREAM_PROJECT.relative_to(REPO)} with Maven (once; cached as {jar})", flush=True)
    done = subprocess.run([mvn, "-B", "-q", "--strict-checksums", "-f", str(DSTREAM_PROJECT / "pom.xml"), "package"],
                          capture_output=True, text=True, check=False)
    built = DSTREAM_PROJECT / "target" / "dstream-kmeans.jar"
    if done.returncode != 0 or not built.exists():
        raise SystemExit(f"mvn package failed in {DSTREAM_PROJECT}:\n{(done.stdout + done.stderr)[-3000:]}")
    jar.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, jar.with_suffix(".tmp"))
    jar.with_suffix(".tmp").replace(jar)
    return jar


def dstream_connector_version() -> str:
    """The spark-streaming-kafka-0-10 version the DStream program is built against (its pom says why)."""
    found = re.search(r"<kafka010.version>([^<]+)</kafka010.version>", (DSTREAM_PROJECT / "pom.xml").read_text())
    if found is None:
        raise SystemExit(f"{DSTREAM_PROJECT / 'pom.xml'} names no kafka010.version")
    return found.group(1)


def dstream_connector_jars(infra: InfraConfig) -> list[Path]:
    """spark-streaming-kafka-0-10 and what it needs beyond pyspark's jars (the Structured Streaming
    connector's Kafka client, token provider and pool), fetched by ssp's own jar fetcher."""
    from ssp.infra.jars import Artifact, fetch_jars, spark_kafka_artifacts

    artifacts = [a for a in spark_kafka_artifacts(infra) if a.artifact != "spark-sql-kafka-0-10_2.13"]
    artifacts.append(Artifact("org.apache.spark", "spark-streaming-kafka-0-10_2.13", dstream_connector_version(),
                              transitive=False))
    return fetch_jars("spark-streaming-kafka", artifacts)


def run_dstream(infra: InfraConfig, topic: str, n: int, centres: np.ndarray, weights: np.ndarray, state: Path,
                args) -> tuple[dict, dict]:
    """MLlib's DStream pipeline on the whole topic, in its own JVM; returns (figures, its output)."""
    import pyspark

    import ssp.infra.spark as ssp_spark_module

    jar = dstream_jar(default_cache_dir())
    jars = dstream_connector_jars(infra)
    start_file = state / "dstream-centres.json"
    start_file.write_text(json.dumps({"centres": centres.tolist(), "weights": weights.tolist()}))
    per_partition = args.stream_batch // args.partitions
    max_rate = round(per_partition * 1000 / args.dstream_batch_ms)
    log_config = Path(ssp_spark_module.__file__).with_name("spark-log4j2.properties")
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    command = [
        str(submit), "--master", infra.resolved_spark_master, "--driver-memory", infra.spark_driver_memory,
        "--conf", f"spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=file:{log_config}",
        "--jars", ",".join(str(j) for j in jars), "--class", DSTREAM_CLASS, str(jar),
        "--bootstrap", infra.kafka_bootstrap, "--topic", topic, "--n", str(n), "--k", str(args.k),
        "--dim", str(args.dim), "--decay", repr(args.decay), "--centres", str(start_file),
        "--batch-ms", str(args.dstream_batch_ms), "--max-rate-per-partition", str(max_rate), "--timeout-s", "600",
    ]
    log = state / "logs" / "dstream.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_HOME": str(submit.parent.parent)}
    started = time.perf_counter()
    with open(log, "wb") as err:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env,
                              check=False, timeout=900)
    wall = time.perf_counter() - started
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise SystemExit(f"the DStream job failed (exit code {done.returncode}); the end of {log}:\n{tail}")
    output = json.loads(lines[-1])
    batches = [(rows, begin / 1000, end / 1000) for rows, begin, end, _ in output["batches"]]
    seen = sum(b[0] for b in batches)
    figures = stream_figures("dstream", batches, seen, wall)
    figures["median_scheduling_delay_ms"] = statistics.median(b[3] for b in output["batches"])
    figures["max_rate_per_partition"] = max_rate
    figures["batch_ms"] = args.dstream_batch_ms
    if figures["median_scheduling_delay_ms"] <= args.dstream_batch_ms:
        print(f"  warning: the DStream's median scheduling delay ({figures['median_scheduling_delay_ms']:.0f} ms) is "
              f"not above its batch duration ({args.dstream_batch_ms} ms): it waited for its clock, so its figure "
              "is a floor; lower --dstream-batch-ms", flush=True)
    return figures, output


def start_private_stack(state: Path):
    """Kafka and PostgreSQL on free ports in ``state`` (bench/quality.py's helper); the environment
    points ssp at them."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quality import start_stack

    return start_stack(state)


def part_a(spark, args, batches) -> dict:
    # the same start for all three: k points of the first batch, weight 1 each
    rng = np.random.default_rng(args.seed)
    centres = batches[0][rng.choice(args.batch, args.k, replace=False)]
    weights = np.ones(args.k)
    ssp_centres, ssp_weights, ssp_seconds = time_ssp(centres, weights, batches, args.decay, args.warmup)
    sc = spark.sparkContext
    jvm_centres, jvm_weights, jvm_seconds = time_mllib_jvm(sc, centres, weights, batches, args.decay, args.warmup)
    py_centres, py_weights, py_seconds = time_mllib_pyspark(sc, centres, weights, batches, args.decay, args.warmup)
    print(f"(a) the update: k={args.k} d={args.dim}, {args.warmup} warm-up + {args.batches} timed batches of "
          f"{args.batch:,}, decay {args.decay}, Spark master {sc.master} ({sc.defaultParallelism} partitions)")
    ssp_rate = describe("ssp", ssp_seconds, args.batch)
    jvm_rate = describe("mllib", jvm_seconds, args.batch)
    py_rate = describe("pyspark", py_seconds, args.batch)
    difference = max(float(np.abs(ssp_centres - other).max()) for other in (jvm_centres, py_centres))
    weight_difference = max(float(np.abs(ssp_weights - other).max()) for other in (jvm_weights, py_weights))
    print(f"final models: largest difference {difference:.2e} in centres, {weight_difference:.2e} in weights")
    print(f"update: ssp / mllib {ssp_rate / jvm_rate:,.1f}x, ssp / pyspark {ssp_rate / py_rate:,.1f}x", flush=True)
    return {
        "update_ssp_points_per_s": round(ssp_rate),
        "update_mllib_points_per_s": round(jvm_rate),
        "update_pyspark_points_per_s": round(py_rate),
        "update_ssp_over_pyspark": round(ssp_rate / py_rate, 2),
        "max_centre_difference": difference,
        "update_ssp_over_mllib": round(ssp_rate / jvm_rate, 2),
    }


def print_profile(ssp: dict, profile: dict, job_steps: dict, parse_ms: float, args) -> None:
    spark_phases = ", ".join(f"{key[6:-3]} {value:,.0f}" for key, value in profile.items()
                             if key.startswith("spark_") and value >= 1)
    inside = ""
    if "foreach_batch_ms" in profile:
        parts = [(label, profile.get(key)) for label, key in (
            ("the executors' job (broadcast, mapInArrow tasks, collect, fold)", "executors_job_ms"),
            ("of it the driver's fold", "driver_fold_ms"), ("the commit transaction", "commit_transaction_ms"))]
        inside = f"; inside foreachBatch ({profile['foreach_batch_ms']:,.0f}): " + ", ".join(
            f"{label} {value:,.0f}" for label, value in parts if value is not None)
    print(f"where ssp's micro-batch goes (medians, ms): Spark's phases: {spark_phases}{inside}")
    print(f"the executors' work on {args.stream_batch:,} of the topic's records, part by part (a batch read, ms): "
          f"Kafka read and count in the JVM {job_steps['kafka_read_count_ms']:,.0f}; Spark SQL's parse handed to "
          f"Python workers that only count {job_steps['sql_parse_map_in_arrow_count_ms']:,.0f}; the tasks' Python "
          f"work (parse_point on what SQL left, assign, sums, COPY lines) in one process "
          f"{job_steps['python_work_in_one_process_ms']:,.0f}; the COPY to the stage table "
          f"{job_steps['stage_copy_ms']:,.0f}")
    print(f"parsing {args.stream_batch:,} points with parse_point in one plain Python process: {parse_ms:,.0f} ms; "
          f"ssp's median micro-batch {ssp['median_batch_ms']:,.0f} ms", flush=True)


def best(runs: list[dict]) -> dict:
    return max(runs, key=lambda run: run["points_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=10, help="clusters (default 10)")
    parser.add_argument("--dim", type=int, default=10, help="dimensions (default 10)")
    parser.add_argument("--batch", type=int, default=10_000, help="(a) points per batch (default 10000)")
    parser.add_argument("--batches", type=int, default=20, help="(a) timed batches (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="(a) batches run first and not timed (default 3)")
    parser.add_argument("--decay", type=float, default=0.9, help="decay factor per batch (default 0.9)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stream-n", type=int, default=200_000, help="(b) points each stream job reads (default 200000)")
    parser.add_argument("--stream-batch", type=int, default=10_000,
                        help="(b) points per micro-batch: ssp's maxOffsetsPerTrigger, the DStream's maxRatePerPartition "
                             "x batch duration x partitions (default 10000)")
    parser.add_argument("--trigger-seconds", type=float, default=0.0,
                        help="(b) ssp's trigger interval (default 0: back to back)")
    parser.add_argument("--dstream-batch-ms", type=int, default=100,
                        help="(b) the DStream's batch duration, below its processing time (default 100)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="(b) runs of each side, alternating; the fastest of each counts (default 2)")
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions (default 4)")
    parser.add_argument("--master", default="local[2]", help="Spark master of both sides (default local[2])")
    parser.add_argument("--skip-update", action="store_true", help="skip (a)")
    parser.add_argument("--keep-state", action="store_true", help="keep the state folder (logs, checkpoints, tables)")
    args = parser.parse_args()
    if args.stream_batch % args.partitions or args.stream_n < args.stream_batch or args.rounds < 1:
        parser.error("--stream-batch must be a multiple of --partitions and at most --stream-n; --rounds >= 1")

    began = time.monotonic()
    load_config()
    state = Path(tempfile.mkdtemp(prefix="ssp-bench-kmeans-"))
    print(f"state folder {state}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    kafka, postgres = start_private_stack(state)
    infra = InfraConfig(spark_master=args.master)
    figures: dict = {}
    spark = None
    ssp_runs, dstream_runs, profiles = [], [], []
    try:
        topic = "bench_kmeans_points"
        update_points = args.batch * (args.warmup + args.batches) if not args.skip_update else 0
        produce_points(infra.kafka_bootstrap, topic, max(args.stream_n, update_points), args)
        spark = spark_session("ssp-bench-kmeans", infra)
        if not args.skip_update:
            figures.update(part_a(spark, args, make_batches(args.k, args.dim, args.batch,
                                                            args.warmup + args.batches, args.seed)))

        print(f"(b) the stream: {args.stream_n:,} points of {topic} ({args.partitions} partitions) from the earliest "
              f"offset, k={args.k} d={args.dim}, decay {args.decay} a batch, batches of {args.stream_batch:,}, "
              f"Spark master {infra.resolved_spark_master}, {args.rounds} rounds", flush=True)
        for run in range(args.rounds):
            spark = spark or spark_session("ssp-bench-kmeans", infra)
            ssp, profile, settings = run_ssp_stream(spark, infra, topic, args.stream_n, state, run, args)
            ssp_runs.append(ssp)
            profiles.append(profile)
            if run == args.rounds - 1:
                job_steps = profile_spark_job(spark, infra, topic, settings, args)
                ssp_centres = ssp_final_centres(infra, settings)
            spark.stop()
            spark = None
            initial = settings.new_model()
            dstream, output = run_dstream(infra, topic, args.stream_n, initial.centres, initial.weights, state, args)
            dstream_runs.append(dstream)
        gaps = np.linalg.norm(np.asarray(output["centres"])[:, None, :] - np.asarray(ssp_centres)[None, :, :], axis=2)
        print(f"final models of the two streams' last runs (their batch boundaries differ a little): each DStream "
              f"centre is within {gaps.min(axis=1).max():.3f} of one of ssp's (median {np.median(gaps.min(axis=1)):.3f})")
        parse_ms = parse_cost(args)
        ssp, dstream = best(ssp_runs), best(dstream_runs)
        print_profile(ssp, profiles[ssp_runs.index(ssp)], job_steps, parse_ms, args)
    finally:
        if spark is not None:
            spark.stop()
        kafka.stop()
        postgres.stop()
        if not args.keep_state:
            shutil.rmtree(state, ignore_errors=True)
    ratio = ssp["points_per_s"] / dstream["points_per_s"]
    print(f"stream: ssp / dstream {ratio:.2f}x ({ssp['points_per_s']:,.0f} vs {dstream['points_per_s']:,.0f} points/s "
          f"sustained, the faster of {args.rounds} runs each; with the first batch "
          f"{ssp['points_per_s_first_to_last'] / dstream['points_per_s_first_to_last']:.2f}x); the bench took "
          f"{time.monotonic() - began:.0f} s, load average {os.getloadavg()[0]:.1f}"
          + (f"; kept {state}" if args.keep_state else ""))
    figures.update({
        "stream_ssp_points_per_s": round(ssp["points_per_s"]),
        "stream_dstream_points_per_s": round(dstream["points_per_s"]),
        "stream_ssp_runs_points_per_s": [round(run["points_per_s"]) for run in ssp_runs],
        "stream_dstream_runs_points_per_s": [round(run["points_per_s"]) for run in dstream_runs],
        "stream_ssp_points_per_s_first_to_last": round(ssp["points_per_s_first_to_last"]),
        "stream_dstream_points_per_s_first_to_last": round(dstream["points_per_s_first_to_last"]),
        "stream_ssp_first_batch_ms": round(ssp["first_batch_ms"]),
        "stream_dstream_first_batch_ms": round(dstream["first_batch_ms"]),
        "stream_ssp_batches": ssp["batches"], "stream_dstream_batches": dstream["batches"],
        "stream_ssp_median_batch_ms": round(ssp["median_batch_ms"]),
        "stream_dstream_median_batch_ms": round(dstream["median_batch_ms"]),
        "stream_dstream_median_scheduling_delay_ms": round(dstream["median_scheduling_delay_ms"]),
        "stream_ssp_seconds_with_startup": round(ssp["wall_seconds_with_startup"], 1),
        "stream_dstream_seconds_with_startup": round(dstream["wall_seconds_with_startup"], 1),
        "ssp_batch_profile_ms": {key: round(value) for key, value in {
            **profiles[ssp_runs.index(ssp)], **job_steps, "plain_python_parse_ms": parse_ms}.items()},
        "k": args.k, "dim": args.dim, "batch": args.batch, "batches": args.batches, "stream_n": args.stream_n,
        "stream_batch": args.stream_batch, "partitions": args.partitions, "master": infra.resolved_spark_master,
        "cpus": os.cpu_count(), "seconds": round(time.monotonic() - began),
        "update_ssp_over_mllib": figures.get("update_ssp_over_mllib"),
        "stream_ssp_over_dstream": round(ratio, 2),
    })
    print(json.dumps(figures))


def ssp_final_centres(infra: InfraConfig, settings) -> list[list[float]]:
    from ssp.storage.clusters import latest_model
    from ssp.storage.postgres import make_engine

    engine = make_engine(infra.database_url)
    try:
        stored = latest_model(engine, settings.tables.version, settings.job, settings.tables.models)
    finally:
        engine.dispose()
    return StreamingKMeans.from_state(stored.state).centres.tolist()


if __name__ == "__main__":
    main()
