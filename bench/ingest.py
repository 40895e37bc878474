"""Benchmark: the ingest job (Kafka -> Spark -> PostgreSQL) against a plain COPY of the same rows.

Produces N synthetic tweets into a fresh topic, runs the ingest job, and times it from the first
to the last row written in PostgreSQL (each row's ``ingested_at`` is its insert-time clock). In the same run it
copies the very same rows into a fresh table with one ``COPY ... FROM STDIN`` and times that.
The last line printed is one JSON object with the figures.

    .venv/bin/python bench/ingest.py --n 200000

``measure_ingest`` is the measurement itself, for ``bench/throughput.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import time
import uuid


def progress_listener(spark):
    """A listener keeping every micro-batch's progress event (rows and where its time went)."""
    from pyspark.sql.streaming import StreamingQueryListener

    class Batches(StreamingQueryListener):
        def __init__(self) -> None:
            self.batches: list[dict] = []

        def onQueryStarted(self, event) -> None:
            pass

        def onQueryProgress(self, event) -> None:
            progress = event.progress
            if progress.numInputRows:
                self.batches.append({"batchId": progress.batchId, "numInputRows": progress.numInputRows,
                                     "durationMs": dict(progress.durationMs)})

        def onQueryIdle(self, event) -> None:
            pass

        def onQueryTerminated(self, event) -> None:
            pass

    listener = Batches()
    spark.streams.addListener(listener)
    return listener


def measure_ingest(spark, infra, n: int, *, partitions: int = 4, max_offsets_per_trigger: int | None = None,
                   trigger_seconds: float | None = None, seed: int = 11, verbose: bool = True) -> dict:
    """Produce ``n`` synthetic tweets into a fresh topic, ingest them with ``run_ingest`` (the configured
    IngestConfig, with the two settings given here in place of its own), COPY the same rows into a fresh
    table, and return the figures (``ratio`` is ingest over COPY). Drops its tables."""
    import psycopg2

    from ssp.config import IngestConfig, overridden
    from ssp.kafka.admin import ensure_topic
    from ssp.kafka.producer import make_producer, produce
    from ssp.sources.synthetic import synthetic_payloads
    from ssp.storage.postgres import ensure_tables, make_engine
    from ssp.storage.tables import raw_tweets_table
    from ssp.streaming.ingest import run_ingest

    say = print if verbose else (lambda *_: None)
    run = uuid.uuid4().hex[:8]
    topic, prefix = f"bench_ingest_{run}", f"bench_raw_{run}"
    table = f"{prefix}_0"
    url = infra.database_url

    ensure_topic(infra.kafka_bootstrap, topic, partitions)
    producer = make_producer(infra.kafka_bootstrap, linger_ms=50, batch_size=1024 * 1024)
    produced = produce(synthetic_payloads(n, seed=seed), producer, topic, max_records=n, show_progress=False)
    producer.close()
    say(produced.line(topic, None))

    engine = make_engine(url)
    config = overridden(IngestConfig(), max_offsets_per_trigger=max_offsets_per_trigger,
                        trigger_seconds=trigger_seconds)
    listener = progress_listener(spark)
    job_start, job_start_clock = time.perf_counter(), time.time()
    result = run_ingest(spark, infra=infra, config=config, topic=topic, table_prefix=prefix, version=0, max_records=n)
    job_seconds = time.perf_counter() - job_start
    spark.streams.removeListener(listener)
    say(result.line())
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        # ingested_at is each row's clock_timestamp() at insert, so this is first to last row as PostgreSQL saw it
        cur.execute(f"SELECT count(*), extract(epoch FROM max(ingested_at) - min(ingested_at)), "
                    f"extract(epoch FROM min(ingested_at)) FROM {table}")
        landed, first_to_last, first_row_clock = cur.fetchone()
    first_row_after = float(first_row_clock) - job_start_clock
    say(f"  run_ingest called at 0 s; first row at {first_row_after:.2f} s, last row at "
        f"{first_row_after + float(first_to_last):.2f} s, run_ingest returned at {job_seconds:.2f} s")
    for batch in listener.batches:
        say(f"  micro-batch {batch['batchId']}: {batch['numInputRows']} rows, durations (ms) {batch['durationMs']}")
    with conn.cursor() as cur:
        # when each Kafka partition's rows landed, from the first row of all: where the time goes
        cur.execute(f"SELECT kafka_partition, count(*), "
                    f"extract(epoch FROM min(ingested_at) - (SELECT min(ingested_at) FROM {table})), "
                    f"extract(epoch FROM max(ingested_at) - (SELECT min(ingested_at) FROM {table})) "
                    f"FROM {table} GROUP BY kafka_partition ORDER BY 3")
        windows = cur.fetchall()
    if landed != n:
        raise SystemExit(f"ingest landed {landed} of {n} rows; the benchmark is void")
    for partition, rows, first, last in windows:
        say(f"  partition {partition}: {rows} rows landed from {float(first):.2f} s to {float(last):.2f} s")
    ingest_rate = n / float(first_to_last)

    # the same rows, COPYed into a fresh table of the same shape
    copy_table = f"bench_copy_{run}_0"
    ensure_tables(engine, raw_tweets_table(copy_table))
    buffer = io.StringIO()
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY (SELECT * FROM {table}) TO STDOUT", buffer)
    buffer.seek(0)
    copy_start = time.perf_counter()
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY {copy_table} FROM STDIN", buffer)
    conn.commit()
    copy_seconds = time.perf_counter() - copy_start
    with conn.cursor() as cur:
        for name in (table, copy_table):
            cur.execute(f"DROP TABLE {name}")
    conn.commit()
    conn.close()
    engine.dispose()

    copy_rate = n / copy_seconds
    say(f"ingest {ingest_rate:,.0f} tweets/s (first to last row), COPY {copy_rate:,.0f} rows/s, "
        f"ratio {ingest_rate / copy_rate:.2f} at {n:,} tweets")
    return {
        "ingest_tweets_per_s": round(ingest_rate),
        "copy_rows_per_s": round(copy_rate),
        "ratio": round(ingest_rate / copy_rate, 3),
        "n": n,
        "ingest_job_seconds_with_startup": round(job_seconds, 1),
        "micro_batches": result.batches,
        "max_offsets_per_trigger": config.max_offsets_per_trigger,
        "produce_tweets_per_s": round(produced.rate),
    }


def main() -> None:
    from ssp.config import InfraConfig, load_config
    from ssp.infra.spark import spark_session
    from ssp.infra.stack import LocalStack

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="tweets to produce and ingest (default 200000)")
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions (default 4)")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None,
                        help="default: IngestConfig.max_offsets_per_trigger")
    parser.add_argument("--trigger-seconds", type=float, default=None, help="default: IngestConfig.trigger_seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("ssp.streaming").setLevel(logging.INFO)  # the stream's start and its micro-batches, timed

    load_config()
    infra = InfraConfig()
    for line in LocalStack.from_config(infra).up():
        print(line)
    spark = spark_session("ssp-bench-ingest", infra)
    try:
        figures = measure_ingest(spark, infra, args.n, partitions=args.partitions,
                                 max_offsets_per_trigger=args.max_offsets_per_trigger,
                                 trigger_seconds=args.trigger_seconds)
    finally:
        spark.stop()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
