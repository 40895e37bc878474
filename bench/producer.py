"""Benchmark: the producer's Kafka client, kafka-python against confluent-kafka (librdkafka), chosen by measurement.

In one run, on a Kafka broker of its own (KRaft, on free ports in a temporary state folder, as the tests
start one; or ``--bootstrap`` for a broker that runs already):

1. draws ``--tweets`` synthetic tweets (the source behind ``ssp produce --source synthetic``) and times
   drawing them plus their key and JSON (``generate_tweets_per_s``) and the key and JSON alone over the
   drawn tweets (``serialise_tweets_per_s``): the Python-side work each record needs whatever the client;
2. sends the drawn tweets, keyed by id, to a fresh topic of ``--partitions`` partitions per setting, every
   one with ``acks=all`` and idempotence, timed from the first send until the last record is acknowledged:

   * kafka-python 2.2.15 in the loop ssp's ``produce()`` ran before it moved to librdkafka (``send`` plus an
     errback a record; one request in flight, all its idempotent producer allows): as ssp had it (linger
     20 ms, 256 KiB batches) and tuned (linger 50 ms, 1 MiB batches, with and without lz4). Pure Python and
     about ten times slower, so it sends the first ``--kafka-python-tweets``;
   * confluent-kafka through ssp's own ``produce()`` and ``make_producer()``: with ProducerConfig's
     settings (what ``ssp produce`` uses, ``producer_tweets_per_s``) and others (linger, batch size, lz4);
     and with ProducerConfig's settings plus the AI-topic copy ``ssp produce`` makes by default (each tweet
     parsed and matched against the AI keywords);

   every setting ``--rounds`` times, the fastest round counts (the machine is shared). Each topic's end
   offsets must add up to what was sent, or the run is void.

The last line printed is one JSON object with the figures, among them ``producer_tweets_per_s``,
``kafka_python_tweets_per_s`` and ``confluent_tweets_per_s`` (each client's fastest setting) and
``generate_tweets_per_s``.

    .venv/bin/python bench/producer.py --tweets 200000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from ssp.config import InfraConfig, ProducerConfig, load_config
from ssp.kafka.admin import admin_client, ensure_topic, topic_end_offsets
from ssp.kafka.producer import make_producer, payload_key, produce
from ssp.sources.synthetic import synthetic_payloads

KIB = 1024
# (name, linger ms, batch bytes, compression); kafka-python's idempotent producer takes one request in flight only
KAFKA_PYTHON_SETTINGS = [
    ("as ssp had it", 20, 256 * KIB, None),
    ("tuned", 50, 1024 * KIB, None),
    ("tuned, lz4", 50, 1024 * KIB, "lz4"),
]
# (name, linger ms, batch bytes, compression); None: ProducerConfig's
CONFLUENT_SETTINGS = [
    ("linger 5 ms, 1 MiB", 5, 1024 * KIB, None),
    ("linger 5 ms, 1 MiB, lz4", 5, 1024 * KIB, "lz4"),
    ("linger 20 ms, 1 MiB, lz4", 20, 1024 * KIB, "lz4"),
]


def start_broker(state: Path):
    """A broker of its own on free ports in ``state`` (stopped by the caller)."""
    from ssp.infra.kafka_server import KafkaServer
    from ssp.infra.process import free_port

    kafka = KafkaServer(InfraConfig(kafka_port=free_port(), kafka_controller_port=free_port()), state)
    print(kafka.start(), flush=True)
    return kafka


def time_generation(n: int, seed: int) -> tuple[list[dict], float, float]:
    """The drawn tweets, tweets/s of drawing plus key and JSON, and tweets/s of key and JSON alone."""
    dumps = orjson.dumps
    start = time.perf_counter()
    payloads = []
    for payload in synthetic_payloads(n, seed=seed):
        payload_key(payload), dumps(payload)
        payloads.append(payload)
    generate = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for payload in payloads:
        payload_key(payload), dumps(payload)
    return payloads, generate, n / (time.perf_counter() - start)


class Topics:
    """Fresh topics, checked for what they hold and deleted after each run (the disk stays small)."""

    def __init__(self, bootstrap: str, partitions: int) -> None:
        self.bootstrap, self.partitions = bootstrap, partitions

    def fresh(self) -> str:
        name = f"bench_producer_{uuid.uuid4().hex[:10]}"
        ensure_topic(self.bootstrap, name, self.partitions)
        return name

    def check_and_drop(self, name: str, expected: int) -> None:
        held = sum(topic_end_offsets(self.bootstrap, name).values())
        if held != expected:
            raise SystemExit(f"topic {name} holds {held} records, {expected} were sent: the benchmark is void")
        admin = admin_client(self.bootstrap)  # kept while the deletion runs: a dropped client ends its requests
        admin.delete_topics([name], operation_timeout=30)[name].result(30)


def kafka_python_rate(bootstrap: str, topics: Topics, payloads: list[dict], setting) -> float | None:
    """Tweets/s of kafka-python in the loop ssp's produce() ran on it (None when kafka-python or lz4 is missing)."""
    _, linger, batch, compression = setting
    try:
        from kafka import KafkaProducer
        if compression == "lz4":
            import lz4  # noqa: F401  (kafka-python's lz4 codec)
    except ImportError as err:
        print(f"  kafka-python {setting[0]}: skipped ({err}; `pip install -e .[dev]` installs both)")
        return None
    topic = topics.fresh()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=10, linger_ms=linger, batch_size=batch,
                             compression_type=compression, max_request_size=2 * 1024 * 1024,
                             max_in_flight_requests_per_connection=1, enable_idempotence=True)
    errors: list[BaseException] = []
    start = time.perf_counter()
    for payload in payloads:
        producer.send(topic, value=orjson.dumps(payload), key=payload_key(payload)).add_errback(errors.append)
    producer.flush(timeout=300)
    seconds = time.perf_counter() - start
    producer.close()
    if errors:
        raise SystemExit(f"kafka-python failed {len(errors)} records; first: {errors[0]}")
    topics.check_and_drop(topic, len(payloads))
    return len(payloads) / seconds


