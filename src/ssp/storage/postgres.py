"""PostgreSQL access: engines, table creation and fast idempotent bulk writes.

Bulk writes go through ``COPY`` into a temporary table and then one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into the target, in one transaction. Replaying
the same rows (a restarted stream re-running its last micro-batch) therefore changes nothing,
which is what gives the streams their exactly-once effect.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import MetaData, Table, create_engine, inspect
from sqlalchemy.engine import Engine

from ssp.storage.tables import TWEET_COLUMNS, validate_identifier


def sqlalchemy_url(url: str) -> str:
    """Database URLs are given as ``postgresql://``; SQLAlchemy is told to use psycopg2."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    if url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url[len("postgres://"):]
    return url


def libpq_url(url: str) -> str:
    """The reverse of :func:`sqlalchemy_url`, for psycopg2.connect."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def make_engine(url: str) -> Engine:
    return create_engine(sqlalchemy_url(url), pool_pre_ping=True, future=True)


def ensure_tables(engine: Engine, *tables: Table) -> None:
    """Create ``tables`` (and their indexes) if they do not exist yet."""
    metadata = MetaData()
    for table in tables:
        table.to_metadata(metadata)
    metadata.create_all(engine, checkfirst=True)


def table_exists(engine: Engine, name: str) -> bool:
    return inspect(engine).has_table(validate_identifier(name, "table name"))


def advisory_lock_key(scope: str, name: object) -> int:
    """The signed 64-bit key of ``pg_advisory_xact_lock`` for ``name`` within ``scope`` (a module's name), so
    that two stages' locks do not meet by chance.

    >>> advisory_lock_key("ssp.dataset.prepare", 3) == advisory_lock_key("ssp.dataset.prepare", "3")
    True
    >>> -2**63 <= advisory_lock_key("ssp.active.queue", "model_scores") < 2**63
    True
    """
    import hashlib

    digest = hashlib.sha256(f"{scope}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def pg_array_literal(items: Iterable[str]) -> str:
    """A PostgreSQL text[] literal, every element quoted so commas and braces stay data."""
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return "{" + ",".join(quoted) + "}"


def pg_bytea_literal(data: bytes | None) -> str | None:
    return None if data is None else "\\x" + data.hex()


def tweet_row(tweet) -> tuple:
    """A canonical tweet's values for :data:`ssp.storage.tables.TWEET_COLUMNS`, arrays as ``text[]`` literals:
    the one tweet-to-row rule of every table that holds tweets."""
    return (tweet.id, tweet.created_at, tweet.text, tweet.lang, tweet.user_screen_name,
            pg_array_literal(tweet.urls), pg_array_literal(tweet.hashtags))


def tweet_arrow_columns(tweets: Sequence) -> dict:
    """:func:`tweet_row` for many tweets, as one Arrow array per column of ``TWEET_COLUMNS``."""
    import pyarrow as pa

    types = (pa.int64(), pa.timestamp("us", tz="UTC"), pa.string(), pa.string(), pa.string(), pa.string(),
             pa.string())
    values = zip(*map(tweet_row, tweets), strict=True) if tweets else ([] for _ in TWEET_COLUMNS)
    return {name: pa.array(list(column), kind) for name, column, kind in zip(TWEET_COLUMNS, values, types, strict=True)}


def _csv_field(value) -> str:
    # COPY's CSV format reads an unquoted empty field as NULL and a quoted one as ''
    if value is None:
        return ""
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def rows_to_csv(rows: Iterable[Sequence]) -> tuple[io.BytesIO, int]:
    """Rows of text-form values as COPY CSV, and how many rows there are."""
    buffer = io.StringIO()
    count = 0
    for row in rows:
        buffer.write(",".join(map(_csv_field, row)))
        buffer.write("\n")
        count += 1
    return io.BytesIO(buffer.getvalue().encode("utf-8")), count


def copy_insert_ignore_conflicts(
    conn,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence],
    conflict_columns: Sequence[str],
    order_by: Sequence[str] = (),
) -> int:
    """:func:`copy_csv_ignore_conflicts` for rows of text-form values (``pg_*_literal`` helpers)."""
    csv_file, count = rows_to_csv(rows)
    if count == 0:
        return 0
    return copy_csv_ignore_conflicts(conn, table, columns, csv_file, count, conflict_columns, order_by)


def copy_csv_ignore_conflicts(
    conn,
    table: str,
    columns: Sequence[str],
    csv_file: io.BytesIO,
    count: int,
    conflict_columns: Sequence[str],
    order_by: Sequence[str] = (),
) -> int:
    """COPY ``count`` CSV rows into ``table``, skipping rows whose ``conflict_columns`` key exists.

    In ``csv_file`` an unquoted empty field is NULL; rows must not repeat a key among
    themselves. Returns the number of rows inserted; the caller commits.

    The common case, no key present yet, is a plain ``COPY`` into the table. When that meets
    an existing key (a replayed micro-batch, a tweet sent twice) or a concurrent writer, it is
    rolled back to a savepoint and the rows go through a temporary table and
    ``INSERT ... ON CONFLICT DO NOTHING`` in ``order_by`` order, so that concurrent writers
    take key locks in the same order and cannot deadlock.
    """
    import psycopg2.errors

    validate_identifier(table, "table name")
    for column in (*columns, *conflict_columns, *order_by):
        validate_identifier(column, "column name")
    if count == 0:
        return 0
    column_list = ", ".join(columns)
    with conn.cursor() as cur:
        cur.execute("SAVEPOINT ssp_direct_copy")
        csv_file.seek(0)
        try:
            cur.copy_expert(f"COPY {table} ({column_list}) FROM STDIN WITH (FORMAT csv)", csv_file)
        except (psycopg2.errors.UniqueViolation, psycopg2.errors.DeadlockDetected):
            cur.execute("ROLLBACK TO SAVEPOINT ssp_direct_copy")
        else:
            cur.execute("RELEASE SAVEPOINT ssp_direct_copy")
            return count
        stage = f"ssp_stage_{table}"[:63]
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        csv_file.seek(0)
        cur.copy_expert(f"COPY {stage} ({column_list}) FROM STDIN WITH (FORMAT csv)", csv_file)
        order = f" ORDER BY {', '.join(order_by)}" if order_by else ""
        cur.execute(
            f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {stage}{order} "
            f"ON CONFLICT ({', '.join(conflict_columns)}) DO NOTHING"
        )
        return cur.rowcount


def insert_raw_tweets(database_url: str, table: str, payloads: Iterable[dict]) -> int:
    """Parse ``payloads`` and write them to the raw tweet table ``table`` (created if missing), as the
    ingest stream would, but without Kafka: for loading recorded tweets, tests and benchmarks.

    Returns the number of rows inserted; tweets already in the table are left alone.
    """
    import json

    import psycopg2

    from ssp.storage.tables import RAW_TWEET_COLUMNS, raw_tweets_table
    from ssp.tweets import parse_tweet

    engine = make_engine(database_url)
    try:
        ensure_tables(engine, raw_tweets_table(table))
    finally:
        engine.dispose()
    rows, seen = [], set()
    for offset, payload in enumerate(payloads):
        tweet = parse_tweet(payload)
        if tweet.id in seen:
            continue
        seen.add(tweet.id)
        rows.append((*tweet_row(tweet), tweet.is_retweet, json.dumps(payload), "direct_load", 0, offset))
    conn = psycopg2.connect(libpq_url(database_url))
    try:
        inserted = copy_insert_ignore_conflicts(conn, table, RAW_TWEET_COLUMNS, rows, ("id",), ("id",))
        conn.commit()
    finally:
        conn.close()
    return inserted
