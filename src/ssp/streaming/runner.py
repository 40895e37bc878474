"""Running a Kafka-sourced Structured Streaming query until a record count, an idle spell, SIGTERM
or Ctrl-C: the loop the ingest and the classify jobs share."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ssp.config import InfraConfig, StreamingConfig
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


def kafka_stream(spark, infra: InfraConfig, topic: str, starting_offsets: str, max_offsets_per_trigger: int,
                 streaming: StreamingConfig | None = None, options: dict[str, str] | None = None):
    """The Kafka source every stream reads: ``topic`` from ``starting_offsets``, at most
    ``max_offsets_per_trigger`` records a micro-batch, the consumer as ``streaming`` (default: the
    configured :class:`StreamingConfig`) says; ``options``: a job's own source options, over these."""
    streaming = streaming or StreamingConfig()
    settings = {
        "kafka.bootstrap.servers": infra.kafka_bootstrap,
        "subscribe": topic,
        "startingOffsets": starting_offsets,
        "maxOffsetsPerTrigger": str(max_offsets_per_trigger),
        "kafka.fetch.max.wait.ms": str(streaming.kafka_fetch_max_wait_ms),
        "failOnDataLoss": "false",
        **(options or {}),
    }
    return spark.readStream.format("kafka").options(**settings).load()


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


def _import_in_worker(module: str):
    def run(batches):
        import importlib

        import pyarrow as pa

        importlib.import_module(module)
        for _ in batches:
            pass
        yield pa.RecordBatch.from_pydict({"ok": [1]})

    return run


def warm_python_workers(spark, module: str) -> None:
    """Start the Python workers of one task per core and import ``module`` in each, so that the stream's
    first micro-batch finds them ready (Spark reuses a worker from task to task). A worker's start and
    imports otherwise fall on the first micro-batch with records: about 1-2 s on 2 cores (SQLAlchemy alone
    takes 1 s to import), a delay every tweet of that batch, and of the backlog it leaves, waits out."""
    parallelism = max(1, spark.sparkContext.defaultParallelism)
    start = time.monotonic()
    try:
        spark.range(parallelism, numPartitions=parallelism).mapInArrow(_import_in_worker(module), "ok long").collect()
    except Exception as err:  # the stream's own tasks will hit and report whatever this met
        log.warning("could not warm the Python workers with %s: %s", module, " ".join(str(err).split())[:300])
    else:
        log.info("%d Python workers started with %s in %.1f s", parallelism, module, time.monotonic() - start)


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
    warm_module: str | None = None,
) -> float:
    """Start ``stream.writeStream.foreachBatch(write_batch)`` and wait until it should stop.

    ``warm_module``: the module the stream's Python tasks run (when they run Python), imported in the Python
    workers while the query starts (:func:`warm_python_workers`). Returns the seconds it ran; raises
    RuntimeError when the query failed.
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
            if warm_module is not None:  # while the query sets itself up on its own thread
                warm_python_workers(stream.sparkSession, warm_module)
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
