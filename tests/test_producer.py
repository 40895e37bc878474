"""The producer against a real broker: keys, both topics, undecodable records, pacing."""

from __future__ import annotations

import os
import time

import orjson
import pytest
from kafka import KafkaConsumer

from ssp.kafka.admin import ensure_topic, topic_end_offsets
from ssp.kafka.producer import make_producer, payload_key, produce
from ssp.tweets import parse_tweet

pytestmark = pytest.mark.integration


def _consume(bootstrap: str, topic: str, expected: int) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10_000, enable_auto_commit=False)
    records = []
    try:
        for record in consumer:
            records.append(record)
            if len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


def test_payload_key_reads_v1_and_v2_ids():
    assert payload_key({"id": 5, "id_str": "5"}) == b"5"
    assert payload_key({"data": {"id": "77", "text": "x"}}) == b"77"
    assert payload_key({"text": "no id"}) is None


def test_tweets_are_keyed_by_id_and_routed_to_both_topics(stack, fixture_tweets_path, unique_name):
    bootstrap = os.environ["SSP_KAFKA_BOOTSTRAP"]
    payloads = [orjson.loads(line) for line in fixture_tweets_path.read_bytes().splitlines() if line.strip()][:50]
    payloads.append(b"{broken json")
    mix, ai = unique_name("mix"), unique_name("ai")
    for topic in (mix, ai):
        ensure_topic(bootstrap, topic, 2)
    producer = make_producer(bootstrap)
    chosen = {payloads[0]["id"], payloads[7]["id"]}
    try:
        result = produce(payloads, producer, mix, ai_topic=ai, is_ai_text=lambda p: p["id"] in chosen,
                         show_progress=False)
    finally:
        producer.close()
    assert (result.sent, result.ai_sent, result.undecodable, result.failed) == (51, 2, 1, 0)
    records = _consume(bootstrap, mix, 51)
    assert len(records) == 51
    by_value = {r.value: r for r in records}
    for payload in payloads[:-1]:
        record = by_value[orjson.dumps(payload)]
        assert record.key == str(parse_tweet(payload).id).encode()
    assert by_value[b"{broken json"].key is None
    assert {int(r.key) for r in _consume(bootstrap, ai, 2)} == chosen
    assert sum(topic_end_offsets(bootstrap, ai).values()) == 2


def test_rate_limit_paces_the_stream(stack, unique_name):
    bootstrap = os.environ["SSP_KAFKA_BOOTSTRAP"]
    topic = unique_name("paced")
    ensure_topic(bootstrap, topic, 1)
    producer = make_producer(bootstrap)
    payloads = ({"id": i, "created_at": "Sun Apr 05 10:46:44 +0000 2020", "text": "t"} for i in range(1, 1000))
    start = time.monotonic()
    try:
        result = produce(payloads, producer, topic, rate=40, max_records=20, show_progress=False)
    finally:
        producer.close()
    elapsed = time.monotonic() - start
    assert result.sent == 20
    # 20 records at 40/s: the last is due 0.475 s after the first
    assert elapsed >= 0.45


def test_sigterm_ends_a_live_stream_cleanly_with_everything_sent_delivered(stack, unique_name):
    import signal
    import subprocess
    import sys

    topic = unique_name("live")
    process = subprocess.Popen(
        [sys.executable, "-m", "ssp.cli", "produce", "--topic", topic, "--no-ai-topic", "--rate", "100",
         "--max-records", "1000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(topic_end_offsets(stack.kafka_bootstrap, topic).values() or [0]) < 50:
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    line = out.strip().splitlines()[-1]
    assert line.startswith("produced ") and line.endswith("(stopped early)")
    sent = int(line.split()[1])
    assert sent >= 50 and sum(topic_end_offsets(stack.kafka_bootstrap, topic).values()) == sent
