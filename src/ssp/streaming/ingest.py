"""Kafka -> PostgreSQL: the tweet ingest job (Spark Structured Streaming).

Each micro-batch is parsed on the executors, partition by partition, with the one canonical
parser (:func:`ssp.tweets.parse_tweet`); good tweets are COPYed into ``<prefix>_<version>``
and bad records into the dead-letter table, in one transaction per partition. Rows are keyed
by tweet id (dead letters by Kafka position) and inserted with ``ON CONFLICT DO NOTHING``, so
a micro-batch that Spark replays after a crash changes nothing: together with the checkpoint
this makes the effect exactly-once, however the job is killed.

A micro-batch runs as one task per core (not one per Kafka partition: a second wave of tasks would
start parsing only when the first had finished writing), and each task writes every Arrow batch Spark
hands it as soon as it is parsed, inside the task's one transaction, so PostgreSQL is busy from the
micro-batch's first 10,000 records on and a task holds one Arrow batch in memory, not its whole share.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

from ssp.config import InfraConfig, IngestConfig, TopicsConfig
from ssp.kafka.records import cycle_collector_paused, split_records, write_dead_letters
from ssp.storage.postgres import (
    copy_csv_ignore_conflicts,
    ensure_tables,
    libpq_url,
    make_engine,
    tweet_arrow_columns,
)
from ssp.storage.tables import (
    KAFKA_POSITION_COLUMNS,
    POST_REF_COLUMNS,
    RAW_TWEET_COLUMNS,
    dead_letter_table,
    post_ref_arrow_columns,
    post_ref_upgrade_sql,
    raw_tweets_table,
    validate_identifier,
    versioned_table_name,
)
from ssp.streaming.runner import (
    StreamProgress,
    TaskTransaction,
    job_checkpoint_dir,
    kafka_stream,
    prepare_python_worker,
    run_until_done,
    tasks_per_micro_batch,
)

log = logging.getLogger(__name__)

# what the ingest job writes: the canonical fields, the payload, the Kafka position, the post reference
INGEST_COLUMNS = (*RAW_TWEET_COLUMNS, *POST_REF_COLUMNS)


def write_arrow_records(conn, data, table: str, dead_table: str, max_bytes: int,
                        seen_ids: set[int] | None = None) -> tuple[int, int, int]:
    """Write one Arrow table of Kafka records (key, value, topic, partition, offset).

    Returns (records seen, tweets inserted, dead letters). The caller commits. Only the parsed
    fields go through Python objects; the payload, topic and offsets stay Arrow columns and the
    CSV for COPY is written by Arrow. ``seen_ids`` (updated) are the tweet ids the caller's transaction
    already holds: a later copy of one is not written again.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    tweets, dead = split_records(data, table, max_bytes, seen_ids)
    inserted = 0
    if tweets:
        take = pa.array([item.index for item in tweets], pa.int64())
        posts = [item.tweet for item in tweets]
        columns = {
            **tweet_arrow_columns(posts),
            **post_ref_arrow_columns(posts),
            "is_retweet": pa.array([item.tweet.is_retweet for item in tweets], pa.bool_()),
            "raw": data.column("value").take(take).cast(pa.string()),
            **{name: data.column(name.removeprefix("kafka_")).take(take) for name in KAFKA_POSITION_COLUMNS},
        }
        rows = pa.table([columns[name] for name in INGEST_COLUMNS], names=list(INGEST_COLUMNS))
        buffer = io.BytesIO()
        # Arrow quotes every string and leaves nulls as bare empty fields, as COPY's CSV wants
        pacsv.write_csv(rows, buffer, pacsv.WriteOptions(include_header=False))
        inserted = copy_csv_ignore_conflicts(conn, table, INGEST_COLUMNS, buffer, len(tweets), ("id",), ("id",))
    write_dead_letters(conn, dead_table, dead)
    return data.num_rows, inserted, len(dead)


def _partition_writer(database_url: str, table: str, dead_table: str, max_bytes: int):
    """The function each executor runs over its share of a micro-batch (``mapInArrow``)."""

    def write(batches):
        import pyarrow as pa

        prepare_python_worker()
        totals = [0, 0, 0]  # seen, inserted, dead
        seen_ids: set[int] = set()
        # the cycle collector waits for the end of the task, where Spark's worker runs gc.collect()
        with TaskTransaction(database_url) as transaction, cycle_collector_paused():
            for batch in batches:  # written as they come, in the task's one transaction
                if batch.num_rows == 0:
                    continue
                counts = write_arrow_records(transaction.conn, pa.Table.from_batches([batch]), table, dead_table,
                                             max_bytes, seen_ids)
                totals = [total + count for total, count in zip(totals, counts, strict=True)]
        yield pa.RecordBatch.from_pydict({"seen": [totals[0]], "inserted": [totals[1]], "dead": [totals[2]]})

    return write


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
    return job_checkpoint_dir("ingest", topic, table, state_dir)


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
    topic = topic or TopicsConfig().mix_tweets_topic
    table = versioned_table_name(table_prefix or config.table_prefix, config.version if version is None else version)
    dead_table = validate_identifier(config.dead_letter_table, "dead-letter table name")
    database_url = libpq_url(infra.database_url)
    engine = make_engine(infra.database_url)
    ensure_tables(engine, raw_tweets_table(table), dead_letter_table(dead_table))
    with engine.begin() as conn:  # a table made before posts had a platform gains the columns
        conn.exec_driver_sql(post_ref_upgrade_sql(table))
    engine.dispose()
    checkpoint = checkpoint_dir or checkpoint_dir_for(topic, table)
    writer = _partition_writer(database_url, table, dead_table, config.max_record_bytes)
    progress = StreamProgress()
    parallelism = tasks_per_micro_batch(spark)  # see the module's docstring

    def write_batch(batch_df, batch_id: int) -> None:
        tasks = (  # one row per task, added up here: no shuffle stage for a sum of a few rows
            batch_df.select("key", "value", "topic", "partition", "offset")
            .coalesce(parallelism)
            .mapInArrow(writer, "seen long, inserted long, dead long")
            .collect()
        )
        seen, inserted, dead = (sum(row[name] for row in tasks) for name in ("seen", "inserted", "dead"))
        progress.add(seen, inserted=inserted, dead=dead)
        log.info("batch %d: %d records, %d new tweets, %d dead letters", batch_id, seen, inserted, dead)
        if on_progress is not None:
            on_progress(seen)

    stream = kafka_stream(spark, infra, topic, config.starting_offsets, config.max_offsets_per_trigger)
    seconds = run_until_done(
        stream, write_batch, progress, name=f"ingest_{table}", checkpoint=checkpoint,
        trigger_seconds=config.trigger_seconds, max_records=max_records, until_idle=until_idle, warm_module=__name__,
    )
    return IngestResult(
        table=table,
        dead_letter_table=dead_table,
        topic=topic,
        seen=progress.seen,
        inserted=progress.counts.get("inserted", 0),
        dead=progress.counts.get("dead", 0),
        batches=progress.batches,
        seconds=seconds,
    )
