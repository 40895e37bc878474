"""Kafka -> model server -> PostgreSQL: live classification of the tweet stream (Spark Structured Streaming).

Each micro-batch starts on the driver by asking the model server for its newest available
version N. The executors' Python tasks parse their share with the canonical parser
(``ssp.tweets.parse_tweet``), which also makes the dead letters; with ``sql_parse=True`` Spark SQL reads
the tweets first (:func:`ssp.streaming.tweet_sql.plain_tweets`, the same rule over the JSON), so the
tasks get those tweets' fields, not their payloads, and parse only the records that rule does not read
exactly (slower on 2 cores: see :func:`run_classify`). The tasks send the texts to
``/v1/models/<m>/versions/N:predict`` in batches (one request per ``client_batch_size`` tweets, over
pooled connections kept by each Python worker), so every row records the exact version that scored
it and a version published on the server is used from the next micro-batch on.

Every tweet goes to ``classified_tweets_<v>``, the ones at or over the threshold to
``ai_tweets_<v>`` and their links to ``ai_tweet_urls_<v>``, in one transaction per Spark task,
keyed by tweet id: a plain ``COPY`` (Arrow to CSV, no Python per row), and only when that meets a
tweet already there (a replay) through a staging table and ``ON CONFLICT DO NOTHING``. The AI tables
are filled from the classified table's own row for each tweet, so however often a tweet is replayed, and by
whichever model version, the three tables agree with the first write. With the checkpoint,
that makes the effect exactly-once across restarts, as in the ingest job. Records that are
not tweets go to the dead-letter table.

When the model server is down or answers errors (or answers something that is not a
probability), a task writes nothing and reports the failure in its result row instead of
failing: no row is ever written without a prediction, Spark does not log a task stack trace
per attempt, and the driver sees the server's own message. The driver then says in the log
what is happening, waits with backoff and runs the same micro-batch again (tasks that did
succeed are skipped by the idempotent writes), and the stream catches up once the server is
back. A stop (Ctrl-C, SIGTERM, ``max_records``) while a micro-batch is waiting ends the wait at
once and leaves that micro-batch uncommitted, to run again on restart.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssp.config import ClassifyConfig, InfraConfig, IngestConfig, ServeConfig, TopicsConfig, TrainConfig
from ssp.kafka.records import cycle_collector_paused, split_records, write_dead_letters
from ssp.model.export import ExportError, read_model_card
from ssp.serving.layout import served_model_folder, version_folder
from ssp.storage.postgres import (
    copy_csv_ignore_conflicts,
    copy_insert_ignore_conflicts,
    ensure_tables,
    libpq_url,
    make_engine,
    tweet_arrow_columns,
)
from ssp.storage.tables import (
    AI_TWEET_URLS_TABLE_PREFIX,
    AI_TWEETS_TABLE_PREFIX,
    CLASSIFIED_TABLE_PREFIX,
    KAFKA_POSITION_COLUMNS,
    POST_REF_COLUMNS,
    TWEET_COLUMNS,
    ai_tweet_urls_table,
    ai_tweets_table,
    classified_tweets_table,
    post_ref_arrow_columns,
    post_ref_upgrade_sql,
    validate_identifier,
    versioned_table_name,
)
from ssp.storage.tables import (
    dead_letter_table as dead_letter_schema,  # dead_letter_table is an argument name here
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
from ssp.streaming.tweet_sql import plain_tweets
from ssp.text import link_domain

log = logging.getLogger(__name__)

CLASSIFIED_COLUMNS = (*TWEET_COLUMNS, "ai_prob", "model_version", "is_ai", *KAFKA_POSITION_COLUMNS, "produced_at",
                      *POST_REF_COLUMNS)
AI_TWEET_COLUMNS = (*TWEET_COLUMNS, "ai_prob", "model_version", "produced_at", *POST_REF_COLUMNS)
URL_COLUMNS = ("tweet_id", "url", "domain", "created_at")
# What a task gets per record: its Kafka fields and, when Spark SQL read it (``plain``), the tweet's fields
KAFKA_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp")
TASK_COLUMNS = (*KAFKA_COLUMNS, "plain", "id", "created_at", "text", "lang", "user_screen_name", "urls",
                "urls_literal", "hashtags_literal", "retweet_of")
# the classified table's columns but the scores, plus each tweet's links (for ai_tweet_urls)
_ROW_COLUMNS = tuple(name for name in CLASSIFIED_COLUMNS if name not in ("ai_prob", "model_version", "is_ai"))
# One row per task of a micro-batch; ``failed``/``error`` carry a model-server failure to the driver.
PARTITION_RESULT_SCHEMA = "seen long, classified long, ai long, dead long, failed long, error string"
# The threshold when neither --threshold, ClassifyConfig.threshold nor the model card gives one.
DEFAULT_THRESHOLD = 0.5
# Backoff between attempts of a micro-batch waiting for the model server: doubles up to the cap.
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 5.0
_STOP_CHECK_SECONDS = 0.25


class StreamStopped(RuntimeError):
    """Raised inside ``foreachBatch`` when the stream is stopped while a micro-batch waits for the
    model server: raising (not returning) keeps Spark from committing a batch that wrote nothing."""


class _DropStopTracebacks(logging.Filter):
    """py4j logs every exception of a Python callback with its traceback; a stop we raised is not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamStopped))


