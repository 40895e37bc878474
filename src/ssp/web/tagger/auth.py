"""Signing annotators in and out: the ``auth`` blueprint, server-side sessions, CSRF, sign-in rate limits.

Annotators sign in with a name and the shared token from ``$SSP_TAGGER_TOKEN``. The session
cookie (HttpOnly, SameSite=Lax) holds only a random session id and the CSRF token; which
annotator a session id belongs to, and until when, is kept on the server (:class:`SessionStore`),
so signing out ends the session for every copy of the cookie, and a session ends after
``WebConfig.tagger_session_hours`` whatever the cookie says. Every POST needs the session's
CSRF token (header ``X-CSRF-Token`` or form field ``csrf_token``): 401 without a session, 403
without the token. Wrong tokens are logged and limited per client address and per name
(:class:`LoginLimiter`): past the limit, 429 with ``Retry-After``.
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, session, url_for

from ssp.web.common import API_PREFIX, error_response
from ssp.web.tagger.names import annotator_name

log = logging.getLogger(__name__)

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSIONS = "ssp_tagger_sessions"
LIMITER = "ssp_tagger_login_limiter"
MAX_LOGIN_FAILURES = 5
LOGIN_FAILURE_WINDOW_SECONDS = 60.0
MAX_SESSIONS = 10_000
_PUBLIC_ENDPOINTS = ("static", "auth.login_page", "auth.login")

bp = Blueprint("auth", __name__)


class SessionStore:
    """Signed-in sessions by id, each with its annotator and end; in this process's memory, so a restart signs
    everyone out. At most ``max_sessions``: past that the oldest ends."""

    def __init__(self, lifetime_seconds: float, max_sessions: int = MAX_SESSIONS, clock=time.monotonic) -> None:
        self.lifetime_seconds = lifetime_seconds
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def issue(self, annotator: str) -> str:
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                self._sessions = {k: v for k, v in self._sessions.items() if v[1] > now}
            while len(self._sessions) >= self.max_sessions:  # dicts keep insertion order: the oldest first
                del self._sessions[next(iter(self._sessions))]
            self._sessions[session_id] = (annotator, now + self.lifetime_seconds)
        return session_id

    def annotator(self, session_id: str | None) -> str | None:
        """Who signed in with ``session_id``; None when it is unknown, signed out or over its lifetime."""
        if not session_id:
            return None
        with self._lock:
            entry = self._sessions.get(session_id)
            if entry is None:
                return None
            if entry[1] <= self._clock():
                del self._sessions[session_id]
                return None
            return entry[0]

    def revoke(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)


class LoginLimiter:
    """Wrong sign-ins per key (a client address, a name) in a sliding window; past ``max_failures`` the key
    must wait until its oldest failure leaves the window."""

    def __init__(self, max_failures: int = MAX_LOGIN_FAILURES, window_seconds: float = LOGIN_FAILURE_WINDOW_SECONDS,
                 clock=time.monotonic, max_keys: int = 100_000) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.max_keys = max_keys
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        return times

    def retry_after(self, keys: Iterable[str]) -> int:
        """Seconds until any of ``keys`` may try again; 0 when all may now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self.max_failures:
                    wait = max(wait, times[-self.max_failures] + self.window_seconds - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, keys: Iterable[str]) -> int:
        """Count a wrong sign-in for each of ``keys``; returns the most failures any of them has in the window."""
        now = self._clock()
        most = 0
        with self._lock:
            if len(self._failures) > self.max_keys:
                self._failures = {k: t for k, t in self._failures.items() if t and t[-1] > now - self.window_seconds}
            for key in keys:
                times = self._recent(key, now)
                times.append(now)
                self._failures[key] = times
                most = max(most, len(times))
        return most

    def succeeded(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


def init_app(app, session_hours: float) -> None:
    """The server-side session store and the sign-in limiter of ``app``."""
    app.extensions[SESSIONS] = SessionStore(session_hours * 3600.0)
    app.extensions[LIMITER] = LoginLimiter()
    app.jinja_env.globals["csrf_token"] = csrf_token


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok() -> bool:
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    expected = session.get("csrf") or ""
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def safe_next(target: str | None) -> str:
    """Only a path on this site after sign-in: never another host (an open redirect), nor a control character
    (a CR or LF would split the Location header)."""
    index = url_for("tagger.tables_page")
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return index
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return index
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else index


def _sessions() -> SessionStore:
    return current_app.extensions[SESSIONS]


@bp.before_app_request
def require_session() -> Response | None:
    """Every page and API call needs a signed-in annotator; every POST also the session's CSRF token."""
    if request.endpoint in _PUBLIC_ENDPOINTS:
        return None
    annotator = _sessions().annotator(session.get("sid"))
    if not annotator:
        session.pop("sid", None)
        session.pop("annotator", None)
        if request.path.startswith(API_PREFIX) or request.method != "GET":
            return error_response(401, "sign in first: POST /login with your name and the tagger's token")
        return redirect(url_for("auth.login_page", next=request.full_path.rstrip("?")))
    if request.method not in ("GET", "HEAD", "OPTIONS") and not csrf_ok():
        return error_response(403, f"missing or wrong CSRF token: send the page's token in the {CSRF_HEADER} header "
                                   f"or the {CSRF_FIELD} form field")
    g.annotator = annotator
    return None


@bp.get("/login")
def login_page() -> str:
    return render_template("tagger/login.html", next=safe_next(request.args.get("next")), error=None, name="")


@bp.post("/login")
def login() -> Response | tuple[str, int] | tuple[str, int, dict]:
    name_raw = request.form.get("name", "")
    target = safe_next(request.form.get("next"))
    if not csrf_ok():
        return render_template("tagger/login.html", next=target, name=name_raw,
                               error="the sign-in form expired: try again"), 403
    try:
        name = annotator_name(name_raw)
    except ValueError as err:
        return render_template("tagger/login.html", next=target, name=name_raw, error=str(err)), 400
    limiter: LoginLimiter = current_app.extensions[LIMITER]
    keys = (f"address:{request.remote_addr}", f"name:{name.casefold()}")
    wait = limiter.retry_after(keys)
    if wait:
        log.warning("tagger sign-in refused for %r from %s: too many wrong tokens, %d s to wait", name,
                    request.remote_addr, wait)
        return render_template("tagger/login.html", next=target, name=name,
                               error=f"too many wrong sign-ins: try again in {wait} s"), 429, {"Retry-After": str(wait)}
    token = request.form.get("token", "")
    if not hmac.compare_digest(token.encode(), current_app.config["SSP_TAGGER_TOKEN"].encode()):
        failures = limiter.failed(keys)
        log.warning("tagger sign-in with a wrong token for %r from %s (%d in the last %.0f s)", name,
                    request.remote_addr, failures, limiter.window_seconds)
        return render_template("tagger/login.html", next=target, name=name,
                               error="wrong token: ask whoever runs the tagger for SSP_TAGGER_TOKEN"), 401
    limiter.succeeded(keys)
    _sessions().revoke(session.get("sid"))
    session.clear()  # a fresh session (and CSRF token) at sign-in: nothing carried over from before
    session.permanent = True  # the cookie lasts PERMANENT_SESSION_LIFETIME, as the server-side session does
    session["sid"] = _sessions().issue(name)
    session["annotator"] = name  # for the templates only: who is signed in is the server's session store
    csrf_token()
    log.info("tagger sign-in: %r from %s", name, request.remote_addr)
    return redirect(target)


@bp.post("/logout")
def logout() -> Response:
    _sessions().revoke(session.get("sid"))
    session.clear()
    return redirect(url_for("auth.login_page"))

