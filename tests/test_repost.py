"""``ssp repost`` against local servers speaking X API v2 retweets and Bluesky XRPC, with the ledger in PostgreSQL:
each approved post reposted exactly once, through 429s, a 401, a timeout and a crash between call and outcome."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from helpers import wait_for
from repost_fakes import APP_PASSWORD, DID, HANDLE, X_OAUTH1, X_USER_ID, X_USER_TOKEN, FakeBluesky, FakeX
from ssp.repost.candidates import fetch_candidates
from ssp.repost.clients import BlueskyClient, CredentialsError, XClient
from ssp.repost.ledger import Ledger
from ssp.repost.run import RepostSettings, run_repost
from ssp.storage.postgres import ensure_tables, make_engine
from ssp.storage.tables import ai_tweets_table

pytestmark = pytest.mark.integration

BSKY_ENV = {"SSP_BLUESKY_HANDLE": HANDLE, "SSP_BLUESKY_APP_PASSWORD": APP_PASSWORD}
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _bsky(number: int, prob: float, urls: list[str], cid: str | None = "bafypost") -> dict:
    uri = f"at://did:plc:author{number}/app.bsky.feed.post/3kpost{number:05d}"
    return {"id": 5_000_000 + number, "platform": "bluesky", "post_uri": uri, "post_cid": cid and f"{cid}{number}",
            "retweet_of": None, "ai_prob": prob, "urls": urls, "number": number}


def _x(number: int, prob: float, urls: list[str], retweet_of: int | None = None) -> dict:
    return {"id": 1_800_000_000_000_000_000 + number, "platform": "x", "post_uri": None, "post_cid": None,
            "retweet_of": retweet_of, "ai_prob": prob, "urls": urls, "number": number}


@pytest.fixture
def tables(stack, unique_name):
    """An ai_tweets_<v> table of a version of its own and a ledger of its own; yields (engine, version, ledger)."""
    engine = make_engine(stack.database_url)
    version = random.randrange(10**6, 10**9)
    ensure_tables(engine, ai_tweets_table(f"ai_tweets_{version}"))
    yield engine, version, unique_name("reposts")
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS ai_tweets_{version}"))
    engine.dispose()


def _insert(engine, version: int, rows: list[dict]) -> None:
    with engine.begin() as conn:
        for row in rows:
            conn.execute(text(
                f"INSERT INTO ai_tweets_{version} (id, created_at, text, lang, user_screen_name, urls, hashtags, "
                "ai_prob, model_version, platform, post_uri, post_cid, retweet_of) VALUES (:id, :created_at, :text, "
                "'en', 'someone', :urls, '{}', :ai_prob, 3, :platform, :post_uri, :post_cid, :retweet_of)"),
                row | {"created_at": NOW - timedelta(minutes=row["number"]), "text": f"LLM paper {row['number']}"})


def _settings(version: int, ledger: str, platform: str, **overrides) -> RepostSettings:
    values = {"platform": platform, "ai_table": f"ai_tweets_{version}", "ledger_table": ledger, "mode": "auto",
              "min_prob": lambda v: 0.9, "blocked_domains": ("bit.ly",), "max_wait_seconds": 30.0} | overrides
    return RepostSettings(**values)


def _statuses(engine, ledger: str) -> dict[str, tuple[str, bool, str | None]]:
    with engine.begin() as conn:
        rows = conn.execute(text(f"SELECT target, status, dry_run, reason FROM {ledger}")).all()
    return {(row.target, row.dry_run): (row.status, row.reason) for row in rows}


def test_dry_run_then_auto_reposts_each_once_with_the_rules(tables, monkeypatch) -> None:
    engine, version, ledger = tables
    posts = [_bsky(1, 0.99, ["https://arxiv.org/abs/1"]), _bsky(2, 0.95, ["https://arxiv.org/abs/1"]),
             _bsky(3, 0.97, ["https://bit.ly/xyz"]), _bsky(4, 0.5, ["https://a.org/"]), _bsky(5, 0.99, []),
             _bsky(6, 0.93, ["https://example.org/post"])]
    _insert(engine, version, posts)
    said: list[str] = []
    dry = run_repost(engine, _settings(version, ledger, "bluesky"), echo=said.append)
    assert dry.line() == ("dry run on bluesky (auto mode): 2 posts would be reposted, 2 skipped (1 blocked_domain, "
                          "1 same_link_recently); nothing was posted")
    assert [line.split(" (")[0] for line in said] == [f"would repost {posts[0]['post_uri']}",
                                                      f"would repost {posts[5]['post_uri']}"]
    assert {key: value[0] for key, value in _statuses(engine, ledger).items()} == {
        (posts[0]["post_uri"], True): "dry_run", (posts[5]["post_uri"], True): "dry_run"}

    monkeypatch.setenv("SSP_BLUESKY_HANDLE", HANDLE)
    monkeypatch.setenv("SSP_BLUESKY_APP_PASSWORD", APP_PASSWORD)
    with FakeBluesky() as server:
        client = BlueskyClient(server.url)
        result = run_repost(engine, _settings(version, ledger, "bluesky", dry_run=False), client, echo=said.append)
        again = run_repost(engine, _settings(version, ledger, "bluesky", dry_run=False), client, echo=said.append)
    assert (result.reposted, result.failed, result.skipped) == (2, 0, {"blocked_domain": 1, "same_link_recently": 1})
    assert (again.reposted, again.skipped) == (0, {})
    # exactly once each, naming the post's AT URI and CID
    assert sorted(server.created) == sorted([posts[0]["post_uri"], posts[5]["post_uri"]])
    assert {r["subject"]["cid"] for r in server.records.values()} == {"bafypost1", "bafypost6"}
    statuses = _statuses(engine, ledger)
    assert statuses[(posts[0]["post_uri"], False)][0] == "reposted"
    assert statuses[(posts[1]["post_uri"], False)] == ("skipped", "same_link_recently")
    assert statuses[(posts[2]["post_uri"], False)] == ("skipped", "blocked_domain")
    assert (posts[3]["post_uri"], False) not in statuses  # under the threshold: no candidate, no decision
    with engine.begin() as conn:
        row = conn.execute(text(f"SELECT repost_ref, answer, decided_by FROM {ledger} WHERE target = :t AND NOT dry_run"),
                           {"t": posts[0]["post_uri"]}).one()
    assert row.repost_ref.startswith(f"at://{DID}/app.bsky.feed.repost/") and row.answer.startswith("HTTP 200")
    assert row.decided_by == "rule:auto"


def test_bluesky_429_and_remaining_zero_wait_for_the_reset(tables, monkeypatch) -> None:
    engine, version, ledger = tables
    _insert(engine, version, [_bsky(n, 0.99, [f"https://example.org/{n}"]) for n in range(1, 4)])
    for name, value in BSKY_ENV.items():
        monkeypatch.setenv(name, value)
    with FakeBluesky() as server:
        server.script = [("429", 1.0)]
        server.remaining, server.reset_in = 0, 1.0  # every success leaves no call until a second later
        result = run_repost(engine, _settings(version, ledger, "bluesky", dry_run=False), BlueskyClient(server.url),
                            echo=lambda line: None)
    creates = [t for t, method, path in server.calls if path.endswith("createRecord")]
    assert result.reposted == 3 and len(server.created) == 3 and len(creates) == 4  # one 429, three reposts
    gaps = [later - earlier for earlier, later in zip(creates, creates[1:], strict=False)]
    assert all(gap >= 0.95 for gap in gaps), gaps  # each call waited for its reset
    assert result.waited_seconds > 0


def test_bluesky_401_stops_naming_the_credentials_and_keeps_the_post(tables, monkeypatch) -> None:
    engine, version, ledger = tables
    _insert(engine, version, [_bsky(1, 0.99, ["https://example.org/1"])])
    monkeypatch.setenv("SSP_BLUESKY_HANDLE", HANDLE)
    monkeypatch.setenv("SSP_BLUESKY_APP_PASSWORD", "wrong-password")
    with FakeBluesky() as server, pytest.raises(CredentialsError, match="SSP_BLUESKY_APP_PASSWORD"):
        run_repost(engine, _settings(version, ledger, "bluesky", dry_run=False), BlueskyClient(server.url),
                   echo=lambda line: None)
    assert server.created == []
    assert [value[0] for value in _statuses(engine, ledger).values()] == ["approved"]  # retried by the next run
    monkeypatch.delenv("SSP_BLUESKY_APP_PASSWORD")
    with pytest.raises(CredentialsError, match="SSP_BLUESKY_HANDLE"):
        BlueskyClient("http://127.0.0.1:9")


def test_bluesky_timeout_is_checked_before_any_retry(tables, monkeypatch) -> None:
    engine, version, ledger = tables
    _insert(engine, version, [_bsky(1, 0.99, ["https://example.org/1"]), _bsky(2, 0.99, ["https://example.org/2"])])
    for name, value in BSKY_ENV.items():
        monkeypatch.setenv(name, value)
    with FakeBluesky() as server:
        server.script = [("slow", 1.5), "500"]  # the first repost is made but answered too late; then a 5xx
        result = run_repost(engine, _settings(version, ledger, "bluesky", dry_run=False),
                            BlueskyClient(server.url, timeout=0.5), echo=lambda line: None, sleep=lambda s: None)
    assert result.reposted == 2 and result.failed == 0
    assert sorted(server.created) == sorted(p for p in (_bsky(1, 0, [])["post_uri"], _bsky(2, 0, [])["post_uri"]))
    gets = [path for _, method, path in server.calls if path.endswith("getRecord")]
    assert len(gets) == 1  # the timed-out call was checked (found), not repeated


def test_crash_between_call_and_outcome_reposts_once(tables, stack, monkeypatch) -> None:
    engine, version, ledger = tables
    posts = [_bsky(1, 0.99, ["https://example.org/1"]), _bsky(2, 0.98, ["https://example.org/2"])]
    _insert(engine, version, posts)
    with FakeBluesky() as server:
        env = os.environ | BSKY_ENV | {"SSP_BLUESKY_PDS_URL": server.url}
        command = [sys.executable, "-m", "ssp.cli", "--gin-param", f'RepostConfig.table = "{ledger}"',
                   "--gin-param", "RepostConfig.min_prob = 0.9", "repost", "--platform", "bluesky",
                   "--version", str(version), "--mode", "auto", "--no-dry-run"]
        server.script = [("hang", 60.0)]  # the repost is made, then the answer never comes: the run is killed
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: server.created, 60, "the first repost call")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        assert [v[0] for k, v in _statuses(engine, ledger).items()].count("in_flight") == 1
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "reposted 2 posts on bluesky (auto mode), 0 failed, 0 skipped, 1 interrupted reposts checked" in second.stdout
    assert sorted(server.created) == sorted(p["post_uri"] for p in posts)  # each exactly once
    assert {v[0] for v in _statuses(engine, ledger).values()} == {"reposted"}


def test_x_review_mode_retweets_the_original_once_through_429_and_timeout(tables, monkeypatch) -> None:
    engine, version, ledger = tables
    original = 1_800_000_000_000_000_111
    posts = [_x(1, 0.99, ["https://arxiv.org/abs/9"], retweet_of=original), _x(2, 0.97, ["https://example.org/x"]),
             _x(3, 0.96, ["https://example.org/y"])]
    _insert(engine, version, posts)
    led = Ledger(ledger)
    ensure_tables(engine, led.table)
    with engine.begin() as conn:  # what the dashboard's approve / skip buttons record
        candidates = {c.tweet_id: c for c in fetch_candidates(conn, f"ai_tweets_{version}", "x", ledger, limit=10)}
        assert candidates[posts[0]["id"]].target == str(original)  # a retweet's original is the one reposted
        led.decide(conn, candidates[posts[0]["id"]], "approved", "alice")
        led.decide(conn, candidates[posts[1]["id"]], "approved", "alice")
        led.decide(conn, candidates[posts[2]["id"]], "skipped", "alice")
    for name, value in X_OAUTH1.items():
        monkeypatch.setenv(name, value)
    settings = _settings(version, ledger, "x", dry_run=False, mode="review")
    with FakeX() as server:
        server.script = [("429", 1.0), ("slow", 1.5)]
        result = run_repost(engine, settings, XClient(server.url, timeout=0.5), echo=lambda line: None)
        assert run_repost(engine, settings, XClient(server.url), echo=lambda line: None).reposted == 0
    assert result.reposted == 2 and sorted(server.retweeted) == sorted([str(original), str(posts[1]["id"])])
    posts_calls = [t for t, method, path in server.calls if path == f"/2/users/{X_USER_ID}/retweets"]
    assert len(posts_calls) == 3 and posts_calls[1] - posts_calls[0] >= 0.95  # the 429 waited for its reset
    assert any(path.endswith("/retweeted_by") for _, _, path in server.calls)  # the timeout was checked
    statuses = _statuses(engine, ledger)
    assert statuses[(str(original), False)][0] == statuses[(str(posts[1]["id"]), False)][0] == "reposted"
    assert statuses[(str(posts[2]["id"]), False)][0] == "skipped"


def test_x_oauth2_token_and_403(tables, monkeypatch) -> None:
    engine, version, ledger = tables
    _insert(engine, version, [_x(1, 0.99, ["https://example.org/1"])])
    for name in X_OAUTH1:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSP_X_USER_TOKEN", X_USER_TOKEN)
    with FakeX() as server:
        server.script = ["403"]
        with pytest.raises(CredentialsError, match="SSP_X_USER_TOKEN"):
            run_repost(engine, _settings(version, ledger, "x", dry_run=False), XClient(server.url),
                       echo=lambda line: None)
        started = time.monotonic()
        result = run_repost(engine, _settings(version, ledger, "x", dry_run=False), XClient(server.url),
                            echo=lambda line: None)
    assert result.reposted == 1 and server.retweeted == [str(_x(1, 0, [])["id"])] and time.monotonic() - started < 10
    monkeypatch.delenv("SSP_X_USER_TOKEN")
    with pytest.raises(CredentialsError, match="SSP_X_CONSUMER_KEY"):
        XClient("http://127.0.0.1:9")


def test_max_per_hour_leaves_the_rest_for_a_later_run(tables, monkeypatch) -> None:
    engine, version, ledger = tables
    _insert(engine, version, [_bsky(n, 0.99, [f"https://example.org/{n}"]) for n in range(1, 4)])
    for name, value in BSKY_ENV.items():
        monkeypatch.setenv(name, value)
    with FakeBluesky() as server:
        result = run_repost(engine, _settings(version, ledger, "bluesky", dry_run=False, max_per_hour=2),
                            BlueskyClient(server.url), echo=lambda line: None)
    assert (result.reposted, result.left, len(server.created)) == (2, 1, 2)
    assert result.line().endswith("1 approved left for a later run; stopped: 2 reposts in the last hour, the limit "
                                  "(--max-per-hour)")
    assert sorted(v[0] for v in _statuses(engine, ledger).values()) == ["approved", "reposted", "reposted"]
