"""The tagger: annotators give gold labels (AI / not AI) to the tweets of a dataset table.

Pages, each backed by the JSON API its script uses:

===========================  ===================================  =============================================
page                         JSON                                 does
===========================  ===================================  =============================================
``/login``                                                        sign in: a name and the shared token
``/``                        ``/api/tables``                      the dataset tables of every version
``/tag?table=``              ``/api/rows``, ``/api/status``       label with the keyboard: ``a`` AI, ``x`` not
                                                                  AI, space skip, backspace undo; filters
                                                                  (unlabelled = the active-learning queue,
                                                                  labelled, disagreeing with Snorkel, all),
                                                                  text search, query strategy
                             ``POST /api/label|skip|undo``        the decisions
``/stats?table=``            ``/api/agreement``                   progress, annotators, Cohen's kappa, export,
                                                                  import
                             ``/api/export?format=csv|jsonl|``    the gold labels as a file
                             ``parquet``
                             ``POST /api/import``                 labels from a CSV (id,label)
                             ``POST /api/rescore``                rescore the queue with the served model
===========================  ===================================  =============================================

The package, one concern a module: :mod:`~ssp.web.tagger.names` (table names, tweet ids, annotator
names, error types), :mod:`~ssp.web.tagger.agreement` (label stacks, Cohen's kappa),
:mod:`~ssp.web.tagger.store` (the SQL), :mod:`~ssp.web.tagger.exports` (CSV, JSONL, parquet),
:mod:`~ssp.web.tagger.request_helpers` (parameters and bodies), :mod:`~ssp.web.tagger.auth` (the
``auth`` blueprint: sessions, CSRF, sign-in limits), :mod:`~ssp.web.tagger.views` (the ``tagger``
blueprint) and this factory. The active-learning loop is :mod:`ssp.active.loop`.
Tweet text is untrusted: Jinja escapes it, the script sets it with ``textContent``.

``flask --app ssp.web.tagger run`` serves it as ``ssp tagger`` does, configured by the environment.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
from flask import Flask, Response
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import RequestEntityTooLarge

from ssp.active.loop import ActiveLoop
from ssp.active.strategies import queue_strategy_problem
from ssp.config import ActiveLearningConfig, InfraConfig, ServeConfig, TrainConfig, WebConfig
from ssp.errors import database_reason
from ssp.storage.postgres import make_engine
from ssp.web.common import error_response, factory_settings, install_common
from ssp.web.tagger import auth, views
from ssp.web.tagger.agreement import Decision, agreement_from_history, cohen_kappa, replay
from ssp.web.tagger.auth import CSRF_FIELD, CSRF_HEADER, LoginLimiter, SessionStore
from ssp.web.tagger.exports import EXPORT_FORMATS, export_csv, export_jsonl, export_parquet, spreadsheet_safe
from ssp.web.tagger.names import (
    ConflictError,
    ImportRejected,
    NotFoundError,
    TableMissingError,
    TaggerConfigError,
    dataset_table_names,
    parse_table_name,
)
from ssp.web.tagger.request_helpers import EXTENSION
from ssp.web.tagger.store import EXPORT_COLUMNS, TableState, TaggerData, parse_label_csv, tweet_view

__all__ = [
    "CSRF_FIELD", "CSRF_HEADER", "EXPORT_COLUMNS", "EXPORT_FORMATS", "EXTENSION", "ActiveLoop", "ConflictError",
    "Decision", "ImportRejected", "LoginLimiter", "NotFoundError", "SessionStore", "TableMissingError", "TableState",
    "TaggerConfigError", "TaggerData", "agreement_from_history", "cohen_kappa", "create_app", "dataset_table_names",
    "export_csv", "export_jsonl", "export_parquet", "parse_label_csv", "parse_table_name", "replay",
    "spreadsheet_safe", "tweet_view",
]

log = logging.getLogger(__name__)

DATABASE_URL_ENV = "SSP_DATABASE_URL"
TOKEN_ENV = "SSP_TAGGER_TOKEN"
SECRET_KEY_ENV = "SSP_TAGGER_SECRET_KEY"
MODEL_URL_ENV = "SSP_MODEL_URL"
MIN_TOKEN_LENGTH = 8
MAX_IMPORT_BYTES = 32 * 1024 * 1024
# templates/ and static/ are ssp.web's, shared with the dashboard
WEB_ROOT = Path(__file__).resolve().parent.parent


def _settings(config: Mapping[str, Any] | str | None, web_config: WebConfig | None,
              al_config: ActiveLearningConfig | None, testing: bool, model_url: str | None) -> dict[str, Any]:
    """The app's settings: ``config``'s keys, then the keyword arguments, then the environment."""
    return factory_settings(
        config, {"SSP_WEB": web_config, "SSP_AL": al_config, "SSP_MODEL_URL": model_url, "TESTING": testing or None},
        {"TESTING": lambda: False,
         "SSP_DATABASE_URL": lambda: os.environ.get(DATABASE_URL_ENV) or InfraConfig().database_url,
         "SSP_TAGGER_TOKEN": lambda: os.environ.get(TOKEN_ENV, ""),
         "SECRET_KEY": lambda: os.environ.get(SECRET_KEY_ENV) or secrets.token_bytes(32),
         "SSP_MODEL_URL": lambda: os.environ.get(MODEL_URL_ENV) or None,
         "SSP_WEB": WebConfig, "SSP_AL": ActiveLearningConfig, "SSP_SERVE": ServeConfig, "SSP_TRAIN": TrainConfig})


def _check(settings: dict[str, Any]) -> None:
    al_config, web = settings["SSP_AL"], settings["SSP_WEB"]
    problem = queue_strategy_problem(al_config.strategy)
    if problem is not None:
        raise TaggerConfigError(f"ActiveLearningConfig.strategy: {problem}")
    token = str(settings["SSP_TAGGER_TOKEN"] or "").strip()
    if not token and not settings["TESTING"]:
        raise TaggerConfigError(f"{TOKEN_ENV} is not set: the tagger signs annotators in with a shared token; "
                                f"export {TOKEN_ENV}=<a long random string> and give it to the annotators")
    if token and len(token) < MIN_TOKEN_LENGTH:
        raise TaggerConfigError(f"{TOKEN_ENV} is {len(token)} characters long: use at least "
                                f"{MIN_TOKEN_LENGTH} (a long random string)")
    settings["SSP_TAGGER_TOKEN"] = token or secrets.token_urlsafe(32)
    if not settings["SSP_DATABASE_URL"]:
        raise TaggerConfigError(f"no database: set {DATABASE_URL_ENV} (or pass SSP_DATABASE_URL in the config)")
    if not web.tagger_session_hours > 0:
        raise TaggerConfigError(f"WebConfig.tagger_session_hours must be positive, got {web.tagger_session_hours}")


def create_app(config: Mapping[str, Any] | str | None = None, web_config: WebConfig | None = None,
               al_config: ActiveLearningConfig | None = None, testing: bool = False,
               model_url: str | None = None) -> Flask:
    """The tagger, as Flask's tutorial builds its app: ``config`` is a mapping of settings, and what it leaves
    out comes from the environment.

    ``SSP_DATABASE_URL`` (default ``$SSP_DATABASE_URL``, else the local stack's), ``SSP_TAGGER_TOKEN`` (the
    shared sign-in token, ``$SSP_TAGGER_TOKEN``; needed unless ``TESTING``), ``SECRET_KEY`` (signs the
    cookie: ``$SSP_TAGGER_SECRET_KEY`` or a random key per process), ``SSP_MODEL_URL`` (a TF-Serving-compatible
    REST server, ``$SSP_MODEL_URL``: model scores for the queue and the retrain loop), ``SSP_WEB`` (a
    WebConfig), ``SSP_AL`` (an ActiveLearningConfig), ``SSP_SERVE`` (a ServeConfig: the model client's timeouts),
    ``SSP_TRAIN`` (a TrainConfig: what a retrain trains), ``TESTING``; what is not given comes from gin's
    configuration. Other keys go to ``app.config`` as they are.
    ``create_app(database_url, web_config, al_config, testing=..., model_url=...)``, the form ssp's own callers
    use, is the same with those settings. Never in debug mode.

    At start-up the database objects and every dataset table's indexes are built and, with a model server,
    tables the served model has not scored are scored in the background: no page view writes.
    """
    settings = _settings(config, web_config, al_config, testing, model_url)
    _check(settings)
    web: WebConfig = settings["SSP_WEB"]
    app = Flask(__name__, root_path=str(WEB_ROOT))
    app.config.update(
        DEBUG=False, SSP_STYLESHEET="tagger/tagger.css", SESSION_COOKIE_NAME="ssp_tagger_session",
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", MAX_CONTENT_LENGTH=MAX_IMPORT_BYTES,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=web.tagger_session_hours),
    )
    app.config.update(settings)
    app.config["DEBUG"] = False
    data = TaggerData(make_engine(settings["SSP_DATABASE_URL"]))
    loop = None
    if settings["SSP_MODEL_URL"]:
        from ssp.serving.client import PredictClient

        client = PredictClient.from_config(settings["SSP_MODEL_URL"], settings["SSP_SERVE"])
        loop = ActiveLoop(settings["SSP_DATABASE_URL"], data, client, settings["SSP_AL"], settings["SSP_TRAIN"])
    app.extensions[EXTENSION] = {"data": data, "loop": loop, "stats": {"labels": 0, "lock": threading.Lock()}}
    app.jinja_env.filters["label_text"] = views.label_text
    auth.init_app(app, web.tagger_session_hours)
    install_common(app)
    _install_error_handlers(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(views.bp)
    _prepare(data, loop)
    return app


def _prepare(data: TaggerData, loop: ActiveLoop | None) -> None:
    """Build what the pages read fast with and score the tables, now rather than on a page view; a database
    that cannot be reached yet is logged and the pages answer 503 until it can."""
    try:
        states = data.prepare_all()
    except (psycopg2.OperationalError, OperationalError) as err:
        log.warning("the tagger cannot reach its database at start-up (%s): pages answer 503 until it can, "
                    "then restart it", database_reason(err))
        states = []
    if loop is not None:
        loop.opened_all(states)
        data.on_prepared = loop.opened


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(psycopg2.OperationalError)
    def database_lost(err: psycopg2.OperationalError) -> Response:
        return error_response(503, f"cannot reach the database: {database_reason(err)}")

    @app.errorhandler(psycopg2.errors.UndefinedTable)
    def table_dropped(err: psycopg2.errors.UndefinedTable) -> Response:
        return error_response(404, f"a table went away while the tagger read it ({database_reason(err)}): "
                                   "reload the page")

    @app.errorhandler(NotFoundError)
    def not_found(err: NotFoundError) -> Response:
        return error_response(404, str(err))

    @app.errorhandler(ConflictError)
    def conflict(err: ConflictError) -> Response:
        return error_response(409, str(err))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(err: RequestEntityTooLarge) -> Response:
        return error_response(413, f"the upload is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB")

    @app.errorhandler(TableMissingError)
    def table_missing(err: TableMissingError) -> Response:
        return error_response(404, str(err), **err.details)

