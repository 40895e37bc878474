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

Every decision goes to the table's ``label`` column and to ``label_history`` in one
transaction, so a changed or undone label is never lost. Undo replays the tweet's history as a
stack (a label or import pushes, an undo pops) and restores what lies below.

Annotators sign in with a name and the shared token from ``$SSP_TAGGER_TOKEN``; the session
cookie is HttpOnly and SameSite=Lax, and every POST needs the session's CSRF token (header
``X-CSRF-Token`` or form field ``csrf_token``): 401 without a session, 403 without the token.
Tweet text is untrusted: Jinja escapes it, the script sets it with ``textContent``.

With a model server (``model_url``), the queue follows the model: a table is scored when it is
first opened and the server has a newer version, and every ``ActiveLearningConfig.retrain_every``
new labels :class:`ssp.active.retrain.RetrainTrigger` retrains in the background; when the
server has loaded the new version the opened tables are rescored and the queue re-orders.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import psycopg2
import psycopg2.errors
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from sqlalchemy.engine import Engine
from werkzeug.exceptions import RequestEntityTooLarge

from ssp.active import queue
from ssp.active.strategies import STRATEGIES
from ssp.config import ActiveLearningConfig, WebConfig
from ssp.storage.postgres import ensure_tables, make_engine
from ssp.storage.tables import (
    DATASET_SPLITS,
    DEDUP_TABLE_PREFIX,
    LABEL_HISTORY_TABLE,
    MODEL_SCORES_TABLE,
    label_history_table,
    split_table_name,
    validate_identifier,
    versioned_table_name,
)
from ssp.web.common import (
    API_PREFIX,
    ParameterError,
    UnavailableError,
    error_response,
    install_common,
    int_param,
    link_view,
    reject_unknown,
    single_value,
)

log = logging.getLogger(__name__)

EXTENSION = "ssp_tagger"
TOKEN_ENV = "SSP_TAGGER_TOKEN"
SECRET_KEY_ENV = "SSP_TAGGER_SECRET_KEY"
MIN_TOKEN_LENGTH = 8
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
FILTERS = ("unlabelled", "labelled", "disagree", "all")
FILTER_NAMES = {"unlabelled": "unlabelled (queue)", "labelled": "labelled", "disagree": "disagreeing with Snorkel",
                "all": "all"}
LABEL_NAMES = {1: "AI", 0: "not AI"}
EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson",
                  "parquet": "application/vnd.apache.parquet"}
EXPORT_COLUMNS = ("id", "created_at", "user_screen_name", "text", "label", "labelled_by", "labelled_at", "slabel",
                  "slabel_prob")
MAX_SEARCH = 200
MAX_BATCH = 500
MAX_IMPORT_BYTES = 32 * 1024 * 1024
MAX_IMPORT_ERRORS = 100
TOTAL_TTL_SECONDS = 60.0
RESCORE_WAIT_SECONDS = 120.0
_TABLE_PREFIXES = "|".join([DEDUP_TABLE_PREFIX, *(f"{s}_dataset" for s in DATASET_SPLITS)])
_TABLE_NAME = re.compile(rf"^(?:{_TABLE_PREFIXES})_([0-9]{{1,9}})$")  # the same in Python's and PostgreSQL's regex
_ANNOTATOR_EXTRA = " ._-@"
_MAX_ANNOTATOR = 64
_TWEET_ID = re.compile(r"^[0-9]{1,19}$")


class TaggerConfigError(RuntimeError):
    """The tagger cannot start as configured; the message says what to set."""


class TableMissingError(UnavailableError):
    """A dataset table that does not exist (yet)."""


class ConflictError(Exception):
    """A write that would overwrite someone else's newer decision, or has nothing to act on (HTTP 409)."""


class NotFoundError(Exception):
    """A tweet id that is not in the table (HTTP 404)."""


class ImportRejected(ValueError):
    """A label file with bad rows; nothing was written. ``errors`` lists (line, message)."""

    def __init__(self, message: str, errors: list[tuple[int, str]], total: int) -> None:
        super().__init__(message)
        self.errors = errors
        self.total = total


# ---------------------------------------------------------------- table names
def dataset_table_names(version: int) -> list[str]:
    """The tables ``ssp dataset prepare`` writes for ``version``: the deduplicated table and its splits."""
    return [versioned_table_name(DEDUP_TABLE_PREFIX, version), *(split_table_name(s, version) for s in DATASET_SPLITS)]


def parse_table_name(name: str | None) -> tuple[str, int]:
    """``name`` and its dataset version if it is one of the dataset tables; a ParameterError otherwise.

    >>> parse_table_name("train_dataset_3")
    ('train_dataset_3', 3)
    """
    if not name:
        raise ParameterError("table", "table is required: pick one of the dataset tables on the start page")
    match = _TABLE_NAME.match(name)
    if match is None:
        raise ParameterError("table", f"table {name!r} is not a dataset table: expected {DEDUP_TABLE_PREFIX}_<v> or "
                                      f"<split>_dataset_<v> with split one of {', '.join(DATASET_SPLITS)}")
    version = int(match[1])
    if name not in dataset_table_names(version):  # leading zeros: train_dataset_03
        raise ParameterError("table", f"table {name!r} is not a dataset table name (no leading zeros in versions)")
    return validate_identifier(name, "table name"), version


# ---------------------------------------------------------------- agreement
def cohen_kappa(pairs: Sequence[tuple[int, int]]) -> float | None:
    """Cohen's kappa of two annotators' binary labels on the same tweets; None when it is undefined
    (no tweets, or both annotators always gave one and the same label, so chance agreement is 1).

    >>> cohen_kappa([(1, 1), (0, 0), (1, 0), (0, 0)])
    0.5
    """
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    a_ai = sum(a == 1 for a, _ in pairs) / n
    b_ai = sum(b == 1 for _, b in pairs) / n
    chance = a_ai * b_ai + (1 - a_ai) * (1 - b_ai)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1 - chance)


@dataclass(frozen=True)
class Decision:
    """One entry of a tweet's label stack, as replayed from ``label_history``."""

    history_id: int
    label: int | None
    annotator: str
    at: datetime


