"""Kafka -> PostgreSQL: the tweet ingest job (Spark Structured Streaming).

Each micro-batch is parsed on the executors, partition by partition, with the one canonical
parser (:func:`ssp.tweets.parse_tweet`); good tweets are COPYed into ``<prefix>_<version>``
and bad records into the dead-letter table, in one transaction per partition. Rows are keyed
by tweet id (dead letters by Kafka position) and inserted with ``ON CONFLICT DO NOTHING``, so
a micro-batch that Spark replays after a crash changes nothing: together with the checkpoint
this makes the effect exactly-once, however the job is killed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ssp.config import InfraConfig, IngestConfig, default_state_dir
from ssp.storage.postgres import (
    copy_insert_ignore_conflicts,
    ensure_tables,
    libpq_url,
    make_engine,
    pg_array_literal,
    pg_bytea_literal,
)
from ssp.storage.tables import (
    DEAD_LETTER_COLUMNS,
    RAW_TWEET_COLUMNS,
    dead_letter_table,
    raw_tweets_table,
    validate_identifier,
    versioned_table_name,
)
from ssp.tweets import TweetParseError, parse_tweet

log = logging.getLogger(__name__)

RowText = tuple  # one row in PostgreSQL text form, in RAW_TWEET_COLUMNS / DEAD_LETTER_COLUMNS order


def record_to_row(
    value: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    target_table: str,
    max_bytes: int,
) -> tuple[RowText | None, RowText | None]:
    """Decide what one Kafka record becomes: ``(tweet_row, None)`` or ``(None, dead_letter_row)``."""
    reason, error = None, None
    if value is None:
        reason, error = "empty", f"record {topic}/{partition}@{offset} has no value"
    elif b"\\u0000" in value or b"\x00" in value:
        # PostgreSQL text and jsonb cannot hold NUL characters
        reason, error = "nul_character", f"record {topic}/{partition}@{offset} contains a NUL character"
    else:
        try:
            tweet = parse_tweet(value, max_bytes=max_bytes)
        except TweetParseError as err:
            reason, error = err.reason, str(err)
        else:
            row = (
                tweet.id,
                tweet.created_at.isoformat(),
                tweet.text,
                tweet.lang,
                tweet.user_screen_name,
                pg_array_literal(tweet.urls),
                pg_array_literal(tweet.hashtags),
                tweet.is_retweet,
                value.decode("utf-8"),
                topic,
                partition,
                offset,
            )
            return row, None
    dead = (target_table, topic, partition, offset, pg_bytea_literal(key), pg_bytea_literal(value), reason, error)
    return None, dead


def write_records(conn, records: Iterator[tuple], table: str, dead_table: str, max_bytes: int) -> tuple[int, int, int]:
    """Write (key, value, topic, partition, offset) records; return (seen, inserted, dead). Caller commits."""
    rows: list[RowText] = []
    dead: list[RowText] = []
    seen = 0
    for key, value, topic, partition, offset in records:
        seen += 1
        row, dead_row = record_to_row(value, key, topic, partition, offset, table, max_bytes)
        if row is not None:
            rows.append(row)
        else:
            dead.append(dead_row)
    inserted = copy_insert_ignore_conflicts(conn, table, RAW_TWEET_COLUMNS, rows, ("id",), order_by=("id",))
    copy_insert_ignore_conflicts(
        conn, dead_table, DEAD_LETTER_COLUMNS, dead,
        ("target_table", "kafka_topic", "kafka_partition", "kafka_offset"),
        order_by=("kafka_topic", "kafka_partition", "kafka_offset"),
    )
    return seen, inserted, len(dead)


def _partition_writer(database_url: str, table: str, dead_table: str, max_bytes: int):
    """The function each executor runs over its share of a micro-batch (``mapInArrow``)."""

    def write(batches):
        import psycopg2
        import pyarrow as pa

        def records():
            for batch in batches:
                cols = batch.to_pydict()
                yield from zip(cols["key"], cols["value"], cols["topic"], cols["partition"], cols["offset"], strict=True)

        conn = psycopg2.connect(database_url)
        try:
            seen, inserted, dead = write_records(conn, records(), table, dead_table, max_bytes)
            conn.commit()
        finally:
            conn.close()
        yield pa.RecordBatch.from_pydict({"seen": [seen], "inserted": [inserted], "dead": [dead]})

    return write


@dataclass
class IngestProgress:
    seen: int = 0
    inserted: int = 0
    dead: int = 0
    batches: int = 0
    # the idle clock starts once the stream has made its first trigger, not while Spark starts
    last_data_at: float | None = None
    error: BaseException | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class IngestResult:
    table: str
    dead_letter_table: str
    topic: str
    seen: int
    inserted: int
    dead: int
    batches: int
    seconds: float

    def line(self) -> str:
        rate = self.seen / self.seconds if self.seconds > 0 else 0.0
        already = self.seen - self.inserted - self.dead
        return (
            f"ingested {self.inserted} new tweets into {self.table} from {self.topic} "
            f"({self.seen} records read, {self.dead} to {self.dead_letter_table}, {already} already present) "
            f"in {self.batches} micro-batches, {self.seconds:.1f} s ({rate:,.0f} records/s)"
        )


def checkpoint_dir_for(topic: str, table: str, state_dir: Path | None = None) -> Path:
    validate_identifier(table, "table name")
    safe_topic = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in topic)
    return (state_dir or default_state_dir()) / "checkpoints" / "ingest" / f"{safe_topic}__{table}"


def run_ingest(
    spark,
    *,
    infra: InfraConfig,
    config: IngestConfig,
    topic: str | None = None,
    table_prefix: str | None = None,
    version: int | None = None,
    max_records: int | None = None,
    until_idle: float | None = None,
    checkpoint_dir: Path | None = None,
    on_progress=None,
) -> IngestResult:
    """Run the ingest stream until ``max_records`` records were read, it is idle, or it is interrupted."""
    topic = topic or config.topic
    table = versioned_table_name(table_prefix or config.table_prefix, config.version if version is None else version)
    dead_table = validate_identifier(config.dead_letter_table, "dead-letter table name")
    database_url = libpq_url(infra.database_url)
    engine = make_engine(infra.database_url)
    ensure_tables(engine, raw_tweets_table(table), dead_letter_table(dead_table))
    engine.dispose()
    checkpoint = checkpoint_dir or checkpoint_dir_for(topic, table)
    checkpoint.mkdir(parents=True, exist_ok=True)

    writer = _partition_writer(database_url, table, dead_table, config.max_record_bytes)
    progress = IngestProgress()

    def write_batch(batch_df, batch_id: int) -> None:
        counts = (
            batch_df.select("key", "value", "topic", "partition", "offset")
            .mapInArrow(writer, "seen long, inserted long, dead long")
            .groupBy()
            .sum()
            .collect()
        )
        seen, inserted, dead = (int(v or 0) for v in counts[0]) if counts else (0, 0, 0)
        with progress.lock:
            progress.seen += seen
            progress.inserted += inserted
            progress.dead += dead
            progress.batches += 1
            if seen or progress.last_data_at is None:
                progress.last_data_at = time.monotonic()
        log.info("batch %d: %d records, %d new tweets, %d dead letters", batch_id, seen, inserted, dead)
        if on_progress is not None:
            on_progress(seen)

    stream = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", infra.kafka_bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", config.starting_offsets)
        .option("maxOffsetsPerTrigger", str(config.max_offsets_per_trigger))
        .option("failOnDataLoss", "false")
        .load()
    )
    start = time.monotonic()
    query = (
        stream.writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=f"{config.trigger_seconds} seconds")
        .queryName(f"ingest_{table}")
        .start()
    )
    stop_requested = threading.Event()
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    try:
        while query.isActive and not stop_requested.is_set():
            query.awaitTermination(0.5)
            with progress.lock:
                if progress.last_data_at is None and query.lastProgress is not None:
                    progress.last_data_at = time.monotonic()
                seen = progress.seen
                idle_for = 0.0 if progress.last_data_at is None else time.monotonic() - progress.last_data_at
            if max_records is not None and seen >= max_records:
                break
            if until_idle is not None and idle_for >= until_idle:
                break
    except KeyboardInterrupt:
        log.info("interrupted; stopping the ingest stream")
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        exception = query.exception() if not query.isActive else None
        query.stop()
    if exception is not None:
        raise RuntimeError(f"the ingest stream failed: {exception}")
    return IngestResult(
        table=table,
        dead_letter_table=dead_table,
        topic=topic,
        seen=progress.seen,
        inserted=progress.inserted,
        dead=progress.dead,
        batches=progress.batches,
        seconds=time.monotonic() - start,
    )