# The class whose log says "Query ... terminated with error" when foreachBatch raises.
_SPARK_QUERY_LOGGER = "org.apache.spark.sql.execution.streaming.MicroBatchExecution"


def _silence_spark_query_log(spark) -> Callable[[], None]:
    """Turn the query's own error log off for the stop about to be raised; returns the undo.

    Spark logs any exception out of ``foreachBatch`` as a query error with three copies of the
    traceback, even while the query is being stopped; here the exception is how the stop is done.
    """
    try:
        jvm = spark._jvm
        configurator = jvm.org.apache.logging.log4j.core.config.Configurator
        previous = jvm.org.apache.logging.log4j.LogManager.getLogger(_SPARK_QUERY_LOGGER).getLevel()
        configurator.setLevel(_SPARK_QUERY_LOGGER, jvm.org.apache.logging.log4j.Level.OFF)
    except Exception as err:  # another logging backend, a gone JVM: the error log just stays
        log.debug("could not quiet Spark's query log: %s", err)
        return lambda: None
    return lambda: configurator.setLevel(_SPARK_QUERY_LOGGER, previous)


@dataclass(frozen=True)
class ClassifyTables:
    """The tables one classification stream writes, for one table version."""

    classified: str
    ai: str
    urls: str
    dead: str

    @classmethod
    def for_version(cls, version: int, dead_letter: str) -> ClassifyTables:
        return cls(
            classified=versioned_table_name(CLASSIFIED_TABLE_PREFIX, version),
            ai=versioned_table_name(AI_TWEETS_TABLE_PREFIX, version),
            urls=versioned_table_name(AI_TWEET_URLS_TABLE_PREFIX, version),
            dead=validate_identifier(dead_letter, "dead-letter table name"),
        )


def url_domain(url: str) -> str:
    """The domain a link is filed under (:func:`ssp.text.link_domain`); ``(none)`` for a link without a host.

    >>> url_domain("https://www.ArXiv.org/abs/1706.03762")
    'arxiv.org'
    >>> url_domain("not a url")
    '(none)'
    """
    return link_domain(url) or "(none)"


def check_probabilities(probs, model_version: int) -> None:
    """Refuse an answer that is not one probability per tweet: storing it would be a row without a prediction.

    >>> check_probabilities([0.0, 0.25, 1.0], 3)
    >>> check_probabilities([0.5, 7.0], 3)
    Traceback (most recent call last):
    ...
    ValueError: model version 3 answered 7.0 for tweet 2 of 2, which is not a probability in [0, 1]
    """
    for index, prob in enumerate(probs):
        value = float(prob)
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"model version {model_version} answered {value!r} for tweet {index + 1} of "
                             f"{len(probs)}, which is not a probability in [0, 1]")