def replay(events: Sequence[tuple]) -> list[Decision]:
    """A tweet's label stack from its history rows (history_id, label, action, annotator, labelled_at), oldest
    first: ``label`` and ``import`` push, ``undo`` pops, ``skip`` changes nothing. The top is the label now."""
    stack: list[Decision] = []
    for history_id, label, action, annotator, at in events:
        if action in ("label", "import"):
            stack.append(Decision(history_id, label, annotator, at))
        elif action == "undo" and stack:
            stack.pop()
    return stack


def agreement_from_history(rows: Sequence[tuple]) -> dict:
    """Per-annotator label counts and Cohen's kappa per pair of annotators, from ``label_history`` rows
    (tweet_id, history_id, label, action, annotator, labelled_at) ordered by tweet and history id.

    An annotator's label on a tweet is their latest one still on the tweet's stack (an undone
    label does not count); kappa is over the tweets exactly two annotators labelled.
    """
    per_annotator: dict[str, int] = {}
    pairs: dict[tuple[str, str], list[tuple[int, int]]] = {}
    tweets_by_several = 0

    def close(events: list[tuple]) -> None:
        nonlocal tweets_by_several
        latest: dict[str, int] = {}
        for decision in replay(events):
            latest[decision.annotator] = decision.label
        for annotator in latest:
            per_annotator[annotator] = per_annotator.get(annotator, 0) + 1
        if len(latest) == 2:
            (a, label_a), (b, label_b) = sorted(latest.items())
            pairs.setdefault((a, b), []).append((label_a, label_b))
        elif len(latest) > 2:
            tweets_by_several += 1

    current, events = None, []
    for tweet_id, *event in rows:
        if tweet_id != current and events:
            close(events)
            events = []
        current = tweet_id
        events.append(tuple(event))
    if events:
        close(events)
    return {
        "annotators": [{"annotator": a, "labels": n} for a, n in sorted(per_annotator.items())],
        "pairs": [{"annotators": [a, b], "tweets": len(labels),
                   "agreement": round(sum(x == y for x, y in labels) / len(labels), 6),
                   "kappa": None if (k := cohen_kappa(labels)) is None else round(k, 6)}
                  for (a, b), labels in sorted(pairs.items())],
        "tweets_by_more_than_two": tweets_by_several,
    }


# ---------------------------------------------------------------- data access
def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def tweet_view(row: dict) -> dict:
    """A dataset row as the pages and the JSON API show it (ids as strings: JavaScript numbers hold 2**53)."""
    prob = row.get("slabel_prob")
    ai_prob = row.get("ai_prob")
    return {
        "id": str(row["id"]),
        "created_at": _iso(row["created_at"]),
        "user": row["user_screen_name"],
        "text": row["text"],
        "links": [link_view(url) for url in row.get("urls") or ()],
        "hashtags": list(row.get("hashtags") or ()),
        "slabel": row["slabel"],
        "slabel_prob": None if prob is None else round(float(prob), 6),
        "label": row["label"],
        "labelled_by": row["labelled_by"],
        "labelled_at": _iso(row["labelled_at"]),
        "ai_prob": None if ai_prob is None else round(float(ai_prob), 6),
        "model_version": row.get("model_version"),
    }


@dataclass
class TableState:
    """What the tagger knows about one opened table; rebuilt when the table is replaced (a new oid)."""

    name: str
    version: int
    oid: int
    warnings: list[str] = field(default_factory=list)
    total: int | None = None
    total_at: float = 0.0
    coverage: queue.ScoreCoverage | None = None


