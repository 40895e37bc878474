"""PostgreSQL access: engines, table creation and fast idempotent bulk writes.

Bulk writes go through ``COPY`` into a temporary table and then one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into the target, in one transaction. Replaying
the same rows (a restarted stream re-running its last micro-batch) therefore changes nothing,
which is what gives the streams their exactly-once effect.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from sqlalchemy import MetaData, Table, create_engine, inspect
from sqlalchemy.engine import Engine

from ssp.storage.tables import validate_identifier


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


def pg_array_literal(items: Iterable[str]) -> str:
    """A PostgreSQL text[] literal, every element quoted so commas and braces stay data."""
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return "{" + ",".join(quoted) + "}"


def pg_bytea_literal(data: bytes | None) -> str | None:
    return None if data is None else "\\x" + data.hex()


def _csv_field(value) -> str:
    # COPY's CSV format reads an unquoted empty field as NULL and a quoted one as ''
    if value is None:
        return ""
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def copy_insert_ignore_conflicts(
    conn,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence],
    conflict_columns: Sequence[str],
    order_by: Sequence[str] = (),
) -> int:
    """COPY ``rows`` into ``table`` through a temporary table, skipping rows whose key exists.

    ``rows`` hold values already in PostgreSQL's text form (see the ``pg_*_literal`` helpers);
    ``None`` is NULL. Returns the number of rows inserted. The caller commits. Rows are
    inserted in ``order_by`` order so that concurrent writers take key locks in the same order
    and cannot deadlock.
    """
    validate_identifier(table, "table name")
    for column in (*columns, *conflict_columns, *order_by):
        validate_identifier(column, "column name")
    buffer = io.StringIO()
    count = 0
    for row in rows:
        buffer.write(",".join(map(_csv_field, row)))
        buffer.write("\n")
        count += 1
    if count == 0:
        return 0
    buffer.seek(0)
    column_list = ", ".join(columns)
    stage = f"ssp_stage_{table}"[:63]
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cur.copy_expert(f"COPY {stage} ({column_list}) FROM STDIN WITH (FORMAT csv)", buffer)
        order = f" ORDER BY {', '.join(order_by)}" if order_by else ""
        cur.execute(
            f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {stage}{order} "
            f"ON CONFLICT ({', '.join(conflict_columns)}) DO NOTHING"
        )
        return cur.rowcount
