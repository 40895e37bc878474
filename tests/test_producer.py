"""The producer against a real broker: keys, both topics, undecodable records, pacing, order within a
partition, a full local queue, failed deliveries, a broker that does not answer."""

from __future__ import annotations

import os
import time
from typing import NamedTuple

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from ssp.kafka.admin import KafkaUnavailableError, ensure_topic, topic_end_offsets
from ssp.kafka.producer import RecordProducer, make_producer, payload_key, produce
from ssp.tweets import parse_tweet

pytestmark = pytest.mark.integration


class Record(NamedTuple):
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


def _consume(bootstrap: str, topic: str, expected: int, idle_seconds: float = 10.0) -> list[Record]:
    """Up to ``expected`` records of ``topic`` from its first offset, every partition; stops early after
    ``idle_seconds`` without a record."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ssp-tests", "enable.auto.commit": False})
    records: list[Record] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(partitions)])
        idle_until = time.monotonic() + idle_seconds
        while len(records) < expected and time.monotonic() < idle_until:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            records.append(Record(message.key(), message.value(), message.partition(), message.offset()))
            idle_until = time.monotonic() + idle_seconds
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


def test_records_of_one_key_arrive_in_the_order_they_were_sent(stack, unique_name):
    bootstrap = os.environ["SSP_KAFKA_BOOTSTRAP"]
    topic = unique_name("ordered")
    ensure_topic(bootstrap, topic, 3)
    payloads = [{"id": key, "seq": seq} for seq in range(3000) for key in (1, 2, 3)]
    producer = make_producer(bootstrap, linger_ms=1, batch_size=16 * 1024)  # many small batches in flight
    try:
        result = produce(payloads, producer, topic, show_progress=False)
    finally:
        producer.close()
    assert (result.sent, result.failed) == (9000, 0)
    records = _consume(bootstrap, topic, 9000)
    assert len(records) == 9000
    for key in (b"1", b"2", b"3"):
        mine = sorted((r for r in records if r.key == key), key=lambda r: (r.partition, r.offset))
        assert len({r.partition for r in mine}) == 1  # one key, one partition (murmur2, as the Java client)
        assert [orjson.loads(r.value)["seq"] for r in mine] == list(range(3000))


def test_a_full_local_queue_is_waited_out_and_nothing_is_dropped(stack, unique_name):
    bootstrap = os.environ["SSP_KAFKA_BOOTSTRAP"]
    topic = unique_name("small_queue")
    ensure_topic(bootstrap, topic, 1)
    # room for ten records in librdkafka's queue: sending 2000 hits BufferError again and again
    producer = RecordProducer(bootstrap, {"acks": "all", "enable.idempotence": True, "linger.ms": 5,
                                          "queue.buffering.max.messages": 10})
    try:
        result = produce(({"id": i} for i in range(2000)), producer, topic, show_progress=False)
        producer.send(topic, value=b"one more", key=b"last")
        producer.flush(timeout=60)
    finally:
        producer.close()
    assert (result.sent, result.failed) == (2000, 0)
    records = _consume(bootstrap, topic, 2001)
    assert [r.key for r in records] == [str(i).encode() for i in range(2000)] + [b"last"]


def test_records_the_broker_refuses_are_counted_and_reported(stack, unique_name):
    bootstrap = os.environ["SSP_KAFKA_BOOTSTRAP"]
    topic = unique_name("refusing")
    ensure_topic(bootstrap, topic, 1, config={"max.message.bytes": "2000"})
    producer = make_producer(bootstrap)
    try:
        assert produce([{"id": 1, "text": "fits"}], producer, topic, show_progress=False).sent == 1
        too_large = [{"id": 2, "text": "x" * 5000}, {"id": 3, "text": "y" * 5000}]
        with pytest.raises(KafkaUnavailableError, match=f"2 records could not be delivered to {topic}; first error: "
                                                        f"{topic}: .*too large"):
            produce(too_large, producer, topic, show_progress=False)
    finally:
        producer.close()
    assert producer.failures[0].startswith(f"{topic}: ") and len(producer.failures) == 2
    assert [r.key for r in _consume(bootstrap, topic, 1)] == [b"1"]
    assert sum(topic_end_offsets(bootstrap, topic).values()) == 1


def test_no_broker_is_one_clear_error_naming_the_address():
    from ssp.infra.process import free_port

    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(KafkaUnavailableError, match=f"no Kafka broker answers at {address} within 2 s "
                                                    r"\(.*Connection refused.*\); start the local stack"):
        make_producer(address, connect_timeout=2)
    with pytest.raises(KafkaUnavailableError, match=f"no Kafka broker answers at {address}"):
        topic_end_offsets(address, "anything", timeout=1)