class TaggerData:
    """The tagger's reads and writes; the HTML views and the JSON API both call these.

    Dataset tables are written whole by ``ssp dataset prepare`` (a rebuilt table is a new
    relation), so what is cached about a table (its row count for a minute, which tweets have
    model scores per model version) is keyed by the table's oid.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._states: dict[str, TableState] = {}
        self._lock = threading.Lock()
        self._history_ready = False

    # -- connections
    @contextmanager
    def connection(self) -> Iterator:
        """A pooled psycopg2 connection in a transaction: committed by the caller, rolled back otherwise."""
        conn = self.engine.raw_connection()
        try:
            yield conn
        finally:
            try:
                conn.rollback()
            finally:
                conn.close()

    # -- tables
    def tables(self) -> list[dict]:
        """Every dataset table in the database, by version (newest first), splits in prepare's order."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT c.relname, c.reltuples FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
                "AND c.relkind IN ('r', 'p') AND c.relname ~ %s",
                (_TABLE_NAME.pattern,),
            )
            found = {name: rows for name, rows in cur.fetchall()}
        versions: dict[int, list[dict]] = {}
        for name in found:
            try:
                _, version = parse_table_name(name)
            except ParameterError:
                continue
            versions.setdefault(version, [])
        result = []
        for version in sorted(versions, reverse=True):
            tables = [{"name": name, "approx_rows": max(int(found[name]), 0)}
                      for name in dataset_table_names(version) if name in found]
            result.append({"version": version, "tables": tables})
        return result

    def open(self, name: str | None) -> TableState:
        """The state of dataset table ``name``, creating its indexes the first time it is opened."""
        name, version = parse_table_name(name)
        with self.connection() as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass(%s)::oid", (name,))
                oid = cur.fetchone()[0]
            if oid is None:
                self._states.pop(name, None)
                raise TableMissingError(f"table {name} does not exist: run `ssp dataset prepare --version {version}`",
                                        table=name)
            state = self._states.get(name)
            if state is not None and state.oid == oid:
                return state
            with self._lock:
                state = self._states.get(name)
                if state is not None and state.oid == oid:
                    return state
                if not self._history_ready:
                    ensure_tables(self.engine, label_history_table())
                    self._history_ready = True
                warnings = queue.ensure_queue_objects(conn, name)
                warnings += self._ensure_search_index(conn, name)
                for warning in warnings:
                    log.warning("%s", warning)
                state = TableState(name, version, oid, warnings)
                self._states[name] = state
                return state

    def opened_tables(self, version: int) -> list[str]:
        return [s.name for s in self._states.values() if s.version == version]

    @staticmethod
    def _ensure_search_index(conn, table: str) -> list[str]:
        """A trigram index for the text search (ILIKE '%...%'), when the pg_trgm extension can be had."""
        index = validate_identifier(f"{table}_text_trgm_idx", "index name")
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (index,))
            if cur.fetchone()[0]:
                return []
            cur.execute("SAVEPOINT ssp_trgm")
            try:
                cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
                if cur.fetchone() is None:
                    cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                cur.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table} USING gin (text gin_trgm_ops)")
            except psycopg2.Error as err:
                cur.execute("ROLLBACK TO SAVEPOINT ssp_trgm")
                conn.commit()
                return [f"no trigram index for the text search on {table} ({str(err).strip()}): search scans the table"]
        conn.commit()
        return []

    def coverage(self, conn, state: TableState) -> queue.ScoreCoverage:
        version = queue.score_version(conn, state.name)
        if state.coverage is None or state.coverage.version != version:
            state.coverage = queue.score_coverage(conn, state.name)
        return state.coverage

    # -- reading
    def rows(self, state: TableState, filter_: str, strategy: str, limit: int, after: str | None,
             search: str | None) -> dict:
        """One batch of rows: the queue in ``strategy``'s order for ``unlabelled``, else by id."""
        with self.connection() as conn:
            coverage = self.coverage(conn, state)
            if filter_ == "unlabelled":
                try:
                    cursor = queue.QueueCursor.parse(after) if after else None
                except queue.QueueError as err:
                    raise ParameterError("after", f"after must be a cursor from a previous page ({err})") from err
                rows, next_cursor = queue.queue_page(conn, state.name, strategy, limit, cursor,
                                                     search=search, coverage=coverage)
                next_token = next_cursor.token if next_cursor else None
            else:
                if after is not None and not _TWEET_ID.match(after):
                    raise ParameterError("after", f"after must be a tweet id from a previous page, got {after!r}")
                rows = self._browse(conn, state.name, filter_, limit, int(after) if after else None, search)
                next_token = str(rows[-1]["id"]) if len(rows) == limit else None
        return {"table": state.name, "filter": filter_, "strategy": strategy, "search": search,
                "model_version": coverage.version, "items": [tweet_view(r) for r in rows], "next": next_token}

    @staticmethod
    def _browse(conn, table: str, filter_: str, limit: int, after: int | None, search: str | None) -> list[dict]:
        where = {"labelled": "t.label IS NOT NULL",
                 "disagree": "t.label IS NOT NULL AND t.slabel IN (0, 1) AND t.slabel <> t.label",
                 "all": "TRUE"}[filter_]
        params: list = [table]
        if after is not None:
            where += " AND t.id > %s"
            params.append(after)
        if search:
            where += " AND t.text ILIKE %s"
            params.append(queue.like_pattern(search))
        columns = ", ".join(f"t.{c}" for c in queue.ROW_COLUMNS)
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT {columns}, ms.ai_prob, ms.model_version FROM {table} t LEFT JOIN {MODEL_SCORES_TABLE} ms "
                f"ON ms.table_name = %s AND ms.tweet_id = t.id WHERE {where} ORDER BY t.id LIMIT %s",
                [*params, limit],
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def progress(self, state: TableState, conn=None) -> dict:
        """Labelled / total, per class, and how many gold labels disagree with Snorkel's."""
        if conn is None:
            with self.connection() as own:
                return self.progress(state, own)
        with conn.cursor() as cur:
            if state.total is None or time.monotonic() - state.total_at > TOTAL_TTL_SECONDS:
                cur.execute(f"SELECT count(*) FROM {state.name}")
                state.total, state.total_at = cur.fetchone()[0], time.monotonic()
            cur.execute(
                f"SELECT label, count(*), count(*) FILTER (WHERE slabel IN (0, 1) AND slabel <> label) "
                f"FROM {state.name} WHERE label IS NOT NULL GROUP BY label"
            )
            counts = {label: (n, disagree) for label, n, disagree in cur.fetchall()}
        labelled = sum(n for n, _ in counts.values())
        total = max(state.total, labelled)
        return {"table": state.name, "total": total, "labelled": labelled, "unlabelled": total - labelled,
                "ai": counts.get(1, (0, 0))[0], "not_ai": counts.get(0, (0, 0))[0],
                "disagree_with_snorkel": sum(d for _, d in counts.values())}

    def agreement(self, state: TableState) -> dict:
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT tweet_id, history_id, label, action, annotator, labelled_at FROM {LABEL_HISTORY_TABLE} "
                "WHERE table_name = %s AND action IN ('label', 'import', 'undo') ORDER BY tweet_id, history_id",
                (state.name,),
            )
            return {"table": state.name, **agreement_from_history(cur.fetchall())}

    # -- writing
    @staticmethod
    def _lock_row(cur, table: str, tweet_id: int) -> tuple:
        cur.execute(f"SELECT label, labelled_by, labelled_at FROM {table} WHERE id = %s FOR UPDATE", (tweet_id,))
        row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"tweet {tweet_id} is not in table {table}")
        return row

    @staticmethod
    def _keep_earlier_label(cur, table: str, tweet_id: int, current: tuple) -> None:
        """A label given before the tagger (no history yet) goes into the history first, so undo can restore it."""
        label, labelled_by, labelled_at = current
        if label is None:
            return
        cur.execute(f"SELECT EXISTS (SELECT 1 FROM {LABEL_HISTORY_TABLE} WHERE table_name = %s AND tweet_id = %s)",
                    (table, tweet_id))
        if not cur.fetchone()[0]:
            cur.execute(
                f"INSERT INTO {LABEL_HISTORY_TABLE} (table_name, tweet_id, label, action, annotator, labelled_at) "
                "VALUES (%s, %s, %s, 'import', %s, coalesce(%s, clock_timestamp()))",
                (table, tweet_id, label, labelled_by or "(before the tagger)", labelled_at),
            )

    def _row(self, cur, table: str, tweet_id: int) -> dict:
        columns = ", ".join(f"t.{c}" for c in queue.ROW_COLUMNS)
        cur.execute(f"SELECT {columns}, ms.ai_prob, ms.model_version FROM {table} t LEFT JOIN {MODEL_SCORES_TABLE} ms "
                    "ON ms.table_name = %s AND ms.tweet_id = t.id WHERE t.id = %s", (table, tweet_id))
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchone(), strict=True))

    def label(self, state: TableState, tweet_id: int, label: int, annotator: str) -> dict:
        """Set the gold label and record it in the history, in one transaction."""
        table = state.name
        with self.connection() as conn:
            with conn.cursor() as cur:
                current = self._lock_row(cur, table, tweet_id)
                self._keep_earlier_label(cur, table, tweet_id, current)
                cur.execute(
                    f"INSERT INTO {LABEL_HISTORY_TABLE} (table_name, tweet_id, label, action, annotator) "
                    "VALUES (%s, %s, %s, 'label', %s) RETURNING history_id, labelled_at",
                    (table, tweet_id, label, annotator),
                )
                history_id, at = cur.fetchone()
                cur.execute(f"UPDATE {table} SET label = %s, labelled_by = %s, labelled_at = %s WHERE id = %s",
                            (label, annotator, at, tweet_id))
                row = self._row(cur, table, tweet_id)
            conn.commit()
            return {"tweet": tweet_view(row), "history_id": history_id, "progress": self.progress(state, conn)}

    def skip(self, state: TableState, tweet_id: int, annotator: str) -> dict:
        """A skip changes no label: it is only recorded."""
        with self.connection() as conn:
            with conn.cursor() as cur:
                cur.execute(
                    f"INSERT INTO {LABEL_HISTORY_TABLE} (table_name, tweet_id, label, action, annotator) "
                    f"SELECT %s, id, NULL, 'skip', %s FROM {state.name} WHERE id = %s RETURNING history_id",
                    (state.name, annotator, tweet_id),
                )
                row = cur.fetchone()
                if row is None:
                    raise NotFoundError(f"tweet {tweet_id} is not in table {state.name}")
            conn.commit()
            return {"tweet_id": str(tweet_id), "history_id": row[0]}

    def undo(self, state: TableState, tweet_id: int, history_id: int, annotator: str) -> dict:
        """Take back decision ``history_id`` on the tweet, if it is still the tweet's current label, and
        restore the label below it on the stack (NULL when none); the undo is itself recorded."""
        table = state.name
        with self.connection() as conn:
            with conn.cursor() as cur:
                self._lock_row(cur, table, tweet_id)
                cur.execute(
                    f"SELECT history_id, label, action, annotator, labelled_at FROM {LABEL_HISTORY_TABLE} "
                    "WHERE table_name = %s AND tweet_id = %s AND action IN ('label', 'import', 'undo') "
                    "ORDER BY history_id",
                    (table, tweet_id),
                )
                stack = replay(cur.fetchall())
                if not stack:
                    raise ConflictError(f"tweet {tweet_id} of {table} has no label to undo")
                top = stack[-1]
                if top.history_id != history_id:
                    raise ConflictError(
                        f"tweet {tweet_id} of {table} was labelled again since (by {top.annotator} at "
                        f"{_iso(top.at)}): decision {history_id} is no longer its label, nothing was undone")
                below = stack[-2] if len(stack) > 1 else None
                restored = None if below is None else below.label
                cur.execute(
                    f"INSERT INTO {LABEL_HISTORY_TABLE} (table_name, tweet_id, label, action, annotator) "
                    "VALUES (%s, %s, %s, 'undo', %s) RETURNING history_id",
                    (table, tweet_id, restored, annotator),
                )
                undo_id = cur.fetchone()[0]
                cur.execute(f"UPDATE {table} SET label = %s, labelled_by = %s, labelled_at = %s WHERE id = %s",
                            (restored, below and below.annotator, below and below.at, tweet_id))
                row = self._row(cur, table, tweet_id)
            conn.commit()
            return {"tweet": tweet_view(row), "history_id": undo_id, "restored": restored,
                    "progress": self.progress(state, conn)}

    def import_labels(self, state: TableState, data: bytes, annotator: str) -> int:
        """Labels from a CSV with columns ``id`` and ``label`` (0 or 1; other columns are ignored), all or
        nothing: any bad row (with its line number) rejects the whole file."""
        rows, errors = parse_label_csv(data)
        table = state.name
        with self.connection() as conn:
            with conn.cursor() as cur:
                if rows:
                    cur.execute(f"SELECT id FROM {table} WHERE id = ANY(%s)", ([r[0] for r in rows],))
                    known = {r[0] for r in cur.fetchall()}
                    errors += [(line, f"tweet id {tweet_id} is not in table {table}")
                               for tweet_id, _, line in rows if tweet_id not in known]
                if errors:
                    errors.sort()
                    raise ImportRejected(f"{len(errors)} bad row(s) in the label file: nothing was imported",
                                         errors[:MAX_IMPORT_ERRORS], len(errors))
                if not rows:
                    raise ImportRejected("the label file has a header but no rows: nothing was imported", [], 0)
                cur.execute("CREATE TEMP TABLE ssp_import_labels (tweet_id bigint PRIMARY KEY, label smallint NOT NULL, "
                            "line integer NOT NULL) ON COMMIT DROP")
                buffer = io.StringIO("".join(f"{i}\t{label}\t{line}\n" for i, label, line in rows))
                cur.copy_expert("COPY ssp_import_labels (tweet_id, label, line) FROM STDIN", buffer)
                # lock the rows in id order (as concurrent single labels would wait for them), then keep any
                # label given before the tagger, then write
                cur.execute(f"SELECT t.id FROM {table} t JOIN ssp_import_labels s ON s.tweet_id = t.id "
                            "ORDER BY t.id FOR UPDATE OF t")
                cur.execute(
                    f"INSERT INTO {LABEL_HISTORY_TABLE} (table_name, tweet_id, label, action, annotator, labelled_at) "
                    f"SELECT %s, t.id, t.label, 'import', coalesce(t.labelled_by, '(before the tagger)'), "
                    f"coalesce(t.labelled_at, clock_timestamp()) FROM {table} t JOIN ssp_import_labels s "
                    f"ON s.tweet_id = t.id WHERE t.label IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
                    f"{LABEL_HISTORY_TABLE} h WHERE h.table_name = %s AND h.tweet_id = t.id) ORDER BY t.id",
                    (table, table),
                )
                cur.execute("SELECT clock_timestamp()")
                now = cur.fetchone()[0]
                cur.execute(
                    f"INSERT INTO {LABEL_HISTORY_TABLE} (table_name, tweet_id, label, action, annotator, labelled_at) "
                    "SELECT %s, tweet_id, label, 'import', %s, %s FROM ssp_import_labels ORDER BY line",
                    (table, annotator, now),
                )
                cur.execute(f"UPDATE {table} t SET label = s.label, labelled_by = %s, labelled_at = %s "
                            "FROM ssp_import_labels s WHERE t.id = s.tweet_id", (annotator, now))
                imported = cur.rowcount
            conn.commit()
        return imported

    def export_rows(self, table: str) -> Iterator[dict]:
        """The labelled rows of ``table`` by id, streamed from a server-side cursor."""
        columns = ", ".join(EXPORT_COLUMNS)
        with self.connection() as conn:
            with conn.cursor(name="ssp_tagger_export") as cur:
                cur.itersize = 2000
                cur.execute(f"SELECT {columns} FROM {table} WHERE label IS NOT NULL ORDER BY id")
                for row in cur:
                    yield dict(zip(EXPORT_COLUMNS, row, strict=True))