def confluent_rate(bootstrap: str, topics: Topics, payloads: list[dict], linger: int, batch: int,
                   compression: str | None, is_ai=None) -> float:
    """Tweets/s of ssp's produce() on its librdkafka producer (with the AI-topic copy when ``is_ai`` is given)."""
    topic = topics.fresh()
    ai_topic = topics.fresh() if is_ai else None
    producer = make_producer(bootstrap, linger_ms=linger, batch_size=batch, compression_type=compression)
    try:
        summary = produce(payloads, producer, topic, ai_topic=ai_topic, is_ai_text=is_ai, show_progress=False)
    finally:
        producer.close()
    topics.check_and_drop(topic, summary.sent)
    if ai_topic:
        topics.check_and_drop(ai_topic, summary.ai_sent)
    return summary.rate


def best(rounds: int, run) -> float | None:
    rates = [run() for _ in range(rounds)]
    return None if None in rates else max(rates)


def _show(name: str, rate: float | None, n: int) -> None:
    if rate is not None:
        print(f"  {name:<44} {rate:>10,.0f} tweets/s  ({n:,} tweets)", flush=True)


def measure(bootstrap: str, args) -> dict:
    payloads, generate, serialise = time_generation(args.tweets, args.seed)
    print(f"synthetic source, drawing + key + JSON: {generate:,.0f} tweets/s; key + JSON alone: {serialise:,.0f} "
          f"tweets/s (mean {sum(len(orjson.dumps(p)) for p in payloads[:10_000]) / min(10_000, len(payloads)):,.0f}"
          " bytes of JSON)", flush=True)
    topics = Topics(bootstrap, args.partitions)
    defaults = ProducerConfig()
    confluent_rate(bootstrap, topics, payloads[:20_000], 5, 1024 * KIB, None)  # the broker's warm-up, not counted
    print(f"each setting {args.rounds} times, the fastest counts; acks=all, idempotent, {args.partitions} partitions")
    few = payloads[:args.kafka_python_tweets]
    kafka_python = {}
    for setting in KAFKA_PYTHON_SETTINGS:
        kafka_python[setting[0]] = best(args.rounds, lambda s=setting: kafka_python_rate(bootstrap, topics, few, s))
        _show(f"kafka-python, {setting[0]}", kafka_python[setting[0]], len(few))
    default_name = (f"ProducerConfig: linger {defaults.linger_ms} ms, {defaults.batch_size // KIB} KiB, "
                    f"{defaults.compression_type or 'no compression'}")
    confluent = {default_name: best(args.rounds, lambda: confluent_rate(
        bootstrap, topics, payloads, defaults.linger_ms, defaults.batch_size, defaults.compression_type))}
    _show(f"confluent-kafka, {default_name}", confluent[default_name], len(payloads))
    for name, linger, batch, compression in CONFLUENT_SETTINGS:
        confluent[name] = best(args.rounds, lambda lg=linger, b=batch, c=compression: confluent_rate(
            bootstrap, topics, payloads, lg, b, c))
        _show(f"confluent-kafka, {name}", confluent[name], len(payloads))
    from ssp.kafka.cli import _ai_text_test  # the keyword test `ssp produce` routes the AI-topic copy by

    with_ai = confluent_rate(bootstrap, topics, payloads, defaults.linger_ms, defaults.batch_size,
                             defaults.compression_type, is_ai=_ai_text_test())
    _show("confluent-kafka, ProducerConfig + the AI-topic copy", with_ai, len(payloads))
    measured = [rate for rate in kafka_python.values() if rate is not None]
    return {
        "tweets": args.tweets,
        "kafka_python_tweets": len(few),
        "partitions": args.partitions,
        "producer_tweets_per_s": round(confluent[default_name]),
        "producer_with_ai_topic_tweets_per_s": round(with_ai),
        "kafka_python_tweets_per_s": round(max(measured)) if measured else None,
        "kafka_python_as_ssp_had_it_tweets_per_s": kafka_python["as ssp had it"] and round(kafka_python["as ssp had it"]),
        "confluent_tweets_per_s": round(max(confluent.values())),
        "confluent_settings": {name: round(rate) for name, rate in confluent.items()},
        "kafka_python_settings": {name: rate and round(rate) for name, rate in kafka_python.items()},
        "generate_tweets_per_s": round(generate),
        "serialise_tweets_per_s": round(serialise),
        "goal_tweets_per_s": 50_000,
        "load_average": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=200_000, help="tweets each confluent-kafka run sends "
                                                                     "(default 200000)")
    parser.add_argument("--kafka-python-tweets", type=int, default=40_000,
                        help="tweets each kafka-python run sends, the first of the same (default 40000)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of each topic (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each setting, the fastest counts (default 2)")
    parser.add_argument("--seed", type=int, default=11, help="seed of the synthetic source (default 11)")
    parser.add_argument("--bootstrap", default=None, help="a broker that runs already (default: start one)")
    args = parser.parse_args()
    if args.tweets < 20_000 or not 0 < args.kafka_python_tweets <= args.tweets or args.rounds < 1:
        parser.error("--tweets must be at least 20000, --kafka-python-tweets between 1 and --tweets, --rounds >= 1")

    load_config()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    state = kafka = None
    if args.bootstrap is None:
        state = Path(tempfile.mkdtemp(prefix="ssp-bench-producer-"))
        kafka = start_broker(state)
    try:
        figures = measure(args.bootstrap or kafka.bootstrap, args)
    finally:
        if kafka is not None:
            print(kafka.stop())
            shutil.rmtree(state, ignore_errors=True)
    kp, cf = figures["kafka_python_tweets_per_s"], figures["confluent_tweets_per_s"]
    if kp:
        print(f"confluent-kafka {cf:,} tweets/s against kafka-python's {kp:,} ({cf / kp:.1f} times); ssp's produce with "
              f"ProducerConfig's settings {figures['producer_tweets_per_s']:,} tweets/s (goal 50,000)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
