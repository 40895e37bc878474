"""What ssp's web apps share: security headers, strict query-string parsing, link safety, error
pages and the WSGI server that runs them (waitress; Werkzeug's server only serves the tests).

Tweet text and links are untrusted. Templates rely on Jinja's autoescaping, scripts build the
page with DOM APIs, the Content-Security-Policy forbids inline scripts, and only http(s) links
become ``href``\\ s:

>>> safe_href("https://example.org/a?b=1")
'https://example.org/a?b=1'
>>> safe_href("javascript:alert(1)") is None
True
>>> link_domain("https://WWW.Example.ORG:8443/x")
'example.org'
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import OperationalError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from ssp.errors import SspError, database_error, database_reason
from ssp.signals import stop_on_sigterm
from ssp.text import link_domain

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

# No 'unsafe-inline' anywhere: scripts and styles come from /static only, so an injected
# <script> or style attribute in tweet text would not run even if escaping failed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
API_PREFIX = "/api/"
_MAX_INT_DIGITS = 9
_FLOAT = re.compile(r"^[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?$|^[0-9]+\.$")


class ParameterError(SspError, ValueError):
    """A query-string parameter is missing, repeated, unknown or out of range (HTTP 400)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class UnavailableError(SspError, RuntimeError):
    """The app runs but what it shows is not there yet, e.g. a version's tables (HTTP 503)."""

    def __init__(self, message: str, **details) -> None:
        super().__init__(message)
        self.details = details


# ---------------------------------------------------------------- query-string parsing
def reject_unknown(args: MultiDict, allowed: Collection[str]) -> None:
    """A misspelt parameter (``?pgae=2``) is an error, not silently the default."""
    for name in args:
        if name not in allowed:
            expected = ", ".join(sorted(allowed)) or "none"
            raise ParameterError(name, f"unknown parameter {name!r}: expected one of {expected}")


def single_value(args: MultiDict, name: str) -> str | None:
    """The one value of ``name``; an empty value (an empty form field) counts as absent."""
    values = args.getlist(name)
    if len(values) > 1:
        raise ParameterError(name, f"parameter {name!r} is given {len(values)} times: give it once")
    value = values[0].strip() if values else ""
    return value or None


def int_param(args: MultiDict, name: str, default: int, minimum: int, maximum: int) -> int:
    """An integer in ``[minimum, maximum]``, written in plain ASCII digits."""
    raw = single_value(args, name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_INT_DIGITS) or not minimum <= int(raw) <= maximum:
        raise ParameterError(name, f"{name} must be an integer from {minimum} to {maximum}, got {raw!r}")
    return int(raw)


def probability_param(args: MultiDict, name: str) -> float | None:
    """A probability in ``[0, 1]`` (``0.8``, ``.8``, ``1``), or None when absent."""
    raw = single_value(args, name)
    if raw is None:
        return None
    value = float(raw) if _FLOAT.match(raw) else None
    if value is None or not 0.0 <= value <= 1.0:
        raise ParameterError(name, f"{name} must be a number from 0 to 1, got {raw!r}")
    return value


def text_param(args: MultiDict, name: str, max_length: int, extra_chars: str = "") -> str | None:
    """A plain word: letters and digits plus ``extra_chars``, at most ``max_length`` long."""
    raw = single_value(args, name)
    if raw is None:
        return None
    if len(raw) > max_length:
        raise ParameterError(name, f"{name} must be at most {max_length} characters, got {len(raw)}")
    bad = sorted({c for c in raw if not (c.isalnum() or c in extra_chars)})
    if bad:
        allowed = "letters, digits" + "".join(f", {c!r}" for c in extra_chars)
        raise ParameterError(name, f"{name} {raw!r} holds {''.join(bad)!r}: use only {allowed}")
    return raw


# ---------------------------------------------------------------- links
def safe_href(url: str) -> str | None:
    """``url`` if it may become a link: http(s) with a host and no whitespace or control characters."""
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def link_view(url: str) -> dict:
    """A link as the pages and the JSON API show it; ``href`` is None when it must stay text."""
    return {"url": url, "domain": link_domain(url), "href": safe_href(url)}


# ---------------------------------------------------------------- responses
def wants_json() -> bool:
    return request.path.startswith(API_PREFIX)


def error_response(status: int, message: str, **details) -> Response:
    """A JSON error for the API, an HTML page for the views; both carry ``message``."""
    if wants_json():
        response = jsonify({"error": message, **details})
    else:
        refresh = 10 if status == 503 else None
        response = Response(render_template("error.html", status=status, message=message, refresh=refresh))
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = "10"
    return response


def install_common(app: Flask) -> None:
    """Security headers on every response and one error format for the app's errors (a database that
    cannot be reached answers 503 saying so)."""

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        if request.path.startswith(API_PREFIX):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(ParameterError)
    def bad_parameter(err: ParameterError) -> Response:
        return error_response(400, str(err), parameter=err.parameter)

    @app.errorhandler(UnavailableError)
    def unavailable(err: UnavailableError) -> Response:
        return error_response(503, str(err), **err.details)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        return error_response(err.code or 500, f"{err.name}: {err.description}")

    @app.errorhandler(OperationalError)
    def database_unreachable(err: OperationalError) -> Response:
        return error_response(503, f"cannot reach the database: {database_reason(err)}")