def parse_label_csv(data: bytes) -> tuple[list[tuple[int, int, int]], list[tuple[int, str]]]:
    """(id, label, line) rows and (line, error) problems of a label CSV with a header naming ``id`` and ``label``.

    >>> parse_label_csv(b"id,label\\n5,1\\n6,maybe\\n")
    ([(5, 1, 2)], [(3, "label 'maybe' must be 0 (not AI) or 1 (AI)")])
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ImportRejected(f"the label file is not UTF-8 text (byte {err.start}): nothing was imported",
                             [], 1) from err
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRejected("the label file is empty: expected a header line with columns id and label", [], 1) from None
    except csv.Error as err:
        raise ImportRejected(f"line 1 of the label file is not CSV: {err}", [(1, str(err))], 1) from err
    names = [h.strip().lower() for h in header]
    missing = [c for c in ("id", "label") if c not in names]
    if missing:
        raise ImportRejected(f"the label file's header {header!r} has no column {' or '.join(missing)}: "
                             "expected columns id and label", [(1, f"no column {' or '.join(missing)}")], 1)
    id_at, label_at = names.index("id"), names.index("label")
    rows: list[tuple[int, int, int]] = []
    errors: list[tuple[int, str]] = []
    seen: dict[int, int] = {}
    line = reader.line_num
    while True:
        start = line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            errors.append((start, f"not CSV: {err}"))
            break
        line = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) <= max(id_at, label_at):
            errors.append((start, f"has {len(record)} field(s); the header has {len(header)}"))
            continue
        raw_id, raw_label = record[id_at].strip(), record[label_at].strip()
        problems = []
        if not _TWEET_ID.match(raw_id) or int(raw_id) > 2**63 - 1:
            problems.append(f"id {raw_id!r} is not a tweet id (a positive integer)")
        if raw_label not in ("0", "1"):
            problems.append(f"label {raw_label!r} must be 0 (not AI) or 1 (AI)")
        if not problems and int(raw_id) in seen:
            problems.append(f"tweet id {raw_id} is already on line {seen[int(raw_id)]}")
        if problems:
            errors.append((start, "; ".join(problems)))
            continue
        seen[int(raw_id)] = start
        rows.append((int(raw_id), int(raw_label), start))
    return rows, errors


# ---------------------------------------------------------------- export writers
def _export_value(value):
    if isinstance(value, datetime):
        return _iso(value)
    return value


def export_csv(rows: Iterator[dict]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for n, row in enumerate(rows, 1):
        writer.writerow(["" if (v := _export_value(row[c])) is None else v for c in EXPORT_COLUMNS])
        if n % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export_jsonl(rows: Iterator[dict]) -> Iterator[str]:
    for row in rows:
        yield json.dumps({c: _export_value(row[c]) for c in EXPORT_COLUMNS}, ensure_ascii=False) + "\n"


def export_parquet(rows: Iterator[dict], row_group: int = 10_000) -> Iterator[bytes]:
    """Parquet needs its footer last: row groups go to a spooled temporary file, then out in chunks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.int64()), ("created_at", pa.timestamp("us", tz="UTC")),
                        ("user_screen_name", pa.string()), ("text", pa.string()), ("label", pa.int8()),
                        ("labelled_by", pa.string()), ("labelled_at", pa.timestamp("us", tz="UTC")),
                        ("slabel", pa.int8()), ("slabel_prob", pa.float32())])
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        with pq.ParquetWriter(spool, schema) as writer:
            batch: list[dict] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= row_group:
                    writer.write_table(pa.Table.from_pylist(batch, schema))
                    batch = []
            writer.write_table(pa.Table.from_pylist(batch, schema))
        spool.seek(0)
        while chunk := spool.read(256 * 1024):
            yield chunk


