"""Topic administration on the Kafka broker, and the one check that a broker answers.

ssp talks to Kafka through confluent-kafka (librdkafka). Its clients do not fail when they are
built: they connect in the background and retry forever, logging every refused connection. So
every client ssp makes first asks the broker for its metadata with a timeout
(:func:`check_broker`), and a broker that does not answer is one :class:`KafkaUnavailableError`
naming the address, the reason librdkafka last logged and the fix.

>>> last_reason(["FAIL [rdkafka#producer-1] [thrd:h:1/bootstrap]: h:1/bootstrap: Connect to ipv4#h:1 failed: "
...              "Connection refused (after 0ms in state CONNECT)"])
'Connect to ipv4#h:1 failed: Connection refused (after 0ms in state CONNECT)'
>>> last_reason([]) is None
True
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from ssp.errors import SspError

__all__ = ["KafkaUnavailableError", "admin_client", "check_broker", "ensure_topic", "last_reason", "topic_config",
           "topic_end_offsets"]

# what librdkafka logs (refused connections, retries) goes through Python logging, served on poll()
LIBRDKAFKA_LOG = logging.getLogger("ssp.kafka.librdkafka")


class KafkaUnavailableError(SspError, RuntimeError):
    """The broker does not answer; the message names the address and the fix."""


class _Collected(logging.Handler):
    """Keeps what one client logged while ssp checks the broker, to say why it does not answer."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def last_reason(messages: list[str]) -> str | None:
    """The reason in the last librdkafka log line (without its facility, client and thread prefix)."""
    if not messages:
        return None
    reason = messages[-1].rsplit("]: ", 1)[-1]
    return reason.split("/bootstrap: ", 1)[-1]


def check_broker(bootstrap: str, timeout: float = 10.0) -> None:
    """Ask the broker at ``bootstrap`` for its metadata; :class:`KafkaUnavailableError` when it does not
    answer within ``timeout`` seconds (quietly: the refused connections are in the error, not on stderr)."""
    probe_log = logging.Logger("ssp.kafka.probe")  # not registered: nothing it gets reaches other handlers
    collected = _Collected()
    probe_log.addHandler(collected)
    try:
        probe = AdminClient({"bootstrap.servers": bootstrap, "logger": probe_log})
    except KafkaException as err:
        raise KafkaUnavailableError(f"cannot use Kafka bootstrap address {bootstrap!r}: {err.args[0].str()}") from err
    try:
        probe.list_topics(timeout=timeout)
    except KafkaException as err:
        probe.poll(0)  # serve the log lines that say why
        reason = last_reason(collected.messages) or err.args[0].str()
        raise KafkaUnavailableError(
            f"no Kafka broker answers at {bootstrap} within {timeout:g} s ({reason}); start the local stack with "
            "`ssp infra up` or point SSP_KAFKA_BOOTSTRAP at your broker"
        ) from err


def admin_client(bootstrap: str, timeout: float = 10.0) -> AdminClient:
    """An AdminClient for the broker at ``bootstrap``, once the broker has answered (see :func:`check_broker`)."""
    check_broker(bootstrap, timeout)
    return AdminClient({"bootstrap.servers": bootstrap, "logger": LIBRDKAFKA_LOG})


def _topic_names(admin: AdminClient, timeout: float = 10.0) -> set[str]:
    return set(admin.list_topics(timeout=timeout).topics)


def ensure_topic(bootstrap: str, name: str, partitions: int = 4, replication: int = 1, timeout: float = 30.0,
                 config: dict[str, str] | None = None) -> bool:
    """Create topic ``name`` (with the topic settings ``config``) unless it exists; return True when it was
    created. A topic that exists keeps its own partitions and settings."""
    admin = admin_client(bootstrap)
    try:
        if name in _topic_names(admin):
            return False
        topic = NewTopic(name, num_partitions=partitions, replication_factor=replication, config=dict(config or {}))
        try:
            admin.create_topics([topic], operation_timeout=timeout)[name].result(timeout)
        except KafkaException as err:
            if err.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            raise
        deadline = time.monotonic() + timeout
        while name not in _topic_names(admin):
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(f"topic {name} was created on {bootstrap} but never became visible")
            time.sleep(0.2)
        return True
    except KafkaException as err:
        raise KafkaUnavailableError(f"could not create topic {name} on {bootstrap}: {err.args[0].str()}") from err


def topic_config(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[str, str | None]:
    """The settings of ``topic`` (``max.message.bytes``, ``retention.ms``, ...) as the broker describes them."""
    admin = admin_client(bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout)
    except KafkaException as err:
        raise KafkaUnavailableError(f"could not read the settings of topic {topic} on {bootstrap}: "
                                    f"{err.args[0].str()}") from err
    return {name: entry.value for name, entry in entries.items()}


def _passing(error: KafkaError) -> bool:
    """Whether ``error`` is one a new topic shows for a moment (its partitions' leaders not known yet)."""
    return error.retriable() or error.code() in (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                                                 KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION)


def topic_end_offsets(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """The next offset of each partition of ``topic`` (how many records each holds, from 0); {} when there is
    no such topic. A partition whose leader is still being elected (a topic just created) is asked again."""
    check_broker(bootstrap, timeout)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ssp-topic-end-offsets",
                         "enable.auto.commit": False, "logger": LIBRDKAFKA_LOG})
    try:
        found = consumer.list_topics(timeout=timeout).topics.get(topic)  # all topics: asking for one may create it
        if found is None or found.error is not None:
            return {}
        deadline = time.monotonic() + timeout
        ends = {}
        for partition in sorted(found.partitions):
            while partition not in ends:
                try:
                    ends[partition] = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout)[1]
                except KafkaException as err:
                    if not _passing(err.args[0]) or time.monotonic() > deadline:
                        raise KafkaUnavailableError(f"could not read the end offsets of topic {topic} on "
                                                    f"{bootstrap}: {err.args[0].str()}") from err
                    time.sleep(0.2)
        return ends
    finally:
        consumer.close()
