"""Versioned table names and the tables ssp's streams write to.

Every table name that reaches SQL is built here and validated against
``^[a-z_][a-z0-9_]*$``; values never become part of SQL text.

>>> versioned_table_name("raw_tweet_dataset", 0)
'raw_tweet_dataset_0'
>>> try:
...     versioned_table_name("raw; drop table x", 0)
... except UnsafeIdentifierError as err:
...     print(err)
table prefix 'raw; drop table x' is not a safe SQL identifier: use lower-case letters, digits and '_', starting with a letter or '_'
"""

from __future__ import annotations

import re

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSON

from ssp.errors import SspError

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_MAX_IDENTIFIER_LENGTH = 63  # PostgreSQL's NAMEDATALEN - 1


class UnsafeIdentifierError(SspError, ValueError):
    """A table name, prefix or version that must not reach SQL."""


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Return ``name`` if it is a safe lower-case SQL identifier, else raise."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise UnsafeIdentifierError(
            f"{what} {name!r} is not a safe SQL identifier: use lower-case letters, digits and '_', "
            "starting with a letter or '_'"
        )
    if len(name) > _MAX_IDENTIFIER_LENGTH:
        raise UnsafeIdentifierError(f"{what} {name!r} is longer than {_MAX_IDENTIFIER_LENGTH} characters")
    return name


def validate_version(version: int | str) -> int:
    """Versions are non-negative integers; '3' is accepted, '3; drop' is not."""
    if isinstance(version, bool):
        raise UnsafeIdentifierError(f"version {version!r} is not a non-negative integer")
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if not isinstance(version, int) or version < 0:
        raise UnsafeIdentifierError(f"version {version!r} is not a non-negative integer")
    return version


def versioned_table_name(prefix: str, version: int | str) -> str:
    """The one way to name a versioned table: ``<prefix>_<version>``, validated."""
    validate_identifier(prefix, "table prefix")
    return validate_identifier(f"{prefix}_{validate_version(version)}", "table name")


def _table(name: str, metadata: MetaData | None, *parts) -> Table:
    """A table named ``name`` (validated) in ``metadata`` (a new one when None): the one way tables are made here."""
    return Table(validate_identifier(name, "table name"), metadata or MetaData(), *parts)