# ---------------------------------------------------------------- the active-learning loop
class ActiveLoop:
    """Model scores for the queue and the retrain loop, when the tagger has a model server.

    Scoring runs in background threads, one per table at a time, so no page waits for the model.
    """

    def __init__(self, database_url: str, data: TaggerData, client, al_config: ActiveLearningConfig) -> None:
        self.database_url = database_url
        self.data = data
        self.client = client
        self.al_config = al_config
        self._lock = threading.Lock()
        self._triggers: dict[int, object] = {}
        self._rescoring: dict[str, threading.Thread] = {}
        self._checked: set[tuple[str, int]] = set()
        self.rescore_status: dict[str, dict] = {}

    def opened(self, state: TableState) -> None:
        """First sight of a table (or of a rebuilt one): score it if the server has a version it lacks."""
        key = (state.name, state.oid)
        with self._lock:
            if key in self._checked:
                return
            self._checked.add(key)
        self.rescore(state.name, reason="opened")

    def record_labels(self, state: TableState, n: int) -> None:
        from ssp.active.retrain import RetrainTrigger

        if n <= 0 or self.al_config.retrain_every < 1:
            return
        with self._lock:
            trigger = self._triggers.get(state.version)
            if trigger is None:
                version = state.version
                trigger = RetrainTrigger(self.database_url, version, self.al_config.retrain_every,
                                         on_done=lambda outcome: self.retrained(version, outcome))
                self._triggers[state.version] = trigger
        if trigger.record(n):
            log.info("%d new labels on dataset %d: retraining in the background", self.al_config.retrain_every,
                     state.version)

    def retrained(self, dataset_version: int, outcome) -> None:
        """RetrainTrigger's on_done: once the server has the new model version, rescore the version's opened tables."""
        model_version = getattr(outcome, "model_version", None)
        if model_version is None:
            return  # the failure is in the trigger's status
        for table in self.data.opened_tables(dataset_version):
            self.rescore(table, wait_for=model_version, reason=f"retrained as model version {model_version}")

    def rescore(self, table: str, wait_for: int | None = None, reason: str = "asked") -> bool:
        """Score ``table`` in the background (after the server has ``wait_for`` or a newer version loaded);
        False when a rescore of it is already running."""
        with self._lock:
            thread = self._rescoring.get(table)
            if thread is not None and thread.is_alive():
                return False
            thread = threading.Thread(target=self._rescore, args=(table, wait_for, reason),
                                      name=f"ssp-rescore-{table}", daemon=True)
            self._rescoring[table] = thread
            self.rescore_status[table] = {**self.rescore_status.get(table, {}), "running": True, "reason": reason,
                                          "started_at": _iso(datetime.now(UTC)), "error": None}
            thread.start()
            return True

    def wait(self, table: str, timeout: float | None = None) -> None:
        """Block until ``table``'s running rescore (if any) ends: for tests and shutdown."""
        thread = self._rescoring.get(table)
        if thread is not None:
            thread.join(timeout)

    def _rescore(self, table: str, wait_for: int | None, reason: str) -> None:
        status: dict = {"running": False, "reason": reason, "version": None, "rows": None, "error": None}
        try:
            deadline = time.monotonic() + RESCORE_WAIT_SECONDS
            available = self.client.available_version()
            while wait_for is not None and (available is None or available < wait_for):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the model server did not load model version {wait_for} within "
                                       f"{RESCORE_WAIT_SECONDS:.0f} s (it serves {available})")
                time.sleep(0.5)
                available = self.client.available_version()
            with self.data.connection() as conn:
                scored_version = queue.score_version(conn, table)
            if available is not None and available == scored_version and wait_for is None and reason == "opened":
                status.update(version=scored_version, rows=None, skipped="scores are from the served version")
            else:
                rows, version = queue.refresh_scores(self.database_url, table, self.client)
                status.update(version=version, rows=rows)
        except Exception as err:  # shown on the queue page; the tagger goes on with the scores it has
            log.warning("rescoring %s failed: %s", table, err)
            status["error"] = f"{type(err).__name__}: {err}"
        status["finished_at"] = _iso(datetime.now(UTC))
        with self._lock:
            self.rescore_status[table] = status

    def status(self, state: TableState) -> dict:
        with self._lock:
            trigger = self._triggers.get(state.version)
            rescore = dict(self.rescore_status.get(state.name, {"running": False}))
        retrain = {"enabled": True, **trigger.status()} if trigger is not None else {
            "enabled": True, "labels_since_retrain": 0, "every": self.al_config.retrain_every, "running": False,
            "last_version": None, "last_error": None, "last_finished_at": None}
        if self.al_config.retrain_every < 1:
            retrain = {"enabled": False, "reason": "ActiveLearningConfig.retrain_every is below 1"}
        return {"model_url": self.client.base_url, "retrain": retrain, "rescore": rescore}


