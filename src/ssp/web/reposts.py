"""The dashboard's Reposts page: the review queue of ``ssp repost --mode review`` and the history of reposts.

==========================  =================================  ==========================================
page                        JSON                               shows / does
==========================  =================================  ==========================================
``/reposts``                ``/api/reposts``                   candidates (AI posts with links at or over
                                                               the minimum P(AI), not decided yet) and the
                                                               ledger's newest decisions
                            ``POST /reposts/decide``           approve or skip one candidate (form fields
                                                               ``tweet_id``, ``decision``, ``csrf_token``)
==========================  =================================  ==========================================

Anyone may look; deciding needs a sign-in, with the tagger's machinery (:mod:`ssp.web.tagger.auth`: the
shared ``$SSP_TAGGER_TOKEN``, server-side sessions, sign-in limits, a CSRF token on every POST). The
dashboard registers the ``auth`` blueprint for its sign-in pages but not its app-wide guard, so every
other page stays public and read-only; this blueprint applies the same guard to its POSTs. Without a
token configured the page is read-only. Keyboard: ``j``/``k`` (or the arrows) move between candidates,
``a`` approves, ``s`` skips. Post text is untrusted: Jinja escapes it.

A decision is a ledger row (:class:`ssp.repost.ledger.Ledger`) written only for a post that is a candidate
now (on the platform, with links, not on the blocklist, over the minimum, not decided before); the
repost itself is made by ``ssp repost --mode review``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    get_flashed_messages,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy.engine import Engine

from ssp.config import RepostConfig, ServeConfig, TrainConfig
from ssp.repost.candidates import Candidate, candidate_by_id, choose, fetch_candidates
from ssp.repost.ledger import Ledger, LedgerRow
from ssp.repost.run import threshold_lookup
from ssp.serving.layout import served_model_folder
from ssp.storage.postgres import ensure_tables, table_exists
from ssp.storage.tables import AI_TWEETS_TABLE_PREFIX, versioned_table_name
from ssp.tweets import post_web_url
from ssp.web.common import error_response, link_view, reject_unknown
from ssp.web.tagger import auth

__all__ = ["EXTENSION", "RepostsData", "bp", "install"]

EXTENSION = "ssp_reposts"
TOKEN_ENV = "SSP_TAGGER_TOKEN"
SECRET_KEY_ENV = "SSP_TAGGER_SECRET_KEY"
MAX_CANDIDATES = 100
MAX_HISTORY = 100
DECISIONS = {"approve": "approved", "skip": "skipped"}


@dataclass
class RepostsData:
    """The queries of the page for one version's ``ai_tweets`` table, one platform and the ledger."""

    engine: Engine
    version: int
    config: RepostConfig

    def __post_init__(self) -> None:
        self.ai_table = versioned_table_name(AI_TWEETS_TABLE_PREFIX, self.version)
        self.ledger = Ledger(self.config.table)
        serve = ServeConfig()
        base_path = served_model_folder(serve.model_name, TrainConfig().models_path, serve.model_base_path)
        self.min_prob, self.min_prob_text = threshold_lookup(self.config.min_prob, self.config.fallback_min_prob,
                                                             base_path)
        self._ledger_ready = False

    def _ready(self) -> bool:
        if not self._ledger_ready:
            ensure_tables(self.engine, self.ledger.table)
            self._ledger_ready = True
        return table_exists(self.engine, self.ai_table)

    def _choose(self, conn, candidates: list[Candidate]) -> list[Candidate]:
        since = datetime.now(UTC) - timedelta(hours=self.config.link_window_hours)
        recent = self.ledger.links_since(conn, self.config.platform, since)
        chosen, _ = choose(candidates, min_prob=self.min_prob, blocked_domains=self.config.blocked_domains,
                           taken=set(), recent_links=recent)
        return chosen

    def candidates(self, limit: int = MAX_CANDIDATES) -> list[Candidate]:
        if not self._ready():
            return []
        with self.engine.begin() as conn:
            found = fetch_candidates(conn, self.ai_table, self.config.platform, self.ledger.name, limit=limit * 3)
            return self._choose(conn, found)[:limit]

    def history(self, limit: int = MAX_HISTORY) -> list[LedgerRow]:
        self._ready()
        with self.engine.begin() as conn:
            return self.ledger.history(conn, limit)

    def decide(self, tweet_id: int, status: str, reviewer: str) -> tuple[int | None, str]:
        """Record a reviewer's decision; (row id, "") or (None, why it was not recorded)."""
        if not self._ready():
            return None, f"table {self.ai_table} does not exist yet"
        with self.engine.begin() as conn:
            candidate = candidate_by_id(conn, self.ai_table, tweet_id)
            if candidate is None or candidate.platform != self.config.platform or not candidate.urls:
                return None, f"post {tweet_id} is not a {self.config.platform} AI post with links"
            if status == "approved" and not self._choose(conn, [candidate]):
                return None, f"post {tweet_id} is no candidate now (under the minimum, blocked or a recent link)"
            repost_id = self.ledger.decide(conn, candidate, status, reviewer, "reviewed on the dashboard")
        return (repost_id, "") if repost_id is not None else (None, f"post {tweet_id} has a decision already")