def tweet_rows(batch, target_table: str, max_bytes: int, seen_ids: set[int]):
    """The tweets of one Arrow batch of :data:`TASK_COLUMNS` (or :data:`KAFKA_COLUMNS` alone) as an Arrow table
    of the classified table's columns but the scores, with their links in ``url_list``, and the dead-letter rows.

    Plain records (read by Spark SQL) are taken as they are; the others go through the canonical parser
    (:func:`ssp.kafka.records.split_records`). A tweet id seen twice (in this batch in Kafka order, or in
    ``seen_ids``, which is updated) keeps its first copy.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if "plain" in batch.schema.names:
        is_plain = batch.column("plain").fill_null(False)
        plain, other = batch.filter(is_plain), batch.filter(pc.invert(is_plain))
        plain_index = np.flatnonzero(is_plain.to_numpy(zero_copy_only=False))
        other_index = np.flatnonzero(~is_plain.to_numpy(zero_copy_only=False))
    else:
        plain, other = batch.slice(0, 0), batch
        plain_index, other_index = np.zeros(0, np.int64), np.arange(batch.num_rows)
    tweets, dead = split_records(other.select(list(KAFKA_COLUMNS)), target_table, max_bytes)
    parsed = [item.tweet for item in tweets]
    parsed_index = np.array([item.index for item in tweets], np.int64)

    def position(column: str):
        return other.column(column).take(pa.array(parsed_index))

    utc = pa.timestamp("us", tz="UTC")
    timestamps = (position("timestamp").cast(utc) if "timestamp" in other.schema.names
                  else pa.nulls(len(tweets), utc))
    parts = [{
        **tweet_arrow_columns(parsed), **post_ref_arrow_columns(parsed),
        "kafka_topic": position("topic"), "kafka_partition": position("partition").cast(pa.int32()),
        "kafka_offset": position("offset").cast(pa.int64()), "produced_at": timestamps,
        "url_list": pa.array([list(t.urls) for t in parsed], pa.list_(pa.string())),
    }]
    if plain.num_rows:
        count = plain.num_rows
        parts.append({
            "id": plain.column("id").cast(pa.int64()), "created_at": plain.column("created_at").cast(utc),
            "text": plain.column("text"), "lang": plain.column("lang"),
            "user_screen_name": plain.column("user_screen_name"), "urls": plain.column("urls_literal"),
            "hashtags": plain.column("hashtags_literal"), "platform": pa.array(["x"] * count, pa.string()),
            "post_uri": pa.nulls(count, pa.string()), "post_cid": pa.nulls(count, pa.string()),
            "retweet_of": plain.column("retweet_of").cast(pa.int64()), "kafka_topic": plain.column("topic"),
            "kafka_partition": plain.column("partition").cast(pa.int32()),
            "kafka_offset": plain.column("offset").cast(pa.int64()), "produced_at": plain.column("timestamp").cast(utc),
            "url_list": plain.column("urls").cast(pa.list_(pa.string())),
        })
    names = (*_ROW_COLUMNS, "url_list")
    # one chunk per column: pyarrow's CSV writer garbles a table whose columns start with an empty chunk
    table = pa.concat_tables([pa.table([part[name] for name in names], names=list(names)) for part in parts
                              if len(part["id"]) or part is parts[-1]]).combine_chunks()
    # the first copy of each id in Kafka order, and none already seen by this task
    order = np.concatenate([other_index[parsed_index], plain_index]).astype(np.int64)
    ids = table.column("id").to_numpy()
    by_offset = np.argsort(order, kind="stable")
    _, first = np.unique(ids[by_offset], return_index=True)
    keep = np.zeros(len(ids), bool)
    keep[by_offset[first]] = True
    if seen_ids:
        keep &= ~np.isin(ids, np.fromiter(seen_ids, np.int64, len(seen_ids)))
    if not keep.all():
        table = table.filter(pa.array(keep))
    seen_ids.update(table.column("id").to_pylist())
    return table, dead


def write_classified(conn, tables: ClassifyTables, rows, probs, model_version: int,
                     threshold: float) -> tuple[int, int, int]:
    """Write scored tweets (``rows``: a :func:`tweet_rows` table) to the three tables; returns the rows inserted
    into each. The caller commits.

    The AI rows are copied from ``classified_tweets`` itself, for the batch's tweets that the
    table says are AI: a tweet classified before (a replayed micro-batch, maybe scored by a newer
    model now, or a concurrent writer) keeps the verdict written the first time in all three tables.
    Links are written with their AI row, in the same transaction, so only new AI rows need them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    if not rows.num_rows:
        return 0, 0, 0
    probs = pa.array(probs, pa.float32())
    columns = {
        **{name: rows.column(name) for name in _ROW_COLUMNS},
        "ai_prob": probs,
        "model_version": pa.array([model_version] * rows.num_rows, pa.int64()),
        # compared in float32, the precision stored, so is_ai agrees with the stored ai_prob
        "is_ai": pc.greater_equal(probs.cast(pa.float64()), pa.scalar(float(threshold), pa.float64())),
    }
    buffer = io.BytesIO()
    # Arrow quotes every string and leaves nulls as bare empty fields, as COPY's CSV wants
    pacsv.write_csv(pa.table([columns[name] for name in CLASSIFIED_COLUMNS], names=list(CLASSIFIED_COLUMNS)), buffer,
                    pacsv.WriteOptions(include_header=False))
    inserted = copy_csv_ignore_conflicts(conn, tables.classified, CLASSIFIED_COLUMNS, buffer, rows.num_rows, ("id",),
                                         ("id",))
    ai_columns = ", ".join(AI_TWEET_COLUMNS)
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {tables.ai} ({ai_columns}) SELECT {ai_columns} FROM {tables.classified} "
                    "WHERE id = ANY(%s) AND is_ai ORDER BY id ON CONFLICT (id) DO NOTHING RETURNING id",
                    (rows.column("id").to_pylist(),))
        new_ai = {row[0] for row in cur.fetchall()}
    url_rows = []
    if new_ai:
        linked = rows.filter(pc.is_in(rows.column("id"), pa.array(sorted(new_ai), pa.int64())))
        for tweet_id, created_at, urls in zip(linked.column("id").to_pylist(), linked.column("created_at").to_pylist(),
                                              linked.column("url_list").to_pylist(), strict=True):
            url_rows.extend((tweet_id, url, url_domain(url), created_at.isoformat()) for url in dict.fromkeys(urls))
    links = copy_insert_ignore_conflicts(conn, tables.urls, URL_COLUMNS, url_rows, ("tweet_id", "url"),
                                         ("tweet_id", "url"))
    return inserted, len(new_ai), links


