"""The active-learning queue in SQL: a dataset table's unlabelled tweets, most informative first.

The ranking is :func:`ssp.active.strategies.order`'s, computed by PostgreSQL so that a page of
the queue costs an index walk, not a pass over the table in Python. Every strategy becomes an
ascending sort key (the negated informativeness score, so ``key`` ascending = ``score``
descending) with the tweet id as tie-break, exactly as ``strategies.order`` breaks ties:

======================  ==========================================================================
strategy                sort key (p = the model's P(AI), s = Snorkel's ``slabel_prob``, 0.5 if NULL)
======================  ==========================================================================
least_confidence,       ``greatest(p, 1 - p) - 1``: minus ``1 - max(p, 1 - p)``. For two classes
entropy                 entropy ranks tweets as least confidence does, so both use this key
disagreement            ``-|p - s|``
stochastic_uncertainty  ``-ln(1 - r) / greatest(1 - greatest(p, 1 - p), 1e-12)``, r the random key's
                        hash at the queue's seed: minus ``strategies.stochastic_scores``' key
random                  ``-ssp_queue_random_score(seed, id)``: SplitMix64 of (seed, id) in SQL,
                        bit for bit :func:`ssp.active.strategies.random_scores`
======================  ==========================================================================

p comes from the ``model_scores`` table, one row per (table, tweet) from the model version
that :func:`refresh_scores` last used. A tweet without a model score falls back to Snorkel's
uncertainty, ``greatest(s, 1 - s) - 1``: under least confidence and entropy it ranks among the
scored tweets as if the model had said s; under disagreement, which needs a model, unscored
tweets come after every scored one (``group`` 1); under stochastic_uncertainty an unscored tweet
is drawn with Snorkel's s in place of p.

The two kinds of tweets are read by two index-ordered queries (scored ones along
``model_scores``' uncertainty index, unscored ones along a partial index of the dataset table
``WHERE label IS NULL``) whose first rows are merged, so a page costs ``O(page)`` index
entries whatever the table's size. Pages follow each other by keyset (:class:`QueueCursor`):
labelling a tweet removes it from the queue without shifting the next page. Only
``disagreement`` and ``stochastic_uncertainty`` sort (the first's key mixes two tables, the
second's is a seeded draw no index holds); the scored branch sorts narrow (id, key) rows and
reads the page's wide rows after, stochastic_uncertainty's unscored branch sorts the table's rows.

The SQL function and indexes the queries need are created on demand and idempotently
(:func:`ensure_queue_objects`).
"""

from __future__ import annotations

import io
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ssp.active.strategies import MIN_WEIGHT, queue_strategy_problem
from ssp.errors import SspError
from ssp.storage.postgres import advisory_lock_key
from ssp.storage.tables import MODEL_SCORES_TABLE, model_scores_table, validate_identifier

log = logging.getLogger(__name__)

RANDOM_SCORE_FUNCTION = "ssp_queue_random_score"
# The tagger's seed for the random strategy: the one with an index. Other seeds work, by a sort.
QUEUE_SEED = 0
# What the dataset table's columns are read as on a queue page (``t`` is the dataset table).
ROW_COLUMNS = ("id", "created_at", "text", "user_screen_name", "urls", "hashtags", "slabel", "slabel_prob", "label",
               "labelled_by", "labelled_at")
_CURSOR = re.compile(r"^([01])~(-?[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)~(-?[0-9]{1,19})$")
_INT64 = (-(2**63), 2**63 - 1)

# SplitMix64 (the finaliser strategies.random_scores uses) on signed bigints, twice: once on the seed,
# once on that xor the id. PostgreSQL has no unsigned 64-bit type: sums and products are taken
# modulo 2^64 in numeric, shifts and xors on bit(64), which shifts logically. IMMUTABLE, so an
# expression index can hold its values; one self-contained function, because index builds run
# with search_path = pg_catalog and would not find a second one.
_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {RANDOM_SCORE_FUNCTION}(seed bigint, tweet_id bigint) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
  two64 constant numeric := 18446744073709551616;
  two63 constant numeric := 9223372036854775808;
  u numeric;
  z bigint := seed;
