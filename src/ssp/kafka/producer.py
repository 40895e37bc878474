"""Send payloads from a source to Kafka, keyed by their id (a tweet's id, a point's ``id``).

Every payload goes to the mix topic; those whose text matches the AI keyword list also go to
the AI topic, as in the original project. Records a source could not decode (``bytes``) are
sent as they are, so the ingest job's dead-letter table records them instead of them being
lost here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError, NoBrokersAvailable

from ssp.kafka.admin import KafkaUnavailableError
from ssp.progress import progress_bar


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


def make_producer(bootstrap: str, *, linger_ms: int = 20, batch_size: int = 256 * 1024, retries: int = 10,
                  compression_type: str | None = None, max_request_size: int = 2 * 1024 * 1024) -> KafkaProducer:
    try:
        return KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            retries=retries,
            linger_ms=linger_ms,
            batch_size=batch_size,
            compression_type=compression_type,
            max_request_size=max_request_size,  # video frames need more than the default 2 MiB
            # ordering within a partition survives retries only with one request in flight, and the
            # idempotent producer keeps a retried batch from landing twice
            max_in_flight_requests_per_connection=1,
            enable_idempotence=True,
        )
    except NoBrokersAvailable as err:
        raise KafkaUnavailableError(
            f"no Kafka broker answers at {bootstrap}; start it with `ssp infra up` or set SSP_KAFKA_BOOTSTRAP"
        ) from err


def produce(
    payloads: Iterable[dict | bytes | tuple[bytes, bytes]],
    producer: KafkaProducer,
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
    interrupts a send half-counted.
    """
    result = ProduceSummary()
    errors: list[BaseException] = []

    def on_error(err: BaseException) -> None:
        errors.append(err)

    start = time.monotonic()
    with progress_bar(f"producing to {topic}", max_records, enabled=show_progress) as advance:
        try:
            _send_all(payloads, producer, topic, ai_topic, is_ai_text, rate, max_records, result, start, on_error,
                      advance, stop or threading.Event())
        except KeyboardInterrupt:
            result.interrupted = True
        try:
            producer.flush(timeout=120)
        except KafkaError as err:
            errors.append(err)
    result.seconds = time.monotonic() - start
    result.failed = len(errors)
    if errors:
        raise KafkaUnavailableError(f"{len(errors)} records could not be delivered to {topic}; first error: {errors[0]}")
    return result


def _send_all(payloads, producer, topic, ai_topic, is_ai_text, rate, max_records, result, start, on_error,
              advance, stop: threading.Event) -> None:
    """The sending loop of :func:`produce`; counts into ``result`` as it goes, ends when ``stop`` is set."""
    for payload in payloads:
        if max_records is not None and result.sent >= max_records:
            break
        if rate > 0:
            # pace against the start time, not the previous send, so the mean rate holds
            due = start + result.sent / rate
            delay = due - time.monotonic()
            if delay > 0:
                stop.wait(delay)
        if stop.is_set():
            result.interrupted = True
            break
        if isinstance(payload, tuple):  # a binary record, (key, value) bytes, sent as it is (a video frame)
            key, value = payload
        elif isinstance(payload, (bytes, bytearray)):
            key, value = None, bytes(payload)
            result.undecodable += 1
        else:
            key, value = payload_key(payload), orjson.dumps(payload)
        producer.send(topic, value=value, key=key).add_errback(on_error)
        if ai_topic and is_ai_text is not None and isinstance(payload, dict) and is_ai_text(payload):
            producer.send(ai_topic, value=value, key=key).add_errback(on_error)
            result.ai_sent += 1
        result.sent += 1
        advance(1)