# ---------------------------------------------------------------- request helpers
def _data() -> TaggerData:
    return current_app.extensions[EXTENSION]["data"]


def _loop() -> ActiveLoop | None:
    return current_app.extensions[EXTENSION]["loop"]


def _open(name: str | None) -> TableState:
    state = _data().open(name)
    loop = _loop()
    if loop is not None:
        loop.opened(state)
    return state


def _strategy(args) -> str:
    strategy = single_value(args, "strategy") or current_app.config["SSP_AL"].strategy
    if strategy not in STRATEGIES:
        raise ParameterError("strategy", f"strategy {strategy!r} is unknown: expected one of {', '.join(STRATEGIES)}")
    return strategy


def _filter(args) -> str:
    value = single_value(args, "filter") or "unlabelled"
    if value not in FILTERS:
        raise ParameterError("filter", f"filter {value!r} is unknown: expected one of {', '.join(FILTERS)}")
    return value


def _search(args) -> str | None:
    value = single_value(args, "q")
    if value is not None and len(value) > MAX_SEARCH:
        raise ParameterError("q", f"q must be at most {MAX_SEARCH} characters, got {len(value)}")
    if value is not None and any(ord(c) < 0x20 for c in value):
        raise ParameterError("q", "q must not hold control characters")
    return value


def _rows_args(args, limit_default: int) -> dict:
    return {"filter_": _filter(args), "strategy": _strategy(args), "search": _search(args),
            "after": single_value(args, "after"), "limit": int_param(args, "limit", limit_default, 1, MAX_BATCH)}


def _annotator() -> str:
    return g.annotator


def _status(state: TableState) -> dict:
    data = _data()
    with data.connection() as conn:
        progress = data.progress(state, conn)
        model_version = queue.score_version(conn, state.name)
    loop = _loop()
    active = loop.status(state) if loop is not None else {
        "model_url": None, "rescore": {"running": False},
        "retrain": {"enabled": False, "reason": "no model server: start the tagger with --model-url to score the "
                                                "queue with the model and retrain as labels come in"}}
    return {"table": state.name, "version": state.version, "progress": progress, "model_version": model_version,
            "strategy": _strategy(request.args), "warnings": state.warnings, **active}


def _json_body(*required: str, optional: Sequence[str] = ()) -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ParameterError("body", "the request body must be a JSON object")
    for name in body:
        if name not in (*required, *optional):
            raise ParameterError(name, f"unknown field {name!r}: expected {', '.join((*required, *optional))}")
    for name in required:
        if name not in body:
            raise ParameterError(name, f"field {name!r} is required")
    return body