BEGIN
  FOR round IN 1..2 LOOP
    u := mod((CASE WHEN z < 0 THEN z + two64 ELSE z END)::numeric + 11400714819323198485, two64);
    z := (CASE WHEN u >= two63 THEN u - two64 ELSE u END)::bigint;
    z := (z::bit(64) # (z::bit(64) >> 30))::bigint;
    u := mod((CASE WHEN z < 0 THEN z + two64 ELSE z END)::numeric * 13787848793156543929, two64);
    z := (CASE WHEN u >= two63 THEN u - two64 ELSE u END)::bigint;
    z := (z::bit(64) # (z::bit(64) >> 27))::bigint;
    u := mod((CASE WHEN z < 0 THEN z + two64 ELSE z END)::numeric * 10723151780598845931, two64);
    z := (CASE WHEN u >= two63 THEN u - two64 ELSE u END)::bigint;
    z := (z::bit(64) # (z::bit(64) >> 31))::bigint;
    IF round = 1 THEN
      z := z # tweet_id;
    END IF;
  END LOOP;
  RETURN ((z::bit(64) >> 11)::bigint)::double precision / 9007199254740992::double precision;
END
$fn$;
"""


class QueueError(SspError, ValueError):
    """A queue request that cannot be served: unknown strategy, bad cursor, missing model version."""


def _check_strategy(strategy: str) -> str:
    problem = queue_strategy_problem(strategy)
    if problem is not None:
        raise QueueError(problem)
    return strategy


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not _INT64[0] <= seed <= _INT64[1]:
        raise QueueError(f"seed must be a 64-bit integer, got {seed!r}")
    return seed


# ---------------------------------------------------------------- sort keys
def uncertainty_key(prob: str) -> str:
    """SQL for ``greatest(p, 1 - p) - 1`` in float8: minus least confidence, bit for bit numpy's.

    >>> uncertainty_key("x")
    'greatest(x, 1.0::float8 - x) - 1.0::float8'
    """
    return f"greatest({prob}, 1.0::float8 - {prob}) - 1.0::float8"


_MODEL_PROB = "ms.ai_prob::float8"
_SNORKEL_PROB = "coalesce(t.slabel_prob::float8, 0.5::float8)"
# The index expressions: written without the table alias, since index definitions have none.
_MODEL_KEY_INDEXED = uncertainty_key("ai_prob::float8")
_SNORKEL_KEY_INDEXED = uncertainty_key("coalesce(slabel_prob::float8, 0.5::float8)")


def stochastic_key(prob: str, seed: int, column: str = "t.id") -> str:
    """SQL for minus :func:`ssp.active.strategies.stochastic_scores`' key of least confidence, in float8.

    >>> stochastic_key("x", 0)  # doctest: +NORMALIZE_WHITESPACE
    '(-(ln(1.0::float8 - ssp_queue_random_score(0::bigint, t.id)) / greatest(1.0::float8 - greatest(x, 1.0::float8 - x),
    1e-12::float8)))'
    """
    return (f"(-(ln(1.0::float8 - {RANDOM_SCORE_FUNCTION}({_check_seed(seed)}::bigint, {column})) / "
            f"greatest(1.0::float8 - greatest({prob}, 1.0::float8 - {prob}), {MIN_WEIGHT!r}::float8)))")


def _random_key(seed: int, column: str = "t.id") -> str:
    # The seed is a validated int written into the SQL text, not a bound parameter: the planner
    # matches an expression index only against the very same constant.
    return f"(-{RANDOM_SCORE_FUNCTION}({_check_seed(seed)}::bigint, {column}))"


@dataclass(frozen=True)
class QueueCursor:
    """Where a queue page ended: the last row's (group, sort key, id); the next page starts after it.

    >>> c = QueueCursor(0, -0.125, 42)
    >>> QueueCursor.parse(c.token) == c
    True
    """

    group: int
    key: float
    tweet_id: int

    @property
    def token(self) -> str:
        return f"{self.group}~{self.key!r}~{self.tweet_id}"

    @classmethod
    def parse(cls, token: str) -> QueueCursor:
        match = _CURSOR.match(token or "")
        if match is None:
            raise QueueError(f"queue cursor {token!r} is not one a queue page gave out")
        key, tweet_id = float(match[2]), int(match[3])
        if not math.isfinite(key) or not _INT64[0] <= tweet_id <= _INT64[1]:
            raise QueueError(f"queue cursor {token!r} is out of range")
        return cls(int(match[1]), key, tweet_id)


@dataclass(frozen=True)
class ScoreCoverage:
    """Which tweets of a table have a model score: decides which of the two index walks a page needs.

    ``version`` is the newest model version in ``model_scores`` for the table (None: no scores).
    """

    scored: bool
    unscored: bool
    version: int | None


def score_version(conn, table: str) -> int | None:
    """The newest model version that scored ``table`` (None when no model has); index-served."""
    validate_identifier(table, "table name")
    with conn.cursor() as cur:
        cur.execute(f"SELECT max(model_version) FROM {MODEL_SCORES_TABLE} WHERE table_name = %s", (table,))
        return cur.fetchone()[0]


def score_coverage(conn, table: str) -> ScoreCoverage:
    """Whether ``table`` has scored and unscored tweets. Reads the whole table once: callers cache the
    answer per model version (see :func:`score_version`), as the tagger does."""
    validate_identifier(table, "table name")
    version = score_version(conn, table)
    if version is None:
        return ScoreCoverage(scored=False, unscored=True, version=None)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM {MODEL_SCORES_TABLE} ms "
            "WHERE ms.table_name = %s AND ms.tweet_id = t.id))",
            (table,),
        )
        return ScoreCoverage(scored=True, unscored=bool(cur.fetchone()[0]), version=version)


# ---------------------------------------------------------------- SQL objects
def queue_index_statements(table: str) -> dict[str, str]:
    """``CREATE INDEX IF NOT EXISTS`` statements for what the queue and the tagger read, by index name."""
    validate_identifier(table, "table name")
    name = lambda suffix: validate_identifier(f"{table}_{suffix}", "index name")  # noqa: E731
    return {
        # unscored tweets in Snorkel-uncertainty order
        name("queue_unc_idx"): f"CREATE INDEX IF NOT EXISTS {name('queue_unc_idx')} ON {table} "
                               f"(({_SNORKEL_KEY_INDEXED}), id) WHERE label IS NULL",
        # the random strategy at the tagger's seed
        name("queue_rnd_idx"): f"CREATE INDEX IF NOT EXISTS {name('queue_rnd_idx')} ON {table} "
                               f"({_random_key(QUEUE_SEED, 'id')}, id) WHERE label IS NULL",
        # labelled tweets by id, and the labelled counts per class (index-only)
        name("labelled_idx"): f"CREATE INDEX IF NOT EXISTS {name('labelled_idx')} ON {table} (id) "
                              "INCLUDE (label, slabel) WHERE label IS NOT NULL",
    }


def model_scores_index_statements() -> dict[str, str]:
    """Indexes on ``model_scores``: the scored tweets' uncertainty order, and a table's newest version."""
    ms = MODEL_SCORES_TABLE
    return {
        f"{ms}_unc_idx": f"CREATE INDEX IF NOT EXISTS {ms}_unc_idx ON {ms} (table_name, ({_MODEL_KEY_INDEXED}), tweet_id)",
        f"{ms}_version_idx": f"CREATE INDEX IF NOT EXISTS {ms}_version_idx ON {ms} (table_name, model_version)",
    }


def _lock_key(name: str) -> int:
    return advisory_lock_key("ssp.active.queue", name)


def ensure_model_scores(conn) -> None:
    """Create ``model_scores``, its queue indexes and the random-order SQL functions if missing; commits."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(MODEL_SCORES_TABLE),))
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (MODEL_SCORES_TABLE,))
        if not cur.fetchone()[0]:
            table = model_scores_table()
            # IF NOT EXISTS: another stage may create the table without taking this lock
            cur.execute(str(CreateTable(table, if_not_exists=True).compile(dialect=postgresql.dialect())))
            for index in table.indexes:
                cur.execute(str(CreateIndex(index, if_not_exists=True).compile(dialect=postgresql.dialect())))
        existing = _existing_indexes(cur, MODEL_SCORES_TABLE)
        for index, statement in model_scores_index_statements().items():
            if index not in existing:
                cur.execute(statement)
        cur.execute("SELECT to_regprocedure(%s) IS NOT NULL", (f"{RANDOM_SCORE_FUNCTION}(bigint, bigint)",))
        if not cur.fetchone()[0]:
            cur.execute(_FUNCTION_SQL)
    conn.commit()


