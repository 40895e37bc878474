"""Kafka -> model server -> PostgreSQL: live classification of the tweet stream (Spark Structured Streaming).

Each micro-batch starts on the driver by asking the model server for its newest available
version N; the executors then parse their share of the batch with the canonical parser and
send the texts to ``/v1/models/<m>/versions/N:predict`` in batches (one request per
``client_batch_size`` tweets, over pooled connections), so every row records the exact version
that scored it and a version published on the server is used from the next micro-batch on.

Every tweet goes to ``classified_tweets_<v>``, the ones at or over the threshold to
``ai_tweets_<v>`` and their links to ``ai_tweet_urls_<v>``, in one transaction per partition
and keyed by tweet id with ``ON CONFLICT DO NOTHING``; with the checkpoint, that makes the effect
exactly-once across restarts, as in the ingest job. Records that are not tweets go to the
dead-letter table.

When the model server is down or answers errors, a partition fails before writing anything, so
no row is ever written without a prediction; the driver logs what is happening, waits with
backoff for the server and runs the same micro-batch again, and the stream catches up.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ssp.config import ClassifyConfig, InfraConfig, IngestConfig, ServeConfig, default_state_dir
from ssp.storage.postgres import (
    copy_csv_ignore_conflicts,
    copy_insert_ignore_conflicts,
    ensure_tables,
    libpq_url,
    make_engine,
    pg_array_literal,
)
from ssp.storage.tables import (
    AI_TWEET_URLS_TABLE_PREFIX,
    AI_TWEETS_TABLE_PREFIX,
    CLASSIFIED_TABLE_PREFIX,
    DEAD_LETTER_COLUMNS,
    ai_tweet_urls_table,
    ai_tweets_table,
    classified_tweets_table,
    dead_letter_table,
    validate_identifier,
    versioned_table_name,
)
from ssp.streaming.ingest import dead_letter_row, parse_record
from ssp.streaming.runner import StreamProgress, kafka_stream, run_until_done
from ssp.tweets import Tweet

log = logging.getLogger(__name__)

CLASSIFIED_COLUMNS = (
    "id", "created_at", "text", "lang", "user_screen_name", "urls", "hashtags", "ai_prob", "model_version",
    "is_ai", "kafka_topic", "kafka_partition", "kafka_offset", "produced_at",
)
AI_TWEET_COLUMNS = (
    "id", "created_at", "text", "lang", "user_screen_name", "urls", "hashtags", "ai_prob", "model_version",
    "produced_at",
)
URL_COLUMNS = ("tweet_id", "url", "domain", "created_at")
# what a Spark task failure caused by the model server looks like in the driver's exception text
MODEL_SERVER_FAILURE = "ModelServerError"


@dataclass(frozen=True)
class ClassifyTables:
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
    """The host a link points to, without ``www.``; ``(none)`` for a link without one.

    >>> url_domain("https://www.ArXiv.org/abs/1706.03762")
    'arxiv.org'
    >>> url_domain("not a url")
    '(none)'
    """
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    host = host.lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    return host or "(none)"


def _csv(rows) -> tuple[io.BytesIO, int]:
    from ssp.storage.postgres import rows_to_csv

    return rows_to_csv(rows)


def write_classified(conn, tables: ClassifyTables, tweets: list[tuple[Tweet, str, int, int, object]],
                     probs, model_version: int, threshold: float) -> tuple[int, int, int]:
    """Write scored tweets (tweet, topic, partition, offset, produced_at) to the three tables.

    Returns (classified rows inserted, AI tweets inserted, links inserted); the caller commits.
    Only tweets newly inserted into ``classified_tweets`` go on to the AI tables, so a replayed
    batch scored by a newer model cannot disagree with what was written the first time.
    """
    rows, ai_rows, url_rows = [], [], []
    for (tweet, topic, partition, offset, produced_at), prob in zip(tweets, probs, strict=True):
        prob = float(prob)
        is_ai = prob >= threshold
        created = tweet.created_at.isoformat()
        produced = produced_at.isoformat() if produced_at is not None else None
        urls, hashtags = pg_array_literal(tweet.urls), pg_array_literal(tweet.hashtags)
        rows.append((tweet.id, created, tweet.text, tweet.lang, tweet.user_screen_name, urls, hashtags, prob,
                     model_version, is_ai, topic, partition, offset, produced))
        if is_ai:
            ai_rows.append((tweet.id, created, tweet.text, tweet.lang, tweet.user_screen_name, urls, hashtags, prob,
                            model_version, produced))
            url_rows.extend((tweet.id, url, url_domain(url), created) for url in dict.fromkeys(tweet.urls))
    if not rows:
        return 0, 0, 0
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM " + tables.classified + " WHERE id = ANY(%s)", ([r[0] for r in rows],))
        present = {row[0] for row in cur.fetchall()}
    if present:
        ai_rows = [r for r in ai_rows if r[0] not in present]
        url_rows = [r for r in url_rows if r[0] not in present]
    buffer, count = _csv(rows)
    inserted = copy_csv_ignore_conflicts(conn, tables.classified, CLASSIFIED_COLUMNS, buffer, count, ("id",), ("id",))
    ai = copy_insert_ignore_conflicts(conn, tables.ai, AI_TWEET_COLUMNS, ai_rows, ("id",), ("id",))
    links = copy_insert_ignore_conflicts(conn, tables.urls, URL_COLUMNS, url_rows, ("tweet_id", "url"),
                                         ("tweet_id", "url"))
    return inserted, ai, links


_CLIENTS: dict[tuple, object] = {}


def _client(url: str, model_name: str, serve: ServeConfig):
    """One pooled client per Python worker process, reused across micro-batches."""
    from ssp.serving.client import PredictClient

    key = (url, model_name)
    if key not in _CLIENTS:
        _CLIENTS[key] = PredictClient(
            url, model_name, timeout=serve.client_timeout_seconds, retries=serve.client_retries,
            batch_size=serve.client_batch_size,
        )
    return _CLIENTS[key]


def _partition_classifier(database_url: str, tables: ClassifyTables, model_url: str, model_name: str,
                          serve: ServeConfig, threshold: float, max_bytes: int):
    """The function each executor runs over its share of a micro-batch (``mapInArrow``); the model
    version comes in the ``model_version`` column the driver adds."""

    def classify(batches):
        import psycopg2
        import pyarrow as pa

        data = pa.Table.from_batches(list(batches))
        if data.num_rows == 0:
            yield pa.RecordBatch.from_pydict({"seen": [0], "classified": [0], "ai": [0], "dead": [0]})
            return
        version = int(data.column("model_version")[0].as_py())
        tweets, dead, seen_ids = [], [], set()
        for index, value in enumerate(data.column("value").to_pylist()):
            topic = data.column("topic")[index].as_py()
            partition = data.column("partition")[index].as_py()
            offset = data.column("offset")[index].as_py()
            outcome = parse_record(value, max_bytes)
            if isinstance(outcome, Tweet):
                if outcome.id not in seen_ids:  # a tweet sent twice: the first copy in the stream wins
                    seen_ids.add(outcome.id)
                    tweets.append((outcome, topic, partition, offset, data.column("timestamp")[index].as_py()))
            else:
                dead.append(dead_letter_row(tables.classified, topic, partition, offset,
                                            data.column("key")[index].as_py(), value, *outcome))
        # predictions first: if the model server fails, nothing of this partition is written
        probs = _client(model_url, model_name, serve).predict([t[0].text for t in tweets], version=version) \
            if tweets else []
        conn = psycopg2.connect(database_url)
        try:
            classified, ai, _ = write_classified(conn, tables, tweets, probs, version, threshold)
            copy_insert_ignore_conflicts(
                conn, tables.dead, DEAD_LETTER_COLUMNS, dead,
                ("target_table", "kafka_topic", "kafka_partition", "kafka_offset"),
                order_by=("kafka_topic", "kafka_partition", "kafka_offset"),
            )
            conn.commit()
        finally:
            conn.close()
        yield pa.RecordBatch.from_pydict(
            {"seen": [data.num_rows], "classified": [classified], "ai": [ai], "dead": [len(dead)]}
        )

    return classify


@dataclass
class ClassifyResult:
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

    def line(self) -> str:
        rate = self.seen / self.seconds if self.seconds > 0 else 0.0
        versions = ", ".join(map(str, self.versions)) or "none"
        return (
            f"classified {self.classified} new tweets from {self.topic} into {self.tables.classified} "
            f"({self.ai} AI tweets into {self.tables.ai}, {self.dead} to {self.tables.dead}) with model version(s) "
            f"{versions} in {self.batches} micro-batches, {self.retries} retried, {self.seconds:.1f} s "
            f"({rate:,.0f} records/s)"
        )


def checkpoint_dir_for(topic: str, table: str, state_dir: Path | None = None) -> Path:
    validate_identifier(table, "table name")
    safe_topic = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in topic)
    return (state_dir or default_state_dir()) / "checkpoints" / "classify" / f"{safe_topic}__{table}"


def default_model_url(serve: ServeConfig) -> str:
    return f"http://{serve.host}:{serve.rest_api_port}"


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
    max_records: int | None = None,
    until_idle: float | None = None,
    checkpoint_dir: Path | None = None,
    max_wait_seconds: float | None = None,
    on_progress=None,
) -> ClassifyResult:
    """Run the classification stream until ``max_records`` records were read, it is idle, or it is stopped.

    While the model server is unreachable or failing, a micro-batch waits and runs again, for at most
    ``max_wait_seconds`` (forever when None) before the stream fails.
    """
    from pyspark.sql import functions as F

    from ssp.serving.client import ModelServerError

    topic = topic or config.topic
    version = config.version if version is None else version
    threshold = config.threshold if threshold is None else threshold
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold} is not between 0 and 1")
    model_url = (model_url or config.model_url or default_model_url(serve)).rstrip("/")
    model_name = model_name or serve.model_name
    tables = ClassifyTables.for_version(version, IngestConfig().dead_letter_table)
    engine = make_engine(infra.database_url)
    ensure_tables(engine, classified_tweets_table(tables.classified), ai_tweets_table(tables.ai),
                  ai_tweet_urls_table(tables.urls), dead_letter_table(tables.dead))
    engine.dispose()
    checkpoint = checkpoint_dir or checkpoint_dir_for(topic, tables.classified)
    classifier = _partition_classifier(libpq_url(infra.database_url), tables, model_url, model_name, serve,
                                       threshold, IngestConfig().max_record_bytes)
    driver_client = _client(model_url, model_name, serve)
    progress = StreamProgress()
    versions: list[int] = []
    retries = 0

    def newest_version() -> int:
        """The server's newest available version, waiting (and saying so) while there is none."""
        delay, waited = 0.5, 0.0
        while True:
            try:
                version = driver_client.available_version(retries=0)
                reason = "no version of the model is AVAILABLE yet"
            except ModelServerError as err:
                version, reason = None, str(err)
            if version is not None:
                return version
            if max_wait_seconds is not None and waited >= max_wait_seconds:
                raise ModelServerError(f"model server {model_url} not ready after {waited:.0f} s: {reason}",
                                       model_url)
            log.warning("model server %s not ready (%s); waiting %.1f s before this micro-batch",
                        model_url, reason, delay)
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 5.0)

    def write_batch(batch_df, batch_id: int) -> None:
        nonlocal retries
        attempt, started = 0, time.monotonic()
        while True:
            model_version = newest_version()
            try:
                counts = (
                    batch_df.select("key", "value", "topic", "partition", "offset", "timestamp")
                    .withColumn("model_version", F.lit(model_version).cast("long"))
                    .mapInArrow(classifier, "seen long, classified long, ai long, dead long")
                    .groupBy()
                    .sum()
                    .collect()
                )
                break
            except Exception as err:  # a failed Spark job arrives as a Py4J/PySpark exception
                out_of_time = max_wait_seconds is not None and time.monotonic() - started >= max_wait_seconds
                if MODEL_SERVER_FAILURE not in str(err) or out_of_time:
                    raise
                attempt += 1
                retries += 1
                delay = min(0.5 * 2 ** attempt, 5.0)
                log.warning("micro-batch %d failed because the model server failed (%s); nothing of it was "
                            "written without a prediction; running it again in %.1f s (attempt %d)", batch_id,
                            _first_line(err), delay, attempt + 1)
                time.sleep(delay)
        seen, classified, ai, dead = (int(v or 0) for v in counts[0]) if counts else (0, 0, 0, 0)
        progress.add(seen, classified=classified, ai=ai, dead=dead)
        if seen and model_version not in versions:
            if versions:
                log.warning("model version %d is now classifying the stream (was %d)", model_version, versions[-1])
            versions.append(model_version)
        log.info("batch %d: %d records, %d classified with version %d, %d AI, %d dead letters", batch_id, seen,
                 classified, model_version, ai, dead)
        if on_progress is not None:
            on_progress(seen)

    stream = kafka_stream(spark, infra, topic, config.starting_offsets, config.max_offsets_per_trigger)
    seconds = run_until_done(
        stream, write_batch, progress, name=f"classify_{tables.classified}", checkpoint=checkpoint,
        trigger_seconds=config.trigger_seconds, max_records=max_records, until_idle=until_idle,
    )
    return ClassifyResult(
        tables=tables, topic=topic, seen=progress.seen, classified=progress.counts.get("classified", 0),
        ai=progress.counts.get("ai", 0), dead=progress.counts.get("dead", 0), batches=progress.batches,
        retries=retries, versions=versions, seconds=seconds,
    )


def _first_line(err: BaseException) -> str:
    text = str(err)
    for line in text.splitlines():
        if MODEL_SERVER_FAILURE in line:
            return line.strip()[:300]
    return text.splitlines()[0][:300] if text else type(err).__name__
