"""Local HTTP servers that speak X API v2 retweets and Bluesky's XRPC, for the repost tests (no internet).

Both keep what was reposted, every call with its time, and a ``script``: what the next repost calls answer,
one entry per call (``"ok"`` when the script is empty):

* ``("429", seconds)`` -- refuse with 429 and a rate-limit reset that many seconds away;
* ``"401"`` / ``"403"`` -- refuse the credentials;
* ``("slow", seconds)`` -- repost, then answer only after ``seconds`` (longer than the client's timeout);
* ``("hang", seconds)`` -- the same: the test kills the client meanwhile (a crash between call and outcome);
* ``"500"`` -- fail without reposting.

``remaining`` is the rate-limit remainder a successful answer reports, with ``reset_in`` seconds to the reset
(rounded up to the whole second, as the headers give epoch seconds).
"""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DID = "did:plc:sspreposter"
HANDLE = "ssp-bot.bsky.social"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
ACCESS_JWT = "access-jwt-1"
X_USER_ID = "4242"
X_OAUTH1 = {"SSP_X_CONSUMER_KEY": "ck", "SSP_X_CONSUMER_SECRET": "cs", "SSP_X_ACCESS_TOKEN": f"{X_USER_ID}-at",
            "SSP_X_ACCESS_TOKEN_SECRET": "ats"}
X_USER_TOKEN = "oauth2-user-token"


class _FakeApi(ThreadingHTTPServer):
    daemon_threads = True
    limit_prefix = ""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list = []
        self.calls: list[tuple[float, str, str]] = []  # (time, method, path)
        self.remaining = 100
        self.reset_in = 900.0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()

    def limit_headers(self, remaining: int, reset_in: float) -> dict[str, str]:
        p = self.limit_prefix
        return {f"{p}limit": "300", f"{p}remaining": str(remaining), f"{p}reset": str(math.ceil(time.time() + reset_in))}

    def next_action(self):
        with self.lock:
            return self.script.pop(0) if self.script else "ok"

    def scripted(self, handler: _Handler, perform) -> None:
        """Answer one repost call as the script says; ``perform`` reposts and returns the success body."""
        action = handler.server.next_action()
        kind, seconds = (action, 0.0) if isinstance(action, str) else action
        if kind == "429":
            handler.reply(429, {"title": "Too Many Requests", "error": "RateLimitExceeded"},
                          self.limit_headers(0, seconds))
            return
        if kind in ("401", "403", "500"):
            handler.reply(int(kind), {"title": "refused", "error": "AuthenticationRequired" if kind != "500" else "x"})
            return
        body = perform()
        if kind in ("slow", "hang"):
            time.sleep(seconds)
        handler.reply(200, body, self.limit_headers(self.remaining, self.reset_in))

    def handle_request(self, handler: _Handler, method: str, path: str, query: dict, body: dict) -> None:
        raise NotImplementedError


class FakeBluesky(_FakeApi):
    """A PDS: createSession, createRecord and getRecord of app.bsky.feed.repost records."""

    limit_prefix = "ratelimit-"

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, dict] = {}  # rkey -> record
        self.created: list[str] = []  # the subject URI of each repost created

    def handle_request(self, handler, method, path, query, body) -> None:
        if path == "/xrpc/com.atproto.server.createSession" and method == "POST":
            if body.get("identifier") != HANDLE or body.get("password") != APP_PASSWORD:
                handler.reply(401, {"error": "AuthenticationRequired", "message": "Invalid identifier or password"})
                return
            handler.reply(200, {"did": DID, "handle": HANDLE, "accessJwt": ACCESS_JWT, "refreshJwt": "r"})
            return
        if handler.headers.get("Authorization") != f"Bearer {ACCESS_JWT}":
            handler.reply(401, {"error": "AuthenticationRequired"})
            return
        if path == "/xrpc/com.atproto.repo.createRecord" and method == "POST":
            if body.get("repo") != DID or body.get("collection") != "app.bsky.feed.repost":
                handler.reply(400, {"error": "InvalidRequest", "message": "bad repo or collection"})
                return
            record, rkey = body["record"], body["rkey"]
            if set(record["subject"]) != {"uri", "cid"} or record["$type"] != "app.bsky.feed.repost":
                handler.reply(400, {"error": "InvalidRequest", "message": "bad record"})
                return

            def perform() -> dict:
                with self.lock:
                    self.records[rkey] = record
                    self.created.append(record["subject"]["uri"])
                return {"uri": f"at://{DID}/app.bsky.feed.repost/{rkey}", "cid": "bafyrepost"}

            self.scripted(handler, perform)
            return
        if path == "/xrpc/com.atproto.repo.getRecord" and method == "GET":
            rkey = query.get("rkey", [""])[0]
            if rkey not in self.records:
                handler.reply(400, {"error": "RecordNotFound", "message": f"Could not locate record: {rkey}"},
                              self.limit_headers(self.remaining, self.reset_in))
                return
            handler.reply(200, {"uri": f"at://{DID}/app.bsky.feed.repost/{rkey}", "cid": "bafyrepost",
                                "value": self.records[rkey]}, self.limit_headers(self.remaining, self.reset_in))
            return
        handler.reply(404, {"error": "MethodNotImplemented"})


class FakeX(_FakeApi):
    """X API v2: POST /2/users/:id/retweets, GET /2/tweets/:id/retweeted_by, GET /2/users/me."""

    limit_prefix = "x-rate-limit-"

    def __init__(self) -> None:
        super().__init__()
        self.retweeted: list[str] = []

    def _authorised(self, handler) -> bool:
        header = handler.headers.get("Authorization", "")
        return header == f"Bearer {X_USER_TOKEN}" or (header.startswith("OAuth ") and 'oauth_consumer_key="ck"' in header
                                                      and f'oauth_token="{X_USER_ID}-at"' in header)

    def handle_request(self, handler, method, path, query, body) -> None:
        if not self._authorised(handler):
            handler.reply(401, {"title": "Unauthorized", "detail": "Unauthorized", "status": 401})
            return
        parts = path.strip("/").split("/")
        if parts == ["2", "users", "me"]:
            handler.reply(200, {"data": {"id": X_USER_ID, "username": "sspbot"}})
        elif method == "POST" and parts[:2] == ["2", "users"] and parts[3:] == ["retweets"]:
            if parts[2] != X_USER_ID:
                handler.reply(403, {"title": "Forbidden", "detail": "not your account"})
                return
            tweet_id = str(body.get("tweet_id"))

            def perform() -> dict:
                with self.lock:
                    self.retweeted.append(tweet_id)
                return {"data": {"retweeted": True}}

            self.scripted(handler, perform)
        elif method == "GET" and parts[:2] == ["2", "tweets"] and parts[3:] == ["retweeted_by"]:
            users = [{"id": X_USER_ID, "name": "ssp", "username": "sspbot"}] if parts[2] in self.retweeted else []
            handler.reply(200, {"data": users, "meta": {"result_count": len(users)}} if users else
                          {"meta": {"result_count": 0}}, self.limit_headers(self.remaining, self.reset_in))
        else:
            handler.reply(404, {"title": "Not Found"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def reply(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test) or was killed

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        self.server.calls.append((time.monotonic(), method, parts.path))
        self.server.handle_request(self, method, parts.path, parse_qs(parts.query), body)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")