def _existing_indexes(cur, table: str) -> set[str]:
    cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s", (table,))
    return {row[0] for row in cur.fetchall()}


def ensure_queue_objects(conn, table: str) -> list[str]:
    """Make sure ``table``'s queue can be read fast: ``model_scores``, the SQL functions, the indexes.

    Idempotent and safe to call from several processes (an advisory lock per table). An index that
    cannot be built (say the database user does not own the table) is not an error, since every
    query still answers without it, only slower: the reasons come back as warnings.
    """
    import psycopg2

    ensure_model_scores(conn)
    warnings: list[str] = []
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(table),))
        existing = _existing_indexes(cur, table)
        for index, statement in queue_index_statements(table).items():
            if index in existing:
                continue
            cur.execute("SAVEPOINT ssp_queue_index")
            try:
                cur.execute(statement)
            except psycopg2.Error as err:
                cur.execute("ROLLBACK TO SAVEPOINT ssp_queue_index")
                warnings.append(f"index {index} on {table} could not be created ({str(err).strip()}): "
                                "the tagger works without it, more slowly")
    conn.commit()
    return warnings


# ---------------------------------------------------------------- reading the queue
def _select_columns(model_columns: bool = True) -> str:
    columns = ", ".join(f"t.{c}" for c in ROW_COLUMNS)
    if model_columns:
        return f"{columns}, ms.ai_prob AS ai_prob, ms.model_version AS model_version"
    return f"{columns}, NULL::real AS ai_prob, NULL::bigint AS model_version"


