"""The AI-tweets dashboard: what the live classifier (``ssp classify``) found, as pages and as JSON.

Views, each backed by a JSON endpoint that returns what the page renders:

==========================  =================================  ==========================================
page                        JSON                               shows
==========================  =================================  ==========================================
``/``                       ``/api/ai-tweets``                 AI tweets, newest first, by page; filters
                                                               ``threshold`` (min P(AI)) and ``domain``
``/live``                   ``/api/live?after=<cursor>``       AI tweets as they arrive (the page polls)
                            ``/api/stats/per-minute``          AI tweets per minute (also
                                                               ``/chart/per-minute.png``, at most
                                                               ``WebConfig.chart_max_minutes``)
                            ``/api/domains/top``               the most linked domains
``/tweets``                 ``/api/tweets``                    every classified tweet, newest first
==========================  =================================  ==========================================

The dashboard only reads. Every value reaches SQL as a bound parameter and every table name
comes from :func:`ssp.storage.tables.versioned_table_name`. Nothing needs a sign-in, so what a
request may cost is bounded: page numbers, limits and spans have maxima, and a rendered PNG chart
is reused for ``WebConfig.chart_cache_seconds``.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from sqlalchemy import REAL, Table, cast, func, literal, select, tuple_
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ProgrammingError

from ssp.config import ClassifyConfig, ConfigError, InfraConfig, WebConfig
from ssp.storage.postgres import make_engine, table_exists
from ssp.storage.tables import (
    AI_TWEET_URLS_TABLE_PREFIX,
    AI_TWEETS_TABLE_PREFIX,
    CLASSIFIED_TABLE_PREFIX,
    ai_tweet_urls_table,
    ai_tweets_table,
    classified_tweets_table,
    validate_version,
    versioned_table_name,
)
from ssp.text import normalise_domain
from ssp.tweets import post_web_url
from ssp.web import reposts
from ssp.web.common import (
    ParameterError,
    UnavailableError,
    factory_settings,
    install_common,
    int_param,
    link_view,
    probability_param,
    reject_unknown,
    single_value,
    text_param,
)

EXTENSION = "ssp_dashboard"
DATABASE_URL_ENV = "SSP_DATABASE_URL"
VERSION_ENV = "SSP_DASHBOARD_VERSION"
CHART_CACHE_EXTENSION = "ssp_dashboard_charts"
MAX_PAGE = 100_000
MAX_MINUTES = 24 * 60
MAX_LIVE_ITEMS = 500
MAX_TOP_DOMAINS = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"^([0-9]{1,18})-([0-9]{1,19})$")
# a cursor's parts: microseconds since 1970 up to the last one of 9999 (datetime's range), a bigint id
_MAX_CURSOR_MICROSECONDS = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_TWEET_ID = 2**63 - 1
# what ssp classify files a link without a host (mailto:, javascript:) under: not a domain to rank
NO_DOMAIN = ("", "(none)")
# hosts as urllib gives them; ':' for a port, '[]' for IPv6 literals
_DOMAIN_CHARS = ".-_:[]"


class TablesMissingError(UnavailableError):
    """The classify stream has not created this version's tables yet."""

    def __init__(self, version: int, missing: list[str]) -> None:
        super().__init__(
            f"no classified tweets for version {version} yet: run `ssp classify --version {version}`",
            version=version, missing_tables=missing,
        )


