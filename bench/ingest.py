"""Benchmark: the ingest job (Kafka -> Spark -> PostgreSQL) against a plain COPY of the same rows.

Produces N synthetic tweets into a fresh topic, runs the ingest job, and times it from the first
to the last row written in PostgreSQL (each row's ``ingested_at`` is its insert-time clock). In the same run it
copies the very same rows into a fresh table with one ``COPY ... FROM STDIN`` and times that.
The last line printed is one JSON object with the figures.

    .venv/bin/python bench/ingest.py --n 200000
"""

from __future__ import annotations

import argparse
import io
import json
import time
import uuid

import psycopg2

from ssp.config import InfraConfig, IngestConfig, load_config
from ssp.infra.spark import spark_session
from ssp.infra.stack import LocalStack
from ssp.kafka.admin import ensure_topic
from ssp.kafka.producer import make_producer, produce
from ssp.sources.synthetic import synthetic_payloads
from ssp.storage.postgres import ensure_tables, make_engine
from ssp.storage.tables import raw_tweets_table
from ssp.streaming.ingest import run_ingest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="tweets to produce and ingest (default 200000)")
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions (default 4)")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=100_000)
    args = parser.parse_args()

    load_config()
    infra = InfraConfig()
    for line in LocalStack.from_config(infra).up():
        print(line)
    run = uuid.uuid4().hex[:8]
    topic, prefix = f"bench_ingest_{run}", f"bench_raw_{run}"
    table = f"{prefix}_0"
    url = infra.database_url

    ensure_topic(infra.kafka_bootstrap, topic, args.partitions)
    producer = make_producer(infra.kafka_bootstrap, linger_ms=50, batch_size=1024 * 1024)
    produced = produce(synthetic_payloads(args.n, seed=11), producer, topic, max_records=args.n)
    producer.close()
    print(produced.line(topic, None))

    spark = spark_session("ssp-bench-ingest", infra)
    engine = make_engine(url)
    ensure_tables(engine, raw_tweets_table(table))
    config = IngestConfig(max_offsets_per_trigger=args.max_offsets_per_trigger, trigger_seconds=0.5)
    job_start = time.perf_counter()
    result = run_ingest(spark, infra=infra, config=config, topic=topic, table_prefix=prefix, version=0,
                        max_records=args.n)
    job_seconds = time.perf_counter() - job_start
    print(result.line())
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        # ingested_at is each row's clock_timestamp() at insert, so this is first to last row as PostgreSQL saw it
        cur.execute(f"SELECT count(*), extract(epoch FROM max(ingested_at) - min(ingested_at)) FROM {table}")
        landed, first_to_last = cur.fetchone()
    if landed != args.n:
        raise SystemExit(f"ingest landed {landed} of {args.n} rows; the benchmark is void")
    ingest_rate = args.n / float(first_to_last)

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
    spark.stop()

    copy_rate = args.n / copy_seconds
    figures = {
        "ingest_tweets_per_s": round(ingest_rate),
        "copy_rows_per_s": round(copy_rate),
        "ratio": round(ingest_rate / copy_rate, 3),
        "n": args.n,
        "ingest_job_seconds_with_startup": round(job_seconds, 1),
        "micro_batches": result.batches,
        "produce_tweets_per_s": round(produced.rate),
    }
    print(f"ingest {ingest_rate:,.0f} tweets/s (first to last row), COPY {copy_rate:,.0f} rows/s, "
          f"ratio {ingest_rate / copy_rate:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