def _tweet_id(value) -> int:
    if isinstance(value, str) and _TWEET_ID.match(value) and int(value) <= 2**63 - 1:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**63 - 1:
        return value
    raise ParameterError("id", f"id must be a tweet id (digits, as a string), got {value!r}")


def _label_value(value) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return value
    raise ParameterError("label", f"label must be 1 (AI) or 0 (not AI), got {value!r}")


def _safe_next(target: str | None) -> str:
    """Only a path on this site after sign-in: never another host (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("tagger.tables_page")
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else url_for("tagger.tables_page")


def _csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _csrf_ok() -> bool:
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    expected = session.get("csrf") or ""
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def _annotator_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise ValueError("name is required")
    if len(name) > _MAX_ANNOTATOR:
        raise ValueError(f"name must be at most {_MAX_ANNOTATOR} characters, got {len(name)}")
    bad = sorted({c for c in name if not (c.isalnum() or c in _ANNOTATOR_EXTRA)})
    if bad:
        raise ValueError(f"name holds {''.join(bad)!r}: use letters, digits, spaces and . _ - @")
    return name


# ---------------------------------------------------------------- views
bp = Blueprint("tagger", __name__)
_PUBLIC_ENDPOINTS = ("static", "tagger.login_page", "tagger.login")


@bp.before_app_request
def _require_session() -> Response | None:
    """Every page and API call needs a signed-in annotator; every POST also the session's CSRF token."""
    if request.endpoint in _PUBLIC_ENDPOINTS:
        return None
    annotator = session.get("annotator")
    if not annotator:
        if request.path.startswith(API_PREFIX) or request.method != "GET":
            return error_response(401, "sign in first: POST /login with your name and the tagger's token")
        return redirect(url_for("tagger.login_page", next=request.full_path.rstrip("?")))
    if request.method not in ("GET", "HEAD", "OPTIONS") and not _csrf_ok():
        return error_response(403, f"missing or wrong CSRF token: send the page's token in the {CSRF_HEADER} header "
                                   f"or the {CSRF_FIELD} form field")
    g.annotator = annotator
    return None


@bp.get("/login")
def login_page() -> str:
    return render_template("tagger/login.html", next=_safe_next(request.args.get("next")), error=None, name="")


@bp.post("/login")
def login() -> Response | tuple[str, int]:
    name_raw = request.form.get("name", "")
    target = _safe_next(request.form.get("next"))
    if not _csrf_ok():
        return render_template("tagger/login.html", next=target, name=name_raw,
                               error="the sign-in form expired: try again"), 403
    try:
        name = _annotator_name(name_raw)
    except ValueError as err:
        return render_template("tagger/login.html", next=target, name=name_raw, error=str(err)), 400
    token = request.form.get("token", "")
    if not hmac.compare_digest(token.encode(), current_app.config["SSP_TAGGER_TOKEN"].encode()):
        return render_template("tagger/login.html", next=target, name=name,
                               error="wrong token: ask whoever runs the tagger for SSP_TAGGER_TOKEN"), 401
    session.clear()  # a fresh session (and CSRF token) at sign-in: nothing carried over from before
    session["annotator"] = name
    _csrf_token()
    return redirect(target)


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("tagger.login_page"))


@bp.get("/")
def tables_page() -> str:
    reject_unknown(request.args, ())
    return render_template("tagger/tables.html", versions=_data().tables(), strategies=STRATEGIES,
                           default_strategy=current_app.config["SSP_AL"].strategy)


@bp.get("/api/tables")
def tables_api() -> Response:
    reject_unknown(request.args, ())
    return jsonify({"versions": _data().tables()})


_ROWS_ARGS = ("table", "filter", "strategy", "q", "after", "limit")


@bp.get("/tag")
def tag_page() -> str:
    reject_unknown(request.args, _ROWS_ARGS)
    state = _open(single_value(request.args, "table"))
    args = _rows_args(request.args, current_app.config["SSP_WEB"].page_size)
    result = _data().rows(state, **args)
    return render_template("tagger/tag.html", table_name=state.name, result=result, status=_status(state),
                           filters=FILTER_NAMES,
                           strategies=STRATEGIES, label_names=LABEL_NAMES)


@bp.get("/api/rows")
def rows_api() -> Response:
    reject_unknown(request.args, _ROWS_ARGS)
    state = _open(single_value(request.args, "table"))
    return jsonify(_data().rows(state, **_rows_args(request.args, current_app.config["SSP_WEB"].page_size)))


@bp.get("/api/status")
def status_api() -> Response:
    reject_unknown(request.args, ("table", "strategy"))
    return jsonify(_status(_open(single_value(request.args, "table"))))


@bp.get("/stats")
def stats_page() -> str:
    reject_unknown(request.args, ("table",))
    state = _open(single_value(request.args, "table"))
    return render_template("tagger/stats.html", table_name=state.name, status=_status(state),
                           agreement=_data().agreement(state), formats=EXPORT_FORMATS, imported=None, import_error=None)


@bp.get("/api/agreement")
def agreement_api() -> Response:
    reject_unknown(request.args, ("table",))
    return jsonify(_data().agreement(_open(single_value(request.args, "table"))))


@bp.post("/api/label")
def label_api() -> Response:
    body = _json_body("table", "id", "label")
    state = _open(body["table"] if isinstance(body["table"], str) else None)
    result = _data().label(state, _tweet_id(body["id"]), _label_value(body["label"]), _annotator())
    _labels_written(state, 1)
    return jsonify(result)


@bp.post("/api/skip")
def skip_api() -> Response:
    body = _json_body("table", "id")
    state = _open(body["table"] if isinstance(body["table"], str) else None)
    return jsonify(_data().skip(state, _tweet_id(body["id"]), _annotator()))


@bp.post("/api/undo")
def undo_api() -> Response:
    body = _json_body("table", "id", "history_id")
    state = _open(body["table"] if isinstance(body["table"], str) else None)
    history_id = body["history_id"]
    if isinstance(history_id, bool) or not isinstance(history_id, int) or history_id < 1:
        raise ParameterError("history_id", f"history_id must be the positive integer a label answer gave, "
                                           f"got {history_id!r}")
    return jsonify(_data().undo(state, _tweet_id(body["id"]), history_id, _annotator()))


