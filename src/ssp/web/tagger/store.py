"""The tagger's SQL store: dataset rows as the pages show them, labels with their history, import.

Every decision goes to the table's ``label`` column and to ``label_history`` in one
transaction, so a changed or undone label is never lost. Undo replays the tweet's history as a
stack (a label or import pushes, an undo pops) and restores what lies below.

Reading never writes: the objects the queue reads fast with (``model_scores``, ``label_history``,
the queue and search indexes) are built by :meth:`TaggerData.prepare_all` when the app starts, and
for a table that appears later by the first write to it (a POST, which needs the session's CSRF
token), never by a page a link can open.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg2
from sqlalchemy.engine import Engine

from ssp.active import queue
from ssp.storage.postgres import ensure_tables
from ssp.storage.tables import LABEL_HISTORY_TABLE, MODEL_SCORES_TABLE, label_history_table, validate_identifier
from ssp.web.common import ParameterError, UnavailableError, link_view
from ssp.web.tagger.agreement import agreement_from_history, replay
from ssp.web.tagger.names import (
    TABLE_NAME,
    TWEET_ID,
    ConflictError,
    ImportRejected,
    NotFoundError,
    TableMissingError,
    dataset_table_names,
    parse_table_name,
)

log = logging.getLogger(__name__)

TOTAL_TTL_SECONDS = 60.0
MAX_IMPORT_ERRORS = 100
EXPORT_COLUMNS = ("id", "created_at", "user_screen_name", "text", "label", "labelled_by", "labelled_at", "slabel",
                  "slabel_prob")


def iso(moment: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 in UTC with a ``Z``; None stays None."""
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")



def tweet_view(row: dict) -> dict:
    """A dataset row as the pages and the JSON API show it (ids as strings: JavaScript numbers hold 2**53)."""
    prob = row.get("slabel_prob")
    ai_prob = row.get("ai_prob")
    return {
        "id": str(row["id"]),
        "created_at": iso(row["created_at"]),
        "user": row["user_screen_name"],
        "text": row["text"],
        "links": [link_view(url) for url in row.get("urls") or ()],
        "hashtags": list(row.get("hashtags") or ()),
        "slabel": row["slabel"],
        "slabel_prob": None if prob is None else round(float(prob), 6),
        "label": row["label"],
        "labelled_by": row["labelled_by"],
        "labelled_at": iso(row["labelled_at"]),
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
    prepared: bool = False  # its queue and search indexes exist (or could not be built: see warnings)


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
        self._database_ready = False
        # called with each table once it is prepared (the active-learning loop scores it)
        self.on_prepared: Callable[[TableState], None] | None = None

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
                (TABLE_NAME.pattern,),
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

    def prepare_database(self) -> None:
        """The database-wide objects the tagger reads and writes: ``label_history``, ``model_scores`` and the
        queue's SQL functions. Idempotent; at start-up."""
        ensure_tables(self.engine, label_history_table())
        with self.connection() as conn:
            queue.ensure_model_scores(conn)
        self._database_ready = True

    def prepare_all(self) -> list[TableState]:
        """Prepare the database and every dataset table in it (indexes for the queue and the search): at start-up,
        so that no page view writes."""
        self.prepare_database()
        names = [t["name"] for v in self.tables() for t in v["tables"]]
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema() "
                        "AND tablename = ANY(%s)", (names,))
            indexes: dict[str, set[str]] = {}
            for table, index in cur.fetchall():
                indexes.setdefault(table, set()).add(index)
            cur.execute("SELECT relname, oid FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                        "AND relname = ANY(%s)", (names,))
            oids = dict(cur.fetchall())
        states = []
        for name in names:
            expected = {*queue.queue_index_statements(name), f"{name}_text_trgm_idx"}
            if name in oids and expected <= indexes.get(name, set()):  # prepared before: nothing to build
                state = TableState(name, parse_table_name(name)[1], oids[name], prepared=True)
                with self._lock:
                    self._states[name] = state
            else:
                state = self.open(name, prepare=True)
            states.append(state)
        return states

    def open(self, name: str | None, prepare: bool = False) -> TableState:
        """The state of dataset table ``name``. With ``prepare`` (start-up, or a POST) its indexes are built if
        they are not yet; without, nothing is written and an unprepared table is read as it is (more slowly)."""
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
            if state is not None and state.oid == oid and (state.prepared or not prepare):
                return state
            if not prepare:
                return self._unprepared(name, version, oid)
            with self._lock:
                state = self._states.get(name)
                if state is not None and state.oid == oid and state.prepared:
                    return state
                if not self._database_ready:
                    self.prepare_database()
                warnings = queue.ensure_queue_objects(conn, name)
                warnings += self._ensure_search_index(conn, name)
                for warning in warnings:
                    log.warning("%s", warning)
                state = TableState(name, version, oid, warnings, prepared=True)
                self._states[name] = state
        if self.on_prepared is not None:
            self.on_prepared(state)
        return state

    def _unprepared(self, name: str, version: int, oid: int) -> TableState:
        if not self._database_ready:
            raise UnavailableError("the tagger's tables (label_history, model_scores) were not set up at start-up "
                                   "(was the database down?): restart the tagger", table=name)
        with self._lock:
            state = self._states.get(name)
            if state is None or state.oid != oid:
                warning = (f"table {name} appeared after the tagger started: it has no queue or search index yet "
                           "and is read more slowly until the first label (or Rescore) builds them")
                state = TableState(name, version, oid, [warning])
                self._states[name] = state
            return state

    def opened_tables(self, version: int) -> list[str]:
        """The prepared tables of dataset ``version``: the ones a new model version rescores."""
        return [s.name for s in list(self._states.values()) if s.version == version and s.prepared]

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
                if after is not None and not TWEET_ID.match(after):
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
                        f"{iso(top.at)}): decision {history_id} is no longer its label, nothing was undone")
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
        if not TWEET_ID.match(raw_id) or int(raw_id) > 2**63 - 1:
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

