"""TwitterStreamSource against a local fake of the X API v2 filtered stream.

The fake speaks the protocol as X documents it: the rules endpoint (GET, POST add and
delete), and a chunked, newline-delimited stream with ``\\r\\n`` keep-alive heartbeats,
both behind ``Authorization: Bearer``. A guard makes any non-loopback address lookup
fail, so nothing here can reach the real API.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from ssp.sources.synthetic import SyntheticTweets
from ssp.sources.twitter import (
    MissingCredentialsError,
    Rule,
    TwitterStreamError,
    TwitterStreamSource,
    build_rules,
    rule_term,
)
from ssp.text import load_ai_keywords

TOKEN = "test-bearer-token"
KEYWORDS = ["machine learning", "#AI", "pytorch", "deep learning", "NLP", "scikit-learn", "LLM"]
RULES_PATH = "/2/tweets/search/stream/rules"
STREAM_PATH = "/2/tweets/search/stream"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeX(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.rules: dict[str, dict[str, str]] = {}
        self.next_id = 1_700_000_000_000_000_000
        self.lines: list[bytes] = []
        self.stream_error: tuple[int, dict] | None = None
        self.stream_queries: list[dict[str, list[str]]] = []
        self.heartbeat_seconds: float | None = 0.02  # None: fall silent after the lines
        self.closing = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add_rule(self, value: str, tag: str) -> dict[str, str]:
        self.next_id += 1
        rule = {"id": str(self.next_id), "value": value, "tag": tag}
        self.rules[rule["id"]] = rule
        return rule


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeX

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self._json(401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                         "detail": "Unauthorized"})
        return False

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not self._authorized():
            return
        if url.path == RULES_PATH:
            rules = list(self.server.rules.values())
            body: dict = {"meta": {"sent": _now(), "result_count": len(rules)}}
            if rules:
                body["data"] = rules
            self._json(200, body)
        elif url.path == STREAM_PATH:
            self.server.stream_queries.append(parse_qs(url.query))
            self._stream()
        else:
            self._json(404, {"title": "Not Found Error", "detail": url.path})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not self._authorized():
            return
        if urlsplit(self.path).path != RULES_PATH:
            self._json(404, {"title": "Not Found Error"})
            return
        if "delete" in body:
            ids = body["delete"]["ids"]
            deleted = [i for i in ids if self.server.rules.pop(i, None)]
            self._json(200, {"meta": {"sent": _now(), "summary": {
                "deleted": len(deleted), "not_deleted": len(ids) - len(deleted)}}})
            return
        created, errors = [], []
        for rule in body.get("add", []):
            if len(rule["value"]) > 512:
                errors.append({"value": rule["value"], "title": "RuleLengthExceeded"})
            elif any(r["value"] == rule["value"] for r in self.server.rules.values()):
                errors.append({"value": rule["value"], "title": "DuplicateRule"})
            else:
                created.append(self.server.add_rule(rule["value"], rule.get("tag", "")))
        reply: dict = {"data": created, "meta": {"sent": _now(), "summary": {
            "created": len(created), "not_created": len(errors),
            "valid": len(created), "invalid": len(errors)}}}
        if errors:
            reply["errors"] = errors
        self._json(201, reply)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream(self) -> None:
        if self.server.stream_error is not None:
            self._json(*self.server.stream_error)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._chunk(b"\r\n")
            for line in self.server.lines:
                self._chunk(line + b"\r\n")
                self._chunk(b"\r\n")
            deadline = time.monotonic() + 10
            while not self.server.closing.is_set() and time.monotonic() < deadline:
                if self.server.heartbeat_seconds is None:
                    self.server.closing.wait(0.05)
                    continue
                self._chunk(b"\r\n")
                time.sleep(self.server.heartbeat_seconds)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client hung up, as it should when it stops


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"test tried to reach {host}; only the local fake X API is allowed")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    for name in ("SSP_TWITTER_BEARER_TOKEN", "TWITTER_BEARER_TOKEN", "SSP_TWITTER_API_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_x():
    server = FakeX()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()


def _tweet_lines(count: int, rule_id: str = "1") -> list[bytes]:
    lines = []
    for tweet in SyntheticTweets(seed=5, v2_share=1.0).generate(count):
        payload = dict(tweet.payload, matching_rules=[{"id": rule_id, "tag": "ssp-ai-1"}])
        lines.append(json.dumps(payload).encode())
    return lines


def _stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "Tweepy Stream" and t.is_alive()]


def test_rules_group_keywords_under_the_length_limit():
    rules = build_rules(load_ai_keywords())
    assert len(rules) >= 2
    assert all(len(rule.value) <= 512 and rule.value.endswith(") -is:retweet") for rule in rules)
    assert [rule.tag for rule in rules] == [f"ssp-ai-{n}" for n in range(1, len(rules) + 1)]
    joined = " ".join(rule.value for rule in rules)
    assert '"machine learning"' in joined and "#AI" in joined and '"scikit-learn"' in joined
    assert rule_term("pytorch") == "pytorch" and rule_term('say "hi"') == '"say \\"hi\\""'
    small = build_rules(["AI", "ai", "NLP"], include_retweets=True, lang="en")
    assert small == [Rule("(AI OR NLP) lang:en", "ssp-ai-1")]
    with pytest.raises(ValueError, match="does not fit"):
        build_rules(["x" * 600])


def test_missing_token_names_the_variable_to_set():
    with pytest.raises(MissingCredentialsError, match="SSP_TWITTER_BEARER_TOKEN"):
        TwitterStreamSource(keywords=KEYWORDS)
    assert issubclass(MissingCredentialsError, RuntimeError)


def test_token_and_address_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TWITTER_BEARER_TOKEN", "from-env")
    monkeypatch.setenv("SSP_TWITTER_API_URL", "http://127.0.0.1:9/")
    source = TwitterStreamSource(keywords=KEYWORDS)
    assert source.bearer_token == "from-env" and source.base_url == "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="https"):
        TwitterStreamSource(TOKEN, KEYWORDS, base_url="http://api.example.com")


def test_syncs_rules_and_streams_v2_payloads(fake_x):
    expected = build_rules(KEYWORDS, max_length=60)
    assert len(expected) >= 3
    kept = fake_x.add_rule(expected[0].value, expected[0].tag)
    fake_x.add_rule("cats OR dogs", "someone-else")
    fake_x.add_rule(expected[1].value, "old-tag")
    notice = b'{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect"}]}'
    fake_x.lines = [*_tweet_lines(3, kept["id"]), notice, b"{not json"]

    source = TwitterStreamSource(TOKEN, KEYWORDS, base_url=fake_x.url, max_rule_length=60, max_records=4)
    received = list(source)

    assert {(r["value"], r["tag"]) for r in fake_x.rules.values()} == {(r.value, r.tag) for r in expected}
    assert fake_x.rules[kept["id"]] == kept  # an unchanged rule is left alone
    assert [type(p) for p in received] == [dict, dict, dict, bytes]
    assert received[3] == b"{not json"
    for payload, line in zip(received[:3], fake_x.lines, strict=False):
        assert payload == json.loads(line)
        assert set(payload) == {"data", "includes", "matching_rules"}
    assert source.heartbeats >= 3
    query = fake_x.stream_queries[0]
    assert query["expansions"] == ["author_id,referenced_tweets.id"]
    assert set(query["tweet.fields"][0].split(",")) == {
        "created_at", "lang", "entities", "note_tweet", "referenced_tweets", "author_id"}
    assert query["user.fields"] == ["username"]
    assert not _stream_threads()


def test_payloads_parse_as_tweets(fake_x):
    tweets = pytest.importorskip("ssp.tweets")
    fake_x.lines = _tweet_lines(5)
    parsed = [tweets.parse_tweet(p) for p in TwitterStreamSource(TOKEN, KEYWORDS, base_url=fake_x.url,
                                                                  max_records=5)]
    assert [t.id for t in parsed] == [int(json.loads(line)["data"]["id"]) for line in fake_x.lines]


def test_max_records_stops_the_stream_promptly(fake_x):
    fake_x.lines = _tweet_lines(50)
    started = time.monotonic()
    received = list(TwitterStreamSource(TOKEN, KEYWORDS, base_url=fake_x.url, max_records=5))
    assert len(received) == 5
    assert time.monotonic() - started < 5
    assert not _stream_threads()


@pytest.mark.parametrize("heartbeat_seconds", [0.02, None], ids=["heartbeats", "silent"])
def test_stop_from_another_thread_ends_iteration(fake_x, heartbeat_seconds):
    # A silent connection shows stop() does not wait for X's next heartbeat (20 s live).
    fake_x.lines = _tweet_lines(1)
    fake_x.heartbeat_seconds = heartbeat_seconds
    source = TwitterStreamSource(TOKEN, KEYWORDS, base_url=fake_x.url)
    received = []
    started = time.monotonic()
    for payload in source:
        received.append(payload)
        threading.Timer(0.2, source.stop).start()
    assert len(received) == 1
    assert time.monotonic() - started < 5
    assert not _stream_threads()


def test_wrong_token_is_a_clear_error_not_a_hang(fake_x):
    source = TwitterStreamSource("wrong-token", KEYWORDS, base_url=fake_x.url)
    started = time.monotonic()
    with pytest.raises(TwitterStreamError, match="401.*SSP_TWITTER_BEARER_TOKEN") as caught:
        next(iter(source))
    assert caught.value.status_code == 401
    assert time.monotonic() - started < 5
    assert fake_x.rules == {}


def test_refused_stream_connection_is_a_clear_error(fake_x):
    fake_x.stream_error = (403, {"title": "Client Forbidden", "reason": "client-not-enrolled",
                                 "detail": "This request must be made using an approved developer account"})
    started = time.monotonic()
    with pytest.raises(TwitterStreamError, match="403 Client Forbidden") as caught:
        list(TwitterStreamSource(TOKEN, KEYWORDS, base_url=fake_x.url, max_records=3))
    assert caught.value.status_code == 403
    assert time.monotonic() - started < 5
    assert not _stream_threads()


def test_unreachable_api_is_a_clear_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = TwitterStreamSource(TOKEN, KEYWORDS, base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(TwitterStreamError, match="cannot reach"):
        next(iter(source))


@pytest.mark.integration
def test_ssp_produce_streams_from_the_x_api_into_kafka(fake_x, stack, unique_name, monkeypatch):
    """`ssp produce --source twitter` end to end: the local X server, tweepy, the producer, a real broker."""
    import os

    from click.testing import CliRunner

    from ssp.cli import main
    from ssp.kafka.admin import topic_end_offsets
    from test_producer import _consume

    fake_x.lines = _tweet_lines(12)
    monkeypatch.setenv("SSP_TWITTER_BEARER_TOKEN", TOKEN)
    monkeypatch.setenv("SSP_TWITTER_API_URL", fake_x.url)
    topic = unique_name("x_stream")
    result = CliRunner().invoke(main, ["produce", "--source", "twitter", "--topic", topic, "--no-ai-topic",
                                       "--max-records", "12"])
    assert result.exit_code == 0, result.output
    assert f"produced 12 tweets to {topic}" in result.output
    records = _consume(os.environ["SSP_KAFKA_BOOTSTRAP"], topic, 12)
    expected = {json.loads(line)["data"]["id"].encode() for line in fake_x.lines}
    assert {record.key for record in records} == expected
    assert sum(topic_end_offsets(os.environ["SSP_KAFKA_BOOTSTRAP"], topic).values()) == 12