def card_threshold(base_path: Path, version: int) -> tuple[float | None, str]:
    """The decision threshold in ``<base_path>/<version>/model_card.json``, or None and why there is none.

    >>> card_threshold(Path("/nonexistent"), 3)[0] is None
    True
    """
    try:
        card = read_model_card(version_folder(base_path, version))
    except (ExportError, OSError) as err:
        return None, str(err)
    value = card.get("threshold") if isinstance(card, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        return None, f"the model card of version {version} in {base_path} has no threshold between 0 and 1"
    return float(value), f"{card.get('threshold_rule', 'a rule')} on {card.get('threshold_source', 'dev')}"


class VersionThresholds:
    """The threshold each model version is applied with: the fixed one when given, else the
    version's model card, else ``DEFAULT_THRESHOLD`` with one warning per version. Cached per version."""

    def __init__(self, base_path: Path, fixed: float | None = None) -> None:
        self.base_path, self.fixed = Path(base_path), fixed
        self.by_version: dict[int, float] = {}

    def __call__(self, version: int) -> float:
        if self.fixed is not None:
            return self.fixed
        if version not in self.by_version:
            threshold, why = card_threshold(self.base_path, version)
            if threshold is None:
                log.warning("model version %d: no threshold in its model card (%s); using %s", version, why,
                            DEFAULT_THRESHOLD)
                threshold = DEFAULT_THRESHOLD
            else:
                log.info("model version %d: threshold %.4f from its model card (%s)", version, threshold, why)
            self.by_version[version] = threshold
        return self.by_version[version]


_CLIENTS: dict[tuple, Any] = {}


def _client(url: str, model_name: str, serve: ServeConfig):
    """One pooled client per Python process (driver or worker), reused across micro-batches."""
    from ssp.serving.client import PredictClient

    key = (url, model_name, serve.client_timeout_seconds, serve.client_retries, serve.client_batch_size)
    if key not in _CLIENTS:
        _CLIENTS[key] = PredictClient(
            url, model_name, timeout=serve.client_timeout_seconds, retries=serve.client_retries,
            batch_size=serve.client_batch_size,
        )
    return _CLIENTS[key]


def _outcome(seen: int = 0, classified: int = 0, ai: int = 0, dead: int = 0, error: str | None = None):
    import pyarrow as pa

    return pa.RecordBatch.from_pydict({
        "seen": pa.array([seen], pa.int64()), "classified": pa.array([classified], pa.int64()),
        "ai": pa.array([ai], pa.int64()), "dead": pa.array([dead], pa.int64()),
        "failed": pa.array([int(error is not None)], pa.int64()), "error": pa.array([error], pa.string()),
    })


def _partition_classifier(database_url: str, tables: ClassifyTables, model_url: str, model_name: str,
                          serve: ServeConfig, max_bytes: int) -> Callable[[Iterator], Iterator]:
    """The function each Spark task runs over its share of a micro-batch (``mapInArrow``); the model
    version and its threshold come in the ``model_version`` and ``threshold`` columns the driver adds."""

    def classify(batches):
        from ssp.serving.client import ModelServerError

        prepare_python_worker()
        client = _client(model_url, model_name, serve)
        seen_ids: set[int] = set()
        records = classified = ai = dead = 0
        failure = None
        # the cycle collector waits for the end of the task, where Spark's worker runs gc.collect(): a
        # batch's parsed tweets are some 50 containers each, none in a cycle (split_records says more)
        with TaskTransaction(database_url) as transaction, cycle_collector_paused():
            # Arrow batch by batch, in one transaction: parsing, predicting and writing one batch overlap
            # with Spark reading the next from Kafka
            for batch in batches:
                records += batch.num_rows
                if failure is not None or batch.num_rows == 0:
                    continue  # after a failure the input is still read to its end, as Spark's worker expects
                version = int(batch.column("model_version")[0].as_py())
                threshold = float(batch.column("threshold")[0].as_py())
                rows, dead_rows = tweet_rows(batch, tables.classified, max_bytes, seen_ids)
                # predictions before any write: if the model server fails, the transaction is rolled back
                try:
                    probs = client.predict(rows.column("text").to_pylist(), version=version) if rows.num_rows else []
                    check_probabilities(probs, version)
                except (ModelServerError, ValueError) as err:
                    failure = str(err)
                    transaction.rollback()
                    continue
                new_rows, new_ai, _ = write_classified(transaction.conn, tables, rows, probs, version, threshold)
                classified, ai = classified + new_rows, ai + new_ai
                dead += write_dead_letters(transaction.conn, tables.dead, dead_rows)
        yield _outcome(error=failure) if failure is not None else _outcome(records, classified, ai, dead)

    return classify


@dataclass
class ClassifyResult:
    """What a run did: records read, rows newly inserted per table, and how the model server behaved."""

    tables: ClassifyTables
    topic: str
    seen: int
    classified: int
    ai: int
    dead: int
    batches: int
    retries: int
    versions: list[int]
    seconds: float
    thresholds: dict[int, float] = field(default_factory=dict)  # per model version used

    def line(self) -> str:
        rate = self.seen / self.seconds if self.seconds > 0 else 0.0
        versions = ", ".join(f"{v} (threshold {self.thresholds[v]:.3f})" if v in self.thresholds else str(v)
                             for v in self.versions) or "none"
        return (
            f"classified {self.classified} new tweets from {self.topic} into {self.tables.classified} "
            f"({self.ai} AI tweets into {self.tables.ai}, {self.dead} to {self.tables.dead}; {self.seen} records "
            f"read) with model version(s) {versions} in {self.batches} micro-batches, {self.retries} waits for "
            f"the model server, {self.seconds:.1f} s ({rate:,.0f} records/s)"
        )


@dataclass(frozen=True)
class ClassifySettings:
    """The resolved, validated settings of one classification stream."""

    topic: str
    tables: ClassifyTables
    threshold: float | None  # None: each model version's model card says
    model_url: str
    model_name: str
    model_base_path: Path  # where the model cards are: <model_base_path>/<version>/model_card.json


def classify_settings(config: ClassifyConfig, serve: ServeConfig, *, topic: str | None = None,
                      version: int | None = None, threshold: float | None = None, model_url: str | None = None,
                      model_name: str | None = None, dead_letter_table: str | None = None,
                      model_base_path: Path | str | None = None) -> ClassifySettings:
    """Arguments over config, checked before anything starts; bad ones raise ValueError naming the input."""
    from ssp.serving.client import PredictClient

    topic = topic or TopicsConfig().mix_tweets_topic
    if not topic:
        raise ValueError("the Kafka topic is empty: give --topic or set TopicsConfig.mix_tweets_topic")
    tables = ClassifyTables.for_version(config.version if version is None else version,
                                        dead_letter_table or IngestConfig().dead_letter_table)
    threshold = config.threshold if threshold is None else threshold
    if threshold is not None and not 0.0 <= threshold <= 1.0:  # also refuses NaN
        raise ValueError(f"threshold {threshold} is not between 0 and 1")
    model_url = (model_url or config.model_url or serve.url).rstrip("/")
    model_name = model_name or serve.model_name
    PredictClient(model_url, model_name).close()  # the client's own checks name a bad URL or model name
    # as `ssp serve` finds the versions, so the cards read are those of the versions served
    base_path = served_model_folder(model_name, TrainConfig().models_path, model_base_path, serve.model_base_path)
    return ClassifySettings(topic, tables, threshold, model_url, model_name, base_path)


def checkpoint_dir_for(topic: str, table: str, state_dir: Path | None = None) -> Path:
    return job_checkpoint_dir("classify", topic, table, state_dir)


@dataclass(frozen=True)
class Backoff:
    """How a micro-batch waits for the model server: doubling delays up to a cap, and when to give up.

    >>> policy = Backoff(max_wait_seconds=30)
    >>> [policy.delay(attempt) for attempt in range(5)]
    [0.5, 1.0, 2.0, 4.0, 5.0]
    >>> policy.gives_up(29.9), policy.gives_up(30.0), Backoff().gives_up(10**9)
    (False, True, False)
    """

    first_seconds: float = FIRST_RETRY_SECONDS
    max_seconds: float = MAX_RETRY_SECONDS
    max_wait_seconds: float | None = None  # None: wait for ever

    def delay(self, attempt: int) -> float:
        """The wait before attempt ``attempt + 1``, counting the first retry's wait as attempt 0."""
        return min(self.first_seconds * 2 ** attempt, self.max_seconds)

    def gives_up(self, waited: float) -> bool:
        return self.max_wait_seconds is not None and waited >= self.max_wait_seconds


@dataclass(frozen=True)
class TaskResults:
    """What the tasks of one attempt at a micro-batch reported (one row each, ``PARTITION_RESULT_SCHEMA``).

    >>> ok = {"seen": 3, "classified": 2, "ai": 1, "dead": 1, "failed": 0, "error": None}
    >>> bad = {"seen": 0, "classified": 0, "ai": 0, "dead": 0, "failed": 1, "error": "503 down"}
    >>> TaskResults.from_rows([ok, bad])
    TaskResults(tasks=2, seen=3, written={'classified': 2, 'ai': 1, 'dead': 1}, errors=('503 down',))
    """

    tasks: int
    seen: int
    written: dict[str, int]  # rows newly inserted, per table kind
    errors: tuple[str, ...]  # the model-server failures of the tasks that wrote nothing

    @classmethod
    def from_rows(cls, rows: Sequence) -> TaskResults:
        written = {key: sum(row[key] for row in rows) for key in ("classified", "ai", "dead")}
        return cls(len(rows), sum(row["seen"] for row in rows), written,
                   tuple(row["error"] for row in rows if row["failed"]))


def add_version(versions: list[int], seen: int, model_version: int) -> bool:
    """Record that ``model_version`` classified ``seen`` records; True when it is a new version taking over.

    >>> versions = []
    >>> add_version(versions, 10, 1), add_version(versions, 0, 2), add_version(versions, 5, 2), versions
    (False, False, True, [1, 2])
    """
    if not seen or model_version in versions:
        return False
    versions.append(model_version)
    return len(versions) > 1


class _MicroBatches:
    """The driver's side of the stream: for each micro-batch, pick the newest model version, run the tasks,
    and wait with :class:`Backoff` while the model server fails. ``write_batch`` is what ``foreachBatch`` calls."""

    def __init__(self, spark, settings: ClassifySettings, serve: ServeConfig, classifier, backoff: Backoff,
                 progress: StreamProgress, on_progress: Callable[[int], None] | None) -> None:
        from pyspark.sql import functions

        self.spark, self.functions, self.backoff, self.progress = spark, functions, backoff, progress
        self.model_url, self.classifier, self.on_progress = settings.model_url, classifier, on_progress
        self.query_name = f"classify_{settings.tables.classified}"
        self.client = _client(settings.model_url, settings.model_name, serve)
        self.threshold_for = VersionThresholds(settings.model_base_path, settings.threshold)
        # One task per core, not per Kafka partition: a second wave of tasks would double each small
        # micro-batch's fixed cost (task start, Kafka fetch, connections) and so the stream's latency.
        self.parallelism = tasks_per_micro_batch(spark)
        self.versions: list[int] = []
        self.retries = 0
        self.undo_on_exit: list[Callable[[], None]] = []
        self.gave_up: list[Exception] = []  # raised in foreachBatch; Spark hands it back wrapped in its own text

    def stopping(self) -> bool:
        """Whether the query is being stopped; its state turns TERMINATED as soon as stop() is called."""
        return not any(query.name == self.query_name and query.isActive for query in self.spark.streams.active)

    def wait(self, seconds: float, batch_id: int) -> None:
        """Sleep between attempts, keeping the idle clock still and giving way at once to a stop."""
        deadline = time.monotonic() + seconds
        while True:
            with self.progress.lock:
                self.progress.last_data_at = time.monotonic()
            if self.stopping():
                log.warning("stopping while micro-batch %d waits for the model server; it is not committed and "
                            "runs again when the stream restarts", batch_id)
                self.undo_on_exit.append(_silence_spark_query_log(self.spark))
                raise StreamStopped(f"stopped while micro-batch {batch_id} waited for the model server")
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, _STOP_CHECK_SECONDS))

    def give_up_if_too_long(self, started: float, batch_id: int, reason: str) -> None:
        from ssp.serving.client import ModelServerError

        waited = time.monotonic() - started
        if self.backoff.gives_up(waited):
            self.gave_up.append(ModelServerError(
                f"micro-batch {batch_id} gave up on model server {self.model_url} after {waited:.0f} s "
                f"(max_wait_seconds={self.backoff.max_wait_seconds:g}); it runs again when the stream restarts: "
                f"{reason}", self.model_url))
            raise self.gave_up[-1]

    def newest_version(self, batch_id: int, started: float) -> int:
        """The server's newest available version, waiting (and saying so) while there is none."""
        from ssp.serving.client import ModelServerError

        attempt = 0
        while True:
            try:
                version = self.client.available_version(retries=0)
                reason = "no version of the model is AVAILABLE yet"
            except ModelServerError as err:
                version, reason = None, str(err)
            if version is not None:
                return version
            self.give_up_if_too_long(started, batch_id, reason)
            self.retries += 1
            delay = self.backoff.delay(attempt)
            log.warning("model server %s not ready (%s); micro-batch %d waits %.1f s", self.model_url, reason,
                        batch_id, delay)
            self.wait(delay, batch_id)
            attempt += 1

    def run_tasks(self, batch_df, model_version: int) -> TaskResults:
        """One attempt at the micro-batch: the plan is the batch, the version and its threshold, one task a core."""
        lit = self.functions.lit
        return TaskResults.from_rows(
            batch_df.select(*(TASK_COLUMNS if "plain" in batch_df.columns else KAFKA_COLUMNS))
            .coalesce(self.parallelism)
            .withColumn("model_version", lit(model_version).cast("long"))
            .withColumn("threshold", lit(self.threshold_for(model_version)).cast("double"))
            .mapInArrow(self.classifier, PARTITION_RESULT_SCHEMA)
            .collect()
        )

    def write_batch(self, batch_df, batch_id: int) -> None:
        attempt, started = 0, time.monotonic()
        written = {"classified": 0, "ai": 0, "dead": 0}  # inserts add up over attempts; records read do not
        retries_before = self.retries
        while True:
            model_version = self.newest_version(batch_id, started)
            results = self.run_tasks(batch_df, model_version)
            for key in written:
                written[key] += results.written[key]
            if not results.errors:
                break
            self.give_up_if_too_long(started, batch_id, results.errors[0])
            attempt += 1
            self.retries += 1
            delay = self.backoff.delay(attempt)
            log.warning("micro-batch %d: %d of %d tasks got no predictions from model version %d at %s (%s); "
                        "they wrote nothing; running the micro-batch again in %.1f s (attempt %d)", batch_id,
                        len(results.errors), results.tasks, model_version, self.model_url,
                        " ".join(results.errors[0].split())[:400], delay, attempt + 1)
            self.wait(delay, batch_id)
        if self.retries > retries_before:
            log.warning("model server %s answers again: micro-batch %d classified with model version %d after "
                        "%d waits", self.model_url, batch_id, model_version, self.retries - retries_before)
        self.progress.add(results.seen, **written)
        if add_version(self.versions, results.seen, model_version):
            log.warning("model version %d is now classifying the stream (was %d)", model_version, self.versions[-2])
        log.info("batch %d: %d records, %d newly classified with model version %d, %d new AI tweets, "
                 "%d new dead letters", batch_id, results.seen, written["classified"], model_version, written["ai"],
                 written["dead"])
        if self.on_progress is not None:
            self.on_progress(results.seen)