def _uploaded_labels() -> bytes:
    upload = request.files.get("file")
    if upload is not None:
        return upload.read()
    if request.mimetype == "text/csv":
        return request.get_data()
    raise ParameterError("file", "send the labels as a CSV file in the form field 'file' (or as a text/csv body)")


def _labels_written(state: TableState, n: int) -> None:
    stats = current_app.extensions[EXTENSION]["stats"]
    with stats["lock"]:
        stats["labels"] += n
    loop = _loop()
    if loop is not None:
        loop.record_labels(state, n)


@bp.post("/api/import")
def import_api() -> Response | tuple[Response, int]:
    reject_unknown(request.args, ("table",))
    state = _open(single_value(request.args, "table") or request.form.get("table"))
    try:
        imported = _data().import_labels(state, _uploaded_labels(), _annotator())
    except ImportRejected as err:
        body = {"error": str(err), "errors": [{"line": line, "error": message} for line, message in err.errors],
                "bad_rows": err.total}
        return jsonify(body), 400
    _labels_written(state, imported)
    return jsonify({"table": state.name, "imported": imported})


@bp.post("/import")
def import_form() -> tuple[str, int]:
    state = _open(request.form.get("table"))
    imported, error, status = None, None, 200
    try:
        imported = _data().import_labels(state, _uploaded_labels(), _annotator())
        _labels_written(state, imported)
    except ImportRejected as err:
        error, status = err, 400
    return render_template("tagger/stats.html", table_name=state.name, status=_status(state),
                           agreement=_data().agreement(state), formats=EXPORT_FORMATS, imported=imported,
                           import_error=error), status


@bp.get("/api/export")
def export_api() -> Response:
    reject_unknown(request.args, ("table", "format"))
    state = _open(single_value(request.args, "table"))
    fmt = single_value(request.args, "format") or "csv"
    if fmt not in EXPORT_FORMATS:
        raise ParameterError("format", f"format {fmt!r} is unknown: expected one of {', '.join(EXPORT_FORMATS)}")
    rows = _data().export_rows(state.name)
    body = {"csv": export_csv, "jsonl": export_jsonl, "parquet": export_parquet}[fmt](rows)
    response = Response(stream_with_context(body), mimetype=EXPORT_FORMATS[fmt].split(";")[0])
    if fmt == "csv":
        response.headers["Content-Type"] = EXPORT_FORMATS["csv"]
    response.headers["Content-Disposition"] = f'attachment; filename="{state.name}_labels.{fmt}"'
    return response


@bp.post("/api/rescore")
def rescore_api() -> tuple[Response, int]:
    body = _json_body("table")
    state = _open(body["table"] if isinstance(body["table"], str) else None)
    loop = _loop()
    if loop is None:
        return jsonify({"error": "no model server: start the tagger with --model-url to score the queue"}), 409
    started = loop.rescore(state.name, reason=f"asked by {_annotator()}")
    return jsonify({"table": state.name, "started": started, **loop.status(state)}), 202 if started else 200


def _label_text(label: int | None) -> str:
    return "" if label is None else LABEL_NAMES.get(label, str(label))


def create_app(database_url: str, config: WebConfig | None = None, al_config: ActiveLearningConfig | None = None,
               testing: bool = False, model_url: str | None = None) -> Flask:
    """The tagger on the database at ``database_url``.

    Needs ``$SSP_TAGGER_TOKEN`` (the shared sign-in token) unless ``testing``; signs sessions
    with ``$SSP_TAGGER_SECRET_KEY``, or a random key per process (sessions then end with the
    process). ``model_url`` (a TF-Serving-compatible REST server) turns on model scores for the
    queue and the retrain loop. Never in debug mode.
    """
    al_config = al_config or ActiveLearningConfig()
    if al_config.strategy not in STRATEGIES:
        raise TaggerConfigError(f"ActiveLearningConfig.strategy {al_config.strategy!r} is unknown: expected one of "
                                f"{', '.join(STRATEGIES)}")
    token = os.environ.get(TOKEN_ENV, "")
    if not token.strip() and not testing:
        raise TaggerConfigError(f"{TOKEN_ENV} is not set: the tagger signs annotators in with a shared token; "
                                f"export {TOKEN_ENV}=<a long random string> and give it to the annotators")
    if token.strip() and len(token.strip()) < MIN_TOKEN_LENGTH:
        raise TaggerConfigError(f"{TOKEN_ENV} is {len(token.strip())} characters long: use at least "
                                f"{MIN_TOKEN_LENGTH} (a long random string)")
    app = Flask(__name__)
    app.config.update(
        TESTING=testing, DEBUG=False, SSP_WEB=config or WebConfig(), SSP_AL=al_config,
        SSP_STYLESHEET="tagger/tagger.css", SSP_TAGGER_TOKEN=token.strip() or secrets.token_urlsafe(32),
        SECRET_KEY=os.environ.get(SECRET_KEY_ENV) or secrets.token_bytes(32),
        SESSION_COOKIE_NAME="ssp_tagger_session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=MAX_IMPORT_BYTES,
    )
    engine = make_engine(database_url)
    data = TaggerData(engine)
    loop = None
    if model_url:
        from ssp.serving.client import PredictClient

        loop = ActiveLoop(database_url, data, PredictClient.from_config(model_url), al_config)
    app.extensions[EXTENSION] = {"data": data, "loop": loop, "stats": {"labels": 0, "lock": threading.Lock()}}
    app.jinja_env.filters["label_text"] = _label_text
    app.jinja_env.globals["csrf_token"] = _csrf_token
    install_common(app)

    @app.errorhandler(psycopg2.OperationalError)
    def database_lost(err: psycopg2.OperationalError) -> Response:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return error_response(503, f"cannot reach the database: {reason}")

    @app.errorhandler(psycopg2.errors.UndefinedTable)
    def table_dropped(err: psycopg2.errors.UndefinedTable) -> Response:
        return error_response(404, f"a table went away while the tagger read it ({str(err).strip().splitlines()[0]}): "
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

    app.register_blueprint(bp)
    return app
