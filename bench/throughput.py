"""Benchmark: every figure of issue 16's table in one run, each beside its ceiling measured in the same run.

On the local stack (Kafka, PostgreSQL; ``LocalStack.up()``), one Spark session and one model server:

1. **producer**: ssp's ``produce()`` with ProducerConfig's settings (what ``ssp produce`` does: acks=all,
   idempotence) against the same librdkafka client sending the same records already serialised, in a bare
   loop (the client's own ceiling); ``bench/producer.py``'s functions;
2. **classify**: ssp's job (``run_classify``) over ``--n`` synthetic tweets, timed by its micro-batches
   (Spark's progress events, as ``bench/classify.py`` times it), against a plain Spark batch read of the same
   topic touching every value (the most any job over the topic can do here), read before and after the job,
   the faster counts;
3. **latency**: a fresh topic fed at ``--rate`` tweets/s (as ``ssp produce`` sends) for 5 s of warm-up plus
   ``--latency-seconds`` while the classify job runs with the configured trigger (ClassifyConfig; ``--gin-param``
   changes it); latency is each tweet's ``classified_at`` (its row's insert clock, in the transaction that
   commits it) minus its Kafka record timestamp (when the producer sent it), p50 / p95 / p99 over the tweets
   sent after the warm-up, in ``classified_tweets_<v>`` and (the AI ones) in ``ai_tweets_<v>``. Its ceiling:
   the same measurement on a stream that does nothing (the same Kafka source and trigger, ``foreachBatch``
   collecting the batch's timestamps to the driver). ``--latency-triggers`` adds runs at other settings;
4. **ingest** at 100,000 and 200,000 tweets against a plain ``COPY`` of the same rows (``bench/ingest.py``'s
   ``measure_ingest``; each size on a fresh Spark session, as ``ssp ingest`` starts one).

The last line printed is one JSON object with, among others, ``classify_over_kafka_read``,
``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms``, ``producer_tweets_per_s``,
``ingest_over_copy_100k`` and ``ingest_over_copy_200k``.

    .venv/bin/python bench/throughput.py
    .venv/bin/python bench/throughput.py --only latency --gin-param 'ClassifyConfig.trigger_seconds = 0.2'
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # the other benches' functions: classify, ingest, producer
sys.path.insert(0, str(BENCH.parent / "tests"))  # serving_models.ModelServerProcess, the server the tests start

PARTS = ("producer", "classify", "latency", "ingest")


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# ---------------------------------------------------------------- 1. producer
def measure_producer(infra, n: int, partitions: int, seed: int) -> dict:
    """ssp's produce() with ProducerConfig's settings against the bare librdkafka loop on the same records."""
    import orjson
    from confluent_kafka import Producer

    from producer import Topics, confluent_rate, time_generation
    from ssp.config import ProducerConfig
    from ssp.kafka.producer import payload_key

    bootstrap, defaults = infra.kafka_bootstrap, ProducerConfig()
    payloads, _, _ = time_generation(n, seed)
    topics = Topics(bootstrap, partitions)
    confluent_rate(bootstrap, topics, payloads[:20_000], defaults.linger_ms, defaults.batch_size, None)  # warm-up
    ssp_rate = max(confluent_rate(bootstrap, topics, payloads, defaults.linger_ms, defaults.batch_size,
                                  defaults.compression_type) for _ in range(2))

    records = [(payload_key(p), orjson.dumps(p)) for p in payloads]

    def bare() -> float:
        topic = topics.fresh()
        client = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                           "linger.ms": defaults.linger_ms, "batch.size": defaults.batch_size,
                           "partitioner": "murmur2_random", "queue.buffering.max.messages": 1_000_000})
        start = time.perf_counter()
        for key, value in records:
            while True:
                try:
                    client.produce(topic, value, key)
                    break
                except BufferError:
                    client.poll(0.01)
        if client.flush(120):
            raise SystemExit("the bare librdkafka loop did not deliver everything; the benchmark is void")
        seconds = time.perf_counter() - start
        topics.check_and_drop(topic, len(records))
        return len(records) / seconds

    bare_rate = max(bare() for _ in range(2))
    print(f"producer: ssp's produce() {ssp_rate:,.0f} tweets/s, the bare librdkafka loop on the same serialised "
          f"records {bare_rate:,.0f}/s ({ssp_rate / bare_rate:.2f}x; acks=all, idempotent, {n:,} tweets, "
          f"best of 2; load {load()})", flush=True)
    return {"producer_tweets_per_s": round(ssp_rate), "producer_bare_librdkafka_per_s": round(bare_rate),
            "producer_over_bare_client": round(ssp_rate / bare_rate, 2)}


# ---------------------------------------------------------------- 2. classify against reading the topic
def measure_classify(spark, infra, server, work: Path, n: int, partitions: int, seed: int, conn,
                     warm_up: int = 0) -> dict:
    from classify import MODEL_NAME, batch_durations, time_kafka_read
    from ssp.config import ClassifyConfig, ServeConfig
    from ssp.kafka.admin import ensure_topic
    from ssp.kafka.producer import make_producer, produce
    from ssp.sources.synthetic import synthetic_payloads
    from ssp.streaming.classify import ClassifyTables, run_classify

    run = uuid.uuid4().hex[:8]
    topic, version = f"bench_throughput_{run}", 10**6 + int(run, 16) % 10**9
    warm_topic, warm_version = f"bench_throughput_warm_{run}", version + 1
    producer = make_producer(infra.kafka_bootstrap, linger_ms=50, batch_size=1024 * 1024)
    try:
        for name, count, offset in ((topic, n, 0), (warm_topic, warm_up, 1)):
            ensure_topic(infra.kafka_bootstrap, name, partitions)
            print(produce(synthetic_payloads(count, seed=seed + offset), producer, name, show_progress=False)
                  .line(name, None))
    finally:
        producer.close()
    time_kafka_read(spark, infra, topic, n)  # warm-up: the Kafka source's first job
    read_seconds = [time_kafka_read(spark, infra, topic, n)]
    tables = ClassifyTables.for_version(version, "dead_letter_tweets")
    if warm_up:
        # the same job on other tweets first, untimed, as the read has its warm-up: a new JVM spends the first
        # seconds compiling (measured: 5.5 s of the C2 compiler's CPU in a first run over 100,000 tweets, 40% of
        # the JVM's), which a classify stream that runs for hours pays once
        started = time.perf_counter()
        run_classify(spark, infra=infra, config=ClassifyConfig(), serve=ServeConfig(), topic=warm_topic,
                     version=warm_version, model_url=server.url, model_name=MODEL_NAME, max_records=warm_up,
                     checkpoint_dir=work / f"classify-warm-{run}")
        print(f"classify warm-up: {warm_up} other tweets in {time.perf_counter() - started:.1f} s (untimed)")
        warm_tables = ClassifyTables.for_version(warm_version, "dead_letter_tweets")
        drop(conn, warm_tables.classified, warm_tables.ai, warm_tables.urls)
    listener = batch_durations(spark)
    result = run_classify(spark, infra=infra, config=ClassifyConfig(), serve=ServeConfig(), topic=topic,
                          version=version, model_url=server.url, model_name=MODEL_NAME, max_records=n,
                          checkpoint_dir=work / f"classify-{run}")
    print(result.line())
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {tables.classified}")
        landed = cur.fetchone()[0]
    if landed != n:
        raise SystemExit(f"the classify job classified {landed} of {n} tweets; the benchmark is void")
    processing = listener.processing(f"classify_{tables.classified}", n)
    spark.streams.removeListener(listener)
    read_seconds.append(time_kafka_read(spark, infra, topic, n))
    rate, read_rate = n / processing, n / min(read_seconds)
    print(f"classify: {rate:,.0f} tweets/s over its micro-batches ({processing:.1f} s, {result.batches} batches); "
          f"reading the topic alone {read_rate:,.0f} records/s (best of {len(read_seconds)}); "
          f"{rate / read_rate:.2f}x (load {load()})", flush=True)
    drop(conn, tables.classified, tables.ai, tables.urls)
    return {"classify_tweets_per_s": round(rate), "kafka_read_tweets_per_s": round(read_rate),
            "classify_over_kafka_read": round(rate / read_rate, 3), "classify_micro_batches": result.batches,
            "classify_warm_up_tweets": warm_up}


# ---------------------------------------------------------------- 3. end-to-end latency
WARM_UP_SECONDS = 5.0  # the paced producer runs this long before the records that are measured


def _paced(infra, topic: str, rate: float, seconds: float, seed: int):
    """Send synthetic tweets to ``topic`` at ``rate`` for WARM_UP_SECONDS + ``seconds``, as ``ssp produce`` sends
    them (ProducerConfig's linger and batch size). Returns the summary and the epoch clock from which on
    records count: the first seconds let the stream reach its steady state (a new stream's first micro-batch
    with records also starts Spark's Kafka consumers and compiles its plan), which is what a stream that
    runs for hours shows."""
    from ssp.config import ProducerConfig
    from ssp.kafka.producer import make_producer, produce
    from ssp.sources.synthetic import synthetic_payloads

    defaults = ProducerConfig()  # as `ssp produce` sends
    producer = make_producer(infra.kafka_bootstrap, linger_ms=defaults.linger_ms, batch_size=defaults.batch_size)
    n = int(rate * (WARM_UP_SECONDS + seconds))
    start = time.time()
    try:
        summary = produce(synthetic_payloads(n, seed=seed), producer, topic, rate=rate, max_records=n,
                          show_progress=False)
    finally:
        producer.close()
    return summary, start + WARM_UP_SECONDS


def _run_beside(job, ready) -> tuple[threading.Thread, dict]:
    """Run ``job()`` in a thread; return once ``ready()`` (the stream has made its first trigger)."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = job()
        except BaseException as err:  # re-raised by the caller
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 180
    while not ready() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    return thread, outcome


def _first_trigger_done(spark, name: str):
    def ready() -> bool:
        return any(q.name == name and q.lastProgress is not None for q in spark.streams.active)
    return ready


def percentiles_ms(values: list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 of ``values`` (seconds) in ms, linear between ranks as PostgreSQL's percentile_cont.

    >>> percentiles_ms([0.1, 0.2, 0.3, 0.4, 0.5])
    (300.0, 480.0, 496.0)
    """
    ordered = sorted(values)

    def at(share: float) -> float:
        rank = share * (len(ordered) - 1)
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        return 1000 * (ordered[low] + (ordered[high] - ordered[low]) * (rank - low))

    return tuple(round(at(share), 1) for share in (0.5, 0.95, 0.99))


def measure_noop_latency(spark, infra, work: Path, rate: float, seconds: float, partitions: int, seed: int,
                         trigger_seconds: float, max_offsets_per_trigger: int) -> dict:
    """The floor: Kafka record timestamp to the end of a micro-batch that only brings its timestamps to the
    driver, on the same source and trigger as the classify job."""
    from ingest import progress_listener
    from ssp.kafka.admin import ensure_topic
    from ssp.streaming.runner import StreamProgress, kafka_stream, run_until_done

    run = uuid.uuid4().hex[:8]
    topic, name = f"bench_noop_{run}", f"noop_{run}"
    ensure_topic(infra.kafka_bootstrap, topic, partitions)
    progress, latencies = StreamProgress(), []  # (Kafka timestamp, seconds to the batch's end)

    def write_batch(batch_df, batch_id: int) -> None:
        stamps = [row[0].timestamp() for row in batch_df.select("timestamp").collect()]
        now = time.time()
        latencies.extend((stamp, now - stamp) for stamp in stamps)
        progress.add(len(stamps))

    stream = kafka_stream(spark, infra, topic, "earliest", max_offsets_per_trigger)
    phases = progress_listener(spark)
    thread, outcome = _run_beside(
        lambda: run_until_done(stream, write_batch, progress, name=name, checkpoint=work / name,
                               trigger_seconds=trigger_seconds, until_idle=5.0),
        _first_trigger_done(spark, name))
    paced, measured_from = _paced(infra, topic, rate, seconds, seed)
    thread.join()
    spark.streams.removeListener(phases)
    if "error" in outcome:
        raise outcome["error"]
    show_batches(phases.batches)
    if len(latencies) != paced.sent:
        raise SystemExit(f"the no-op stream saw {len(latencies)} of {paced.sent} records; the benchmark is void")
    measured = [seconds for stamp, seconds in latencies if stamp >= measured_from]
    p50, p95, p99 = percentiles_ms(measured)
    print(f"latency floor, a stream doing nothing (trigger {trigger_seconds:g} s): p50 {p50:,.0f} ms, "
          f"p95 {p95:,.0f} ms, p99 {p99:,.0f} ms over {len(measured)} records at {paced.rate:,.0f}/s (after "
          f"{WARM_UP_SECONDS:g} s of warm-up; over all {len(latencies)}: p95 "
          f"{percentiles_ms([s for _, s in latencies])[1]:,.0f} ms)", flush=True)
    return {"noop_latency_p50_ms": round(p50), "noop_latency_p95_ms": round(p95), "noop_latency_p99_ms": round(p99)}


def measure_latency(spark, infra, server, work: Path, rate: float, seconds: float, partitions: int, seed: int,
                    conn, trigger_seconds: float | None = None) -> dict:
    """Kafka record timestamp to the committed row, classify job running with ClassifyConfig's trigger (or
    ``trigger_seconds``)."""
    from classify import MODEL_NAME, batch_durations
    from ingest import progress_listener
    from ssp.config import ClassifyConfig, ServeConfig, StreamingConfig, overridden
    from ssp.kafka.admin import ensure_topic
    from ssp.streaming.classify import ClassifyTables, run_classify

    config = overridden(ClassifyConfig(), trigger_seconds=trigger_seconds)
    run = uuid.uuid4().hex[:8]
    topic, version = f"bench_latency_{run}", 10**6 + int(run, 16) % 10**9
    ensure_topic(infra.kafka_bootstrap, topic, partitions)
    tables = ClassifyTables.for_version(version, "dead_letter_tweets")
    name = f"classify_{tables.classified}"
    listener, phases = batch_durations(spark), progress_listener(spark)
    thread, outcome = _run_beside(
        lambda: run_classify(spark, infra=infra, config=config, serve=ServeConfig(), topic=topic, version=version,
                             model_url=server.url, model_name=MODEL_NAME, until_idle=5.0,
                             checkpoint_dir=work / f"latency-{run}"),
        _first_trigger_done(spark, name))
    paced, measured_from = _paced(infra, topic, rate, seconds, seed)
    print(paced.line(topic, None))
    thread.join()
    spark.streams.removeListener(listener)
    spark.streams.removeListener(phases)
    if "error" in outcome:
        raise outcome["error"]
    print(outcome["result"].line())
    show_batches(phases.batches)
    figures = {}
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*), percentile_cont(0.95) WITHIN GROUP "
                    f"(ORDER BY extract(epoch FROM classified_at - produced_at)) FROM {tables.classified}")
        landed, p95_all = cur.fetchone()
        for kind, table in (("", tables.classified), ("ai_", tables.ai)):
            cur.execute("SELECT count(*), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP "
                        f"(ORDER BY extract(epoch FROM classified_at - produced_at)) FROM {table} "
                        "WHERE produced_at >= to_timestamp(%s)", (measured_from,))
            count, shares = cur.fetchone()
            figures[kind] = (count, *(1000 * float(x) for x in shares))
    count, p50, p95, p99 = figures[""]
    if landed != paced.sent:
        raise SystemExit(f"the latency run classified {landed} of {paced.sent} tweets; the benchmark is void")
    batches = sorted(s for q, rows, s in listener.batches if q == name and rows > 0)
    median_batch = 1000 * batches[len(batches) // 2] if batches else 0.0
    ai_count, ai50, ai95, ai99 = figures["ai_"]
    print(f"latency at {paced.rate:,.0f} tweets/s, trigger {config.trigger_seconds:g} s, fetch.max.wait.ms "
          f"{StreamingConfig().kafka_fetch_max_wait_ms}: Kafka timestamp to committed row, over {count} tweets: "
          f"p50 {p50:,.0f} ms, p95 {p95:,.0f} ms, p99 {p99:,.0f} ms (AI tweets in {tables.ai}, {ai_count}: "
          f"p50 {ai50:,.0f}, p95 {ai95:,.0f}, p99 {ai99:,.0f}); after {WARM_UP_SECONDS:g} s of warm-up (over all "
          f"{landed}: p95 {1000 * float(p95_all):,.0f} ms); {len(batches)} micro-batches with records, "
          f"median {median_batch:,.0f} ms (load {load()})", flush=True)
    drop(conn, tables.classified, tables.ai, tables.urls)
    return {
        "latency_rate_tweets_per_s": round(paced.rate), "latency_trigger_seconds": config.trigger_seconds,
        "latency_fetch_max_wait_ms": StreamingConfig().kafka_fetch_max_wait_ms,
        "latency_p50_ms": round(p50), "latency_p95_ms": round(p95), "latency_p99_ms": round(p99),
        "latency_ai_p95_ms": round(ai95), "latency_tweets": count, "latency_warm_up_seconds": WARM_UP_SECONDS,
        "latency_p95_ms_with_warm_up": round(1000 * float(p95_all)),
        "latency_median_micro_batch_ms": round(median_batch),
    }


def median_phases(batches: list[dict]) -> dict[str, int]:
    """The median of each phase of Spark's micro-batch progress events (``durationMs``) over ``batches``.

    >>> median_phases([{"durationMs": {"addBatch": 10, "walCommit": 3}}, {"durationMs": {"addBatch": 30}},
    ...                {"durationMs": {"addBatch": 20, "walCommit": 5}}])
    {'addBatch': 20, 'walCommit': 5}
    """
    phases: dict[str, list[int]] = {}
    for batch in batches:
        for phase, ms in batch["durationMs"].items():
            phases.setdefault(phase, []).append(ms)
    return {phase: sorted(values)[len(values) // 2] for phase, values in phases.items()}


def show_batches(batches: list[dict]) -> None:
    """Each micro-batch with records (rows, ms), then the median of each phase."""
    listed = ", ".join(f"{b['numInputRows']}/{b['durationMs'].get('triggerExecution', 0)}" for b in batches)
    print(f"  micro-batches (rows/ms): {listed}")
    print(f"  median ms per micro-batch with records, by phase: {median_phases(batches)}")


def drop(conn, *tables: str) -> None:
    with conn.cursor() as cur:
        for table in tables:
            cur.execute(f"DROP TABLE IF EXISTS {table}")


# ---------------------------------------------------------------- the run
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="tweets of the classify run (default 100000)")
    parser.add_argument("--classify-warm-up", type=int, default=50_000,
                        help="tweets of an untimed classify run before it, on a topic of their own (default 50000)")
    parser.add_argument("--producer-tweets", type=int, default=200_000, help="tweets a producer run sends")
    parser.add_argument("--rate", type=float, default=1_000.0, help="tweets/s of the latency run (default 1000)")
    parser.add_argument("--latency-seconds", type=float, default=30.0, help="length of the latency run (default 30)")
    parser.add_argument("--latency-triggers", default="",
                        help="more settings to measure the latency at, after the configured one, comma-separated: "
                             "a trigger interval in seconds, optionally with a fetch.max.wait.ms after a colon "
                             "(1:500 is the trigger and Kafka wait ssp had before issue 16); default: none")
    parser.add_argument("--ingest-sizes", default="100000,200000", help="tweets of each ingest run")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of every topic (default 4)")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--only", default=",".join(PARTS), help=f"a comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--gin-param", action="append", default=[], help="a gin binding, as `ssp --gin-param`")
    args = parser.parse_args()
    if args.classify_warm_up < 0:
        parser.error(f"--classify-warm-up must be 0 or more tweets, got {args.classify_warm_up}")
    parts = [part.strip() for part in args.only.split(",") if part.strip()]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"--only: unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    sizes = [int(size) for size in args.ingest_sizes.split(",") if size.strip()]

    import gin
    import psycopg2

    from classify import MODEL_NAME, train_and_export
    from ingest import measure_ingest
    from serving_models import ModelServerProcess
    from ssp.config import ClassifyConfig, InfraConfig, StreamingConfig, load_config
    from ssp.infra.spark import spark_session
    from ssp.infra.stack import LocalStack
    from ssp.serving.client import PredictClient
    from ssp.streaming.runner import warm_python_workers

    load_config([], args.gin_param)
    infra = InfraConfig()
    for line in LocalStack.from_config(infra).up():
        print(line)
    print(f"load average {load()} on {os.cpu_count()} cores at the start", flush=True)
    figures: dict = {"cpus": os.cpu_count(), "load_average_start": load()}
    if "producer" in parts:
        figures.update(measure_producer(infra, args.producer_tweets, args.partitions, args.seed))
    if "classify" in parts or "latency" in parts:
        with tempfile.TemporaryDirectory(prefix="ssp-bench-throughput-") as tmp:
            work = Path(tmp)
            train_and_export(work / MODEL_NAME, 4_000, args.seed + 1)
            server = ModelServerProcess(work / MODEL_NAME, work / "logs", model_name=MODEL_NAME)
            spark = spark_session("ssp-bench-throughput", infra)
            conn = psycopg2.connect(infra.database_url)
            conn.autocommit = True
            try:
                with PredictClient(server.url, MODEL_NAME) as client:
                    client.wait_until_available(60)
                if "classify" in parts:
                    figures.update(measure_classify(spark, infra, server, work, args.n, args.partitions, args.seed,
                                                    conn, args.classify_warm_up))
                if "latency" in parts:
                    # the classify tasks' Python workers started, as a stream running for a while has them (the
                    # classify part above starts them too)
                    warm_python_workers(spark, "ssp.streaming.classify")
                    config = ClassifyConfig()
                    figures.update(measure_noop_latency(spark, infra, work, args.rate, args.latency_seconds,
                                                        args.partitions, args.seed + 1, config.trigger_seconds,
                                                        config.max_offsets_per_trigger))
                    figures.update(measure_latency(spark, infra, server, work, args.rate, args.latency_seconds,
                                                   args.partitions, args.seed + 2, conn))
                    sweep = {}
                    for setting in (t.strip() for t in args.latency_triggers.split(",") if t.strip()):
                        trigger, _, wait = setting.partition(":")
                        configured_wait = StreamingConfig().kafka_fetch_max_wait_ms
                        with gin.unlock_config():
                            gin.bind_parameter("StreamingConfig.kafka_fetch_max_wait_ms", int(wait or configured_wait))
                        try:
                            other = measure_latency(spark, infra, server, work, args.rate, args.latency_seconds,
                                                    args.partitions, args.seed + 2, conn,
                                                    trigger_seconds=float(trigger))
                        finally:
                            with gin.unlock_config():
                                gin.bind_parameter("StreamingConfig.kafka_fetch_max_wait_ms", configured_wait)
                        sweep[setting] = [other[f"latency_{q}_ms"] for q in ("p50", "p95", "p99")]
                    if sweep:
                        figures["latency_p50_p95_p99_ms_by_trigger_and_wait"] = sweep
            finally:
                conn.close()
                spark.stop()
                server.stop()
    if "ingest" in parts:
        for size in sizes:
            spark = spark_session("ssp-bench-throughput-ingest", infra)  # a fresh session, as `ssp ingest` has
            try:
                ingest = measure_ingest(spark, infra, size, partitions=args.partitions, seed=args.seed + 3)
            finally:
                spark.stop()
            key = f"ingest_over_copy_{size // 1000}k" if size % 1000 == 0 else f"ingest_over_copy_{size}"
            figures[key] = ingest["ratio"]
            figures[f"{key.replace('over_copy', 'tweets_per_s')}"] = ingest["ingest_tweets_per_s"]
            figures[f"{key.replace('ingest_over_copy', 'copy_rows_per_s')}"] = ingest["copy_rows_per_s"]
            print(f"ingest at {size:,}: {ingest['ratio']:.2f}x the plain COPY (load {load()})", flush=True)
    figures["load_average_end"] = load()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
