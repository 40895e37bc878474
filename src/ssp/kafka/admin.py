"""Topic administration on the Kafka broker."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, NoBrokersAvailable, TopicAlreadyExistsError

from ssp.errors import SspError


class KafkaUnavailableError(SspError, RuntimeError):
    """The broker does not answer; the message names the address and the fix."""


def admin_client(bootstrap: str) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    except NoBrokersAvailable as err:
        raise KafkaUnavailableError(
            f"no Kafka broker answers at {bootstrap}; start the local stack with `ssp infra up` "
            "or point SSP_KAFKA_BOOTSTRAP at your broker"
        ) from err


def ensure_topic(bootstrap: str, name: str, partitions: int = 4, replication: int = 1, timeout: float = 30.0) -> bool:
    """Create topic ``name`` unless it exists; return True when it was created."""
    admin = admin_client(bootstrap)
    try:
        if name in admin.list_topics():
            return False
        try:
            admin.create_topics([NewTopic(name=name, num_partitions=partitions, replication_factor=replication)])
        except TopicAlreadyExistsError:
            return False
        deadline = time.monotonic() + timeout
        while name not in admin.list_topics():
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(f"topic {name} was created on {bootstrap} but never became visible")
            time.sleep(0.2)
        return True
    except KafkaError as err:
        raise KafkaUnavailableError(f"could not create topic {name} on {bootstrap}: {err}") from err
    finally:
        admin.close()


def topic_end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The next offset of each partition of ``topic`` (how many records each holds, from 0)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()