def _after(cursor: QueueCursor | None, group: int, key: str, id_column: str, params: list,
           table: str | None = None) -> str | None:
    """The keyset condition for one branch: '' (from its start), None (the branch is used up), or SQL.

    With ``table``, the row comparison leads with ``model_scores.table_name`` so that it matches
    the whole uncertainty index (table_name, key, tweet_id).
    """
    if cursor is None or cursor.group < group:
        return ""
    if cursor.group > group:
        return None
    if table is not None:
        params.extend([table, cursor.key, cursor.tweet_id])
        return f" AND (ms.table_name, {key}, {id_column}) > (%s, %s::float8, %s::bigint)"
    params.extend([cursor.key, cursor.tweet_id])
    return f" AND ({key}, {id_column}) > (%s::float8, %s::bigint)"


def _search(pattern: str | None, params: list) -> str:
    if pattern is None:
        return ""
    params.append(pattern)
    return " AND t.text ILIKE %s"


def like_pattern(text: str) -> str:
    r"""An ILIKE pattern matching ``text`` anywhere, its ``%``, ``_`` and ``\`` taken literally.

    >>> like_pattern("50%_off")
    '%50\\%\\_off%'
    """
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def queue_query(table: str, strategy: str, limit: int, coverage: ScoreCoverage, after: QueueCursor | None = None,
                seed: int = QUEUE_SEED, search: str | None = None) -> tuple[str, list] | None:
    """The SQL and parameters of one queue page (see :func:`queue_page`); None when the queue is used up."""
    validate_identifier(table, "table name")
    _check_strategy(strategy)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise QueueError(f"limit must be a positive integer, got {limit!r}")
    pattern = like_pattern(search) if search else None
    ms_table = MODEL_SCORES_TABLE
    branches: list[tuple[str, list]] = []
    if strategy == "random":
        params: list = [table]
        key = _random_key(seed)
        where = _after(after, 0, key, "t.id", params)
        if where is not None:
            sql = (f"SELECT {_select_columns()}, 0 AS queue_group, {key} AS queue_key FROM {table} t "
                   f"LEFT JOIN {ms_table} ms ON ms.table_name = %s AND ms.tweet_id = t.id "
                   f"WHERE t.label IS NULL{where}{_search(pattern, params)} ORDER BY queue_key, t.id LIMIT %s")
            branches.append((sql, [*params, limit]))
    else:
        if coverage.scored and strategy in ("disagreement", "stochastic_uncertainty"):
            # No index can order by a key from two tables, or by a seeded draw: sort narrow (id, key)
            # rows first and read the wide columns of the page's rows only.
            params = [table]
            key = (f"(-abs({_MODEL_PROB} - {_SNORKEL_PROB}))" if strategy == "disagreement"
                   else stochastic_key(_MODEL_PROB, seed))
            where = _after(after, 0, key, "t.id", params)
            if where is not None:
                sql = (f"SELECT {_select_columns()}, 0 AS queue_group, top.queue_key FROM "
                       f"(SELECT t.id AS top_id, {key} AS queue_key FROM {ms_table} ms "
                       f"JOIN {table} t ON t.id = ms.tweet_id WHERE ms.table_name = %s AND t.label IS NULL"
                       f"{where}{_search(pattern, params)} ORDER BY queue_key, t.id LIMIT %s) top "
                       f"JOIN {table} t ON t.id = top.top_id "
                       f"JOIN {ms_table} ms ON ms.table_name = %s AND ms.tweet_id = top.top_id "
                       "ORDER BY top.queue_key, top.top_id")
                branches.append((sql, [*params, limit, table]))
        elif coverage.scored:
            params = [table]
            key = f"({uncertainty_key(_MODEL_PROB)})"
            where = _after(after, 0, key, "ms.tweet_id", params, table=table)
            if where is not None:
                sql = (f"SELECT {_select_columns()}, 0 AS queue_group, {key} AS queue_key FROM {ms_table} ms "
                       f"JOIN {table} t ON t.id = ms.tweet_id WHERE ms.table_name = %s AND t.label IS NULL"
                       f"{where}{_search(pattern, params)} ORDER BY queue_key, ms.tweet_id LIMIT %s")
                branches.append((sql, [*params, limit]))
        if coverage.unscored:
            group = 1 if strategy == "disagreement" else 0
            key = (stochastic_key(_SNORKEL_PROB, seed) if strategy == "stochastic_uncertainty"
                   else f"({uncertainty_key(_SNORKEL_PROB)})")
            params = []
            where = _after(after, group, key, "t.id", params)
            if where is not None:
                unscored = ""
                if coverage.scored:
                    unscored = f" AND NOT EXISTS (SELECT 1 FROM {ms_table} ms WHERE ms.table_name = %s AND ms.tweet_id = t.id)"
                    params.insert(0, table)
                sql = (f"SELECT {_select_columns(False)}, {group} AS queue_group, {key} AS queue_key FROM {table} t "
                       f"WHERE t.label IS NULL{unscored}{where}{_search(pattern, params)} "
                       f"ORDER BY queue_key, t.id LIMIT %s")
                branches.append((sql, [*params, limit]))
    if not branches:
        return None
    if len(branches) == 1:
        return branches[0]
    return (f"SELECT * FROM (({branches[0][0]}) UNION ALL ({branches[1][0]})) q "
            "ORDER BY queue_group, queue_key, id LIMIT %s", [*branches[0][1], *branches[1][1], limit])