def run_classify(
    spark,
    *,
    infra: InfraConfig,
    config: ClassifyConfig,
    serve: ServeConfig,
    topic: str | None = None,
    version: int | None = None,
    threshold: float | None = None,
    model_url: str | None = None,
    model_name: str | None = None,
    dead_letter_table: str | None = None,
    model_base_path: Path | str | None = None,
    max_records: int | None = None,
    until_idle: float | None = None,
    checkpoint_dir: Path | None = None,
    max_wait_seconds: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    sql_parse: bool | None = None,
) -> ClassifyResult:
    """Run the classification stream until ``max_records`` records were read, it is idle, or it is stopped.

    While the model server is unreachable or failing, a micro-batch waits and runs again, for at most
    ``max_wait_seconds`` (forever when None) before the stream fails; the waiting counts as work,
    not as idleness, so ``until_idle`` does not end a stream that has records it could not classify yet.
    Without a ``threshold`` (nor ``ClassifyConfig.threshold``) each model version is applied with the
    threshold in its model card under ``model_base_path``, read once per version.
    ``sql_parse=True`` has Spark SQL read the tweets it can (:func:`ssp.streaming.tweet_sql.plain_tweets`) and
    only the rest go through the Python parser (None: ``config.parser == "sql"``); it is off by default because on 2 cores Spark's JSON reading
    costs more CPU than orjson and the Python rule together (``bench/classify.py`` compares the two; README,
    "Live classification").
    """
    from pyspark.errors import StreamingQueryException

    settings = classify_settings(config, serve, topic=topic, version=version, threshold=threshold,
                                 model_url=model_url, model_name=model_name, dead_letter_table=dead_letter_table,
                                 model_base_path=model_base_path)
    tables = settings.tables
    engine = make_engine(infra.database_url)
    try:
        ensure_tables(engine, classified_tweets_table(tables.classified), ai_tweets_table(tables.ai),
                      ai_tweet_urls_table(tables.urls), dead_letter_schema(tables.dead))
        with engine.begin() as conn:  # tables made before posts had a platform gain the columns
            for table in (tables.classified, tables.ai):
                conn.exec_driver_sql(post_ref_upgrade_sql(table))
    finally:
        engine.dispose()
    max_bytes = IngestConfig().max_record_bytes
    classifier = _partition_classifier(libpq_url(infra.database_url), tables, settings.model_url,
                                       settings.model_name, serve, max_bytes)
    progress = StreamProgress()
    batches = _MicroBatches(spark, settings, serve, classifier, Backoff(max_wait_seconds=max_wait_seconds), progress,
                            on_progress)
    stream = kafka_stream(spark, infra, settings.topic, config.starting_offsets, config.max_offsets_per_trigger)
    if config.parser == "sql" if sql_parse is None else sql_parse:  # on the stream once, so Spark analyses the rule once, not every micro-batch
        stream = plain_tweets(stream, max_bytes=max_bytes)
    quiet_stops = _DropStopTracebacks()
    logging.getLogger("py4j.clientserver").addFilter(quiet_stops)
    try:
        seconds = run_until_done(
            stream, batches.write_batch, progress, name=batches.query_name,
            checkpoint=checkpoint_dir or checkpoint_dir_for(settings.topic, tables.classified),
            trigger_seconds=config.trigger_seconds, max_records=max_records, until_idle=until_idle,
            warm_module=__name__,
        )
    except (StreamingQueryException, RuntimeError) as err:
        if batches.gave_up:
            raise batches.gave_up[-1] from err
        if isinstance(err, StreamingQueryException):  # awaitTermination raises the query's failure as is
            raise RuntimeError(f"the {batches.query_name} stream failed: {err}") from err
        raise
    finally:
        logging.getLogger("py4j.clientserver").removeFilter(quiet_stops)
        for undo in batches.undo_on_exit:
            undo()
    return ClassifyResult(
        tables=tables, topic=settings.topic, seen=progress.seen, classified=progress.counts.get("classified", 0),
        ai=progress.counts.get("ai", 0), dead=progress.counts.get("dead", 0), batches=progress.batches,
        retries=batches.retries, versions=batches.versions, seconds=seconds,
        thresholds={v: batches.threshold_for(v) for v in batches.versions},
    )
