"""Benchmark: Bluesky posts from a local Jetstream through Kafka into PostgreSQL, against the tweet path.

Two stages, each timed on its own and for both paths on the same machine in the same run:

* source -> Kafka: N post events served by a local Jetstream (tests/bluesky_fakes.py, a real websocket
  server) read by ``JetstreamSource`` and sent by ssp's producer (keyword routing on), against N
  synthetic tweets through the same producer;
* Kafka -> PostgreSQL: the ingest job (Spark) over each topic into a fresh raw table, timed from the
  first to the last row written (each row's ``ingested_at``).

In production the stages run at once, so the path's rate is the slower stage's: ``posts_per_s`` is that
figure for Bluesky, ``tweets_per_s`` the tweet path's. Jetstream's public firehose peaks at a few hundred
posts/s, so the goal is >= 5,000 posts/s. The last line is one JSON object.

    .venv/bin/python bench/bluesky.py            # 20,000 posts (default)
    .venv/bin/python bench/bluesky.py --n 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

import psycopg2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # bluesky_fakes.FakeJetstream is the server the tests use

from bluesky_fakes import BASE_TIME_US, FakeJetstream, post_event  # noqa: E402
from ssp.config import InfraConfig, IngestConfig, TopicsConfig, load_config  # noqa: E402
from ssp.infra.spark import spark_session  # noqa: E402
from ssp.infra.stack import LocalStack  # noqa: E402
from ssp.kafka.admin import ensure_topic  # noqa: E402
from ssp.kafka.cli import _ai_text_test  # noqa: E402
from ssp.kafka.producer import make_producer, produce  # noqa: E402
from ssp.sources.bluesky import JetstreamSource  # noqa: E402
from ssp.sources.synthetic import synthetic_payloads  # noqa: E402
from ssp.streaming.ingest import run_ingest  # noqa: E402

GOAL = 5_000.0


def bluesky_events(n: int) -> list[dict]:
    """N post events like the firehose's: a third about AI with a link facet and a tag, some with a link card."""
    events = []
    for number in range(n):
        if number % 3 == 0:
            events.append(post_event(number, text=f"new LLM paper number {number}", tags=("AI",),
                                     links=(f"https://arxiv.org/abs/2401.{number:05d}",),
                                     time_us=BASE_TIME_US + number * 10))
        else:
            events.append(post_event(number, text=f"coffee and a walk, day {number}", time_us=BASE_TIME_US + number * 10,
                                     external=f"https://example.org/{number}" if number % 5 == 0 else None))
    return events


def to_kafka(payloads, bootstrap: str, topic: str, ai_topic: str, n: int):
    producer = make_producer(bootstrap, linger_ms=50, batch_size=1024 * 1024)
    try:
        return produce(payloads, producer, topic, ai_topic=ai_topic, is_ai_text=_ai_text_test(), max_records=n,
                       show_progress=False)
    finally:
        producer.close()


def ingest_rate(spark, infra: InfraConfig, topic: str, prefix: str, n: int) -> tuple[float, object]:
    config = IngestConfig(max_offsets_per_trigger=100_000, trigger_seconds=0.5)
    result = run_ingest(spark, infra=infra, config=config, topic=topic, table_prefix=prefix, version=0, max_records=n)
    conn = psycopg2.connect(infra.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*), extract(epoch FROM max(ingested_at) - min(ingested_at)) FROM {prefix}_0")
            landed, seconds = cur.fetchone()
    finally:
        conn.close()
    if landed != n:
        raise SystemExit(f"ingest landed {landed} of {n} rows from {topic}; the benchmark is void")
    return n / max(float(seconds), 1e-6), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="posts (and tweets) per path (default 20000)")
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions (default 4)")
    args = parser.parse_args()

    load_config()
    infra = InfraConfig()
    for line in LocalStack.from_config(infra).up():
        print(line)
    run = uuid.uuid4().hex[:8]
    ai_topic = TopicsConfig().ai_tweets_topic
    topics = {"bluesky": f"bench_bsky_{run}", "tweets": f"bench_tweets_{run}"}
    for topic in (*topics.values(), ai_topic):
        ensure_topic(infra.kafka_bootstrap, topic, args.partitions)

    events = bluesky_events(args.n)
    with FakeJetstream(events) as server:
        source = JetstreamSource(server.url, max_records=args.n)
        bluesky_produced = to_kafka(source, infra.kafka_bootstrap, topics["bluesky"], ai_topic, args.n)
    print("bluesky source -> Kafka:", bluesky_produced.line(topics["bluesky"], ai_topic, "posts"))
    tweets_produced = to_kafka(synthetic_payloads(args.n, seed=11), infra.kafka_bootstrap, topics["tweets"],
                               ai_topic, args.n)
    print("tweet source -> Kafka:  ", tweets_produced.line(topics["tweets"], ai_topic))

    spark = spark_session("ssp-bench-bluesky", infra)
    try:
        bluesky_ingest, result = ingest_rate(spark, infra, topics["bluesky"], f"bench_raw_bsky_{run}", args.n)
        print("bluesky Kafka -> PostgreSQL:", result.line())
        tweets_ingest, result = ingest_rate(spark, infra, topics["tweets"], f"bench_raw_tweets_{run}", args.n)
        print("tweet Kafka -> PostgreSQL:  ", result.line())
    finally:
        spark.stop()

    posts_per_s = min(bluesky_produced.rate, bluesky_ingest)
    tweets_per_s = min(tweets_produced.rate, tweets_ingest)
    figures = {
        "n": args.n,
        "posts_per_s": round(posts_per_s),
        "tweets_per_s": round(tweets_per_s),
        "bluesky_vs_tweets": round(posts_per_s / tweets_per_s, 2) if tweets_per_s else None,
        "bluesky_source_to_kafka_per_s": round(bluesky_produced.rate),
        "bluesky_kafka_to_postgres_per_s": round(bluesky_ingest),
        "tweets_source_to_kafka_per_s": round(tweets_produced.rate),
        "tweets_kafka_to_postgres_per_s": round(tweets_ingest),
        "goal_posts_per_s": GOAL,
        "meets_goal": posts_per_s >= GOAL,
    }
    print(f"Bluesky path: {posts_per_s:,.0f} posts/s (goal {GOAL:,.0f}), tweet path: {tweets_per_s:,.0f} tweets/s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
