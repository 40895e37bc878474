"""Issue 10's dashboard and web-server findings, each as real requests against the real apps.

- a live cursor out of range (``/api/live?after=253402300800000000-1``) is a 400 naming ``after``, not a 500;
- the PNG chart's ``minutes`` is bounded by ``WebConfig.chart_max_minutes`` and repeated requests
  reuse the rendered chart instead of rendering it again;
- ``ssp dashboard`` and ``ssp tagger`` run on waitress, a production WSGI server, and SIGTERM stops
  them promptly even while a browser holds an idle keep-alive connection.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from ssp.config import WebConfig
from ssp.web.dashboard import CHART_CACHE_EXTENSION, Cursor, create_app
from test_dashboard import fresh_version, ids, insert_tweets

pytestmark = pytest.mark.integration


@pytest.fixture
def dashboard_app(stack):
    """``dashboard_app(version, config=None)``: a dashboard app on the test database, disposed afterwards."""
    apps = []

    def make(version: int, config: WebConfig | None = None):
        app = create_app(stack.database_url, version, config, testing=True)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["ssp_dashboard"].engine.dispose()


# ---------------------------------------------------------------- finding 1: live cursors out of range
@pytest.mark.parametrize("token, problem", [
    ("253402300800000000-1", "year 9999"),  # one microsecond into year 10000: datetime overflows
    ("999999999999999999-1", "year 9999"),
    ("1-9223372036854775808", "2**63"),  # one past a bigint tweet id
    ("1-9999999999999999999", "2**63"),
])
def test_live_cursor_out_of_range_is_a_400_naming_after(stack, dashboard_app, token, problem):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": 5, "text": "a tweet", "ai_prob": 0.9}])
    response = dashboard_app(version).test_client().get(f"/api/live?after={token}")
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["parameter"] == "after" and token in body["error"] and problem in body["error"]


def test_live_cursor_at_the_edges_still_works(stack, dashboard_app):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": 5, "text": "a tweet", "ai_prob": 0.9}])
    client = dashboard_app(version).test_client()
    assert ids(client.get("/api/live?after=0-0").get_json()) == [5]
    last = "253402300799999999-9223372036854775807"  # the last microsecond of 9999, the largest bigint
    body = client.get(f"/api/live?after={last}").get_json()
    assert body["items"] == [] and body["cursor"] == last
    assert Cursor.parse(last).token == last


# ---------------------------------------------------------------- finding 2: the PNG chart's cost
def test_chart_minutes_beyond_the_maximum_is_a_400(stack, dashboard_app):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": 1, "text": "x", "ai_prob": 0.9}])
    maximum = WebConfig().chart_max_minutes
    assert 60 <= maximum <= 240  # the live page's hour fits; a day of bars (1.6 s of CPU) does not
    client = dashboard_app(version).test_client()
    assert client.get(f"/chart/per-minute.png?minutes={maximum}").status_code == 200
    for minutes in (maximum + 1, 1440):
        response = client.get(f"/chart/per-minute.png?minutes={minutes}")
        assert response.status_code == 400
        assert "minutes" in response.get_data(as_text=True) and str(maximum) in response.get_data(as_text=True)
    smaller = dashboard_app(version, WebConfig(chart_max_minutes=30)).test_client()
    assert smaller.get("/chart/per-minute.png?minutes=31").status_code == 400
    # the JSON counts are one grouped query, not a render: they keep their day
    assert client.get("/api/stats/per-minute?minutes=1440").status_code == 200


def test_repeated_chart_requests_render_once(stack, dashboard_app):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": i, "text": "x", "ai_prob": 0.9} for i in range(3)])
    app = dashboard_app(version, WebConfig(chart_cache_seconds=60))
    charts = app.extensions[CHART_CACHE_EXTENSION]
    client = app.test_client()

    first = client.get("/chart/per-minute.png?minutes=60")
    started = time.perf_counter()
    second = client.get("/chart/per-minute.png?minutes=60")
    cached_seconds = time.perf_counter() - started
    assert first.status_code == second.status_code == 200 and first.mimetype == "image/png"
    assert second.get_data() == first.get_data()
    assert charts.renders == 1
    assert cached_seconds < 0.1, f"a cached chart took {cached_seconds:.3f} s"
    assert client.get("/chart/per-minute.png?minutes=30").status_code == 200
    assert charts.renders == 2  # another span is another chart


def test_the_chart_cache_expires(stack, dashboard_app):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": 1, "text": "x", "ai_prob": 0.9}])
    app = dashboard_app(version, WebConfig(chart_cache_seconds=0.5))
    client = app.test_client()
    client.get("/chart/per-minute.png?minutes=10")
    time.sleep(0.6)
    client.get("/chart/per-minute.png?minutes=10")
    assert app.extensions[CHART_CACHE_EXTENSION].renders == 2


# ---------------------------------------------------------------- finding 3: a production WSGI server
def _start(argv: list[str], env: dict, pattern: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-u", "-c", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **env})
    line = process.stdout.readline()
    match = re.search(pattern, line)
    if not match:
        process.kill()
        pytest.fail(f"no URL in {line!r}: {process.communicate(timeout=10)[1]}")
    return process, match[1]


def _stop_with_sigterm(process: subprocess.Popen) -> tuple[str, str, float]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    return out, err, time.monotonic() - started


def test_dashboard_runs_on_waitress_and_sigterm_stops_it_despite_keep_alive(stack):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [{"id": 77, "text": "served by waitress", "ai_prob": 0.9}])
    process, url = _start(["from ssp.web.cli import dashboard; dashboard()", "--version", str(version),
                           "--port", "0"], {"SSP_DATABASE_URL": stack.database_url},
                          r"on (http://127\.0\.0\.1:\d+/)")
    session = requests.Session()  # holds its connection open between requests, as a browser does
    try:
        response = session.get(url + "api/ai-tweets", timeout=10)
        assert response.headers["Server"] == "waitress" and ids(response.json()) == [77]
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert session.get(url + "api/ai-tweets", timeout=10).headers.get("Connection", "").lower() != "close"
        out, err, seconds = _stop_with_sigterm(process)
    finally:
        session.close()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert seconds < 5, f"SIGTERM took {seconds:.1f} s with an idle keep-alive connection open"
    assert re.search(rf"dashboard for version {version} stopped after \d+ s", out)
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


def test_tagger_runs_on_waitress(stack):
    process, url = _start(["from ssp.web.tagger_cli import tagger; tagger()", "--port", "0"],
                          {"SSP_DATABASE_URL": stack.database_url, "SSP_TAGGER_TOKEN": "security-test-token"},
                          r"tagger on (http://127\.0\.0\.1:\d+/)")
    session = requests.Session()
    try:
        response = session.get(url + "login", timeout=10)
        assert response.status_code == 200 and response.headers["Server"] == "waitress"
        out, err, seconds = _stop_with_sigterm(process)
    finally:
        session.close()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert seconds < 5 and re.search(r"tagger stopped after \d+ s", out)


def test_a_taken_port_is_a_clear_error(stack):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-c", "from ssp.web.cli import dashboard; dashboard()", "--version", "1",
             "--port", str(port)],
            capture_output=True, text=True, timeout=60, env={**os.environ, "SSP_DATABASE_URL": stack.database_url},
        )
    assert result.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