# ---------------------------------------------------------------- serving
# waitress's worker threads: the live page polls three endpoints every few seconds per viewer
WSGI_THREADS = 8
# how long a request still running at shutdown may take to finish; idle connections wait for nothing
SHUTDOWN_GRACE_SECONDS = 3


def server_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def bind_listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv6 when the host has a ':'; port 0 picks a free one).

    One socket, as Werkzeug binds: a name such as ``localhost`` must not become one socket per
    address with a different free port each. Raises OSError when the address is taken or unknown.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        # a port left in TIME_WAIT by the previous run may be bound again; a listening one may not
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def make_production_server(app: Flask, host: str, port: int, connections: dict):
    """A waitress server for ``app`` listening on ``host:port``; ``connections`` becomes its socket map
    (the listening socket and every client connection), so whoever stops it can close them all.

    Raises OSError when the address is taken or cannot be bound.
    """
    from waitress.server import create_server

    sock = bind_listening_socket(host, port)
    try:
        return create_server(app, map=connections, sockets=[sock], threads=WSGI_THREADS, ident="waitress")
    except BaseException:
        sock.close()
        raise


def make_wsgi_server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """Werkzeug's threaded WSGI server for ``app``, for the tests only (tests/browser.py serves
    apps in a thread with it); the commands serve with :func:`serve_app`. Port 0 picks a free one.

    Raises OSError when the address is taken or cannot be bound.
    """
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    # a browser's idle keep-alive connection must not hold the process open after Ctrl-C
    server.daemon_threads = True
    server.block_on_close = False
    return server


def serve_app(app: Flask, host: str, port: int, on_start: Callable[[str], None] = print) -> float:
    """Serve ``app`` on waitress until Ctrl-C or SIGTERM; tells ``on_start`` the URL once it listens,
    returns seconds served.

    Stopping closes the listening socket and every connection at once: an idle keep-alive
    connection (a browser tab) holds nothing open, a request still running gets
    ``SHUTDOWN_GRACE_SECONDS``. Raises OSError when the address is taken or cannot be bound.
    """
    connections: dict = {}
    server = make_production_server(app, host, port, connections)
    try:
        on_start(server_url(host, server.effective_port))
        start = time.monotonic()
        # SIGTERM (a supervisor, `ssp demo`) stops the app as cleanly as Ctrl-C does
        with stop_on_sigterm():
            try:
                # waitress's loop returns on KeyboardInterrupt; one raised outside the loop lands here
                server.run()
            except KeyboardInterrupt:
                pass
        return time.monotonic() - start
    finally:
        server.task_dispatcher.shutdown(timeout=SHUTDOWN_GRACE_SECONDS)
        for connection in list(connections.values()):  # the listening socket, its trigger, the clients
            connection.close()


# ---------------------------------------------------------------- the app factories' settings
def factory_settings(config: Mapping[str, Any] | str | None, given: Mapping[str, Any],
                     defaults: Mapping[str, Callable[[], Any]]) -> dict[str, Any]:
    """An app factory's settings, as Flask's tutorial reads them: ``config``'s keys (a string is the
    ``SSP_DATABASE_URL``), then the factory's keyword arguments that are not None (``given``), then, for
    each key still missing, its default (``defaults``: the environment, else gin's configuration).

    >>> factory_settings("postgresql://db", {"TESTING": None}, {"TESTING": lambda: False})
    {'SSP_DATABASE_URL': 'postgresql://db', 'TESTING': False}
    >>> factory_settings({"SSP_WEB": None}, {"TESTING": True}, {"SSP_WEB": lambda: "gin's"})
    {'SSP_WEB': None, 'TESTING': True}
    """
    settings = dict({"SSP_DATABASE_URL": config} if isinstance(config, str) else (config or {}))
    settings.update({key: value for key, value in given.items() if value is not None})
    for key, default in defaults.items():
        if key not in settings:
            settings[key] = default()
    return settings


# ---------------------------------------------------------------- the commands' start and stop
def check_database(engine, app_name: str, then: Callable[[], object] | None = None):
    """``SELECT 1`` on ``engine``, then ``then()`` (what the app reads first); returns what ``then`` returns.

    A database that cannot be reached becomes one :class:`SspError` saying what to do about it.
    """
    from sqlalchemy import text

    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return then() if then is not None else None
    except OperationalError as err:
        raise database_error(err, f"starting the {app_name}") from err


def serve_command(app: Flask, engine, host: str, port: int, on_start: Callable[[str], None]) -> float:
    """:func:`serve_app` for a command: an address that cannot be taken is one clear :class:`SspError`, and
    ``engine`` is disposed of however serving ends. Returns the seconds served."""
    try:
        return serve_app(app, host, port, on_start=on_start)
    except OSError as err:
        raise SspError(f"cannot listen on {host}:{port}: {err.strerror or err} (pick another --port or --host)") from err
    finally:
        engine.dispose()
