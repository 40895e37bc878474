"""Running a Kafka-sourced Structured Streaming query until a record count, an idle spell, SIGTERM
or Ctrl-C: the loop the ingest and the classify jobs share."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ssp.config import InfraConfig
from ssp.signals import stop_on_sigterm

log = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 20.0  # how long a stop waits for the running micro-batch to finish


@dataclass
class StreamProgress:
    """What the micro-batches have done so far; updated by ``foreachBatch`` on the driver."""

    seen: int = 0
    batches: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    # the idle clock starts once the stream has made its first trigger, not while Spark starts
    last_data_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seen: int, **counts: int) -> None:
        with self.lock:
            self.seen += seen
            self.batches += 1
            for key, value in counts.items():
                self.counts[key] = self.counts.get(key, 0) + value
            if seen or self.last_data_at is None:
                self.last_data_at = time.monotonic()


def job_checkpoint_dir(job: str, topic: str, table: str, state_dir: Path | None = None) -> Path:
    """Where job ``job`` keeps its Spark checkpoint for ``topic`` -> ``table``: one folder per pair."""
    from ssp.config import default_state_dir
    from ssp.storage.tables import validate_identifier

    validate_identifier(table, "table name")
    safe_topic = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in topic)
    return (state_dir or default_state_dir()) / "checkpoints" / job / f"{safe_topic}__{table}"


def kafka_stream(spark, infra: InfraConfig, topic: str, starting_offsets: str, max_offsets_per_trigger: int):
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", infra.kafka_bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
        .option("failOnDataLoss", "false")
        .load()
    )


def stop_between_batches(query, progress: StreamProgress | None = None, timeout: float = STOP_WAIT_SECONDS) -> None:
    """Stop ``query`` once the micro-batch running now (if any) has finished, waiting at most ``timeout``
    seconds, and without waiting for the next one even if it has started (with a backlog they run back to
    back): stopping mid-batch interrupts its tasks, which is safe (the batch is not committed and is
    replayed on restart) but wastes the work and fills the log with the interruption's traces.
    ``progress`` counts the batches ``foreachBatch`` finished; without it, the wait is for an idle trigger."""
    deadline = time.monotonic() + timeout
    finished = None if progress is None else progress.batches
    try:
        while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
            if finished is not None and progress.batches != finished:
                break  # the batch that was running has finished: stop before the next one does much
            time.sleep(0.05)
    finally:
        query.stop()


def run_until_done(
    stream,
    write_batch,
    progress: StreamProgress,
    *,
    name: str,
    checkpoint: Path,
    trigger_seconds: float,
    max_records: int | None = None,
    until_idle: float | None = None,
) -> float:
    """Start ``stream.writeStream.foreachBatch(write_batch)`` and wait until it should stop.

    Returns the seconds it ran; raises RuntimeError when the query failed.
    """
    checkpoint.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    query = (
        stream.writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=f"{trigger_seconds} seconds")
        .queryName(name)
        .start()
    )
    stop_requested = threading.Event()
    failure: BaseException | None = None
    try:
        with stop_on_sigterm(lambda *_: stop_requested.set()):
            while query.isActive and not stop_requested.is_set():
                try:
                    query.awaitTermination(0.5)
                except Exception as err:  # StreamingQueryException: the query failed; said once, below
                    failure = err
                    break
                status = query.status  # a micro-batch of records still being written is not idleness
                busy = bool(status.get("isDataAvailable") and status.get("isTriggerActive"))
                with progress.lock:
                    if busy or (progress.last_data_at is None and query.lastProgress is not None):
                        progress.last_data_at = time.monotonic()
                    seen = progress.seen
                    idle_for = 0.0 if progress.last_data_at is None else time.monotonic() - progress.last_data_at
                if max_records is not None and seen >= max_records:
                    break
                if until_idle is not None and idle_for >= until_idle:
                    break
    except KeyboardInterrupt:
        log.info("interrupted; stopping %s", name)
    finally:
        exception = failure or (query.exception() if not query.isActive else None)
        for event in query.recentProgress:
            log.info("progress: batch %s, %s rows, durations %s", event.get("batchId"), event.get("numInputRows"),
                     event.get("durationMs"))
        stop_between_batches(query, progress)
    if exception is not None:
        raise RuntimeError(f"the {name} stream failed: {exception}")
    return time.monotonic() - start
