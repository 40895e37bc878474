"""The pure parts pulled out of the stream jobs (issue 10): the backoff policy, a micro-batch's task
results, the version record, Kafka records to tweets and dead letters, and the one error rule. No services."""

from __future__ import annotations

import json
import os
import signal

import psycopg2
import pyarrow as pa
import pytest
from sqlalchemy.exc import OperationalError

from ssp.errors import SspError, database_error, database_reason
from ssp.kafka.records import split_records
from ssp.signals import stop_on_sigterm
from ssp.storage.postgres import tweet_arrow_columns, tweet_row
from ssp.storage.tables import TWEET_COLUMNS
from ssp.streaming.classify import Backoff, TaskResults, add_version
from ssp.tweets import TweetParseError, parse_tweet

TWEET = {"id": 7, "created_at": "Sun Apr 05 10:46:44 +0000 2020", "text": "Deep learning #AI https://x.org/a",
         "entities": {"urls": [{"expanded_url": "https://x.org/a"}], "hashtags": [{"text": "AI"}]}}


def test_backoff_doubles_up_to_its_cap_and_gives_up_only_with_a_limit():
    policy = Backoff(first_seconds=0.5, max_seconds=5.0, max_wait_seconds=12.0)
    assert [policy.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert not policy.gives_up(11.99) and policy.gives_up(12.0)
    assert not Backoff().gives_up(1e12)


def test_task_results_add_up_the_tasks_and_keep_each_failure():
    rows = [{"seen": 4, "classified": 3, "ai": 1, "dead": 1, "failed": 0, "error": None},
            {"seen": 0, "classified": 0, "ai": 0, "dead": 0, "failed": 1, "error": "model server down"},
            {"seen": 2, "classified": 2, "ai": 2, "dead": 0, "failed": 0, "error": None}]
    results = TaskResults.from_rows(rows)
    assert (results.tasks, results.seen) == (3, 6)
    assert results.written == {"classified": 5, "ai": 3, "dead": 1}
    assert results.errors == ("model server down",)
    assert TaskResults.from_rows([]).errors == ()


def test_a_version_is_recorded_once_and_only_when_it_classified_something():
    versions: list[int] = []
    assert add_version(versions, 0, 1) is False and versions == []
    assert add_version(versions, 3, 1) is False and versions == [1]
    assert add_version(versions, 3, 1) is False and versions == [1]
    assert add_version(versions, 1, 2) is True and versions == [1, 2]


def _records(values, timestamps=True):
    columns = {
        "key": pa.array([b"k"] * len(values), pa.binary()),
        "value": pa.array(values, pa.binary()),
        "topic": pa.array(["t"] * len(values), pa.string()),
        "partition": pa.array([1] * len(values), pa.int32()),
        "offset": pa.array(range(len(values)), pa.int64()),
    }
    if timestamps:
        columns["timestamp"] = pa.array([None] * len(values), pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


@pytest.mark.parametrize("timestamps", [True, False])
def test_split_records_keeps_the_first_copy_and_dead_letters_the_rest(timestamps):
    good = json.dumps(TWEET).encode()
    tweets, dead = split_records(_records([good, b"not json", good, None], timestamps), "raw_0", 10_000)
    assert [(t.tweet.id, t.offset, t.index) for t in tweets] == [(7, 0, 0)]
    assert [(row[0], row[3], row[6]) for row in dead] == [("raw_0", 1, "not_json"), ("raw_0", 3, "empty")]
    seen = {7}
    assert split_records(_records([good]), "raw_0", 10_000, seen)[0] == []


def test_one_tweet_to_row_rule_for_python_rows_and_arrow_columns():
    tweet = parse_tweet(TWEET)
    row = tweet_row(tweet)
    assert len(row) == len(TWEET_COLUMNS) and row[5] == '{"https://x.org/a"}' and row[6] == '{"AI"}'
    columns = tweet_arrow_columns([tweet, tweet])
    assert list(columns) == list(TWEET_COLUMNS)
    assert [columns[name][0].as_py() for name in TWEET_COLUMNS] == list(row)
    assert all(len(column) == 0 for column in tweet_arrow_columns([]).values())


def test_domain_errors_are_ssp_errors_and_database_errors_read_clearly():
    assert isinstance(TweetParseError("no_text", "x"), SspError | ValueError)
    lost = OperationalError("SELECT 1", {}, psycopg2.OperationalError("connection refused\n\tIs the server up?"))
    message = str(database_error(lost, "starting the tagger"))
    assert message.startswith("cannot reach the database (connection refused) while starting the tagger")
    assert "ssp infra up" in message
    assert str(database_error(psycopg2.errors.UniqueViolation("duplicate key\nDETAIL: id=1"), "writing")) == (
        "database error while writing: duplicate key\nDETAIL: id=1")
    assert database_reason(lost) == "connection refused"


def test_sigterm_runs_the_handler_inside_and_the_old_one_after():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), stop_on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before
