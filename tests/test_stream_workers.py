"""What the stream jobs' Python workers share: a PostgreSQL connection kept across tasks, on the real server."""

from __future__ import annotations

import psycopg2
import pytest

from ssp.storage.postgres import libpq_url
from ssp.streaming.runner import TaskTransaction, kept_connection, kept_connection_write

pytestmark = pytest.mark.integration


@pytest.fixture
def table(stack, unique_name):
    name = unique_name("kept")
    with psycopg2.connect(libpq_url(stack.database_url)) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} (x int)")
    return name


def _rows(url: str, table: str) -> list[int]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT x FROM {table} ORDER BY x")
        return [row[0] for row in cur.fetchall()]


def test_a_kept_connection_is_reused_and_replaced_when_the_server_closed_it(stack, table):
    url, kept = libpq_url(stack.database_url), {}
    first = kept_connection(url, kept)
    first.commit()
    assert kept_connection(url, kept) is first
    first.commit()
    with psycopg2.connect(url) as admin, admin.cursor() as cur:  # as a server restart would
        cur.execute("SELECT pg_terminate_backend(%s)", (first.get_backend_pid(),))
    second = kept_connection(url, kept)
    assert second is not first and kept[url] is second
    kept_connection_write(url, lambda conn: conn.cursor().execute(f"INSERT INTO {table} VALUES (1)"), kept)
    assert _rows(url, table) == [1]
    second.close()


def test_a_task_transaction_commits_at_the_end_and_drops_its_connection_on_failure(stack, table):
    url, kept = libpq_url(stack.database_url), {}
    with TaskTransaction(url, kept) as transaction:
        assert not transaction.used
        transaction.conn.cursor().execute(f"INSERT INTO {table} VALUES (2)")
        assert _rows(url, table) == []  # not before the block ends
    assert _rows(url, table) == [2]

    with TaskTransaction(url, kept) as transaction:  # rolled back, the connection kept
        transaction.conn.cursor().execute(f"INSERT INTO {table} VALUES (3)")
        transaction.rollback()
        transaction.conn.cursor().execute(f"INSERT INTO {table} VALUES (4)")
    assert _rows(url, table) == [2, 4] and url in kept

    with pytest.raises(RuntimeError, match="task failed"), TaskTransaction(url, kept) as transaction:
        transaction.conn.cursor().execute(f"INSERT INTO {table} VALUES (5)")
        raise RuntimeError("task failed")
    assert _rows(url, table) == [2, 4] and url not in kept
