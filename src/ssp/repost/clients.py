"""The platform clients ``ssp repost`` calls: X (tweepy's v2 ``retweet``) and Bluesky (XRPC ``createRecord``).

Each client does two things: :meth:`repost` one post, and :meth:`already_reposted`, which asks the
platform whether a repost a crash or a timeout left without an outcome happened after all. Every
answer's rate-limit headers (X: ``x-rate-limit-remaining`` / ``x-rate-limit-reset``; Bluesky:
``ratelimit-remaining`` / ``ratelimit-reset``, both resets in epoch seconds) go to a
:class:`RateLimit`, which makes the next call wait until the reset once none remain; a 429 raises
:class:`RateLimited` with the reset time, and the caller waits until then. 401 and 403 raise
:class:`CredentialsError` naming the environment variables to check; a timeout or a lost connection
raises :class:`OutcomeUnknown` (the platform may have acted); other 4xx raise :class:`Rejected`,
5xx :class:`Unavailable`.

Credentials come only from the environment:

* X, OAuth 1.0a user context: ``SSP_X_CONSUMER_KEY``, ``SSP_X_CONSUMER_SECRET``, ``SSP_X_ACCESS_TOKEN``,
  ``SSP_X_ACCESS_TOKEN_SECRET``; or an OAuth 2.0 user token: ``SSP_X_USER_TOKEN``.
* Bluesky: ``SSP_BLUESKY_HANDLE`` and ``SSP_BLUESKY_APP_PASSWORD`` (an app password, not the account's),
  exchanged for a session with ``com.atproto.server.createSession``.

A Bluesky repost is created with a record key chosen (and stored in the ledger) before the call, so
checking an in-flight repost is one ``com.atproto.repo.getRecord``. X has no such key: the check
reads the post's retweeters (``GET /2/tweets/:id/retweeted_by``) for the account's id.
Addresses must be https; plain http only for a loopback host (the tests' local servers).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from ssp.errors import SspError

__all__ = [
    "BLUESKY_ENV", "X_OAUTH1_ENV", "X_OAUTH2_ENV", "BlueskyClient", "CredentialsError", "OutcomeUnknown", "RateLimit",
    "RateLimited", "Rejected", "RepostDone", "RepostError", "Unavailable", "XClient", "make_client", "new_rkey", "tid",
]

X_OAUTH1_ENV = ("SSP_X_CONSUMER_KEY", "SSP_X_CONSUMER_SECRET", "SSP_X_ACCESS_TOKEN", "SSP_X_ACCESS_TOKEN_SECRET")
X_OAUTH2_ENV = "SSP_X_USER_TOKEN"
BLUESKY_ENV = ("SSP_BLUESKY_HANDLE", "SSP_BLUESKY_APP_PASSWORD")
X_API_URL_ENV = "SSP_TWITTER_API_URL"
BLUESKY_PDS_URL_ENV = "SSP_BLUESKY_PDS_URL"
REPOST_COLLECTION = "app.bsky.feed.repost"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_RETWEETER_PAGES = 10
# waited after a 429 that names no reset: a minute, then the answer to the next call decides
_DEFAULT_429_WAIT = 60.0


class CredentialsError(SspError, RuntimeError):
    """The platform refused the credentials (401) or their permissions (403): nothing more can be done."""


class RepostError(SspError, RuntimeError):
    """A call that did not repost; ``answer`` is the platform's answer as text, for the ledger."""

    def __init__(self, message: str, answer: str = "") -> None:
        super().__init__(message)
        self.answer = answer


class RateLimited(RepostError):
    """429: nothing was done; try again at ``reset_at`` (epoch seconds)."""

    def __init__(self, message: str, answer: str, reset_at: float) -> None:
        super().__init__(message, answer)
        self.reset_at = reset_at


class OutcomeUnknown(RepostError):
    """A timeout or a lost connection: the platform may or may not have reposted."""


class Rejected(RepostError):
    """A 4xx other than 401/403/429: this post cannot be reposted (deleted, protected, invalid)."""