def _tweet_columns() -> list[Column]:
    """The canonical tweet's fields, keyed by tweet id: the first columns of every tweet table."""
    return [
        Column("id", BigInteger, primary_key=True, autoincrement=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("text", Text, nullable=False),
        Column("lang", Text),
        Column("user_screen_name", Text),
        Column("urls", ARRAY(Text), nullable=False),
        Column("hashtags", ARRAY(Text), nullable=False),
    ]


# The canonical tweet's fields as columns, in table order: what every tweet table starts with.
TWEET_COLUMNS = tuple(column.name for column in _tweet_columns())


def _kafka_position_columns() -> list[Column]:
    """Where a stream's row sat in Kafka: topic, partition, offset."""
    return [
        Column("kafka_topic", Text, nullable=False),
        Column("kafka_partition", Integer, nullable=False),
        Column("kafka_offset", BigInteger, nullable=False),
    ]


KAFKA_POSITION_COLUMNS = tuple(column.name for column in _kafka_position_columns())


def _post_ref_columns() -> list[Column]:
    """Where a post lives and what a repost of it names: its platform (``x`` or ``bluesky``), a Bluesky post's AT
    URI and CID, an X retweet's original. Added after the tables' first release, so nullable or defaulted:
    :func:`post_ref_upgrade_sql` adds them to a table made before."""
    return [
        Column("platform", Text, nullable=False, server_default="x"),
        Column("post_uri", Text),
        Column("post_cid", Text),
        Column("retweet_of", BigInteger),
    ]


POST_REF_COLUMNS = tuple(column.name for column in _post_ref_columns())


def post_ref_upgrade_sql(name: str) -> str:
    """The statement that gives a tweet table made before the post reference columns those columns; it changes
    nothing on a table that has them.

    >>> post_ref_upgrade_sql("raw_tweet_dataset_0")  # doctest: +NORMALIZE_WHITESPACE
    "ALTER TABLE raw_tweet_dataset_0 ADD COLUMN IF NOT EXISTS platform TEXT NOT NULL DEFAULT 'x', ADD COLUMN IF NOT
    EXISTS post_uri TEXT, ADD COLUMN IF NOT EXISTS post_cid TEXT, ADD COLUMN IF NOT EXISTS retweet_of BIGINT"
    """
    validate_identifier(name, "table name")
    return (f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS platform TEXT NOT NULL DEFAULT 'x', "
            "ADD COLUMN IF NOT EXISTS post_uri TEXT, ADD COLUMN IF NOT EXISTS post_cid TEXT, "
            "ADD COLUMN IF NOT EXISTS retweet_of BIGINT")


def post_ref_arrow_columns(posts) -> dict:
    """The :data:`POST_REF_COLUMNS` of ``posts`` (canonical :class:`ssp.tweets.Tweet` records), one Arrow array each."""
    import pyarrow as pa

    return {
        "platform": pa.array([post.platform for post in posts], pa.string()),
        "post_uri": pa.array([post.uri for post in posts], pa.string()),
        "post_cid": pa.array([post.cid for post in posts], pa.string()),
        "retweet_of": pa.array([post.retweet_of for post in posts], pa.int64()),
    }


def _score_columns() -> list[Column]:
    """P(AI) and the model version that gave it."""
    return [
        Column("ai_prob", Float(precision=24), nullable=False),
        Column("model_version", BigInteger, nullable=False),
    ]


def _classified_at_column() -> Column:
    # clock_timestamp, not now(): the moment each row was written, not its transaction's start
    return Column("classified_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp())


def raw_tweets_table(name: str, metadata: MetaData | None = None) -> Table:
    """Canonical tweets as ingested, one row per tweet id, with their Kafka position."""
    return _table(
        name, metadata,
        *_tweet_columns(),
        Column("is_retweet", Boolean, nullable=False),
        # json, not jsonb: keeps the payload's exact text and COPYs twice as fast; ->> still works
        Column("raw", JSON, nullable=False),
        *_kafka_position_columns(),
        # clock_timestamp, not now(): the moment each row was written, not its transaction's start
        Column("ingested_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
        *_post_ref_columns(),
    )


RAW_TWEET_COLUMNS = (*TWEET_COLUMNS, "is_retweet", "raw", *KAFKA_POSITION_COLUMNS)


# A dead letter is keyed by where it sat in Kafka, per table it was meant for.
DEAD_LETTER_KEY = ("target_table", *KAFKA_POSITION_COLUMNS)


def dead_letter_table(name: str, metadata: MetaData | None = None) -> Table:
    """Stream records that could not become tweets, kept with the reason and their exact bytes."""
    return _table(
        name, metadata,
        Column("dead_id", BigInteger, primary_key=True, autoincrement=True),
        Column("target_table", Text, nullable=False),
        *_kafka_position_columns(),
        Column("kafka_key", LargeBinary),
        Column("raw_value", LargeBinary),
        Column("reason", Text, nullable=False),
        Column("error", Text, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # a replayed micro-batch must not record the same bad message twice
        UniqueConstraint(*DEAD_LETTER_KEY, name=f"{name}_position_key"),
    )


DEAD_LETTER_COLUMNS = (*DEAD_LETTER_KEY, "kafka_key", "raw_value", "reason", "error")


# The splits ``ssp dataset prepare`` writes, in the order they are drawn.
DATASET_SPLITS = ("test", "dev", "snorkel_train", "train")
DEDUP_TABLE_PREFIX = "deduplicated_raw_tweet_dataset"
DEDUP_KEY = "dedup"  # the deduplicated table's key in dataset_tables(), beside the split names


def split_table_name(split: str, version: int | str) -> str:
    """``test_dataset_<v>``, ``dev_dataset_<v>``, ``snorkel_train_dataset_<v>``, ``train_dataset_<v>``."""
    if split not in DATASET_SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(DATASET_SPLITS)}")
    return versioned_table_name(f"{split}_dataset", version)


def split_tables(version: int | str, splits: tuple[str, ...] = DATASET_SPLITS) -> dict[str, str]:
    """The split tables of dataset ``version``, ``{split: table}`` in the order of ``splits``.

    >>> split_tables(3, ("train", "dev"))
    {'train': 'train_dataset_3', 'dev': 'dev_dataset_3'}
    """
    return {split: split_table_name(split, version) for split in splits}


def dataset_tables(version: int | str) -> dict[str, str]:
    """The tables ``ssp dataset prepare`` writes for ``version``: ``dedup``, the deduplicated table, then
    one per split.

    >>> dataset_tables(3)
    {'dedup': 'deduplicated_raw_tweet_dataset_3', 'test': 'test_dataset_3', 'dev': 'dev_dataset_3', \
'snorkel_train': 'snorkel_train_dataset_3', 'train': 'train_dataset_3'}
    """
    return {DEDUP_KEY: versioned_table_name(DEDUP_TABLE_PREFIX, version), **split_tables(version)}


def dataset_table(name: str, metadata: MetaData | None = None) -> Table:
    """A deduplicated tweet table or one split of it, with its weak and gold labels.

    ``slabel``/``slabel_prob`` are Snorkel's (written by ``ssp label``; -1 where no labelling
    function voted); ``label``/``labelled_by``/``labelled_at`` are the gold label the tagger
    writes (1 AI, 0 not AI, NULL not labelled yet). ``dup_count`` is how many raw tweets the row
    stands for after deduplication.
    """
    return _table(
        name, metadata,
        *_tweet_columns(),
        Column("is_retweet", Boolean, nullable=False),
        Column("norm_text", Text, nullable=False),
        Column("dup_count", Integer, nullable=False, server_default="1"),
        Column("slabel", SmallInteger),
        Column("slabel_prob", Float(precision=24)),
        Column("label", SmallInteger),
        Column("labelled_by", Text),
        Column("labelled_at", DateTime(timezone=True)),
    )


DATASET_COLUMNS = (
    *TWEET_COLUMNS,
    "is_retweet",
    "norm_text",
    "dup_count",
    "slabel",
    "slabel_prob",
    "label",
    "labelled_by",
    "labelled_at",
)


# ---------------------------------------------------------------- live classification (ssp classify)
CLASSIFIED_TABLE_PREFIX = "classified_tweets"
AI_TWEETS_TABLE_PREFIX = "ai_tweets"
AI_TWEET_URLS_TABLE_PREFIX = "ai_tweet_urls"


def classified_tweets_table(name: str, metadata: MetaData | None = None) -> Table:
    """Every tweet the live classifier saw, with P(AI) and the model version that gave it."""
    return _table(
        name, metadata,
        *_tweet_columns(),
        *_score_columns(),
        Column("is_ai", Boolean, nullable=False),
        *_kafka_position_columns(),
        # the Kafka record's timestamp: when the producer sent the tweet
        Column("produced_at", DateTime(timezone=True)),
        _classified_at_column(),
        *_post_ref_columns(),
        Index(f"{name}_classified_at_idx", "classified_at"),
        Index(f"{name}_created_at_idx", "created_at"),
    )


def ai_tweets_table(name: str, metadata: MetaData | None = None) -> Table:
    """The tweets classified as AI (``ai_prob`` at or over the threshold), for the dashboard."""
    return _table(
        name, metadata,
        *_tweet_columns(),
        *_score_columns(),
        Column("produced_at", DateTime(timezone=True)),
        _classified_at_column(),
        *_post_ref_columns(),
        Index(f"{name}_created_at_idx", "created_at"),
        Index(f"{name}_classified_at_idx", "classified_at"),
        Index(f"{name}_ai_prob_idx", "ai_prob"),
    )


def ai_tweet_urls_table(name: str, metadata: MetaData | None = None) -> Table:
    """The links of the AI tweets: one row per (tweet, expanded URL), with the URL's domain."""
    return _table(
        name, metadata,
        Column("tweet_id", BigInteger, nullable=False),
        Column("url", Text, nullable=False),
        Column("domain", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("tweet_id", "url", name=f"{name}_pkey"),
        Index(f"{name}_domain_idx", "domain"),
    )


# ---------------------------------------------------------------- the tagger and active learning
LABEL_HISTORY_TABLE = "label_history"
MODEL_SCORES_TABLE = "model_scores"


def label_history_table(name: str = LABEL_HISTORY_TABLE, metadata: MetaData | None = None) -> Table:
    """Every decision an annotator made in the tagger, kept when a label changes or is undone.

    ``label`` is 1 (AI), 0 (not AI) or NULL for an undo/skip recorded as ``action``.
    """
    return _table(
        name, metadata,
        Column("history_id", BigInteger, primary_key=True, autoincrement=True),
        Column("table_name", Text, nullable=False),
        Column("tweet_id", BigInteger, nullable=False),
        Column("label", SmallInteger),
        Column("action", Text, nullable=False),  # label | skip | undo | import
        Column("annotator", Text, nullable=False),
        Column("labelled_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
        Index(f"{name}_table_tweet_idx", "table_name", "tweet_id"),
        Index(f"{name}_annotator_idx", "table_name", "annotator"),
    )


def model_scores_table(name: str = MODEL_SCORES_TABLE, metadata: MetaData | None = None) -> Table:
    """P(AI) from a served model version for the rows of a dataset table: what the active-learning
    queue orders by."""
    return _table(
        name, metadata,
        Column("table_name", Text, nullable=False),
        Column("tweet_id", BigInteger, nullable=False),
        Column("model_version", BigInteger, nullable=False),
        Column("ai_prob", Float(precision=24), nullable=False),
        Column("scored_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
        PrimaryKeyConstraint("table_name", "tweet_id", name=f"{name}_pkey"),
    )
