"""Send payloads from a source to Kafka, keyed by their id (a tweet's id, a point's ``id``).

Every payload goes to the mix topic; those whose text matches the AI keyword list also go to
the AI topic, as in the original project. Records a source could not decode (``bytes``) are
sent as they are, so the ingest job's dead-letter table records them instead of them being
lost here.

The client is confluent-kafka (librdkafka, in C): ``bench/producer.py`` measured it more than ten times
faster than kafka-python with the same guarantees (``acks=all``, idempotence, ordering within a
partition). :class:`RecordProducer` is the small face ssp gives it: ``send``, ``flush``, ``close``, with
failed deliveries collected from librdkafka's delivery reports and a full local queue waited out, never
dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
from confluent_kafka import KafkaException
from confluent_kafka import Producer as _LibrdkafkaProducer

from ssp.errors import SspError
from ssp.kafka.admin import LIBRDKAFKA_LOG, KafkaUnavailableError, check_broker
from ssp.progress import progress_bar

# how long the loop goes between serving librdkafka's events (failed deliveries, logs) and redrawing the bar
_TICK_SECONDS = 0.1


@dataclass
class ProduceSummary:
    sent: int = 0
    ai_sent: int = 0
    undecodable: int = 0
    failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def line(self, topic: str, ai_topic: str | None, noun: str = "tweets") -> str:
        """The one-line summary; ``noun`` names what was sent (tweets, points).

        >>> ProduceSummary(sent=500, seconds=2.0).line("points_topic", None, noun="points")
        'produced 500 points to points_topic, 0 failed, in 2.0 s (250 points/s)'
        """
        ai = f", {self.ai_sent} keyword-matched also to {ai_topic}" if ai_topic else ""
        bad = f", {self.undecodable} undecodable records passed on for dead-lettering" if self.undecodable else ""
        return (
            f"produced {self.sent} {noun} to {topic}{ai}{bad}, {self.failed} failed, "
            f"in {self.seconds:.1f} s ({self.rate:,.0f} {noun}/s)" + (" (stopped early)" if self.interrupted else "")
        )


def payload_key(payload: dict) -> bytes | None:
    """The id of a v1.1 or v2 tweet payload (or of a point; a Bluesky post's repo path) as the Kafka key, or None
    when it has none.

    >>> payload_key({"data": {"id": "17"}}), payload_key({"id": 3, "x": [0.5]}), payload_key({})
    (b'17', b'3', None)
    """
    commit = payload.get("commit")
    if isinstance(commit, dict) and isinstance(payload.get("did"), str):  # a Jetstream event: the record's path
        return f"{payload['did']}/{commit.get('collection')}/{commit.get('rkey')}".encode()
    data = payload.get("data") if isinstance(payload.get("data"), dict) else payload
    tweet_id = data.get("id_str") or data.get("id")
    return str(tweet_id).encode() if tweet_id is not None else None


class RecordProducer:
    """ssp's Kafka producer: a librdkafka producer with ``acks=all`` and idempotence, keyed records
    partitioned as Java's and kafka-python's clients do (murmur2), failed deliveries collected.

    Build it with :func:`make_producer`. Only failures come back as delivery reports
    (``delivery.report.only.error``): a delivered record costs no Python call. ``failures`` lists them,
    as ``"topic: reason"``, in the order librdkafka reported them.
    """

    def __init__(self, bootstrap: str, settings: dict) -> None:
        self.bootstrap = bootstrap
        self.failures: list[str] = []
        failures = self.failures

        def on_delivery(err, message) -> None:  # holds the list, not self: no cycle keeps librdkafka alive
            if err is not None:
                failures.append(f"{message.topic()}: {err.str()}")

        try:
            self._producer = _LibrdkafkaProducer({**settings, "bootstrap.servers": bootstrap,
                                                  "on_delivery": on_delivery, "logger": LIBRDKAFKA_LOG})
        except KafkaException as err:
            raise SspError(f"bad Kafka producer settings for {bootstrap}: {err.args[0].str()}") from err
        self._produce = self._producer.produce  # the hot path calls it directly (see _send_all)
        self.poll = self._producer.poll

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> None:
        """Queue one record (``value=None`` sends a record without a value); when librdkafka's local queue
        is full, serve its events until there is room, so nothing is dropped."""
        while True:
            try:
                self._produce(topic, value, key)
                return
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as err:  # a record larger than message.max.bytes, an unknown topic name
                raise KafkaUnavailableError(f"could not send a record to {topic} on {self.bootstrap}: "
                                            f"{err.args[0].str()}") from err

    def unflushed(self, timeout: float | None = None) -> int:
        """Wait up to ``timeout`` seconds (None: as long as it takes) for every queued record to be
        acknowledged or to fail; the number still waiting."""
        return self._producer.flush(-1 if timeout is None else timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is acknowledged or has failed (then it is in ``failures``);
        :class:`KafkaUnavailableError` when some are still waiting after ``timeout`` seconds."""
        waiting = self.unflushed(timeout)
        if waiting:
            raise KafkaUnavailableError(f"{waiting} records still not acknowledged by {self.bootstrap} after "
                                        f"{timeout:g} s")

    def close(self, timeout: float = 30.0) -> None:
        """Flush for up to ``timeout`` seconds; what is still queued then is logged as undelivered."""
        waiting = self.unflushed(timeout)
        if waiting:
            LIBRDKAFKA_LOG.warning("closing the producer for %s with %d records not acknowledged", self.bootstrap,
                                   waiting)


def make_producer(bootstrap: str, *, linger_ms: int = 20, batch_size: int = 256 * 1024, retries: int = 10,
                  compression_type: str | None = None, max_request_size: int = 2 * 1024 * 1024,
                  connect_timeout: float = 10.0) -> RecordProducer:
    """A :class:`RecordProducer` for the broker at ``bootstrap``, once that broker has answered within
    ``connect_timeout`` seconds (else :class:`KafkaUnavailableError` naming the address)."""
    check_broker(bootstrap, connect_timeout)
    return RecordProducer(bootstrap, {
        "acks": "all",
        # the idempotent producer keeps a retried batch from landing twice and, in librdkafka, keeps
        # the order within a partition with up to five requests in flight
        "enable.idempotence": True,
        "retries": retries,
        "linger.ms": linger_ms,
        "batch.size": batch_size,
        "compression.type": compression_type or "none",
        "message.max.bytes": max_request_size,  # video frames need more than librdkafka's default 1 MB
        "partitioner": "murmur2_random",  # the Java client's: a key lands on the partition it always did
        "delivery.report.only.error": True,
    })


def produce(
    payloads: Iterable[dict | bytes | tuple[bytes, bytes]],
    producer: RecordProducer,
    topic: str,
    *,
    ai_topic: str | None = None,
    is_ai_text: Callable[[dict], bool] | None = None,
    rate: float = 0.0,
    max_records: int | None = None,
    show_progress: bool = True,
    stop: threading.Event | None = None,
) -> ProduceSummary:
    """Send ``payloads`` to ``topic`` (and matching ones to ``ai_topic``), at most ``rate`` per second.

    Ctrl-C (KeyboardInterrupt) ends the stream early: what was sent is still flushed and counted.
    So does ``stop`` once set (a SIGTERM handler sets it): checked between records, it never
    interrupts a send half-counted. Records that fail (librdkafka's delivery reports) or are still
    unacknowledged after the final two-minute flush count as ``failed``, and then this raises
    :class:`KafkaUnavailableError`.
    """
    result = ProduceSummary()
    failed_before = len(producer.failures)
    start = time.monotonic()
    with progress_bar(f"producing to {topic}", max_records, enabled=show_progress) as advance:
        try:
            _send_all(payloads, producer, topic, ai_topic, is_ai_text, rate, max_records, result, start, advance,
                      stop or threading.Event())
        except KeyboardInterrupt:
            result.interrupted = True
        waiting = producer.unflushed(timeout=120)
    result.seconds = time.monotonic() - start
    failures = producer.failures[failed_before:]
    result.failed = len(failures) + waiting
    if result.failed:
        first = failures[0] if failures else f"{waiting} records still not acknowledged after 120 s"
        raise KafkaUnavailableError(f"{result.failed} records could not be delivered to {topic}; first error: {first}")
    return result


def _send_all(payloads, producer: RecordProducer, topic, ai_topic, is_ai_text, rate, max_records,
              result: ProduceSummary, start, advance, stop: threading.Event) -> None:
    """The sending loop of :func:`produce`; counts into ``result`` (also when interrupted), ends when ``stop``
    is set. Per record it does only what that record needs: librdkafka's events are served and the bar
    redrawn every ``_TICK_SECONDS``, the counters live in locals."""
    produce_now, produce_when_room, poll = producer._produce, producer.send, producer.poll
    dumps, key_of, stopped, clock = orjson.dumps, payload_key, stop.is_set, time.monotonic
    route_ai = bool(ai_topic) and is_ai_text is not None
    limit = -1 if max_records is None else max_records
    sent = ai_sent = undecodable = shown = 0
    tick = clock() + _TICK_SECONDS
    try:
        for payload in payloads:
            if sent == limit:
                break
            if rate > 0:
                # pace against the start time, not the previous send, so the mean rate holds
                delay = start + sent / rate - clock()
                if delay > 0:
                    stop.wait(delay)
            if stopped():
                result.interrupted = True
                break
            if type(payload) is dict:  # the common case first; the checks below in their old order
                key, value = key_of(payload), dumps(payload)
            elif isinstance(payload, tuple):  # a binary record, (key, value) bytes, sent as it is (a video frame)
                key, value = payload
            elif isinstance(payload, (bytes, bytearray)):
                key, value = None, bytes(payload)
                undecodable += 1
            else:
                key, value = key_of(payload), dumps(payload)
            try:
                produce_now(topic, value, key)
            except (BufferError, KafkaException):  # a full local queue (waited out) or a record refused
                produce_when_room(topic, value, key)
            if route_ai and isinstance(payload, dict) and is_ai_text(payload):
                produce_when_room(ai_topic, value, key)
                ai_sent += 1
            sent += 1
            now = clock()
            if now >= tick:
                poll(0)
                advance(sent - shown)
                shown, tick = sent, now + _TICK_SECONDS
    finally:
        result.sent, result.ai_sent, result.undecodable = sent, ai_sent, undecodable
        advance(sent - shown)
