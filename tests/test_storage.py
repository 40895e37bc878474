"""Table names, text-form values and the idempotent COPY writer (real PostgreSQL for the latter)."""

from __future__ import annotations

import pytest

from ssp.kafka.records import dead_letter_row, parse_record
from ssp.storage.postgres import copy_insert_ignore_conflicts, ensure_tables, make_engine, pg_array_literal
from ssp.storage.tables import (
    UnsafeIdentifierError,
    raw_tweets_table,
    validate_version,
    versioned_table_name,
)


@pytest.mark.parametrize("prefix, version, expected", [
    ("raw_tweet_dataset", 0, "raw_tweet_dataset_0"),
    ("_x", "12", "_x_12"),
])
def test_versioned_table_name(prefix, version, expected):
    assert versioned_table_name(prefix, version) == expected


@pytest.mark.parametrize("prefix, version", [
    ("Raw", 0), ("raw-data", 0), ("1raw", 0), ("raw; drop table x", 0), ("raw", -1), ("raw", "1 or 1=1"),
    ("raw", True), ("r" * 70, 0), ("", 0),
])
def test_unsafe_names_are_refused(prefix, version):
    with pytest.raises(UnsafeIdentifierError) as err:
        versioned_table_name(prefix, version)
    assert repr(prefix) in str(err.value) or repr(version) in str(err.value) or "longer" in str(err.value)


def test_validate_version_accepts_digit_strings():
    assert validate_version("7") == 7


def test_parse_record_returns_a_tweet_or_a_reason():
    value = b'{"id": 42, "created_at": "Sun Apr 05 10:46:44 +0000 2020", "text": "a &amp; b", "lang": "en"}'
    tweet = parse_record(value, 10_000)
    assert (tweet.id, tweet.text, tweet.urls) == (42, "a & b", ())
    assert parse_record(b"\xff\xfe", 10_000)[0] == "not_json"
    assert parse_record(None, 10_000)[0] == "empty"
    reason, error = parse_record(b'{"id": 1, "created_at": "Sun Apr 05 10:46:44 +0000 2020", "text": "a\\u0000b"}',
                                 10_000)
    assert reason == "nul_character" and "NUL" in error
    assert parse_record(value, 20)[0] == "oversized"


def test_dead_letter_row_keeps_bytes_and_position():
    row = dead_letter_row("raw_0", "topic", 2, 17, b"k", b"\xff", "not_json", "bad")
    assert row == ("raw_0", "topic", 2, 17, "\\x6b", "\\xff", "not_json", "topic/2@17: bad")


@pytest.mark.integration
def test_copy_insert_is_idempotent_and_keeps_awkward_text(stack, db, unique_name):
    table = unique_name("raw")
    engine = make_engine(stack.database_url)
    ensure_tables(engine, raw_tweets_table(f"{table}_0"))
    engine.dispose()
    awkward = ['quote " and \\ backslash', "comma, {brace}", "", "NULL", "\\N", "new\nline", "emoji 🤖"]
    rows = [
        (i, "2020-04-05T10:46:44+00:00", text, None, "u", pg_array_literal([text, "x"]), pg_array_literal([]), False,
         f'{{"id": {i}}}', "topic", 0, i)
        for i, text in enumerate(awkward)
    ]
    columns = ("id", "created_at", "text", "lang", "user_screen_name", "urls", "hashtags", "is_retweet", "raw",
               "kafka_topic", "kafka_partition", "kafka_offset")
    db.autocommit = False
    assert copy_insert_ignore_conflicts(db, f"{table}_0", columns, rows, ("id",), ("id",)) == len(awkward)
    db.commit()
    assert copy_insert_ignore_conflicts(db, f"{table}_0", columns, rows, ("id",), ("id",)) == 0
    db.commit()
    with db.cursor() as cur:
        cur.execute(f"SELECT text, urls, lang FROM {table}_0 ORDER BY id")
        got = cur.fetchall()
    assert [r[0] for r in got] == awkward
    assert [r[1] for r in got] == [[t, "x"] for t in awkward]
    assert all(r[2] is None for r in got)
