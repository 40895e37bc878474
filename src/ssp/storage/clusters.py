"""The tables of the clustering streams, their one-transaction-per-micro-batch write, and their readers.

One version ``<v>`` of a clustering stream owns four tables, and every job shares a fifth:

* ``cluster_assignments_<v>``: one row per point learnt, keyed by ``(job, kafka_partition,
  kafka_offset)``: its id, micro-batch, cluster (the nearest centre when the batch began, the one
  that fed the update), stream time, coordinates (``float8[]``) and true centre when the source knows it;
* ``cluster_centres_<v>``: one row per cluster per micro-batch that learnt something: the centre
  and weight after the batch and the points the cluster got in it, keyed by ``(job, batch_id, cluster)``;
* ``cluster_models``: the model state (JSON) after each micro-batch, keyed by ``(job, version,
  batch_id)``: the stream resumes from its newest row;
* ``cluster_assignments_stage_<v>`` (unlogged): where the executors put their share of a micro-batch's
  assignments before the driver moves them, in the same transaction as the centres and the model;
* ``cluster_merges_<v>``: for the models that merge clusters, which cluster went into which, by
  micro-batch (the batch's own points are relabelled before they move; the view recolours older ones).

Executors cannot join the driver's transaction, so each one COPYs its rows to the stage table
(keyed by Kafka position, so a retried task adds nothing) and the driver's :func:`commit_batch`
moves them in one transaction with the centres and the model row: readers see a micro-batch's
assignments, centres and model together or not at all. ``commit_batch`` first checks, under a lock
on the job, whether that batch id is already committed; a replayed micro-batch changes nothing.

Table names go through :func:`ssp.storage.tables.versioned_table_name`; values are bound parameters.

>>> tables = ClusterTables.for_version(3)
>>> tables.assignments, tables.centres, tables.stage, tables.models, tables.dead
('cluster_assignments_3', 'cluster_centres_3', 'cluster_assignments_stage_3', 'cluster_models', 'dead_letter_points')
>>> pg_float_array_literal([1.5, -0.1, 2])
'{1.5,-0.1,2.0}'
>>> AssignmentCursor.parse(AssignmentCursor(4, 1, 250).token)
AssignmentCursor(batch_id=4, kafka_partition=1, kafka_offset=250)
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

from ssp.errors import SspError
from ssp.storage.postgres import copy_csv_ignore_conflicts, copy_insert_ignore_conflicts, ensure_tables
from ssp.storage.tables import dead_letter_table, validate_identifier, validate_version, versioned_table_name

__all__ = [
    "ASSIGNMENT_COLUMNS",
    "CLUSTER_ASSIGNMENTS_PREFIX",
    "CLUSTER_CENTRES_PREFIX",
    "CLUSTER_MODELS_TABLE",
    "CLUSTER_STAGE_PREFIX",
    "DEFAULT_POINTS_DEAD_LETTER_TABLE",
    "AssignmentCursor",
    "BatchCommit",
    "ClusterTables",
    "StagingMismatchError",
    "StoredModel",
    "assignments_after",
    "centres_history",
    "cluster_assignments_table",
    "cluster_centres_table",
    "cluster_models_table",
    "cluster_stage_table",
    "commit_batch",
    "ensure_cluster_tables",
    "last_committed_batch",
    "latest_model",
    "model_jobs",
    "pg_float_array_literal",
    "stage_assignment_csv",
    "stage_assignments",
    "merges_after",
    "cluster_merges_table",
]

CLUSTER_ASSIGNMENTS_PREFIX = "cluster_assignments"
CLUSTER_CENTRES_PREFIX = "cluster_centres"
CLUSTER_STAGE_PREFIX = "cluster_assignments_stage"
CLUSTER_MODELS_TABLE = "cluster_models"
CLUSTER_MERGES_PREFIX = "cluster_merges"
DEFAULT_POINTS_DEAD_LETTER_TABLE = "dead_letter_points"

# the columns of an assignment row, in stage and final table alike, in the order stage rows are given
ASSIGNMENT_COLUMNS = (
    "job", "point_id", "batch_id", "cluster", "ts", "x", "truth", "kafka_partition", "kafka_offset",
)
_POSITION = ("job", "kafka_partition", "kafka_offset")
_STAGE_KEY = ("job", "batch_id", "kafka_partition", "kafka_offset")


class StagingMismatchError(SspError, RuntimeError):
    """The stage table does not hold the rows the executors reported for a micro-batch."""


# ---------------------------------------------------------------------- schemas
def _assignment_columns() -> list[Column]:
    return [
        Column("job", Text, nullable=False),
        Column("point_id", BigInteger, nullable=False),
        Column("batch_id", BigInteger, nullable=False),
        Column("cluster", Integer, nullable=False),
        Column("ts", DateTime(timezone=True)),
        Column("x", ARRAY(Float(precision=53)), nullable=False),
        Column("truth", Integer),
        Column("kafka_partition", Integer, nullable=False),
        Column("kafka_offset", BigInteger, nullable=False),
    ]


def cluster_assignments_table(name: str, metadata: MetaData | None = None) -> Table:
    """Every point a clustering stream learnt, with the cluster it fed; keyed by Kafka position per job."""
    validate_identifier(name, "table name")
    return Table(
        name,
        metadata or MetaData(),
        *_assignment_columns(),
        Column("written_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
        PrimaryKeyConstraint(*_POSITION, name=f"{name}_pkey"),
        # the readers' cursor order: micro-batches commit one after another, so this only grows
        Index(f"{name}_cursor_idx", "job", "batch_id", "kafka_partition", "kafka_offset"),
    )


def cluster_stage_table(name: str, metadata: MetaData | None = None) -> Table:
    """Assignments the executors wrote for a micro-batch the driver has not committed yet (unlogged:
    a crash loses them, and the replayed micro-batch writes them again)."""
    validate_identifier(name, "table name")
    return Table(
        name,
        metadata or MetaData(),
        *_assignment_columns(),
        PrimaryKeyConstraint(*_STAGE_KEY, name=f"{name}_pkey"),
        prefixes=["UNLOGGED"],
    )


def _per_batch_table(name: str, metadata: MetaData | None, key: str, *columns: Column) -> Table:
    """A table of rows per (job, micro-batch, ``key``): the shape of the centres and the merges tables."""
    validate_identifier(name, "table name")
    return Table(
        name,
        metadata or MetaData(),
        Column("job", Text, nullable=False),
        Column("batch_id", BigInteger, nullable=False),
        Column(key, Integer, nullable=False),
        *columns,
        PrimaryKeyConstraint("job", "batch_id", key, name=f"{name}_pkey"),
    )


def cluster_centres_table(name: str, metadata: MetaData | None = None) -> Table:
    """Each cluster's centre and weight after each micro-batch, and the points it got in that batch."""
    return _per_batch_table(
        name, metadata, "cluster",
        Column("centre", ARRAY(Float(precision=53)), nullable=False),
        Column("weight", Float(precision=53), nullable=False),
        Column("points", BigInteger, nullable=False),
        Column("written_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
    )


def cluster_merges_table(name: str, metadata: MetaData | None = None) -> Table:
    """Clusters merged into others, by micro-batch: ``absorbed`` went into ``survivor`` (ids are never
    reused, so an absorbed id means the same cluster in every batch; the live view recolours by it)."""
    return _per_batch_table(name, metadata, "absorbed", Column("survivor", Integer, nullable=False))


def cluster_models_table(name: str = CLUSTER_MODELS_TABLE, metadata: MetaData | None = None) -> Table:
    """A clustering job's model state after each micro-batch (the resume point is the newest row)."""
    validate_identifier(name, "table name")
    return Table(
        name,
        metadata or MetaData(),
        Column("job", Text, nullable=False),
        Column("version", BigInteger, nullable=False),
        Column("batch_id", BigInteger, nullable=False),
        Column("algorithm", Text, nullable=False),
        Column("state", JSONB, nullable=False),
        Column("batch_points", BigInteger, nullable=False),
        Column("batch_dead", BigInteger, nullable=False),
        Column("updated", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
        PrimaryKeyConstraint("job", "version", "batch_id", name=f"{name}_pkey"),
        Index(f"{name}_updated_idx", "version", "updated"),
    )


@dataclass(frozen=True)
class ClusterTables:
    """The tables one version of a clustering stream writes, plus the shared model and dead-letter tables."""

    version: int
    assignments: str
    centres: str
    stage: str
    models: str
    dead: str
    merges: str

    @classmethod
    def for_version(cls, version: int | str, dead_letter: str = DEFAULT_POINTS_DEAD_LETTER_TABLE,
                    models: str = CLUSTER_MODELS_TABLE) -> ClusterTables:
        version = validate_version(version)
        return cls(
            version=version,
            assignments=versioned_table_name(CLUSTER_ASSIGNMENTS_PREFIX, version),
            centres=versioned_table_name(CLUSTER_CENTRES_PREFIX, version),
            stage=versioned_table_name(CLUSTER_STAGE_PREFIX, version),
            models=validate_identifier(models, "model table name"),
            dead=validate_identifier(dead_letter, "dead-letter table name"),
            merges=versioned_table_name(CLUSTER_MERGES_PREFIX, version),
        )

    def schemas(self) -> tuple[Table, ...]:
        return (cluster_assignments_table(self.assignments), cluster_centres_table(self.centres),
                cluster_stage_table(self.stage), cluster_models_table(self.models), dead_letter_table(self.dead),
                cluster_merges_table(self.merges))


def ensure_cluster_tables(engine: Engine, tables: ClusterTables) -> None:
    """Create the clustering tables of ``tables`` that do not exist yet."""
    ensure_tables(engine, *tables.schemas())


# ---------------------------------------------------------------------- writing
def pg_float_array_literal(values: Iterable[float]) -> str:
    """A PostgreSQL ``float8[]`` literal; ``repr`` keeps every float exact."""
    return "{" + ",".join(repr(float(v)) for v in values) + "}"


def stage_assignments(conn, tables: ClusterTables, rows: Sequence[Sequence[Any]]) -> int:
    """COPY text-form assignment rows (:data:`ASSIGNMENT_COLUMNS` order; ``x`` as
    :func:`pg_float_array_literal`) into the stage table; a row staged before is left alone. The caller
    commits. Returns the rows added."""
    return copy_insert_ignore_conflicts(conn, tables.stage, ASSIGNMENT_COLUMNS, rows, _STAGE_KEY,
                                        order_by=("kafka_partition", "kafka_offset"))


def stage_assignment_csv(conn, tables: ClusterTables, csv: bytes, count: int, columns: Sequence[str]) -> int:
    """COPY ``count`` assignment rows already written as COPY CSV (the values of ``columns``, a permutation of
    :data:`ASSIGNMENT_COLUMNS`; ``x`` a quoted ``float8[]`` literal, an unquoted empty field NULL) into the
    stage table; a row staged before is left alone. The caller commits. Returns the rows added."""
    if sorted(columns) != sorted(ASSIGNMENT_COLUMNS):
        raise ValueError(f"assignment rows need the columns {', '.join(ASSIGNMENT_COLUMNS)} in some order, got "
                         f"{', '.join(columns)}")
    return copy_csv_ignore_conflicts(conn, tables.stage, columns, io.BytesIO(csv), count, _STAGE_KEY,
                                     order_by=("kafka_partition", "kafka_offset"))


@dataclass(frozen=True)
class BatchCommit:
    """What the driver commits for one micro-batch: the model state after it and, when it learnt
    something (``learned``), each cluster's centre, weight and new points. ``points`` is how many
    assignment rows the executors staged for it, ``dead`` how many records went to the dead letters."""

    job: str
    version: int
    batch_id: int
    algorithm: str
    state: dict[str, Any]
    centres: Sequence[Sequence[float]] = ()
    weights: Sequence[float] = ()
    counts: Sequence[int] = ()
    # the ids of the clusters, aligned with centres (default 0..k-1); the final cluster of each staged
    # point a cluster took only on the driver (a birth), as (kafka_partition, kafka_offset, cluster)
    cluster_ids: Sequence[int] = ()
    relabels: Sequence[tuple[int, int, int]] = ()
    merges: dict[int, int] = field(default_factory=dict)  # clusters merged away in the batch -> their survivors
    points: int = 0
    dead: int = 0
    learned: bool = False


def _lock_job(cur, job: str, version: int) -> None:
    # one writer per (job, version) at a time: two copies of a job cannot interleave their batches
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (job, version))


def last_committed_batch(conn, tables: ClusterTables, job: str, version: int) -> int | None:
    """The newest batch id committed for ``job`` and ``version``, or None."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT max(batch_id) FROM {tables.models} WHERE job = %s AND version = %s", (job, version))
        row = cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def commit_batch(conn, tables: ClusterTables, commit: BatchCommit) -> bool:
    """Write one micro-batch's assignments (moved from the stage table), centres and model state in the
    caller's transaction (the caller commits). Returns False, writing nothing but clearing the batch's
    stage rows, when ``commit.batch_id`` is already committed: a replayed micro-batch.

    Raises :class:`StagingMismatchError` when the stage table does not hold ``commit.points`` rows for
    the batch (a lost or foreign stage write): nothing is moved, the caller rolls back.
    """
    with conn.cursor() as cur:
        _lock_job(cur, commit.job, commit.version)
        last = last_committed_batch(conn, tables, commit.job, commit.version)
        if last is not None and commit.batch_id <= last:
            cur.execute(f"DELETE FROM {tables.stage} WHERE job = %s AND batch_id <= %s", (commit.job, last))
            return False
        cur.execute(f"SELECT count(*) FROM {tables.stage} WHERE job = %s AND batch_id = %s",
                    (commit.job, commit.batch_id))
        staged = int(cur.fetchone()[0])
        if staged != commit.points:
            raise StagingMismatchError(
                f"{tables.stage} holds {staged} assignments of job {commit.job!r} batch {commit.batch_id}, but the "
                f"executors staged {commit.points}; the micro-batch is not committed and will run again")
        if commit.relabels:
            from psycopg2.extras import execute_values

            execute_values(
                cur, f"UPDATE {tables.stage} AS s SET cluster = v.cluster FROM (VALUES %s) AS v(job, batch_id, p, o, "
                     "cluster) WHERE s.job = v.job AND s.batch_id = v.batch_id AND s.kafka_partition = v.p "
                     "AND s.kafka_offset = v.o",
                [(commit.job, commit.batch_id, p, o, c) for p, o, c in commit.relabels], page_size=1000)
        for absorbed, survivor in commit.merges.items():  # the batch's points of a cluster merged away
            cur.execute(f"UPDATE {tables.stage} SET cluster = %s WHERE job = %s AND batch_id = %s AND cluster = %s",
                        (survivor, commit.job, commit.batch_id, absorbed))
            cur.execute(f"INSERT INTO {tables.merges} (job, batch_id, absorbed, survivor) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT DO NOTHING", (commit.job, commit.batch_id, absorbed, survivor))
        columns = ", ".join(ASSIGNMENT_COLUMNS)
        cur.execute(
            f"INSERT INTO {tables.assignments} ({columns}) SELECT {columns} FROM {tables.stage} "
            "WHERE job = %s AND batch_id = %s ORDER BY kafka_partition, kafka_offset "
            "ON CONFLICT (job, kafka_partition, kafka_offset) DO NOTHING",
            (commit.job, commit.batch_id))
        cur.execute(f"DELETE FROM {tables.stage} WHERE job = %s AND batch_id <= %s", (commit.job, commit.batch_id))
        if commit.learned:
            ids = commit.cluster_ids or range(len(commit.centres))
            for cluster, centre, weight, count in zip(ids, commit.centres, commit.weights, commit.counts, strict=True):
                cur.execute(
                    f"INSERT INTO {tables.centres} (job, batch_id, cluster, centre, weight, points) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (job, batch_id, cluster) DO NOTHING",
                    (commit.job, commit.batch_id, cluster, [float(v) for v in centre], float(weight), int(count)))
        cur.execute(
            f"INSERT INTO {tables.models} (job, version, batch_id, algorithm, state, batch_points, batch_dead) "
            "VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s) ON CONFLICT (job, version, batch_id) DO NOTHING",
            (commit.job, commit.version, commit.batch_id, commit.algorithm, json.dumps(commit.state, allow_nan=False),
             commit.points, commit.dead))
    return True


# ---------------------------------------------------------------------- reading
@dataclass(frozen=True)
class StoredModel:
    """A committed model row: the state after micro-batch ``batch_id`` of ``job``."""

    job: str
    version: int
    batch_id: int
    algorithm: str
    state: dict[str, Any]
    batch_points: int
    batch_dead: int
    updated: datetime


def _model_from_row(row) -> StoredModel:
    state = row.state if isinstance(row.state, dict) else json.loads(row.state)
    return StoredModel(row.job, int(row.version), int(row.batch_id), row.algorithm, state, int(row.batch_points),
                       int(row.batch_dead), row.updated)


def model_jobs(engine: Engine, version: int, models: str = CLUSTER_MODELS_TABLE) -> list[str]:
    """The jobs with a model for ``version``, the most recently updated first."""
    t = cluster_models_table(models)
    statement = (select(t.c.job, func.max(t.c.updated).label("last")).where(t.c.version == validate_version(version))
                 .group_by(t.c.job).order_by(func.max(t.c.updated).desc(), t.c.job))
    with engine.connect() as conn:
        return [row.job for row in conn.execute(statement)]


def latest_model(engine: Engine, version: int, job: str | None = None,
                 models: str = CLUSTER_MODELS_TABLE) -> StoredModel | None:
    """The newest committed model of ``job`` for ``version`` (without ``job``: of the job updated last),
    or None when there is none."""
    t = cluster_models_table(models)
    statement = select(t).where(t.c.version == validate_version(version))
    if job is not None:
        statement = statement.where(t.c.job == job).order_by(t.c.batch_id.desc())
    else:
        statement = statement.order_by(t.c.updated.desc(), t.c.batch_id.desc())
    with engine.connect() as conn:
        row = conn.execute(statement.limit(1)).first()
    return None if row is None else _model_from_row(row)


@dataclass(frozen=True)
class CentreRow:
    batch_id: int
    cluster: int
    centre: list[float]
    weight: float
    points: int


def centres_history(engine: Engine, tables: ClusterTables, job: str, *, after_batch: int | None = None,
                    last_batches: int | None = None) -> list[CentreRow]:
    """Centres rows of ``job`` in (batch, cluster) order: those after ``after_batch``, and of those only
    the newest ``last_batches`` micro-batches when given."""
    t = cluster_centres_table(tables.centres)
    statement = select(t.c.batch_id, t.c.cluster, t.c.centre, t.c.weight, t.c.points).where(t.c.job == job)
    if after_batch is not None:
        statement = statement.where(t.c.batch_id > after_batch)
    if last_batches is not None:
        recent = (select(t.c.batch_id).where(t.c.job == job).group_by(t.c.batch_id)
                  .order_by(t.c.batch_id.desc()).limit(max(int(last_batches), 0)))
        statement = statement.where(t.c.batch_id.in_(recent.scalar_subquery()))
    with engine.connect() as conn:
        rows = conn.execute(statement.order_by(t.c.batch_id, t.c.cluster)).all()
    return [CentreRow(int(r.batch_id), int(r.cluster), list(r.centre), float(r.weight), int(r.points)) for r in rows]


def merges_after(engine: Engine, tables: ClusterTables, job: str, after_batch: int | None = None) -> list[
        tuple[int, int, int]]:
    """``job``'s merges as (batch id, absorbed, survivor), in batch order, after ``after_batch`` if given."""
    t = cluster_merges_table(tables.merges)
    statement = select(t.c.batch_id, t.c.absorbed, t.c.survivor).where(t.c.job == job)
    if after_batch is not None:
        statement = statement.where(t.c.batch_id > after_batch)
    with engine.connect() as conn:
        rows = conn.execute(statement.order_by(t.c.batch_id, t.c.absorbed)).all()
    return [(int(r.batch_id), int(r.absorbed), int(r.survivor)) for r in rows]


_CURSOR = re.compile(r"^([0-9]{1,18})-([0-9]{1,9})-([0-9]{1,18})$")


@dataclass(frozen=True, order=True)
class AssignmentCursor:
    """A position in a job's assignments, in commit order: (batch id, Kafka partition, offset)."""

    batch_id: int
    kafka_partition: int
    kafka_offset: int

    @property
    def token(self) -> str:
        return f"{self.batch_id}-{self.kafka_partition}-{self.kafka_offset}"

    @classmethod
    def parse(cls, token: str) -> AssignmentCursor:
        match = _CURSOR.match(token)
        if match is None:
            raise ValueError(f"not an assignment cursor (batch-partition-offset): {token!r}")
        return cls(int(match[1]), int(match[2]), int(match[3]))


@dataclass(frozen=True)
class AssignmentRow:
    point_id: int
    batch_id: int
    cluster: int
    ts: datetime | None
    x: list[float]
    truth: int | None
    cursor: AssignmentCursor


def assignments_after(engine: Engine, tables: ClusterTables, job: str, cursor: AssignmentCursor | None,
                      limit: int) -> tuple[list[AssignmentRow], AssignmentCursor | None]:
    """Assignments of ``job`` after ``cursor`` in commit order (without a cursor: the newest ``limit``),
    oldest first, and the cursor to ask with next. A micro-batch's rows commit together and batches in
    order, so a committed row never appears behind a cursor already handed out."""
    t = cluster_assignments_table(tables.assignments)
    key = (t.c.batch_id, t.c.kafka_partition, t.c.kafka_offset)
    statement = select(t.c.point_id, t.c.batch_id, t.c.cluster, t.c.ts, t.c.x, t.c.truth, t.c.kafka_partition,
                       t.c.kafka_offset).where(t.c.job == job)
    limit = max(int(limit), 0)
    if cursor is None:
        statement = statement.order_by(*(c.desc() for c in key)).limit(limit)
    else:
        statement = statement.where(tuple_(*key) > tuple_(literal(cursor.batch_id), literal(cursor.kafka_partition),
                                                          literal(cursor.kafka_offset)))
        statement = statement.order_by(*key).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(statement).all()
    if cursor is None:
        rows = rows[::-1]
    items = [AssignmentRow(int(r.point_id), int(r.batch_id), int(r.cluster), r.ts, list(r.x),
                           None if r.truth is None else int(r.truth),
                           AssignmentCursor(int(r.batch_id), int(r.kafka_partition), int(r.kafka_offset)))
             for r in rows]
    return items, (items[-1].cursor if items else cursor)