def queue_page(conn, table: str, strategy: str, limit: int, after: QueueCursor | None = None,
               seed: int = QUEUE_SEED, search: str | None = None,
               coverage: ScoreCoverage | None = None) -> tuple[list[dict], QueueCursor | None]:
    """The next ``limit`` unlabelled tweets of ``table`` in ``strategy``'s order, after ``after``.

    Returns the rows (dicts of :data:`ROW_COLUMNS` plus ``ai_prob``, ``model_version`` and the
    ``queue_group``/``queue_key`` they sort by) and the cursor of the page after, None at the end.
    ``search`` keeps tweets whose text contains it (case-insensitive). ``coverage`` is
    :func:`score_coverage`'s answer, computed here when not given.
    """
    _check_strategy(strategy)
    if coverage is None:
        coverage = score_coverage(conn, table)
    query = queue_query(table, strategy, limit, coverage, after, seed, search)
    if query is None:
        return [], None
    sql, params = query
    with conn.cursor() as cur:
        cur.execute(sql, params)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    cursor = None
    if len(rows) == limit:
        last = rows[-1]
        cursor = QueueCursor(int(last["queue_group"]), float(last["queue_key"]), int(last["id"]))
    return rows, cursor


# ---------------------------------------------------------------- scoring with a served model
def _copy_scores(cur, stage: str, table: str, ids: Sequence[int], probs, version: int) -> None:
    buffer = io.StringIO()
    for tweet_id, prob in zip(ids, probs, strict=True):
        value = float(prob)
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise QueueError(f"model version {version} gave P(AI) = {value} for tweet {tweet_id} of {table}: "
                             "a probability must be in [0, 1]")
        buffer.write(f"{tweet_id}\t{value!r}\n")
    buffer.seek(0)
    cur.copy_expert(f"COPY {stage} (tweet_id, ai_prob) FROM STDIN", buffer)


