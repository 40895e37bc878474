"""Live tweets from the X API v2 filtered stream, through tweepy's ``StreamingClient``.

:class:`TwitterStreamSource` turns the AI keyword list into filter rules, makes the
stream's rules exactly those (deleting any other rule, since a connection receives the
matches of every rule of the app and a stray one would pollute the AI topic), connects,
and yields each received line as the v2 payload X sent: ``{"data": ..., "includes":
..., "matching_rules": ...}``. Keep-alive heartbeats are skipped; a line that is not
JSON is yielded as ``bytes`` so the stream's dead-letter handling records it, as for
:mod:`ssp.sources.replay`; error-only notices (``operational-disconnect``) are logged.

Rules. Keywords are ORed in groups under X's rule length limit (512 characters for
Basic access, ``max_rule_length`` otherwise): single words and hashtags as they are,
anything else quoted. Retweets are excluded by default (``-is:retweet``): they repeat
the original's text, burn the monthly tweet cap, and the original is streamed anyway
when it matches. No language filter by default, since the keyword list and the rest of
the pipeline handle several languages. X matches keywords case-insensitively and has no
notion of acronyms, so the stream is a coarse filter; routing to ``ai_tweets_topic`` is
still decided by :func:`ssp.sources.matches_ai_keywords`.

Credentials come from ``SSP_TWITTER_BEARER_TOKEN`` (or ``TWITTER_BEARER_TOKEN``). The
API address comes from ``base_url`` or ``SSP_TWITTER_API_URL`` (default
``https://api.twitter.com``); plain ``http`` is accepted only for a loopback host, which
is how the tests point the source at a local fake of the API.

Threads. tweepy reads the stream on a daemon thread and hands raw lines over through a
bounded queue, so a slow producer pushes back instead of growing memory. Iteration ends
after ``max_records`` payloads, on :meth:`TwitterStreamSource.stop` (from any thread),
or by raising :class:`TwitterStreamError` when X refuses the token or the rules, or when
tweepy gives up reconnecting. Records received before an error are yielded first.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
import tweepy

from ssp.errors import SspError
from ssp.text import load_ai_keywords

__all__ = [
    "BASE_URL_ENV_VAR",
    "EXPANSIONS",
    "MAX_RULE_LENGTH",
    "RULE_TAG_PREFIX",
    "TOKEN_ENV_VARS",
    "TWEET_FIELDS",
    "USER_FIELDS",
    "X_API_URL",
    "MissingCredentialsError",
    "Rule",
    "TwitterStreamError",
    "TwitterStreamSource",
    "build_rules",
    "resolve_bearer_token",
    "rule_term",
]

log = logging.getLogger(__name__)

TOKEN_ENV_VARS = ("SSP_TWITTER_BEARER_TOKEN", "TWITTER_BEARER_TOKEN")
BASE_URL_ENV_VAR = "SSP_TWITTER_API_URL"
X_API_URL = "https://api.twitter.com"
MAX_RULE_LENGTH = 512
RULE_TAG_PREFIX = "ssp-ai"
EXPANSIONS = ("author_id", "referenced_tweets.id")
TWEET_FIELDS = ("created_at", "lang", "entities", "note_tweet", "referenced_tweets", "author_id")
USER_FIELDS = ("username",)

# tweepy writes these hosts into its URLs; requests to them are sent to base_url instead.
_TWEEPY_HOSTS = ("https://api.twitter.com", "https://api.x.com")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_BARE_TERM = re.compile(r"#?\w+")
# Statuses worth waiting out with tweepy's backoff; any other refusal will not change.
_RETRIED_STATUSES = frozenset({420, 429, 500, 502, 503, 504})
_POLL_SECONDS = 0.2
_JOIN_SECONDS = 5.0


class MissingCredentialsError(SspError, RuntimeError):
    """No bearer token was given or found in the environment."""


class TwitterStreamError(SspError, RuntimeError):
    """X refused a request or the stream could not be kept up; ``status_code`` if HTTP."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Rule:
    """One filtered-stream rule as sent to X."""

    value: str
    tag: str


