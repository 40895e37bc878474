"""Running a Kafka-sourced Structured Streaming query until a record count, an idle spell, SIGTERM
or Ctrl-C: the loop the ingest, classify and clustering jobs share, and what their Python workers share
(:func:`prepare_python_worker`, a PostgreSQL connection kept across tasks, one task per core)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


# one psycopg2 connection per Python worker and database, kept across tasks and micro-batches (Spark
# reuses its Python workers): connecting costs more than a task's COPY of a few thousand rows
_WORKER_CONNECTIONS: dict[str, Any] = {}
_WORKER_FROZEN = False


def _keep_zip_directory() -> None:
    """A zip importer's ``invalidate_caches`` in a Python worker: the archives on its path (Spark's
    ``pyspark.zip`` and ``py4j`` zip) do not change while it lives, so there is nothing to re-read."""


def prepare_python_worker() -> None:
    """Spare a reused Spark Python worker two costs it pays for every task, whatever the task does, which
    were most of a task of a few thousand points (measured: README, "Streaming k-means"):

    * before each task Spark's worker calls ``importlib.invalidate_caches()``, and Python 3.11's zip
      importer then re-reads its whole archive's directory (3.12 does it lazily): ``pyspark.zip`` once
      per package imported from it, some 25,000 entries, about 0.1 s of CPU a task;
    * after each task the worker runs ``gc.collect()``, which walks every object the imports made
      (numpy, pyarrow, pandas, SQLAlchemy: some 100,000): frozen once (``gc.freeze``), they are skipped.

    Called at the start of each task of the stream job: it patches the zip importers made since (a
    no-op ``invalidate_caches``) and freezes the objects of the imports once per process.
    """
    import gc
    import zipimport

    global _WORKER_FROZEN
    for finder in list(sys.path_importer_cache.values()):
        if isinstance(finder, zipimport.zipimporter) and "invalidate_caches" not in vars(finder):
            finder.invalidate_caches = _keep_zip_directory
    if not _WORKER_FROZEN:
        gc.freeze()
        _WORKER_FROZEN = True


def kept_connection(database_url: str, connections: dict[str, Any] | None = None):
    """The psycopg2 connection to ``database_url`` kept in ``connections`` (default: this Python worker's),
    for one transaction: a kept one is checked with ``SELECT 1`` first, and replaced by a new one when the
    server closed it meanwhile (a restart). The caller commits, or calls :func:`drop_connection` on failure."""
    import psycopg2

    connections = _WORKER_CONNECTIONS if connections is None else connections
    conn = connections.get(database_url)
    if conn is not None and not conn.closed:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            return conn
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            conn.close()
    conn = connections[database_url] = psycopg2.connect(database_url)
    return conn


def drop_connection(database_url: str, connections: dict[str, Any] | None = None) -> None:
    """Close and forget the kept connection to ``database_url``: PostgreSQL rolls back its open transaction."""
    conn = (_WORKER_CONNECTIONS if connections is None else connections).pop(database_url, None)
    if conn is not None:
        conn.close()


def kept_connection_write(database_url: str, write: Callable[[Any], None],
                          connections: dict[str, Any] | None = None) -> None:
    """``write(conn)`` and commit, in one transaction on the :func:`kept_connection` to ``database_url``; any
    failure drops the connection (nothing is committed) and raises."""
    conn = kept_connection(database_url, connections)
    try:
        write(conn)
        conn.commit()
    except BaseException:
        drop_connection(database_url, connections)
        raise


class TaskTransaction:
    """A Spark task's one transaction on its Python worker's :func:`kept_connection` to ``database_url``,
    connected at the first use of :attr:`conn`: committed when the ``with`` block ends, dropped (so rolled
    back) when it raises. :meth:`rollback` undoes what was written and keeps the connection."""

    def __init__(self, database_url: str, connections: dict[str, Any] | None = None) -> None:
        self.database_url, self.connections, self._conn = database_url, connections, None

    @property
    def conn(self):
        if self._conn is None:
            self._conn = kept_connection(self.database_url, self.connections)
        return self._conn

    @property
    def used(self) -> bool:
        return self._conn is not None

    def rollback(self) -> None:
        if self._conn is not None:
            self._conn.rollback()

    def __enter__(self) -> TaskTransaction:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._conn is None:
            return
        try:
            if kind is None:
                self._conn.commit()
                return
        except BaseException:
            drop_connection(self.database_url, self.connections)
            raise
        drop_connection(self.database_url, self.connections)


def tasks_per_micro_batch(spark) -> int:
    """One task per core, not one per Kafka partition, for a stream's micro-batches: every task costs a
    Python worker hand-off, and a second wave of tasks doubles a small micro-batch's fixed cost."""
    return max(1, spark.sparkContext.defaultParallelism)


def warm_python_workers(spark, module: str) -> None:
    """Start the Python workers of one task per core and import ``module`` in each, so that the stream's
    first micro-batch finds them ready (Spark reuses a worker from task to task). A worker's start and
    imports otherwise fall on the first micro-batch with records: about 1-2 s on 2 cores (SQLAlchemy alone
    takes 1 s to import), a delay every tweet of that batch, and of the backlog it leaves, waits out."""
    parallelism = tasks_per_micro_batch(spark)
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