def refresh_scores(database_url: str, table: str, client, chunk_rows: int = 8192,
                   on_progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Score every tweet of ``table`` with the model ``client`` (a :class:`ssp.serving.client.PredictClient`)
    serves, and make those the table's rows of ``model_scores``; returns (rows scored, model version).

    All rows get the same model version: the first batch learns which version answers and the
    rest are pinned to it, so a version switch half-way cannot mix two models in one ranking. The
    new scores are COPYed into a temporary table and upserted in one transaction, which also drops
    the table's scores for tweets no longer in it: the queue sees the old ranking or the new one,
    never a mix. ``on_progress(n)`` is told after each batch of ``n`` rows.
    """
    import psycopg2

    from ssp.storage.postgres import libpq_url

    validate_identifier(table, "table name")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise QueueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    start = time.monotonic()
    reader = psycopg2.connect(libpq_url(database_url))
    writer = psycopg2.connect(libpq_url(database_url))
    try:
        ensure_model_scores(writer)
        with writer.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            if not cur.fetchone()[0]:
                raise QueueError(f"table {table} does not exist: nothing to score")
        stage = "ssp_stage_model_scores"
        total, version = 0, None
        with writer.cursor() as out:
            out.execute(f"CREATE TEMP TABLE {stage} (tweet_id bigint NOT NULL, ai_prob real NOT NULL) ON COMMIT DROP")
            with reader.cursor(name="ssp_refresh_scores") as rows:
                rows.itersize = chunk_rows
                rows.execute(f"SELECT id, text FROM {table} ORDER BY id")
                while True:
                    chunk = rows.fetchmany(chunk_rows)
                    if not chunk:
                        break
                    ids = [row[0] for row in chunk]
                    texts = [row[1] for row in chunk]
                    if version is None:
                        probs, version = client.predict_with_version(texts)
                        if version is None:
                            raise QueueError(f"the model server at {client.model_url} did not say which model "
                                             "version answered; cannot record the scores")
                    else:
                        probs = client.predict(texts, version=version)
                    _copy_scores(out, stage, table, ids, probs, version)
                    total += len(chunk)
                    if on_progress is not None:
                        on_progress(len(chunk))
            if version is None:  # an empty table: the version that would have answered
                version = client.available_version()
                if version is None:
                    raise QueueError(f"the model server at {client.model_url} has no available model version")
            out.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(f"scores:{table}"),))
            out.execute(
                f"INSERT INTO {MODEL_SCORES_TABLE} AS ms (table_name, tweet_id, model_version, ai_prob, scored_at) "
                f"SELECT %s, tweet_id, %s, ai_prob, clock_timestamp() FROM {stage} ORDER BY tweet_id "
                "ON CONFLICT (table_name, tweet_id) DO UPDATE SET model_version = excluded.model_version, "
                "ai_prob = excluded.ai_prob, scored_at = excluded.scored_at",
                (table, version),
            )
            out.execute(
                f"DELETE FROM {MODEL_SCORES_TABLE} ms WHERE ms.table_name = %s "
                f"AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.tweet_id = ms.tweet_id)",
                (table,),
            )
        writer.commit()
    finally:
        reader.close()
        writer.close()
    log.info("scored %d tweets of %s with model version %s in %.1f s", total, table, version,
             time.monotonic() - start)
    return total, int(version)