class Unavailable(RepostError):
    """A 5xx: the platform failed; nothing is known to have happened, and a retry may work."""


@dataclass(frozen=True)
class RepostDone:
    """A repost made: what it is called on the platform (a record URI, the retweeted id) and the answer."""

    ref: str
    answer: str


def tid(microseconds: int, clock_id: int) -> str:
    """An AT Protocol TID (a record key): 53 bits of microseconds and 10 of clock id, base32-sortable.

    >>> tid(1_725_911_162_329_308, 7)
    '3l3qo2vxaaw2b'
    >>> len(tid(0, 0)), tid(0, 0) < tid(1, 0)
    (13, True)
    """
    value = ((microseconds & ((1 << 53) - 1)) << 10) | (clock_id & 0x3FF)
    return "".join(_TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
        return url.rstrip("/")
    raise SspError(f"{what} {url!r} must be https (plain http only for a loopback test server)")


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


class RateLimit:
    """When the next call may go, from the last answer's rate-limit headers and 429s.

    >>> limit = RateLimit("x-rate-limit-", clock=lambda: 100.0)
    >>> limit.update({"x-rate-limit-remaining": "0", "x-rate-limit-reset": "130"})
    >>> limit.wait_seconds()
    30.0
    >>> limit.update({"x-rate-limit-remaining": "4", "x-rate-limit-reset": "130"}); limit.wait_seconds()
    0.0
    """

    def __init__(self, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self.prefix = prefix
        self.clock = clock
        self.not_before = 0.0
        self.remaining: int | None = None

    def reset_at(self, headers: Mapping[str, str]) -> float | None:
        value = headers.get(self.prefix + "reset")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    def update(self, headers: Mapping[str, str]) -> None:
        remaining = headers.get(self.prefix + "remaining")
        try:
            self.remaining = int(remaining) if remaining is not None else None
        except ValueError:
            self.remaining = None
        reset = self.reset_at(headers)
        if self.remaining == 0 and reset is not None:
            self.not_before = max(self.not_before, reset)
        elif self.remaining:  # calls left in this window: an earlier wait is over
            self.not_before = 0.0

    def limited(self, headers: Mapping[str, str]) -> float:
        """A 429's reset time: the header, else Retry-After, else a minute from now; also the next call's wait."""
        reset = self.reset_at(headers)
        if reset is None:
            retry_after = headers.get("retry-after")
            reset = self.clock() + (float(retry_after) if retry_after and retry_after.isdigit() else _DEFAULT_429_WAIT)
        self.not_before = max(self.not_before, reset)
        return reset

    def wait_seconds(self) -> float:
        return max(0.0, self.not_before - self.clock())


def _answer(response: requests.Response) -> str:
    return f"HTTP {response.status_code} {response.text.strip()[:500]}".strip()


class _Client:
    """What the two clients share: the rate limit, the error mapping of an HTTP answer."""

    platform = ""
    credential_hint = ""

    def __init__(self, rate_limit: RateLimit) -> None:
        self.rate_limit = rate_limit

    def _raise_for(self, response: requests.Response, doing: str) -> None:
        status = response.status_code
        self.rate_limit.update(response.headers)
        if status < 400:
            return
        answer = _answer(response)
        if status == 429:
            reset = self.rate_limit.limited(response.headers)
            raise RateLimited(f"{self.platform} rate limit reached while {doing}", answer, reset)
        if status in (401, 403):
            raise CredentialsError(f"{self.platform} refused {doing}: {answer}; {self.credential_hint}")
        if status >= 500:
            raise Unavailable(f"{self.platform} failed while {doing}: {answer}", answer)
        raise Rejected(f"{self.platform} rejected {doing}: {answer}", answer)


class BlueskyClient(_Client):
    """Reposts on Bluesky through a PDS's XRPC API; see the module docstring."""

    platform = "Bluesky"
    credential_hint = f"check {BLUESKY_ENV[0]} and {BLUESKY_ENV[1]} (an app password from the account's settings)"

    def __init__(self, pds_url: str | None = None, *, timeout: float = 10.0, clock: Callable[[], float] = time.time):
        super().__init__(RateLimit("ratelimit-", clock))
        self.url = _check_url(pds_url or _env(BLUESKY_PDS_URL_ENV) or "https://bsky.social", "Bluesky PDS URL")
        self.handle, self.password = _env(BLUESKY_ENV[0]), _env(BLUESKY_ENV[1])
        if not self.handle or not self.password:
            raise CredentialsError(f"no Bluesky credentials: set {BLUESKY_ENV[0]} (the account's handle) and "
                                   f"{BLUESKY_ENV[1]} (an app password), or keep --dry-run")
        self.timeout = timeout
        self.session = requests.Session()
        if urlsplit(self.url).hostname in _LOOPBACK_HOSTS:
            self.session.trust_env = False  # a proxy from the environment cannot reach our own loopback
        self.did: str | None = None
        self._access: str | None = None

    def _call(self, method: str, nsid: str, doing: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, f"{self.url}/xrpc/{nsid}", timeout=self.timeout, **kwargs)
        except (requests.Timeout, requests.ConnectionError) as err:
            raise OutcomeUnknown(f"Bluesky did not answer while {doing}: {err}", str(err)) from err

    def sign_in(self) -> None:
        response = self._call("POST", "com.atproto.server.createSession", "signing in",
                              json={"identifier": self.handle, "password": self.password})
        if response.status_code == 400 or response.status_code == 401:  # AuthenticationRequired: a wrong password
            raise CredentialsError(f"Bluesky refused the sign-in as {self.handle}: {_answer(response)}; "
                                   f"{self.credential_hint}")
        self._raise_for(response, "signing in")
        body = response.json()
        self.did, self._access = body["did"], body["accessJwt"]

    def _authorised(self, method: str, nsid: str, doing: str, **kwargs: Any) -> requests.Response:
        if self._access is None:
            self.sign_in()
        response = self._call(method, nsid, doing, headers={"Authorization": f"Bearer {self._access}"}, **kwargs)
        if response.status_code == 400 and b"ExpiredToken" in response.content:
            self.sign_in()  # sessions last a few hours; a long run signs in again
            response = self._call(method, nsid, doing, headers={"Authorization": f"Bearer {self._access}"}, **kwargs)
        return response

    def repost(self, target: str, cid: str | None, rkey: str) -> RepostDone:
        doing = f"reposting {target}"
        if not cid:
            raise Rejected(f"Bluesky post {target} has no CID: a repost must name it", "no cid")
        if self._access is None:
            self.sign_in()
        record = {"$type": REPOST_COLLECTION, "subject": {"uri": target, "cid": cid},
                  "createdAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        response = self._authorised("POST", "com.atproto.repo.createRecord", doing,
                                    json={"repo": self.did, "collection": REPOST_COLLECTION, "rkey": rkey,
                                          "record": record})
        self._raise_for(response, doing)
        return RepostDone(response.json().get("uri", ""), _answer(response))

    def already_reposted(self, target: str, rkey: str | None) -> RepostDone | None:
        """The repost record ``rkey`` if it exists (and names ``target``), else None."""
        if not rkey:
            return None
        if self._access is None:
            self.sign_in()
        doing = f"checking the repost of {target}"
        response = self._authorised("GET", "com.atproto.repo.getRecord", doing,
                                    params={"repo": self.did, "collection": REPOST_COLLECTION, "rkey": rkey})
        if response.status_code in (400, 404) and b"RecordNotFound" in response.content:
            self.rate_limit.update(response.headers)
            return None
        self._raise_for(response, doing)
        body = response.json()
        subject = (body.get("value") or {}).get("subject") or {}
        return RepostDone(body.get("uri", ""), _answer(response)) if subject.get("uri") == target else None


class XClient(_Client):
    """Retweets on X with tweepy's v2 client; see the module docstring."""

    platform = "X"
    credential_hint = (f"check {', '.join(X_OAUTH1_ENV)} (OAuth 1.0a, with write permission) or {X_OAUTH2_ENV} "
                       "(an OAuth 2.0 user token with tweet.write)")

    def __init__(self, api_url: str | None = None, *, timeout: float = 10.0, clock: Callable[[], float] = time.time):
        import tweepy

        from ssp.sources.twitter import _RebasedSession

        super().__init__(RateLimit("x-rate-limit-", clock))
        self.url = _check_url(api_url or _env(X_API_URL_ENV) or "https://api.twitter.com", "X API URL")
        oauth1 = [_env(name) for name in X_OAUTH1_ENV]
        token = _env(X_OAUTH2_ENV)
        if all(oauth1):
            self.client = tweepy.Client(consumer_key=oauth1[0], consumer_secret=oauth1[1], access_token=oauth1[2],
                                        access_token_secret=oauth1[3], return_type=requests.Response)
            self.user_auth = True
        elif token:
            self.client = tweepy.Client(bearer_token=token, return_type=requests.Response)
            self.user_auth = False
        else:
            raise CredentialsError(f"no X credentials: set {', '.join(X_OAUTH1_ENV)} (OAuth 1.0a user context) or "
                                   f"{X_OAUTH2_ENV} (an OAuth 2.0 user token), or keep --dry-run")

        class _Session(_RebasedSession):
            def request(self, method, url, *args, **kwargs):
                kwargs.setdefault("timeout", timeout)
                return super().request(method, url, *args, **kwargs)

        self.client.session = _Session(self.url)

    def _do(self, doing: str, call: Callable[[], requests.Response]) -> requests.Response:
        import tweepy

        try:
            response = call()
        except tweepy.HTTPException as err:
            self._raise_for(err.response, doing)
            raise  # pragma: no cover - _raise_for raises for every status tweepy raises for
        except (requests.Timeout, requests.ConnectionError) as err:
            raise OutcomeUnknown(f"X did not answer while {doing}: {err}", str(err)) from err
        self.rate_limit.update(response.headers)
        return response

    def user_id(self) -> str:
        response = self._do("reading the account", lambda: self.client.get_me(user_auth=self.user_auth))
        return str(response.json()["data"]["id"])

    def repost(self, target: str, cid: str | None, rkey: str | None) -> RepostDone:
        doing = f"retweeting {target}"
        response = self._do(doing, lambda: self.client.retweet(target, user_auth=self.user_auth))
        data = (response.json() or {}).get("data") or {}
        if not data.get("retweeted"):
            raise Rejected(f"X did not retweet {target}: {_answer(response)}", _answer(response))
        return RepostDone(target, _answer(response))

    def already_reposted(self, target: str, rkey: str | None) -> RepostDone | None:
        """Whether the account is among the post's retweeters (the first pages of them)."""
        me = self.user_id()
        token = None
        for _ in range(_RETWEETER_PAGES):
            params = {"pagination_token": token} if token else {}
            response = self._do(f"checking the retweet of {target}",
                                lambda p=params: self.client.get_retweeters(target, user_auth=self.user_auth, **p))
            body = response.json() or {}
            if any(str(user.get("id")) == me for user in body.get("data") or ()):
                return RepostDone(target, _answer(response))
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                return None
        return None


def make_client(platform: str, *, x_api_url: str | None = None, bluesky_pds_url: str | None = None,
                timeout: float = 10.0):
    """The client of ``platform`` (``x`` or ``bluesky``) with credentials from the environment."""
    if platform == "x":
        return XClient(_env(X_API_URL_ENV) or x_api_url, timeout=timeout)
    if platform == "bluesky":
        return BlueskyClient(_env(BLUESKY_PDS_URL_ENV) or bluesky_pds_url, timeout=timeout)
    raise SspError(f"--platform must be x or bluesky, got {platform!r}")


def new_rkey(clock: Callable[[], float] = time.time) -> str:
    """A fresh record key for a repost: now, with a random clock id."""
    return tid(int(clock() * 1_000_000), secrets.randbelow(1024))
