"""The AI-tweets dashboard against a real PostgreSQL: pages, JSON API, filters, escaping, bad input."""

from __future__ import annotations

import html
import os
import re
import signal
import struct
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import insert

from ssp.config import WebConfig
from ssp.storage.postgres import ensure_tables, make_engine
from ssp.storage.tables import (
    AI_TWEET_URLS_TABLE_PREFIX,
    AI_TWEETS_TABLE_PREFIX,
    CLASSIFIED_TABLE_PREFIX,
    ai_tweet_urls_table,
    ai_tweets_table,
    classified_tweets_table,
    versioned_table_name,
)
from ssp.web.cli import dashboard
from ssp.web.dashboard import create_app

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
THRESHOLD = 0.5


def fresh_version() -> int:
    """A version no other test uses, so each test sees only its own rows."""
    return 1_000_000 + uuid.uuid4().int % 10**9


def classify_domain(url: str) -> str:
    """The domain ``ssp classify`` writes for a link: the host in lower case without ``www.``, or '(none)'."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    return host.removeprefix("www.") or "(none)"


def insert_tweets(database_url: str, version: int, tweets: list[dict]) -> None:
    """Write tweets as ``ssp classify`` does: all into classified_tweets_<v>, those with ai_prob >= 0.5
    into ai_tweets_<v> and their links into ai_tweet_urls_<v>.

    Each tweet needs id, text, ai_prob; created_at, user, urls and classified_at are optional
    (classified_at defaults to the database clock at insert, as in the real tables).
    """
    tables = (
        classified_tweets_table(versioned_table_name(CLASSIFIED_TABLE_PREFIX, version)),
        ai_tweets_table(versioned_table_name(AI_TWEETS_TABLE_PREFIX, version)),
        ai_tweet_urls_table(versioned_table_name(AI_TWEET_URLS_TABLE_PREFIX, version)),
    )
    classified, ai, urls = tables
    engine = make_engine(database_url)
    try:
        ensure_tables(engine, *tables)
        with engine.begin() as conn:
            for tweet in tweets:
                row = {
                    "id": tweet["id"], "created_at": tweet.get("created_at", T0), "text": tweet["text"],
                    "lang": "en", "user_screen_name": tweet.get("user", "someone"), "urls": tweet.get("urls", []),
                    "hashtags": [], "ai_prob": tweet["ai_prob"], "model_version": 1, "produced_at": None,
                }
                if "classified_at" in tweet:
                    row["classified_at"] = tweet["classified_at"]
                is_ai = tweet["ai_prob"] >= THRESHOLD
                conn.execute(insert(classified).values(**row, is_ai=is_ai, kafka_topic="t", kafka_partition=0,
                                                       kafka_offset=tweet["id"]))
                if is_ai:
                    conn.execute(insert(ai).values(**row))
                    for url in row["urls"]:
                        conn.execute(insert(urls).values(tweet_id=row["id"], url=url, created_at=row["created_at"],
                                                         domain=classify_domain(url)))
    finally:
        engine.dispose()


@pytest.fixture
def make_client(stack):
    """``make_client(version, page_size=50)``: a Flask test client of a dashboard app on the test database."""
    apps = []

    def make(version: int, page_size: int = 50):
        app = create_app(stack.database_url, version, WebConfig(page_size=page_size), testing=True)
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["ssp_dashboard"].engine.dispose()


def ids(body: dict) -> list[int]:
    return [int(item["id"]) for item in body["items"]]


def test_ai_tweets_are_paginated_newest_first(stack, make_client):
    version = fresh_version()
    tweets = [{"id": 100 + i, "text": f"tweet number {i}", "ai_prob": 0.9, "created_at": T0 + timedelta(minutes=i)}
              for i in range(7)]
    tweets.append({"id": 999, "text": "not about AI", "ai_prob": 0.1, "created_at": T0 + timedelta(hours=1)})
    insert_tweets(stack.database_url, version, tweets)
    client = make_client(version, page_size=3)

    pages = [client.get(f"/api/ai-tweets?page={n}").get_json() for n in (1, 2, 3, 4)]
    assert [ids(p) for p in pages] == [[106, 105, 104], [103, 102, 101], [100], []]
    assert [(p["has_prev"], p["has_next"]) for p in pages] == [(False, True), (True, True), (True, False),
                                                                (True, False)]
    assert {p["page_size"] for p in pages} == {3}

    body = client.get("/?page=2").get_data(as_text=True)
    assert [int(i) for i in re.findall(r'<tr class="tweet" data-id="(\d+)"', body)] == [103, 102, 101]
    assert 'href="/?page=1"' in body and 'href="/?page=3"' in body
    assert "not about AI" not in body

    # the all-tweets view has every classified tweet, the non-AI one included, with its flag
    everything = client.get("/api/tweets?page=1").get_json()
    assert ids(everything)[:4] == [999, 106, 105]  # page_size 3
    assert everything["items"][0]["is_ai"] is False and everything["items"][1]["is_ai"] is True
    assert "not about AI" in client.get("/tweets").get_data(as_text=True)


def test_threshold_and_domain_filters(stack, make_client):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [
        {"id": 1, "text": "a", "ai_prob": 0.55, "urls": ["https://example.org/1"]},
        {"id": 2, "text": "b", "ai_prob": 0.7, "urls": ["https://news.example.com/2", "https://www.example.org/2"],
         "created_at": T0 + timedelta(seconds=1)},
        {"id": 3, "text": "c", "ai_prob": 0.95, "urls": ["https://news.example.com/3"],
         "created_at": T0 + timedelta(seconds=2)},
        {"id": 4, "text": "d", "ai_prob": 0.2, "urls": ["https://example.org/4"]},
    ])
    client = make_client(version)
    assert ids(client.get("/api/ai-tweets").get_json()) == [3, 2, 1]
    # 0.7 is stored as a REAL (0.699999988...): a threshold of 0.7 still includes it
    assert ids(client.get("/api/ai-tweets?threshold=0.7").get_json()) == [3, 2]
    assert ids(client.get("/api/ai-tweets?threshold=0.71").get_json()) == [3]
    assert ids(client.get("/api/ai-tweets?threshold=1").get_json()) == []
    assert ids(client.get("/api/ai-tweets?domain=example.org").get_json()) == [2, 1]
    assert ids(client.get("/api/ai-tweets?domain=News.Example.COM").get_json()) == [3, 2]
    assert ids(client.get("/api/ai-tweets?domain=www.example.org.").get_json()) == [2, 1]
    assert ids(client.get("/api/ai-tweets?domain=example.org&threshold=0.6").get_json()) == [2]
    assert ids(client.get("/api/ai-tweets?domain=nowhere.test").get_json()) == []
    assert ids(client.get("/api/tweets?threshold=0.6").get_json()) == [3, 2]

    body = client.get("/?domain=example.org&threshold=0.6").get_data(as_text=True)
    assert re.findall(r'data-id="(\d+)"', body) == ["2"]
    assert 'value="0.6"' in body and 'value="example.org"' in body
    # an empty form field is no filter at all
    assert ids(client.get("/api/ai-tweets?threshold=&domain=").get_json()) == [3, 2, 1]


def test_json_api_shapes(stack, make_client, db):
    version = fresh_version()
    with db.cursor() as cur:
        cur.execute("SELECT now()")
        now = cur.fetchone()[0]
    insert_tweets(stack.database_url, version, [
        {"id": 11, "text": "eleven", "ai_prob": 0.8, "user": "ada", "urls": ["https://example.org/x"],
         "classified_at": now - timedelta(minutes=2)},
        {"id": 12, "text": "twelve", "ai_prob": 0.9, "urls": ["https://example.org/y", "https://other.test/z"],
         "classified_at": now - timedelta(minutes=2)},
        {"id": 13, "text": "thirteen", "ai_prob": 0.6, "urls": ["mailto:someone@example.org"],
         "classified_at": now - timedelta(hours=3)},
        {"id": 14, "text": "fourteen", "ai_prob": 0.3},
    ])
    client = make_client(version)

    response = client.get("/api/ai-tweets")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"version", "page", "page_size", "has_next", "has_prev", "threshold", "domain", "items"}
    assert body["version"] == version
    tweet = next(item for item in body["items"] if item["id"] == "11")
    assert tweet == {
        "id": "11", "created_at": "2026-03-01T12:00:00Z", "classified_at": tweet["classified_at"], "user": "ada",
        "text": "eleven", "ai_prob": 0.8, "model_version": 1,
        "links": [{"url": "https://example.org/x", "domain": "example.org", "href": "https://example.org/x"}],
        "platform": "x", "post_url": "https://x.com/i/web/status/11",
    }
    assert datetime.fromisoformat(tweet["classified_at"]) == (now - timedelta(minutes=2)).replace(microsecond=0)

    stats = client.get("/api/stats/per-minute?minutes=5").get_json()
    assert stats["minutes"] == 5 and len(stats["points"]) == 5
    # two tweets two minutes ago: which bucket depends on when the minute turned, so work it out
    arrived = (now - timedelta(minutes=2)).astimezone(UTC).replace(second=0, microsecond=0)
    expected = [0] * 5
    expected[4 - (datetime.fromisoformat(stats["now"]) - arrived) // timedelta(minutes=1)] = 2
    assert [p["count"] for p in stats["points"]] == expected
    assert stats["points"][-1]["minute"] == stats["now"]
    assert stats["total"] == 2  # the tweet from three hours ago is outside the window
    minutes = [datetime.fromisoformat(p["minute"]) for p in stats["points"]]
    assert all(b - a == timedelta(minutes=1) for a, b in zip(minutes, minutes[1:], strict=False))
    assert client.get("/api/stats/per-minute?minutes=240").get_json()["total"] == 3

    domains = client.get("/api/domains/top?limit=5").get_json()
    assert domains["domains"] == [{"domain": "example.org", "links": 2, "tweets": 2},
                                  {"domain": "other.test", "links": 1, "tweets": 1}]
    assert client.get("/api/domains/top?limit=1").get_json()["domains"] == domains["domains"][:1]


def test_live_feed_follows_a_cursor(stack, make_client, db):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": i, "text": f"t{i}", "ai_prob": 0.9} for i in (5, 3, 4)])
    client = make_client(version)
    first = client.get("/api/live").get_json()
    assert ids(first) == [5, 3, 4]  # arrival order, oldest first
    assert first["cursor"] == first["items"][-1]["cursor"] and first["has_more"] is False
    quiet = client.get(f"/api/live?after={first['cursor']}").get_json()
    assert quiet["items"] == [] and quiet["cursor"] == first["cursor"]

    insert_tweets(stack.database_url, version, [{"id": i, "text": f"t{i}", "ai_prob": 0.9} for i in (1, 2, 9)])
    capped = client.get(f"/api/live?after={first['cursor']}&limit=2").get_json()
    assert ids(capped) == [1, 2] and capped["has_more"] is True
    rest = client.get(f"/api/live?after={capped['cursor']}&limit=2").get_json()
    assert ids(rest) == [9] and rest["has_more"] is False
    assert ids(client.get("/api/live?limit=2").get_json()) == [2, 9]  # no cursor: the latest ones

    body = client.get("/live").get_data(as_text=True)
    assert re.findall(r'data-id="(\d+)"', body) == ["9", "2", "1", "4", "3", "5"]  # newest on top
    assert f'data-cursor="{rest["cursor"]}"' in body


def test_untrusted_text_is_escaped(stack, make_client):
    version = fresh_version()
    script = "<script>alert(1)</script>"
    insert_tweets(stack.database_url, version, [{
        "id": 7, "text": script, "ai_prob": 0.99, "user": '"><img src=x onerror=alert(2)>',
        "urls": ["javascript:alert(3)", 'https://example.org/?q="><b>x</b>', "data:text/html,<script>"],
    }])
    client = make_client(version)
    for path in ("/", "/live", "/tweets"):
        body = client.get(path).get_data(as_text=True)
        assert html.escape(script) in body, path
        assert script not in body and "<img src=x" not in body and "<b>x</b>" not in body, path
        # only the http(s) link is a link; the others are text
        assert re.findall(r'<a href="([^"]*)" target="_blank" rel="noopener noreferrer">', body) == [
            "https://example.org/?q=&#34;&gt;&lt;b&gt;x&lt;/b&gt;"], path
        rows = body[body.index("<tbody>"):body.index("</tbody>")]
        assert 'href="javascript:' not in rows and 'href="data:' not in rows, path
    links = client.get("/api/ai-tweets").get_json()["items"][0]["links"]
    assert [link["href"] for link in links] == [None, 'https://example.org/?q="><b>x</b>', None]


def test_security_headers(stack, make_client):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": 1, "text": "x", "ai_prob": 0.9}])
    client = make_client(version)
    for path in ("/", "/live", "/api/ai-tweets", "/static/dashboard/live.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
    assert client.get("/static/dashboard/live.js").mimetype in ("text/javascript", "application/javascript")
    # read-only: nothing accepts a state-changing method
    assert client.post("/api/ai-tweets").status_code == 405
    body = client.get("/live").get_data(as_text=True)
    assert "<script>" not in body and not re.search(r"<script(?![^>]*\bsrc=)", body)


BAD_REQUESTS = [
    ("/api/ai-tweets?page=0", "page"),
    ("/api/ai-tweets?page=-1", "page"),
    ("/api/ai-tweets?page=abc", "page"),
    ("/api/ai-tweets?page=%D9%A3", "page"),  # an Arabic-Indic digit three
    ("/api/ai-tweets?page=1&page=2", "page"),
    ("/api/ai-tweets?threshold=1.5", "threshold"),
    ("/api/ai-tweets?threshold=nan", "threshold"),
    ("/api/ai-tweets?threshold=-0.1", "threshold"),
    ("/api/ai-tweets?domain=a%20b", "domain"),
    ("/api/ai-tweets?domain=x%27%3B%20drop%20table%20y", "domain"),
    ("/api/ai-tweets?domain=" + "a" * 254, "domain"),
    ("/api/ai-tweets?pgae=2", "pgae"),
    ("/api/tweets?domain=example.org", "domain"),
    ("/api/stats/per-minute?minutes=0", "minutes"),
    ("/api/stats/per-minute?minutes=100000", "minutes"),
    ("/api/domains/top?limit=0", "limit"),
    ("/api/live?after=yesterday", "after"),
    ("/api/live?after=1-2&limit=501", "limit"),
    ("/chart/per-minute.png?minutes=x", "minutes"),
]


@pytest.mark.parametrize(("path", "parameter"), BAD_REQUESTS, ids=[p for p, _ in BAD_REQUESTS])
def test_bad_parameters_get_400_naming_them(stack, make_client, path, parameter):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": 1, "text": "x", "ai_prob": 0.9}])
    response = make_client(version).get(path)
    assert response.status_code == 400
    if path.startswith("/api/"):
        body = response.get_json()
        assert body["parameter"] == parameter and parameter in body["error"]
    else:
        assert parameter in response.get_data(as_text=True)


def test_bad_parameters_on_pages_get_an_html_400(stack, make_client):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": 1, "text": "x", "ai_prob": 0.9}])
    response = make_client(version).get("/?threshold=2")
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "threshold must be a number from 0 to 1, got &#39;2&#39;" in response.get_data(as_text=True)


def test_missing_tables_say_what_to_run(stack, make_client):
    version = fresh_version()
    client = make_client(version)
    expected = f"no classified tweets for version {version} yet: run `ssp classify --version {version}`"
    for path in ("/api/ai-tweets", "/api/tweets", "/api/live", "/api/stats/per-minute", "/api/domains/top"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.get_json()["error"] == expected, path
    page = client.get("/live")
    assert page.status_code == 503 and expected in html.unescape(page.get_data(as_text=True))
    # once classify has run, the same app shows the tweets
    insert_tweets(stack.database_url, version, [{"id": 1, "text": "arrived", "ai_prob": 0.9}])
    assert ids(client.get("/api/ai-tweets").get_json()) == [1]


def test_per_minute_chart_is_a_png(stack, make_client):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": i, "text": "x", "ai_prob": 0.9} for i in range(3)])
    response = make_client(version).get("/chart/per-minute.png?minutes=30")
    assert response.status_code == 200 and response.mimetype == "image/png"
    png = response.get_data()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (800, 300)


def test_unreachable_database_is_a_clear_503():
    from ssp.infra.process import free_port

    app = create_app(f"postgresql://nobody@127.0.0.1:{free_port()}/nothing", 1, testing=True)
    try:
        response = app.test_client().get("/api/ai-tweets")
        assert response.status_code == 503
        assert response.get_json()["error"].startswith("cannot reach the database: ")
        page = app.test_client().get("/")
        assert page.status_code == 503 and "cannot reach the database" in page.get_data(as_text=True)
    finally:
        app.extensions["ssp_dashboard"].engine.dispose()


def test_dashboard_command_help_and_unreachable_database(monkeypatch):
    assert "Usage:" in CliRunner().invoke(dashboard, ["--help"]).output
    from ssp.infra.process import free_port

    monkeypatch.setenv("SSP_DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/nothing")
    result = CliRunner().invoke(dashboard, ["--port", "0"])
    assert result.exit_code != 0 and "cannot reach the database" in result.output and "ssp infra up" in result.output


def test_dashboard_command_serves_until_interrupted(stack):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": 77, "text": "served for real", "ai_prob": 0.9}])
    env = {**os.environ, "SSP_DATABASE_URL": stack.database_url}
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", "from ssp.web.cli import dashboard; dashboard()",
         "--version", str(version), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + process.stderr.read()
        body = requests.get(match[1] + "api/ai-tweets", timeout=10).json()
        assert ids(body) == [77]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert re.search(rf"dashboard for version {version} stopped after \d+ s", out)


def test_no_debug_mode_outside_tests(stack):
    app = create_app(stack.database_url, fresh_version())
    try:
        assert app.debug is False and app.testing is False
    finally:
        app.extensions["ssp_dashboard"].engine.dispose()


def test_create_app_reads_the_environment_when_given_nothing_as_flask_run_does(stack, monkeypatch):
    """``flask --app ssp.web.dashboard run``: Flask calls ``create_app()``; the database and the version come
    from the environment, and a mapping of settings says the same."""
    from flask.cli import ScriptInfo

    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": 5, "text": "found by the factory", "ai_prob": 0.9}])
    monkeypatch.setenv("SSP_DATABASE_URL", stack.database_url)
    monkeypatch.setenv("SSP_DASHBOARD_VERSION", str(version))
    apps = [ScriptInfo(app_import_path="ssp.web.dashboard").load_app(),
            create_app({"SSP_DATABASE_URL": stack.database_url, "SSP_VERSION": version, "TESTING": True})]
    try:
        for app in apps:
            assert app.config["SSP_VERSION"] == version and app.debug is False
            assert ids(app.test_client().get("/api/ai-tweets").get_json()) == [5]
        assert apps[0].testing is False and apps[1].testing is True
    finally:
        for app in apps:
            app.extensions["ssp_dashboard"].engine.dispose()


def test_create_app_refuses_a_bad_setting_with_one_clear_error(monkeypatch):
    from ssp.errors import SspError

    monkeypatch.setenv("SSP_DASHBOARD_VERSION", "not a version")
    with pytest.raises(SspError, match="not a version"):
        create_app()
    with pytest.raises(SspError, match="chart_max_minutes"):
        create_app("postgresql://nobody@127.0.0.1:1/nothing", 1, WebConfig(chart_max_minutes=0))