def resolve_bearer_token(bearer_token: str | None = None) -> str:
    """The given token, else the first of :data:`TOKEN_ENV_VARS` that is set."""
    if bearer_token:
        return bearer_token
    for name in TOKEN_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    raise MissingCredentialsError(
        f"no X API bearer token: set {TOKEN_ENV_VARS[0]} (or {TOKEN_ENV_VARS[1]}) to the "
        "bearer token of your X developer app, or use --source synthetic or replay"
    )


def rule_term(keyword: str) -> str:
    """A keyword in X rule syntax: words and hashtags bare, anything else quoted."""
    keyword = keyword.strip()
    if _BARE_TERM.fullmatch(keyword):
        return keyword
    return '"' + keyword.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_rules(
    keywords: Iterable[str],
    *,
    max_length: int = MAX_RULE_LENGTH,
    lang: str | None = None,
    include_retweets: bool = False,
    tag_prefix: str = RULE_TAG_PREFIX,
) -> list[Rule]:
    """Pack ``keywords`` into as few ``(k1 OR k2 ...) [lang:xx] [-is:retweet]`` rules as fit."""
    suffix = ""
    if lang:
        suffix += f" lang:{lang}"
    if not include_retweets:
        suffix += " -is:retweet"
    terms: list[str] = []
    seen: set[str] = set()
    for keyword in keywords:
        term = rule_term(keyword)
        # X compares keywords without regard to case, so "AI" and "ai" are one term.
        if keyword.strip() and term.casefold() not in seen:
            seen.add(term.casefold())
            terms.append(term)
    if not terms:
        raise ValueError("no keywords to build filter rules from")

    groups: list[list[str]] = []
    length = 0
    for term in terms:
        alone = len(f"({term}){suffix}")
        if alone > max_length:
            raise ValueError(f"keyword {term} does not fit in a {max_length}-character rule")
        if groups and length + len(" OR ") + len(term) <= max_length:
            groups[-1].append(term)
            length += len(" OR ") + len(term)
        else:
            groups.append([term])
            length = alone
    return [
        Rule(value=f"({' OR '.join(group)}){suffix}", tag=f"{tag_prefix}-{number}")
        for number, group in enumerate(groups, 1)
    ]


def _check_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
        return url.rstrip("/")
    raise ValueError(
        f"X API base URL {url!r} must be https (plain http only for a loopback test server)"
    )


