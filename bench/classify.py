"""Benchmark: ssp's batched classification stream against the original project's row-at-a-time UDF.

In one run, on the local stack (Kafka, PostgreSQL; ``LocalStack.up()``) and one model server:

1. trains a realistic classifier (``ssp.model.train``: TextVectorization -> embeddings -> pooling -> dense,
   on raw tweet texts) on synthetic tweets, exports it as version 1 and serves it with
   ``ssp serve --server ssp`` in a separate process on a free port;
2. produces ``--n`` synthetic tweets into a fresh topic;
3. the original approach: a Spark job over the first ``--row-sample`` of those tweets with a Python UDF
   that parses one tweet and POSTs it alone to the model server (a new HTTP connection per call, as
   ``requests.post`` does), i.e. one REST call per tweet. It is timed on a sample because the whole set
   would take too long, once before and once after step 4, and the faster run counts; it writes
   nothing (and, unlike the original, loads no tokenizer per row), so its figure is the most it could do;
4. ssp's job (``run_classify``) on all ``--n`` tweets: Kafka -> parse -> batched predictions over pooled
   connections -> three PostgreSQL tables; timed by its micro-batches' durations (Spark's progress
   events: the processing, without the query's start-up), and also from the first to the last row
   written (each row's ``classified_at`` is its insert-time clock) and with start-up; before it, the
   same job with Spark SQL reading the tweets (``sql_parse=True``: ``ssp.streaming.tweet_sql``), into
   tables of its own; and a plain Spark batch read of the topic, before and after, as the ceiling;
5. the end-to-end latency at ``--rate`` tweets/s: a fresh topic is fed at that rate for
   ``--latency-seconds`` while the job runs with the configured trigger; latency is each AI tweet's
   ``classified_at`` in ``ai_tweets_<v>`` minus its Kafka timestamp (when the producer sent it).

The last line printed is one JSON object with the figures, including ``batched_over_row_udf``
(ssp's tweets/s over the row UDF's; the goal is at least 100) and ``classify_over_kafka_read`` (ssp's
tweets/s over a plain Spark batch read of the same topic, the most any job over it can do here; the
goal is at least 0.5).

    .venv/bin/python bench/classify.py --n 100000
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # serving_models.ModelServerProcess starts the server the tests use

MODEL_NAME = "bench_clf"


def train_and_export(base_path: Path, n: int, seed: int) -> None:
    """Train the project's classifier on ``n`` synthetic tweets and export it as ``base_path/1``."""
    import numpy as np

    from ssp.config import TrainConfig
    from ssp.model.export import export_model
    from ssp.model.train import fit_classifier
    from ssp.sources.synthetic import SyntheticTweets
    from ssp.tweets import parse_tweet

    tweets = list(SyntheticTweets(seed).generate(n))
    texts = [parse_tweet(t.payload).text for t in tweets]
    truth = np.array([float(t.is_ai) for t in tweets])
    cut = n * 9 // 10
    model, _ = fit_classifier(texts[:cut], truth[:cut], texts[cut:], truth[cut:], TrainConfig(epochs=5, seed=seed))
    export_model(model, base_path, {"note": "bench/classify.py", "trained_on": f"{cut} synthetic tweets"})