@dataclass(frozen=True)
class Cursor:
    """A position in the AI tweets' arrival order: (classified_at, id), both strictly increasing keys.

    >>> c = Cursor(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), 42)
    >>> Cursor.parse(c.token) == c
    True
    """

    classified_at: datetime
    tweet_id: int

    @property
    def token(self) -> str:
        return f"{(self.classified_at - _EPOCH) // timedelta(microseconds=1)}-{self.tweet_id}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        """The cursor a token names; :class:`ParameterError` (400) for a malformed or out-of-range one.

        >>> Cursor.parse("253402300800000000-1")
        Traceback (most recent call last):
        ...
        ssp.web.common.ParameterError: after '253402300800000000-1' is not a cursor from a previous /api/live answer: its time is past the end of year 9999
        """
        match = _CURSOR.match(token)
        if match is None:
            raise ParameterError("after", f"after must be a cursor from a previous /api/live answer, got {token!r}")
        microseconds, tweet_id = int(match[1]), int(match[2])
        problem = ("its time is past the end of year 9999" if microseconds > _MAX_CURSOR_MICROSECONDS else
                   "its tweet id is above 2**63 - 1" if tweet_id > _MAX_TWEET_ID else None)
        if problem:
            raise ParameterError("after", f"after {token!r} is not a cursor from a previous /api/live answer: {problem}")
        return cls(_EPOCH + timedelta(microseconds=microseconds), tweet_id)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DashboardData:
    """The dashboard's queries on one version's tables; the HTML views and the JSON API both call these.

    Paginated lists use offset pagination in ``(created_at, id)`` order, which the tables'
    ``created_at`` indexes serve; the live feed uses keyset pagination on ``(classified_at, id)``.
    """

    def __init__(self, engine: Engine, version: int) -> None:
        self.engine = engine
        self.version = validate_version(version)
        self.classified = classified_tweets_table(versioned_table_name(CLASSIFIED_TABLE_PREFIX, self.version))
        self.ai = ai_tweets_table(versioned_table_name(AI_TWEETS_TABLE_PREFIX, self.version))
        self.urls = ai_tweet_urls_table(versioned_table_name(AI_TWEET_URLS_TABLE_PREFIX, self.version))
        self._ready = False

    def require_tables(self) -> None:
        """Raise :class:`TablesMissingError` until ``ssp classify`` has created the version's tables."""
        if self._ready:
            return
        missing = [t.name for t in (self.classified, self.ai, self.urls) if not table_exists(self.engine, t.name)]
        if missing:
            raise TablesMissingError(self.version, missing)
        self._ready = True

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except ProgrammingError as err:
            if getattr(err.orig, "pgcode", None) == "42P01":  # undefined_table: dropped while we ran
                self._ready = False
                self.require_tables()
            raise

    def _rows(self, statement) -> list:
        with self._connection() as conn:
            return conn.execute(statement).all()

    def _tweet_columns(self, table: Table) -> list:
        return [table.c.id, table.c.created_at, table.c.classified_at, table.c.user_screen_name, table.c.text,
                table.c.urls, table.c.ai_prob, table.c.model_version, table.c.platform, table.c.post_uri]

    @staticmethod
    def _tweet(row) -> dict:
        tweet = {
            "id": str(row.id),  # tweet ids exceed the 2**53 that JavaScript numbers hold exactly
            "created_at": _iso(row.created_at),
            "classified_at": _iso(row.classified_at),
            "user": row.user_screen_name,
            "text": row.text,
            "ai_prob": round(float(row.ai_prob), 6),  # a REAL: six decimals are what it holds
            "model_version": row.model_version,
            "links": [link_view(url) for url in row.urls or ()],
            "platform": row.platform,
            "post_url": post_web_url(row.platform, row.id, row.post_uri),  # the post on its own platform
        }
        if "is_ai" in row._fields:
            tweet["is_ai"] = row.is_ai
        return tweet

    def _page(self, statement, table: Table, page: int, page_size: int) -> tuple[list[dict], bool]:
        statement = statement.order_by(table.c.created_at.desc(), table.c.id.desc())
        rows = self._rows(statement.limit(page_size + 1).offset((page - 1) * page_size))
        return [self._tweet(row) for row in rows[:page_size]], len(rows) > page_size

    def _at_least(self, table: Table, threshold: float):
        # ai_prob is a REAL: compare in REAL, or 0.7 stored would fall below a threshold of 0.7
        return table.c.ai_prob >= cast(literal(threshold), REAL)

    def ai_tweets(self, page: int, page_size: int, threshold: float | None = None, domain: str | None = None) -> dict:
        t, u = self.ai, self.urls
        statement = select(*self._tweet_columns(t))
        if threshold is not None:
            statement = statement.where(self._at_least(t, threshold))
        if domain is not None:
            statement = statement.where(select(u.c.tweet_id).where(u.c.tweet_id == t.c.id, u.c.domain == domain).exists())
        items, has_next = self._page(statement, t, page, page_size)
        return {"version": self.version, "page": page, "page_size": page_size, "has_next": has_next,
                "has_prev": page > 1, "threshold": threshold, "domain": domain, "items": items}

    def all_tweets(self, page: int, page_size: int, threshold: float | None = None) -> dict:
        t = self.classified
        statement = select(*self._tweet_columns(t), t.c.is_ai)
        if threshold is not None:
            statement = statement.where(self._at_least(t, threshold))
        items, has_next = self._page(statement, t, page, page_size)
        return {"version": self.version, "page": page, "page_size": page_size, "has_next": has_next,
                "has_prev": page > 1, "threshold": threshold, "items": items}

    def live(self, after: Cursor | None, limit: int) -> dict:
        """AI tweets that arrived after ``after`` (or the latest ``limit``), oldest first.

        ``classified_at`` is stamped at insert and the classify stream commits its micro-batches
        one after another, so a committed row never appears behind a cursor already handed out.
        """
        t = self.ai
        statement = select(*self._tweet_columns(t))
        if after is None:
            rows = self._rows(statement.order_by(t.c.classified_at.desc(), t.c.id.desc()).limit(limit))[::-1]
            has_more = False
        else:
            statement = statement.where(
                tuple_(t.c.classified_at, t.c.id) > tuple_(literal(after.classified_at), literal(after.tweet_id))
            )
            rows = self._rows(statement.order_by(t.c.classified_at, t.c.id).limit(limit + 1))
            has_more, rows = len(rows) > limit, rows[:limit]
        items = []
        for row in rows:
            item = self._tweet(row)
            item["cursor"] = Cursor(row.classified_at, row.id).token
            items.append(item)
        cursor = items[-1]["cursor"] if items else (after.token if after else None)
        return {"version": self.version, "items": items, "cursor": cursor, "has_more": has_more}

    def per_minute(self, minutes: int) -> dict:
        """AI tweets per minute of arrival over the last ``minutes`` minutes (this one included), zeros too."""
        t = self.ai
        minute = func.date_trunc("minute", t.c.classified_at).label("minute")
        with self._connection() as conn:
            # the database's clock, the one that stamped classified_at
            now = conn.execute(select(func.date_trunc("minute", func.now()))).scalar_one()
            start = now - timedelta(minutes=minutes - 1)
            statement = (select(minute, func.count().label("n")).where(t.c.classified_at >= start)
                         .group_by(minute).order_by(minute))
            counts = {row.minute.astimezone(UTC): row.n for row in conn.execute(statement)}
        points = []
        for i in range(minutes):
            moment = (start + timedelta(minutes=i)).astimezone(UTC)
            points.append({"minute": _iso(moment), "count": counts.get(moment, 0)})
        return {"version": self.version, "minutes": minutes, "now": _iso(now), "total": sum(counts.values()),
                "points": points}

    def top_domains(self, limit: int) -> dict:
        u = self.urls
        links = func.count().label("links")
        statement = (select(u.c.domain, links, func.count(u.c.tweet_id.distinct()).label("tweets"))
                     .where(u.c.domain.not_in(NO_DOMAIN))
                     .group_by(u.c.domain).order_by(links.desc(), u.c.domain).limit(limit))
        domains = [{"domain": row.domain, "links": row.links, "tweets": row.tweets} for row in self._rows(statement)]
        return {"version": self.version, "limit": limit, "domains": domains}