class _RebasedSession(requests.Session):
    """Sends tweepy's requests to ``base_url`` and remembers the open stream response."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.stream_response: requests.Response | None = None
        if urlsplit(base_url).hostname in _LOOPBACK_HOSTS:
            # A proxy from the environment cannot reach the caller's own loopback.
            self.trust_env = False

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if isinstance(url, str):
            for host in _TWEEPY_HOSTS:
                if url.startswith(host):
                    url = self.base_url + url[len(host):]
                    break
        response = super().request(method, url, *args, **kwargs)
        if kwargs.get("stream"):
            self.stream_response = response
        return response

    def interrupt_stream(self) -> None:
        """Unblock a read waiting on the stream socket, from another thread."""
        response = self.stream_response
        if response is None:
            return
        try:
            response.raw.shutdown()
        except (AttributeError, OSError, RuntimeError, ValueError):
            # Already closed or released; the reader sees running=False at the next line.
            pass


class _Handoff:
    """What the stream thread passes to the consumer: lines, the end, an error."""

    def __init__(self, maxsize: int) -> None:
        self.lines: queue.Queue[bytes] = queue.Queue(maxsize)
        self.done = threading.Event()
        self.error: TwitterStreamError | None = None
        self.heartbeats = 0
        self.stopping = threading.Event()


class _StreamClient(tweepy.StreamingClient):
    def __init__(self, bearer_token: str, base_url: str, handoff: _Handoff, max_retries: float) -> None:
        super().__init__(bearer_token, return_type=dict, wait_on_rate_limit=False,
                         daemon=True, max_retries=max_retries)
        self.session = _RebasedSession(base_url)
        self.handoff = handoff

    def on_data(self, raw_data: bytes) -> None:
        # The raw line is kept as X sent it; tweepy's own parsing is skipped.
        lines = self.handoff.lines
        while self.running:
            try:
                lines.put(raw_data, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def on_keep_alive(self) -> None:
        self.handoff.heartbeats += 1

    def on_connect(self) -> None:
        # tweepy sets running only inside its thread, so a stop() that came first is
        # honoured here; tweepy checks running right after this call.
        if self.handoff.stopping.is_set():
            self.disconnect()
            return
        log.info("connected to the X filtered stream at %s", self.session.base_url)

    def on_closed(self, response: requests.Response) -> None:
        log.warning("X closed the filtered stream; reconnecting")

    def on_request_error(self, status_code: int) -> None:
        if status_code in _RETRIED_STATUSES:
            log.warning("X filtered stream answered HTTP %d; retrying with backoff", status_code)
            return
        response = self.session.stream_response
        body = response.text if response is not None else ""
        self.handoff.error = TwitterStreamError(
            f"X refused the filtered stream connection: {_describe(status_code, body)}", status_code
        )
        self.disconnect()

    def on_exception(self, exception: Exception) -> None:
        self.handoff.error = TwitterStreamError(f"X filtered stream failed: {exception!r}")
        self.handoff.error.__cause__ = exception

    def on_disconnect(self) -> None:
        self.handoff.done.set()


def _describe(status_code: int, body: str) -> str:
    detail = body.strip()[:300]
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        parts = [str(parsed[key]) for key in ("title", "detail", "reason") if parsed.get(key)]
        parts += [str(error.get("message") or error) for error in parsed.get("errors") or [] if error]
        detail = "; ".join(dict.fromkeys(parts)) or detail
    hint = ""
    if status_code == 401:
        hint = f" (check the bearer token in {TOKEN_ENV_VARS[0]})"
    elif status_code == 403:
        hint = " (the app's access level may not include the filtered stream)"
    return f"HTTP {status_code} {detail}{hint}".rstrip()


def _decode(raw: bytes) -> dict[str, Any] | bytes | None:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if not isinstance(message, dict):
        return raw
    if "data" not in message and "errors" in message:
        log.warning("X filtered stream notice: %s", message["errors"])
        return None
    return message


class TwitterStreamSource:
    """Tweets matching the AI keywords, live from the X API v2 filtered stream.

    Iterate it once; each iteration syncs the rules and opens a new connection. See the
    module docstring for rules, errors and threads.
    """

    def __init__(
        self,
        bearer_token: str | None = None,
        keywords: Iterable[str] | None = None,
        *,
        base_url: str | None = None,
        max_records: int | None = None,
        lang: str | None = None,
        include_retweets: bool = False,
        max_rule_length: int = MAX_RULE_LENGTH,
        manage_rules: bool = True,
        queue_size: int = 10_000,
        max_retries: float = 20,
    ) -> None:
        self.bearer_token = resolve_bearer_token(bearer_token)
        self.base_url = _check_base_url(base_url or os.environ.get(BASE_URL_ENV_VAR) or X_API_URL)
        if max_records is not None and max_records < 0:
            raise ValueError(f"max_records must be 0 or more, got {max_records}")
        self.max_records = max_records
        self.rules = build_rules(
            load_ai_keywords() if keywords is None else keywords,
            max_length=max_rule_length, lang=lang, include_retweets=include_retweets,
        )
        self.manage_rules = manage_rules
        self.queue_size = queue_size
        self.max_retries = max_retries
        self._client: _StreamClient | None = None
        self._handoff: _Handoff | None = None

    # ------------------------------------------------------------------ rules
    def _new_client(self, handoff: _Handoff) -> _StreamClient:
        return _StreamClient(self.bearer_token, self.base_url, handoff, self.max_retries)

    def sync_rules(self) -> list[Rule]:
        """Make the stream's rules exactly :attr:`rules`; return them."""
        client = self._new_client(_Handoff(1))
        try:
            current = client.get_rules().get("data") or []
            wanted = {(rule.value, rule.tag) for rule in self.rules}
            present = {(rule.get("value"), rule.get("tag")) for rule in current}
            stale = [str(rule["id"]) for rule in current if (rule.get("value"), rule.get("tag")) not in wanted]
            missing = [rule for rule in self.rules if (rule.value, rule.tag) not in present]
            # Deleting first frees rule slots and lets a retagged value be added again.
            if stale:
                self._check_rule_reply("delete", client.delete_rules(stale))
                log.info("deleted %d stale filter rules", len(stale))
            if missing:
                reply = client.add_rules([tweepy.StreamRule(value=r.value, tag=r.tag) for r in missing])
                self._check_rule_reply("add", reply)
                log.info("added %d filter rules", len(missing))
        except tweepy.HTTPException as err:
            status = err.response.status_code
            raise TwitterStreamError(
                f"X refused the filter rules request to {self.base_url}: {_describe(status, err.response.text)}",
                status,
            ) from err
        except requests.RequestException as err:
            raise TwitterStreamError(f"cannot reach the X API at {self.base_url}: {err}") from err
        finally:
            client.session.close()
        return list(self.rules)

    @staticmethod
    def _check_rule_reply(action: str, reply: dict[str, Any]) -> None:
        errors = reply.get("errors")
        summary = (reply.get("meta") or {}).get("summary") or {}
        if errors or summary.get("not_created") or summary.get("not_deleted"):
            raise TwitterStreamError(f"X did not {action} every filter rule: {errors or summary}")

    # ------------------------------------------------------------------ stream
    def __iter__(self) -> Iterator[dict[str, Any] | bytes]:
        return self._stream()

    def _stream(self) -> Iterator[dict[str, Any] | bytes]:
        if self._client is not None:
            raise RuntimeError("a TwitterStreamSource can be iterated only once at a time")
        if self.max_records == 0:
            return
        handoff = self._handoff = _Handoff(self.queue_size)
        if self.manage_rules:
            self.sync_rules()
        if handoff.stopping.is_set():
            return
        client = self._client = self._new_client(handoff)
        client.filter(threaded=True, expansions=list(EXPANSIONS), tweet_fields=list(TWEET_FIELDS),
                      user_fields=list(USER_FIELDS))
        count = 0
        try:
            while self.max_records is None or count < self.max_records:
                try:
                    raw = handoff.lines.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    if handoff.done.is_set() and handoff.lines.empty():
                        break
                    continue
                payload = _decode(raw)
                if payload is not None:
                    count += 1
                    yield payload
            if handoff.error is not None:
                raise handoff.error
            if count != self.max_records and not handoff.stopping.is_set():
                raise TwitterStreamError(
                    f"X filtered stream ended after {count} records: tweepy gave up reconnecting "
                    f"after {self.max_retries} retries (see the log for the errors)"
                )
        finally:
            self._shutdown()

    @property
    def heartbeats(self) -> int:
        """Keep-alive lines received on the current or last connection."""
        return self._handoff.heartbeats if self._handoff is not None else 0

    def stop(self) -> None:
        """End the iteration soon; safe to call from any thread, and more than once."""
        handoff = self._handoff
        if handoff is not None:
            handoff.stopping.set()
        client = self._client
        if client is not None:
            client.disconnect()
            client.session.interrupt_stream()

    def _shutdown(self) -> None:
        self.stop()
        client = self._client
        if client is not None and client.thread is not None:
            client.thread.join(_JOIN_SECONDS)
            if client.thread.is_alive():
                log.warning("X stream thread still running after stop; it is a daemon and ends with the process")
        self._client = None

    def __enter__(self) -> TwitterStreamSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