def _candidate_view(candidate: Candidate) -> dict:
    return {"id": str(candidate.tweet_id), "platform": candidate.platform, "target": candidate.target,
            "text": candidate.text, "user": candidate.author, "ai_prob": round(candidate.ai_prob, 6),
            "model_version": candidate.model_version, "created_at": candidate.created_at.isoformat(),
            "links": [link_view(url) for url in candidate.urls],
            "post_url": post_web_url(candidate.platform, candidate.tweet_id,
                                     candidate.target if candidate.platform == "bluesky" else None)}


def _history_view(row: LedgerRow) -> dict:
    target_url = post_web_url(row.platform, row.target, row.target if row.platform == "bluesky" else None)
    return {"repost_id": row.repost_id, "platform": row.platform, "target": row.target, "post_url": target_url,
            "status": row.status, "dry_run": row.dry_run, "decided_by": row.decided_by, "reason": row.reason,
            "decided_at": row.decided_at.isoformat(), "text": row.text, "ai_prob": row.ai_prob,
            "model_version": row.model_version, "links": [link_view(url) for url in row.urls],
            "answer": row.answer, "repost_ref": row.repost_ref}


def _data() -> RepostsData:
    return current_app.extensions[EXTENSION]


def _reviewer() -> str | None:
    """Who is signed in, when reviewing is on; None otherwise."""
    if not current_app.config.get("SSP_REPOSTS_REVIEW"):
        return None
    return current_app.extensions[auth.SESSIONS].annotator(session.get("sid"))


bp = Blueprint("reposts", __name__)


@bp.before_request
def _writes_need_sign_in() -> Response | None:
    """The tagger's guard for every POST here: a signed-in session and its CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if not current_app.config.get("SSP_REPOSTS_REVIEW"):
        return error_response(403, f"reviewing is off: start the dashboard with {TOKEN_ENV} set to sign in")
    return auth.require_session()


def _page_state() -> dict:
    data = _data()
    return {"platform": data.config.platform, "version": data.version, "min_prob": data.min_prob_text,
            "review": bool(current_app.config.get("SSP_REPOSTS_REVIEW")), "reviewer": _reviewer(),
            "candidates": [_candidate_view(c) for c in data.candidates()],
            "history": [_history_view(row) for row in data.history()]}


@bp.get("/reposts")
def page() -> str:
    reject_unknown(request.args, ())
    return render_template("dashboard/reposts.html", state=_page_state(), errors=get_flashed_messages())


@bp.get("/api/reposts")
def api() -> Response:
    reject_unknown(request.args, ())
    return jsonify(_page_state())


@bp.post("/reposts/decide")
def decide() -> Response:
    decision = request.form.get("decision", "")
    raw_id = request.form.get("tweet_id", "")
    if decision not in DECISIONS or not raw_id.isascii() or not raw_id.isdigit() or len(raw_id) > 19:
        return error_response(400, "send decision=approve|skip and tweet_id=<the post's id>")
    repost_id, why = _data().decide(int(raw_id), DECISIONS[decision], g.annotator)
    if repost_id is None:
        flash(why)  # shown once on the page the redirect leads to
    return redirect(url_for("reposts.page"), 303)


def install(app: Flask, engine: Engine, version: int) -> None:
    """The Reposts page in the dashboard ``app``: ``app.config["SSP_REPOST"]`` (a RepostConfig, default gin's)
    names the platform, ledger and rules; reviewing is on when ``SSP_TAGGER_TOKEN`` (config or environment, 8
    characters at least) is set."""
    token = str(app.config.get("SSP_TAGGER_TOKEN") or os.environ.get(TOKEN_ENV, "")).strip()
    app.extensions[EXTENSION] = RepostsData(engine, version, app.config.get("SSP_REPOST") or RepostConfig())
    app.config["SSP_REPOSTS_REVIEW"] = len(token) >= 8
    if app.config["SSP_REPOSTS_REVIEW"]:
        web = app.config["SSP_WEB"]
        if not app.config.get("SECRET_KEY"):  # signs the session cookie
            app.config["SECRET_KEY"] = os.environ.get(SECRET_KEY_ENV) or secrets.token_bytes(32)
        app.config.update(SSP_TAGGER_TOKEN=token, SESSION_COOKIE_NAME="ssp_dashboard_session",
                          SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                          PERMANENT_SESSION_LIFETIME=timedelta(hours=web.tagger_session_hours))
        auth.init_app(app, web.tagger_session_hours)
        app.register_blueprint(auth.bp)
        # the sign-in pages, not the tagger's app-wide guard: the dashboard's pages stay public
        app.before_request_funcs[None].remove(auth.require_session)

        @app.before_request
        def _sign_out_needs_csrf() -> Response | None:
            return auth.require_session() if request.endpoint == "auth.logout" else None

        # where the sign-in form returns by default (it names the tagger's home page)
        app.add_url_rule("/reposts/home", endpoint="tagger.tables_page",
                         view_func=lambda: redirect(url_for("reposts.page")))
    else:
        app.jinja_env.globals.setdefault("csrf_token", lambda: "")
    app.register_blueprint(bp)