def row_udf(model_url: str, model_name: str):
    """The original project's classifier UDF: one tweet, one JSON request, one new connection."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import FloatType

    endpoint = f"{model_url}/v1/models/{model_name}:predict"

    def classify_one(value: bytes) -> float:
        import requests

        from ssp.tweets import parse_tweet

        text = parse_tweet(value).text
        answer = requests.post(endpoint, data=json.dumps({"instances": [text]}),
                               headers={"content-type": "application/json"}, timeout=30)
        answer.raise_for_status()
        return float(answer.json()["predictions"][0])

    return F.udf(classify_one, FloatType())


def time_row_udf(spark, infra, topic: str, model_url: str, expected: int) -> float:
    """Seconds for the row UDF to score every record of ``topic`` (a Spark batch job over Kafka)."""
    from pyspark.sql import functions as F

    records = (spark.read.format("kafka").option("kafka.bootstrap.servers", infra.kafka_bootstrap)
               .option("subscribe", topic).option("startingOffsets", "earliest").option("endingOffsets", "latest")
               .load())
    score = row_udf(model_url, MODEL_NAME)
    start = time.perf_counter()
    scored, total = records.select(score("value").alias("ai_prob")).agg(F.count("ai_prob"), F.sum("ai_prob")).first()
    seconds = time.perf_counter() - start
    if scored != expected or total is None:
        raise SystemExit(f"the row UDF scored {scored} of {expected} tweets; the benchmark is void")
    return seconds


def time_kafka_read(spark, infra, topic: str, expected: int) -> float:
    """Seconds for a plain Spark batch job to read every record of ``topic`` and touch each value: the
    ceiling a job over the topic can reach on this machine (no parsing, no Python, no writes)."""
    from pyspark.sql import functions as F

    records = (spark.read.format("kafka").option("kafka.bootstrap.servers", infra.kafka_bootstrap)
               .option("subscribe", topic).option("startingOffsets", "earliest").option("endingOffsets", "latest")
               .load())
    start = time.perf_counter()
    count, size = records.agg(F.count("*"), F.sum(F.length("value"))).first()
    seconds = time.perf_counter() - start
    if count != expected or not size:
        raise SystemExit(f"the plain Kafka read saw {count} of {expected} records; the benchmark is void")
    return seconds


def batch_durations(spark):
    """A listener recording (query name, input rows, seconds) of every micro-batch: what the job spent
    processing, without the query's start-up and without the wait between triggers."""
    from pyspark.sql.streaming import StreamingQueryListener

    class BatchDurations(StreamingQueryListener):
        def __init__(self) -> None:
            self.batches: list[tuple[str, int, float]] = []

        def onQueryStarted(self, event) -> None:
            pass

        def onQueryProgress(self, event) -> None:
            progress = event.progress
            self.batches.append((progress.name, progress.numInputRows,
                                 progress.durationMs.get("triggerExecution", 0) / 1000))

        def onQueryIdle(self, event) -> None:
            pass

        def onQueryTerminated(self, event) -> None:
            pass

        def processing(self, name: str, rows: int, timeout: float = 30) -> float:
            """Seconds of the micro-batches of query ``name``, once they add up to ``rows`` input rows."""
            deadline = time.monotonic() + timeout
            while sum(n for q, n, _ in self.batches if q == name) < rows:  # events arrive asynchronously
                if time.monotonic() > deadline:
                    raise SystemExit(f"the progress events of {name} never added up to {rows} rows")
                time.sleep(0.1)
            return sum(seconds for q, n, seconds in self.batches if q == name and n > 0)

    listener = BatchDurations()
    spark.streams.addListener(listener)
    return listener


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="tweets for ssp's batched job (default 100000)")
    parser.add_argument("--row-sample", type=int, default=2_000,
                        help="tweets the row-at-a-time UDF is timed on (default 2000)")
    parser.add_argument("--rate", type=float, default=1_000.0, help="tweets/s for the latency run (default 1000)")
    parser.add_argument("--latency-seconds", type=float, default=30.0, help="length of the latency run (default 30)")
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions (default 4)")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    if min(args.n, args.row_sample) < 1 or args.row_sample > args.n or args.rate <= 0 or args.latency_seconds <= 0:
        parser.error("need --n >= --row-sample >= 1, --rate > 0 and --latency-seconds > 0")

    import psycopg2

    from serving_models import ModelServerProcess
    from ssp.config import ClassifyConfig, InfraConfig, ServeConfig, load_config
    from ssp.infra.spark import spark_session
    from ssp.infra.stack import LocalStack
    from ssp.kafka.admin import ensure_topic
    from ssp.kafka.producer import make_producer, produce
    from ssp.serving.client import PredictClient
    from ssp.sources.synthetic import synthetic_payloads
    from ssp.streaming.classify import ClassifyTables, run_classify

    load_config()
    infra, config, serve = InfraConfig(), ClassifyConfig(), ServeConfig()
    for line in LocalStack.from_config(infra).up():
        print(line)
    run = uuid.uuid4().hex[:8]
    topic, sample_topic, latency_topic = (f"bench_classify_{run}", f"bench_classify_sample_{run}",
                                          f"bench_classify_latency_{run}")
    version = 10**6 + int(run, 16) % 10**9  # table versions of this run only
    latency_version, sql_version = version + 1, version + 2
    producer = make_producer(infra.kafka_bootstrap, linger_ms=50, batch_size=1024 * 1024)
    for name in (topic, sample_topic, latency_topic):
        ensure_topic(infra.kafka_bootstrap, name, args.partitions)
    print(produce(synthetic_payloads(args.n, seed=args.seed), producer, topic, show_progress=False).line(topic, None))
    print(produce(synthetic_payloads(args.row_sample, seed=args.seed), producer, sample_topic,
                  show_progress=False).line(sample_topic, None))

    with tempfile.TemporaryDirectory(prefix="ssp-bench-classify-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        train_and_export(work / MODEL_NAME, 4_000, args.seed + 1)
        print(f"trained and exported {work / MODEL_NAME / '1'} in {time.perf_counter() - t0:.1f} s")
        server = ModelServerProcess(work / MODEL_NAME, work / "logs", model_name=MODEL_NAME)
        spark = spark_session("ssp-bench-classify", infra)
        conn = psycopg2.connect(infra.database_url)
        conn.autocommit = True
        try:
            with PredictClient(server.url, MODEL_NAME) as client:
                client.wait_until_available(60)

            # 1. the original approach, on the sample; timed again after ssp's job (below), and the faster
            # of the two counts, so a busier machine during one of them cannot inflate the ratio
            time_row_udf(spark, infra, sample_topic, server.url, args.row_sample)  # warm-up: workers, connections
            row_seconds = [time_row_udf(spark, infra, sample_topic, server.url, args.row_sample)]
            # the ceiling: reading the same topic alone, timed before and after ssp's job, the faster counts
            read_seconds = [time_kafka_read(spark, infra, topic, args.n)]

            # 2. ssp's batched job, on all of them
            tables = ClassifyTables.for_version(version, "dead_letter_tweets")
            listener = batch_durations(spark)
            # first with Spark SQL reading the tweets (sql_parse=True), into tables of their own, for the
            # comparison in the same run
            sql_tables = ClassifyTables.for_version(sql_version, "dead_letter_tweets")
            run_classify(spark, infra=infra, config=config, serve=serve, topic=topic, version=sql_version,
                         model_url=server.url, model_name=MODEL_NAME, max_records=args.n,
                         checkpoint_dir=work / "sql-checkpoint", sql_parse=True)
            sql_rate = args.n / listener.processing(f"classify_{sql_tables.classified}", args.n)
            start = time.perf_counter()
            result = run_classify(spark, infra=infra, config=config, serve=serve, topic=topic, version=version,
                                  model_url=server.url, model_name=MODEL_NAME, max_records=args.n,
                                  checkpoint_dir=work / "checkpoint")
            wall = time.perf_counter() - start
            print(result.line())
            with conn.cursor() as cur:
                cur.execute(f"SELECT count(*), extract(epoch FROM max(classified_at) - min(classified_at)) "
                            f"FROM {tables.classified}")
                landed, first_to_last = cur.fetchone()
            if landed != args.n:
                raise SystemExit(f"the batched job classified {landed} of {args.n} tweets; the benchmark is void")
            processing = listener.processing(f"classify_{tables.classified}", args.n)
            batched_rate = args.n / processing
            row_seconds.append(time_row_udf(spark, infra, sample_topic, server.url, args.row_sample))
            row_rate = args.row_sample / min(row_seconds)
            read_seconds.append(time_kafka_read(spark, infra, topic, args.n))
            read_rate = args.n / min(read_seconds)
            print(f"row-at-a-time UDF, one REST call per tweet: {args.row_sample} tweets (a sample of the {args.n}: "
                  f"the whole set would take {args.n / row_rate / 60:.0f} min) in "
                  f"{' and '.join(f'{s:.1f} s' for s in row_seconds)} (before and after ssp's job) = "
                  f"{row_rate:,.0f} tweets/s at best (scoring only, no writes)")
            print(f"ssp batched job: {args.n} tweets in micro-batches totalling {processing:.1f} s = "
                  f"{batched_rate:,.0f} tweets/s, {batched_rate / row_rate:,.0f}x the row UDF "
                  f"({args.n / float(first_to_last):,.0f} tweets/s first to last row written; "
                  f"{args.n / wall:,.0f} tweets/s over {wall:.1f} s with the query's start-up)")
            print(f"reading the topic alone (a Spark batch job touching every value): {args.n} records in "
                  f"{' and '.join(f'{s:.1f} s' for s in read_seconds)} (before and after ssp's job) = "
                  f"{read_rate:,.0f} records/s at best; ssp's job runs at {batched_rate / read_rate:.2f}x that, "
                  f"{sql_rate:,.0f} tweets/s ({sql_rate / read_rate:.2f}x, {sql_rate / batched_rate:.2f}x the Python "
                  f"parser's) with Spark SQL reading the tweets")

            # 3. end-to-end latency at a steady rate
            latency_tables = ClassifyTables.for_version(latency_version, "dead_letter_tweets")
            outcome: dict = {}

            def classify_latency_topic() -> None:
                try:
                    outcome["result"] = run_classify(
                        spark, infra=infra, config=config, serve=serve, topic=latency_topic, version=latency_version,
                        model_url=server.url, model_name=MODEL_NAME, until_idle=10.0,
                        checkpoint_dir=work / "latency-checkpoint")
                except BaseException as err:  # reported below
                    outcome["error"] = err

            job = threading.Thread(target=classify_latency_topic)
            job.start()
            deadline = time.monotonic() + 120
            while not spark.streams.active and time.monotonic() < deadline and job.is_alive():
                time.sleep(0.2)
            time.sleep(2 * config.trigger_seconds)  # past the first (empty) trigger
            n_latency = int(args.rate * args.latency_seconds)
            paced = produce(synthetic_payloads(n_latency, seed=args.seed + 2), producer, latency_topic,
                            rate=args.rate, max_records=n_latency, show_progress=False)
            print(paced.line(latency_topic, None))
            job.join()
            if "error" in outcome:
                raise outcome["error"]
            print(outcome["result"].line())
            with conn.cursor() as cur:
                cur.execute(f"SELECT count(*) FROM {latency_tables.classified}")
                latency_landed = cur.fetchone()[0]
                cur.execute(
                    "SELECT count(*), percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP "
                    f"(ORDER BY extract(epoch FROM classified_at - produced_at)) FROM {latency_tables.ai}")
                ai_count, (p50, p95) = cur.fetchone()
            if latency_landed != n_latency:
                raise SystemExit(f"the latency run classified {latency_landed} of {n_latency} tweets; void")
            print(f"end-to-end latency at {paced.rate:,.0f} tweets/s (trigger every {config.trigger_seconds:g} s), "
                  f"producer to row in {latency_tables.ai}, over {ai_count} AI tweets: "
                  f"p50 {p50 * 1000:,.0f} ms, p95 {p95 * 1000:,.0f} ms")
            with conn.cursor() as cur:
                for name in (tables.classified, tables.ai, tables.urls, latency_tables.classified,
                             latency_tables.ai, latency_tables.urls, sql_tables.classified, sql_tables.ai,
                             sql_tables.urls):
                    cur.execute(f"DROP TABLE {name}")
        finally:
            producer.close()
            conn.close()
            spark.stop()
            server.stop()

    print(json.dumps({
        "benchmark": "classify",
        "n": args.n,
        "cpus": os.cpu_count(),
        "row_udf_sample": args.row_sample,
        "row_udf_tweets_per_s": round(row_rate, 1),
        "batched_tweets_per_s": round(batched_rate),
        "batched_tweets_per_s_first_to_last_row": round(args.n / float(first_to_last)),
        "batched_tweets_per_s_with_startup": round(args.n / wall),
        "batched_over_row_udf": round(batched_rate / row_rate, 1),
        "kafka_read_tweets_per_s": round(read_rate),
        "classify_over_kafka_read": round(batched_rate / read_rate, 2),
        "sql_parse_tweets_per_s": round(sql_rate),
        "sql_parse_over_kafka_read": round(sql_rate / read_rate, 2),
        "sql_over_python_parse": round(sql_rate / batched_rate, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "micro_batches": result.batches,
        "client_batch_size": serve.client_batch_size,
        "latency_rate_tweets_per_s": round(paced.rate),
        "latency_trigger_seconds": config.trigger_seconds,
        "latency_ai_tweets": ai_count,
        "latency_p50_ms": round(p50 * 1000),
        "latency_p95_ms": round(p95 * 1000),
    }))


if __name__ == "__main__":
    main()