def per_minute_png(stats: dict) -> bytes:
    """The per-minute counts as a bar chart PNG (matplotlib's Agg canvas: no display, thread-safe)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise UnavailableError(f"the PNG chart needs matplotlib, which is not installed ({err})") from err
    counts = [p["count"] for p in stats["points"]]
    labels = [p["minute"][11:16] for p in stats["points"]]
    figure = Figure(figsize=(8, 3), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.bar(range(len(counts)), counts, color="#2b6cb0", width=0.8)
    step = max(1, len(labels) // 10)
    axes.set_xticks(range(0, len(labels), step), labels[::step], fontsize=8)
    axes.set_ylabel("AI tweets")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set_title(f"AI tweets per minute, last {stats['minutes']} min (UTC), version {stats['version']}", fontsize=10)
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


class ChartCache:
    """Rendered per-minute PNGs by span, each reused for ``seconds``; one render at a time.

    The chart needs no sign-in and a render is CPU-bound (and holds the GIL), so rendering one at
    a time costs no throughput, and a burst of requests for one span renders it once.
    ``renders`` counts the renders done.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.renders = 0
        self._charts: dict[int, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def _fresh(self, minutes: int, now: float) -> bytes | None:
        expires, png = self._charts.get(minutes, (0.0, b""))
        return png if now < expires else None

    def chart(self, data: DashboardData, minutes: int) -> bytes:
        png = self._fresh(minutes, time.monotonic())
        if png is not None:
            return png
        with self._lock:
            png = self._fresh(minutes, time.monotonic())  # another request may have rendered it meanwhile
            if png is None:
                png = per_minute_png(data.per_minute(minutes))
                self.renders += 1
                now = time.monotonic()
                # at most chart_max_minutes entries, and expired ones go
                self._charts = {m: entry for m, entry in self._charts.items() if now < entry[0]}
                self._charts[minutes] = (now + self.seconds, png)
        return png


# ---------------------------------------------------------------- request parsing
def _data() -> DashboardData:
    return current_app.extensions[EXTENSION]


def _page_size() -> int:
    return current_app.config["SSP_WEB"].page_size


def _list_args(*, with_domain: bool) -> dict:
    reject_unknown(request.args, ("page", "threshold", "domain") if with_domain else ("page", "threshold"))
    args = {"page": int_param(request.args, "page", 1, 1, MAX_PAGE),
            "threshold": probability_param(request.args, "threshold")}
    if with_domain:
        domain = text_param(request.args, "domain", 253, _DOMAIN_CHARS)
        args["domain"] = normalise_domain(domain) or None if domain else None
    return args


def _live_args() -> tuple[Cursor | None, int]:
    reject_unknown(request.args, ("after", "limit"))
    after = single_value(request.args, "after")
    limit = int_param(request.args, "limit", min(_page_size(), MAX_LIVE_ITEMS), 1, MAX_LIVE_ITEMS)
    return (Cursor.parse(after) if after else None), limit


def _minutes_arg(maximum: int = MAX_MINUTES) -> int:
    reject_unknown(request.args, ("minutes",))
    return int_param(request.args, "minutes", min(60, maximum), 1, maximum)


def _limit_arg() -> int:
    reject_unknown(request.args, ("limit",))
    return int_param(request.args, "limit", 10, 1, MAX_TOP_DOMAINS)


# ---------------------------------------------------------------- views
bp = Blueprint("dashboard", __name__)


@bp.before_request
def _tables_first() -> None:
    _data().require_tables()


@bp.get("/")
def ai_tweets_page() -> str:
    return render_template("dashboard/ai_tweets.html", result=_data().ai_tweets(page_size=_page_size(),
                                                                                 **_list_args(with_domain=True)))


@bp.get("/api/ai-tweets")
def ai_tweets_api() -> Response:
    return jsonify(_data().ai_tweets(page_size=_page_size(), **_list_args(with_domain=True)))


@bp.get("/tweets")
def tweets_page() -> str:
    return render_template("dashboard/tweets.html",
                           result=_data().all_tweets(page_size=_page_size(), **_list_args(with_domain=False)))


@bp.get("/api/tweets")
def tweets_api() -> Response:
    return jsonify(_data().all_tweets(page_size=_page_size(), **_list_args(with_domain=False)))


@bp.get("/live")
def live_page() -> str:
    reject_unknown(request.args, ())
    data = _data()
    return render_template("dashboard/live.html", live=data.live(None, min(_page_size(), MAX_LIVE_ITEMS)),
                           domains=data.top_domains(10))


@bp.get("/api/live")
def live_api() -> Response:
    after, limit = _live_args()
    return jsonify(_data().live(after, limit))


@bp.get("/api/stats/per-minute")
def per_minute_api() -> Response:
    return jsonify(_data().per_minute(_minutes_arg()))


@bp.get("/chart/per-minute.png")
def per_minute_chart() -> Response:
    minutes = _minutes_arg(current_app.config["SSP_WEB"].chart_max_minutes)
    return Response(current_app.extensions[CHART_CACHE_EXTENSION].chart(_data(), minutes), mimetype="image/png")


@bp.get("/api/domains/top")
def top_domains_api() -> Response:
    return jsonify(_data().top_domains(_limit_arg()))


def _time_text(iso: str | None) -> str:
    """How times read on the pages (and in live.js): ``2026-01-02 03:04:05 UTC``."""
    return "" if not iso else iso[:19].replace("T", " ") + " UTC"


def _settings(config: Mapping[str, Any] | str | None, version: int | None, web_config: WebConfig | None,
              testing: bool) -> dict[str, Any]:
    """The app's settings: ``config``'s keys, then the keyword arguments, then the environment and gin."""
    settings = factory_settings(
        config, {"SSP_VERSION": version, "SSP_WEB": web_config, "TESTING": testing or None},
        {"TESTING": lambda: False,
         "SSP_DATABASE_URL": lambda: os.environ.get(DATABASE_URL_ENV) or InfraConfig().database_url,
         "SSP_VERSION": lambda: os.environ.get(VERSION_ENV) or ClassifyConfig().version,
         "SSP_WEB": WebConfig})
    settings["SSP_VERSION"] = validate_version(settings["SSP_VERSION"])
    web = settings["SSP_WEB"]
    if not 1 <= web.chart_max_minutes <= MAX_MINUTES or web.chart_cache_seconds < 0:
        raise ConfigError(f"WebConfig.chart_max_minutes must be from 1 to {MAX_MINUTES} (got "
                          f"{web.chart_max_minutes}) and chart_cache_seconds at least 0 (got "
                          f"{web.chart_cache_seconds})")
    if not settings["SSP_DATABASE_URL"]:
        raise ConfigError(f"no database: set {DATABASE_URL_ENV} (or pass SSP_DATABASE_URL in the config)")
    return settings


def create_app(config: Mapping[str, Any] | str | None = None, version: int | None = None,
               web_config: WebConfig | None = None, testing: bool = False) -> Flask:
    """The dashboard, as Flask's tutorial builds its app: ``config`` is a mapping of settings, and what it
    leaves out comes from the environment, so ``flask --app ssp.web.dashboard run`` serves it.

    ``SSP_DATABASE_URL`` (default ``$SSP_DATABASE_URL``, else the local stack's), ``SSP_VERSION`` (whose
    classify tables to show: ``$SSP_DASHBOARD_VERSION``, else ``DatasetConfig.version``), ``SSP_WEB`` (a
    WebConfig), ``TESTING``; other keys go to ``app.config`` as they are. ``create_app(database_url, version,
    web_config, testing=...)``, the form ssp's own callers use, is the same with those settings.

    Nothing is queried here: the app starts before ``ssp classify`` has created its tables and
    says so on every page until it has. ``TESTING`` is for the test suite only; the app never
    runs in debug mode.
    """
    settings = _settings(config, version, web_config, testing)
    web: WebConfig = settings["SSP_WEB"]
    app = Flask(__name__)
    app.config.update(SSP_STYLESHEET="dashboard/dashboard.css", MAX_CONTENT_LENGTH=16 * 1024)
    app.config.update(settings)
    app.config["DEBUG"] = False
    app.extensions[EXTENSION] = DashboardData(make_engine(settings["SSP_DATABASE_URL"]), settings["SSP_VERSION"])
    app.extensions[CHART_CACHE_EXTENSION] = ChartCache(web.chart_cache_seconds)
    app.jinja_env.filters["time_text"] = _time_text
    install_common(app)

    app.register_blueprint(bp)
    # the review queue of `ssp repost` (sign-in and CSRF as in the tagger; the rest stays public)
    reposts.install(app, app.extensions[EXTENSION].engine, settings["SSP_VERSION"])
    return app
