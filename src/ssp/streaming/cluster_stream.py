"""Kafka -> streaming k-means -> PostgreSQL: Spark MLlib's streaming k-means on Structured Streaming.

``pyspark.mllib.clustering.StreamingKMeans`` runs on DStreams only; this job is the same update
(:class:`ssp.clustering.streaming_kmeans.StreamingKMeans`) on a Structured Streaming query over
Kafka, one model update per micro-batch (the DP models of ``ssp.clustering`` run the same way, with
their own local and global steps):

1. Spark SQL parses the micro-batch on the executors (:func:`plain_points`, put on the stream once,
   so Spark analyses it once): a record whose value is a point in the plain form (a pattern and
   ``from_json``; see ``PLAIN_POINT_PATTERN``) comes out as its coordinates and its assignment row as
   COPY CSV, any other record as itself;
2. the driver broadcasts the model's local state (for k-means, the centres the batch starts with);
3. each executor task hands its share to a Python worker as Arrow columns (``mapInArrow``:
   :func:`process_records`), which parses the records SQL left with :func:`parse_point`, assigns every
   point, in Kafka order, to its nearest broadcast centre and adds up per-cluster sums and counts (the
   model's ``local_step``), COPYs its assignment lines to the stage table and its bad records to the
   dead-letter table, and hands back only the sums and counts (``k * (dim + 1)`` numbers), never the points;
4. the driver adds the tasks' sums up in Kafka order (:func:`fold_partials`, so a replay adds the same
   floats in the same order) and folds them into the model (``global_step``: ``update_from_sums``);
5. in one PostgreSQL transaction (:func:`ssp.storage.clusters.commit_batch`) the batch's assignments
   move from the stage table to ``cluster_assignments_<v>``, the centres go to ``cluster_centres_<v>``
   and the model state to ``cluster_models``, keyed by (job, batch id).

A k-means model without centres draws them from the stream's first valid points (a probe of at most
``init_sample`` points per task, first micro-batch only). The DP models run the same steps with their
own ``local_step`` (births: the points no cluster took come back as candidates) and ``global_step``.

On start the job resumes from its newest committed model; a micro-batch whose id is already
committed (Spark replays the last one after a crash) is skipped. With the Spark checkpoint that makes
the model exactly-once: a job killed with SIGKILL and restarted ends with the model an uninterrupted
run has. Micro-batch boundaries are Spark's (``maxOffsetsPerTrigger`` over what Kafka holds), and one
micro-batch is one MLlib batch; Spark runs no micro-batch while no data arrives, so (unlike a DStream)
idle time does not discount the weights, and a micro-batch with no valid point leaves the model as it is.

A record is a point when its value is a JSON object ``{"id": int, "x": [numbers], "ts": ISO 8601 time
or null, "truth": int or null}`` with ``dim`` finite coordinates (``dim`` is set, or taken from the
first valid point the stream sees). Anything else goes to the dead-letter table with a reason:

>>> parse_point(b'{"id": 7, "ts": "2024-03-04T08:00:00.100Z", "x": [1.5, -2], "truth": 1}', dim=2)
Point(id=7, ts='2024-03-04T08:00:00.100000+00:00', x=(1.5, -2.0), truth=1)
>>> for value in (b'{"id": 1, "x": [1, 2, 3]}', b'{"id": 2, "x": [NaN, 1]}', b'{"id": 3, "x": [1e999, 0]}',
...               b'{"id": 4, "x": ["a", 1]}', b'{"id": 5, "x": [true, 1]}', b'not json', b'[1, 2]', None):
...     try:
...         parse_point(value, dim=2)
...     except PointParseError as err:
...         print(err.reason, "|", err)
wrong_dimension | point 1: x has 3 coordinates, the stream's points have 2
not_finite | the record holds NaN or an infinite number
not_finite | the record holds NaN or an infinite number
wrong_type:x | point 4: x[0] is 'a', not a number
wrong_type:x | point 5: x[0] is True, not a number
not_json | the record is not JSON (invalid literal: line 1 column 1 (char 0))
not_object | the record is a list, not a JSON object
empty | the record has no value
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from ssp.clustering import DPGMM, DPMeans, StreamingKMeans, model_from_state
from ssp.config import CLUSTER_ALGORITHMS as ALGORITHMS
from ssp.config import ClusterConfig, InfraConfig, TopicsConfig
from ssp.errors import SspError
from ssp.kafka.records import RowText, dead_letter_row, write_dead_letters
from ssp.storage.clusters import (
    CLUSTER_MODELS_TABLE,
    BatchCommit,
    ClusterTables,
    StoredModel,
    assignments_after,
    centres_history,
    commit_batch,
    ensure_cluster_tables,
    latest_model,
    pg_float_array_literal,
    stage_assignment_csv,
)
from ssp.storage.postgres import libpq_url, make_engine, rows_to_csv, table_exists
from ssp.streaming.runner import (
    StreamProgress,
    job_checkpoint_dir,
    kafka_stream,
    kept_connection_write,
    prepare_python_worker,
    run_until_done,
    tasks_per_micro_batch,
)

log = logging.getLogger(__name__)

__all__ = [
    "ClusterModelView",
    "ClusterSettings",
    "ClusterStreamError",
    "ClusterStreamResult",
    "PlotResult",
    "Point",
    "PointParseError",
    "cluster_plot",
    "cluster_plot_png",
    "cluster_settings",
    "cluster_show",
    "fold_partials",
    "parse_point",
    "process_records",
    "run_cluster_stream",
]

KAFKA_COLUMNS = ("key", "value", "topic", "partition", "offset")
# one row per Spark task: where its records start in Kafka, what it saw, its model statistics (the
# model's local_step, as .npy arrays in one .npz) and the Kafka positions of its birth candidates
PARTIAL_SCHEMA = ("first_partition int, first_offset long, seen long, good long, dead long, stats binary, "
                  "candidate_partitions array<int>, candidate_offsets array<long>")
_MAX_BIGINT = 2**63 - 1
_MAX_INT = 2**31 - 1
_NOWHERE = (_MAX_INT, _MAX_BIGINT)  # the Kafka position of a task that read nothing: sorts last
_MAX_JOB_LENGTH = 200


class ClusterStreamError(SspError, ValueError):
    """A clustering job that cannot run as asked; the message says why and what to do."""


class PointParseError(SspError, ValueError):
    """A record that is not a point; ``reason`` is the dead-letter table's code for it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Point(NamedTuple):
    """One canonical point: id, stream time (ISO 8601 UTC, or None), coordinates, true centre (or None)."""

    id: int
    ts: str | None
    x: tuple[float, ...]
    truth: int | None


# ---------------------------------------------------------------------- parsing
def _json_object(value: bytes | None, max_bytes: int) -> dict:
    if value is None or len(value) == 0:
        raise PointParseError("empty", "the record has no value")
    if len(value) > max_bytes:
        raise PointParseError("oversized", f"the record has {len(value)} bytes, more than the {max_bytes} allowed")
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError as err:
        try:  # NaN, Infinity and 1e999 are numbers to Python's parser, and not JSON to orjson
            json.loads(value, parse_constant=float)
        except (ValueError, UnicodeDecodeError):
            raise PointParseError("not_json", f"the record is not JSON ({err})") from None
        raise PointParseError("not_finite", "the record holds NaN or an infinite number") from None
    if not isinstance(payload, dict):
        raise PointParseError("not_object", f"the record is a {_json_type(payload)}, not a JSON object")
    return payload


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


def _integer(payload: dict, name: str, what: str, low: int, high: int) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PointParseError(f"wrong_type:{name}", f"{what}: {name} must be an integer from {low} to {high}, "
                                                    f"got {value!r}")
    return value


def _coordinates(point_id: int, value: Any, dim: int | None) -> tuple[float, ...]:
    if value is None:
        raise PointParseError("no_x", f"point {point_id} has no x (its coordinates)")
    if not isinstance(value, list):
        raise PointParseError("wrong_type:x", f"point {point_id}: x must be a list of numbers, got {value!r:.60}")
    if not value:
        raise PointParseError("wrong_type:x", f"point {point_id}: x is an empty list")
    for index, number in enumerate(value):
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise PointParseError("wrong_type:x", f"point {point_id}: x[{index}] is {number!r:.40}, not a number")
    coordinates = tuple(float(number) for number in value)  # a huge integer becomes inf here
    if not all(math.isfinite(c) for c in coordinates):
        raise PointParseError("not_finite", f"point {point_id}: x holds a number too large for a float")
    if dim is not None and len(coordinates) != dim:
        raise PointParseError("wrong_dimension",
                              f"point {point_id}: x has {len(coordinates)} coordinates, the stream's points have {dim}")
    return coordinates


def _timestamp(point_id: int, value: Any) -> str | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
        # naive: UTC; an offset that takes the time past year 1 or 9999 overflows here
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise PointParseError("wrong_type:ts", f"point {point_id}: ts must be an ISO 8601 time, got {value!r:.60}") \
            from None
    return moment.isoformat()


def parse_point(value: bytes | None, dim: int | None = None, max_bytes: int = 64 * 1024) -> Point:
    """The :class:`Point` in one Kafka record value, or :class:`PointParseError` with the reason
    (see the module docstring). ``dim`` None accepts any number of coordinates."""
    payload = _json_object(value, max_bytes)
    if payload.get("id") is None:
        raise PointParseError("no_id", "the point has no id")
    point_id = _integer(payload, "id", "the point", -_MAX_BIGINT - 1, _MAX_BIGINT)
    x = _coordinates(point_id, payload.get("x"), dim)
    truth = _integer(payload, "truth", f"point {point_id}", -_MAX_INT - 1, _MAX_INT)
    return Point(point_id, _timestamp(point_id, payload.get("ts")), x, truth)


# ---------------------------------------------------------------------- the Spark SQL parse, on the executors
# A record Spark SQL takes as a point without Python: the whole value matches this pattern (a JSON object
# of the keys id, x, ts and truth only, an integer id of at most 18 digits, x a flat list of JSON numbers,
# ts null or a time in one plain ISO 8601 form, truth null or an integer, nothing after the object), no key
# twice, and the values from_json reads are in range (see plain_points). Every such value is one
# parse_point accepts, with the same values; every other record still goes through parse_point.
_WS = r"[ \t\n\r]*+"
_NUMBER = r"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+"
_INTEGER = r"-?+(?:0|[1-9][0-9]{0,17}+)"
_TIME = (r"(?:19|2[0-9])[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
         r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?+(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?+")
_MEMBER = (rf'(?:"id"{_WS}:{_WS}{_INTEGER}|"x"{_WS}:{_WS}\[{_WS}{_NUMBER}(?:{_WS},{_WS}{_NUMBER})*+{_WS}\]'
           rf'|"ts"{_WS}:{_WS}(?:null|"{_TIME}")|"truth"{_WS}:{_WS}(?:null|{_INTEGER}))')
PLAIN_POINT_PATTERN = rf"\A{_WS}\{{{_WS}{_MEMBER}(?:{_WS},{_WS}{_MEMBER})*+{_WS}\}}{_WS}\z"
POINT_JSON_SCHEMA = "id BIGINT, x ARRAY<DOUBLE>, ts STRING, truth BIGINT"

# COPY's column order for the assignment lines: Spark SQL writes all but the first two (plain_points, built
# once for the whole stream), the task that assigns the point puts the batch id and the cluster in front
STAGE_COPY_COLUMNS = ("batch_id", "cluster", "job", "point_id", "ts", "x", "truth", "kafka_partition", "kafka_offset")
# what a task's Python worker gets of each record (worker_columns): its Kafka position; a plain point's
# coordinates and assignment line; any other record's key, value and topic, for parse_point
WORKER_COLUMNS = ("partition", "offset", "plain", "x", "line", "raw_key", "raw_value", "raw_topic")
_NO_MODEL = -1  # the dimension of a model without centres yet: no record can be a point


def csv_field(value: str) -> str:
    """A text value quoted for COPY's CSV format.

    >>> print(csv_field('kmeans:a "b" c'))
    "kmeans:a ""b"" c"
    """
    return '"' + value.replace('"', '""') + '"'


def plain_points(records, *, job: str, max_bytes: int):
    """``records`` (a DataFrame with :data:`KAFKA_COLUMNS`: the Kafka stream) with the columns ``plain`` (true
    when Spark SQL alone takes the record as a point: a value :func:`parse_point` certainly accepts, with
    any number of coordinates) and, for those, ``id``, ``x``, ``ts`` (ISO 8601 text, UTC), ``truth`` and
    ``line``, the point's assignment row as COPY CSV but for the batch id and cluster
    (:data:`STAGE_COPY_COLUMNS`); for any other record ``raw_key``, ``raw_value`` and ``raw_topic``.

    The stream job applies it to the stream once, so Spark analyses these expressions once, not every
    micro-batch. A record that is not plain may still be a point: it goes through parse_point.
    """
    from pyspark.sql import functions as F

    text = F.col("value").cast("string")
    shaped = F.coalesce(F.col("value").isNotNull() & F.length("value").between(1, max_bytes)
                        & text.rlike(PLAIN_POINT_PATTERN), F.lit(False))
    keys = F.json_object_keys(text)
    parsed = records.select("*", shaped.alias("_shaped")).select(
        "*", F.when(F.col("_shaped"), F.from_json(text, POINT_JSON_SCHEMA)).alias("_p"),
        F.when(F.col("_shaped"), F.size(keys) == F.size(F.array_distinct(keys))).alias("_once"))
    point, ts = F.col("_p"), F.col("_p")["ts"]
    # a time without an offset is UTC (as parse_point reads it), whatever the session's time zone
    moment = F.when(F.substring(ts, 20, 20).rlike("[Z+-]"), ts).otherwise(F.concat(ts, F.lit("Z"))) \
        .try_cast("timestamp")
    plain = (F.col("_shaped") & F.col("_once") & point["id"].isNotNull()
             & F.forall(point["x"], lambda v: ~F.isnan(v) & (F.abs(v) < F.lit(math.inf)))  # 1e999 is inf to Java
             & (ts.isNull() | moment.isNotNull())
             & (point["truth"].isNull() | point["truth"].between(-_MAX_INT - 1, _MAX_INT)))
    values = parsed.select(*records.columns, F.coalesce(plain, F.lit(False)).alias("plain"), point["id"].alias("id"),
                           point["x"].alias("x"), F.date_format(moment, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX").alias("ts"),
                           point["truth"].try_cast("int").alias("truth"))  # out of range: not plain, and no error
    fields = {  # STAGE_COPY_COLUMNS[2:] as COPY CSV text; an unquoted empty field is NULL
        "job": F.lit(csv_field(job)),
        "point_id": F.col("id").cast("string"),
        "ts": F.coalesce(F.concat(F.lit('"'), F.col("ts"), F.lit('"')), F.lit("")),
        # Spark writes each double with as many digits as tell it apart: PostgreSQL reads the same number
        "x": F.concat(F.lit('"'), F.translate(F.col("x").cast("string"), "[]", "{}"), F.lit('"')),
        "truth": F.coalesce(F.col("truth").cast("string"), F.lit("")),
        "kafka_partition": F.col("partition").cast("string"),
        "kafka_offset": F.col("offset").cast("string"),
    }
    line = F.concat_ws(",", *(fields[name] for name in STAGE_COPY_COLUMNS[2:]))
    is_plain = F.col("plain")
    return values.select(
        *records.columns, "plain", *(F.when(is_plain, F.col(name)).alias(name) for name in ("id", "x", "ts", "truth")),
        F.when(is_plain, line).alias("line"),
        *(F.when(~is_plain, F.col(name)).alias(f"raw_{name}") for name in ("key", "value", "topic")))


def worker_columns(dim: int | None) -> list:
    """The :data:`WORKER_COLUMNS` of a micro-batch with :func:`plain_points` on it, for a model of ``dim``
    coordinates: a plain point of another dimension goes to the worker as a raw record (its dead letter
    needs its value); ``dim`` None keeps every plain point, ``_NO_MODEL`` none."""
    from pyspark.sql import functions as F

    if dim is None:
        return list(WORKER_COLUMNS)
    raw = F.col("plain") if dim == _NO_MODEL else F.col("plain") & (F.size("x") != F.lit(int(dim)))
    return ["partition", "offset", (F.col("plain") & ~raw).alias("plain"), "x", "line",
            *(F.when(raw, F.col(name)).otherwise(F.col(f"raw_{name}")).alias(f"raw_{name}")
              for name in ("key", "value", "topic"))]


# ---------------------------------------------------------------------- the executors' half
def pack_stats(stats: dict[str, np.ndarray]) -> bytes:
    """A model's statistics as one ``.npz`` (plain arrays, no pickle), for a task's result row."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in stats.items()})
    return buffer.getvalue()


def unpack_stats(blob: bytes) -> dict[str, np.ndarray]:
    """The statistics :func:`pack_stats` packed.

    >>> unpack_stats(pack_stats({"counts": np.array([1, 2])}))["counts"].tolist()
    [1, 2]
    """
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


@dataclass
class PartitionOutcome:
    """What one task made of its records: its points' assignment rows (COPY CSV in :data:`STAGE_COPY_COLUMNS`
    order, ``good`` of them), dead-letter rows, the model's statistics of its points and the Kafka
    positions of its birth candidates (points no cluster took yet), in Kafka order."""

    first_position: tuple[int, int]
    seen: int
    good: int
    stage_csv: bytes
    dead_rows: list[RowText]
    stats: dict[str, np.ndarray] | None
    candidates: list[tuple[int, int]] = field(default_factory=list)

    def arrow(self):
        import pyarrow as pa

        return pa.RecordBatch.from_pydict({
            "first_partition": pa.array([self.first_position[0]], pa.int32()),
            "first_offset": pa.array([self.first_position[1]], pa.int64()),
            "seen": pa.array([self.seen], pa.int64()),
            "good": pa.array([self.good], pa.int64()),
            "dead": pa.array([len(self.dead_rows)], pa.int64()),
            "stats": pa.array([None if self.stats is None else pack_stats(self.stats)], pa.binary()),
            "candidate_partitions": pa.array([[c[0] for c in self.candidates]], pa.list_(pa.int32())),
            "candidate_offsets": pa.array([[c[1] for c in self.candidates]], pa.list_(pa.int64())),
        })


def split_points(columns: dict[str, list], dim: int | None, target_table: str,
                 max_bytes: int) -> tuple[list[Point], list[tuple[int, int]], list[RowText]]:
    """Kafka records (lists by :data:`KAFKA_COLUMNS`, in the same order) as points with their Kafka
    positions, and dead-letter rows for the rest (``dim`` ``_NO_MODEL``: all of them, reason ``no_model``)."""
    points: list[Point] = []
    where: list[tuple[int, int]] = []
    dead: list[RowText] = []
    for index, value in enumerate(columns["value"]):
        position = (columns["partition"][index], columns["offset"][index])
        try:
            if dim == _NO_MODEL:
                raise PointParseError("no_model", "the model has no centres yet and this record set no dimension")
            points.append(parse_point(value, dim, max_bytes))
            where.append(position)
        except PointParseError as err:
            dead.append(dead_letter_row(target_table, columns["topic"][index], *position, columns["key"][index], value,
                                        err.reason, str(err)))
    return points, where, dead


def _plain_coordinates(x, dim: int | None) -> np.ndarray:
    """The plain points' ``x`` (an Arrow list<double> column) as an ``(n, dim)`` array."""
    if dim is None:  # a model that takes its dimension from the stream: points of two dimensions fail in it
        return np.array(x.to_pylist(), dtype=np.float64)
    import pyarrow.compute as pc

    lists = x.combine_chunks() if hasattr(x, "combine_chunks") else x
    if len(lists) and not pc.all(pc.equal(pc.list_value_length(lists), dim)).as_py():
        raise ValueError(f"plain points of another dimension than {dim} reached the model (see worker_columns)")
    return lists.flatten().to_numpy(zero_copy_only=False).astype(np.float64, copy=False).reshape(len(lists), dim)


def process_records(data, *, model: type, state: dict | None, dim: int | None, job: str, batch_id: int,
                    target_table: str, max_bytes: int) -> PartitionOutcome:
    """One task's share of a micro-batch: ``data`` is an Arrow table of :data:`WORKER_COLUMNS`. The plain
    points come parsed by Spark SQL; the other records go through :func:`parse_point` (dead letters for
    those that are not points). Every point, in Kafka order, goes through the model's ``local_step``
    against ``state`` (the broadcast centres; None: the model has none yet, so no record can be a point),
    which for k-means assigns it to its nearest centre and adds up per-cluster sums and counts. No
    database access."""
    n = data.num_rows
    partitions = np.asarray(data.column("partition").to_numpy(), dtype=np.int64)
    offsets = np.asarray(data.column("offset").to_numpy(), dtype=np.int64)
    start = np.lexsort((offsets, partitions))[:1]
    first = (int(partitions[start[0]]), int(offsets[start[0]])) if n else _NOWHERE
    plain = np.asarray(data.column("plain").to_numpy(zero_copy_only=False), dtype=bool)
    if state is None and plain.any():
        raise ValueError("plain points reached a model without centres (see worker_columns)")
    rest = np.flatnonzero(~plain)
    others = {name: data.column(f"raw_{name}").take(rest).to_pylist() for name in ("key", "value", "topic")}
    others["partition"], others["offset"] = partitions[rest].tolist(), offsets[rest].tolist()
    points, where, dead = split_points(others, dim if state is not None else _NO_MODEL, target_table, max_bytes)
    taken = np.flatnonzero(plain)
    if state is None or not (len(taken) or points):
        return PartitionOutcome(first, n, 0, b"", dead, None)
    x_plain = _plain_coordinates(data.column("x").take(taken), dim)
    x = np.concatenate([x_plain, np.array([p.x for p in points], dtype=np.float64).reshape(len(points), -1)]) \
        if points else x_plain
    at_partition = np.concatenate([partitions[taken], np.array([w[0] for w in where], dtype=np.int64)])
    at_offset = np.concatenate([offsets[taken], np.array([w[1] for w in where], dtype=np.int64)])
    order = np.lexsort((at_offset, at_partition))
    in_order, stats = model.local_step(state, x[order])
    labels = np.empty(len(order), dtype=np.int64)
    labels[order] = in_order
    prefix = f"{int(batch_id)},"
    lines = "".join(f"{prefix}{label},{line}\n" for label, line in zip(
        labels[:len(taken)].tolist(), data.column("line").take(taken).to_pylist(), strict=True)).encode()
    parsed, _ = rows_to_csv((batch_id, label, job, p.id, p.ts, pg_float_array_literal(p.x), p.truth, partition, offset)
                            for p, label, (partition, offset) in zip(points, labels[len(taken):].tolist(), where,
                                                                     strict=True))
    candidates = [(int(at_partition[i]), int(at_offset[i])) for i in order[in_order < 0]]
    return PartitionOutcome(first, n, len(order), lines + parsed.getvalue(), dead, stats, candidates)


def _partition_worker(database_url: str, tables: ClusterTables, job: str, batch_id: int, model: type,
                      state_broadcast, dim: int | None, max_bytes: int) -> Callable[[Iterator], Iterator]:
    """The function each Spark task runs over its share of a micro-batch (``mapInArrow``): it stages its
    assignments, writes its dead letters and hands back one row of :data:`PARTIAL_SCHEMA`."""

    def work(batches):
        import pyarrow as pa

        prepare_python_worker()
        parts = list(batches)
        data = pa.Table.from_batches(parts) if parts else None
        if data is None:
            yield PartitionOutcome(_NOWHERE, 0, 0, b"", [], None).arrow()
            return
        outcome = process_records(data, model=model, state=state_broadcast.value, dim=dim, job=job,
                                  batch_id=batch_id, target_table=tables.assignments, max_bytes=max_bytes)

        def write(conn) -> None:
            stage_assignment_csv(conn, tables, outcome.stage_csv, outcome.good, STAGE_COPY_COLUMNS)
            write_dead_letters(conn, tables.dead, outcome.dead_rows)

        if outcome.good or outcome.dead_rows:
            kept_connection_write(database_url, write)
        yield outcome.arrow()

    return work


FIRST_POINTS_SCHEMA = "partition int, offset long, x array<double>"


def _first_points(max_bytes: int, limit: int) -> Callable[[Iterator], Iterator]:
    """Each task's first ``limit`` valid points in Kafka order (of :data:`WORKER_COLUMNS`), for a model
    without centres yet: their dimension sets the model's, and k-means++ draws its initial centres from them."""

    def probe(batches):
        import heapq

        import pyarrow as pa

        prepare_python_worker()
        found: list[tuple[int, int, list[float]]] = []
        for batch in batches:
            columns = {name: batch.column(name).to_pylist() for name in ("partition", "offset", "plain", "raw_value")}
            plain = np.flatnonzero(np.asarray(columns["plain"], dtype=bool))
            xs = batch.column("x").take(pa.array(plain)).to_pylist()
            found += [(columns["partition"][i], columns["offset"][i], x) for i, x in zip(plain.tolist(), xs,
                                                                                       strict=True)]
            for partition, offset, is_plain, value in zip(*columns.values(), strict=True):
                if is_plain:
                    continue
                try:
                    found.append((partition, offset, list(parse_point(value, None, max_bytes).x)))
                except PointParseError:
                    continue
            found = heapq.nsmallest(limit, found, key=lambda row: row[:2])
        yield pa.RecordBatch.from_pydict({
            "partition": pa.array([r[0] for r in found], pa.int32()),
            "offset": pa.array([r[1] for r in found], pa.int64()),
            "x": pa.array([r[2] for r in found], pa.list_(pa.float64())),
        })

    return probe


# ---------------------------------------------------------------------- the driver's half
@dataclass(frozen=True)
class BatchSums:
    """A micro-batch's model statistics, merged over its tasks in Kafka order, and its counts."""

    stats: dict[str, np.ndarray] | None
    seen: int
    good: int
    dead: int
    candidates: list[tuple[int, int]] = field(default_factory=list)


def fold_partials(partials: Iterable[Any], model: type) -> BatchSums:
    """Merge the tasks' rows (:data:`PARTIAL_SCHEMA`) with ``model.merge_stats`` in Kafka order, whatever
    order they came in: a replayed micro-batch gets bitwise the same statistics, and the birth candidates
    come in the order the model's ``learn_many`` would see them.

    >>> from ssp.clustering import StreamingKMeans
    >>> def row(partition, offset, seen, good, dead, sums, counts):
    ...     stats = pack_stats({"sums": np.array(sums), "counts": np.array(counts)}) if good else None
    ...     return dict(first_partition=partition, first_offset=offset, seen=seen, good=good, dead=dead, stats=stats,
    ...                 candidate_partitions=[], candidate_offsets=[])
    >>> rows = [row(1, 0, 2, 1, 1, [[1.0, 2.0]], [1]), row(0, 5, 3, 3, 0, [[3.0, 0.5]], [3])]
    >>> folded = fold_partials(rows, StreamingKMeans)
    >>> folded.stats["sums"].tolist(), folded.stats["counts"].tolist(), folded.seen, folded.good, folded.dead
    ([[4.0, 2.5]], [4], 5, 4, 1)
    """
    rows = sorted((dict(row.asDict()) if hasattr(row, "asDict") else dict(row) for row in partials),
                  key=lambda r: (r["first_partition"], r["first_offset"]))
    stats: dict[str, np.ndarray] | None = None
    candidates: list[tuple[int, int]] = []
    seen = good = dead = 0
    for row in rows:
        seen, good, dead = seen + row["seen"], good + row["good"], dead + row["dead"]
        if row["stats"] is not None:
            share = unpack_stats(bytes(row["stats"]))
            stats = share if stats is None else model.merge_stats(stats, share)
            candidates += zip(row["candidate_partitions"] or (), row["candidate_offsets"] or (), strict=True)
    return BatchSums(stats, seen, good, dead, candidates)


def batch_counts(before: Sequence[int], counts: Sequence[float], candidate_labels: Sequence[int],
                 merges: dict[int, int], after: Sequence[int]) -> list[int]:
    """The points of a micro-batch per cluster of the model after it (``after`` ids): those the existing
    clusters (``before`` ids) took, plus the birth candidates by the cluster each joined, with a merged
    cluster's points counted in the one it merged into.

    >>> batch_counts([0, 1], [3, 2], [5, 5, 1], {0: 1}, [1, 5])
    [6, 2]
    """
    tally: dict[int, float] = {}
    for cluster, count in [*zip(before, np.asarray(counts).tolist(), strict=True),
                           *((label, 1) for label in candidate_labels)]:
        while cluster in merges:
            cluster = merges[cluster]
        tally[cluster] = tally.get(cluster, 0) + count
    return [int(round(tally.get(cluster, 0))) for cluster in after]


@dataclass(frozen=True)
class ClusterSettings:
    """One clustering run's settings, resolved from :class:`ClusterConfig` and the command line."""

    algorithm: str
    topic: str
    job: str
    tables: ClusterTables
    k: int
    dim: int | None
    decay_factor: float | None
    half_life: float | None
    time_unit: str
    seed: int
    init: str
    init_weight: float
    max_record_bytes: int
    max_offsets_per_trigger: int
    trigger_seconds: float
    starting_offsets: str
    # DP-means: lambda (None: from k on the first micro-batch), merging and retiring of clusters
    lambda_: float | None = None
    merge_within: float = 1.0
    retire_below: float = 0.01
    # DPGMM: concentration, truncation, covariances
    alpha: float = 1.0
    max_components: int = 50
    covariance: str = "diag"

    def new_model(self, dim: int | None = None):
        """The model a fresh job starts with (k-means draws its centres once ``dim`` is known)."""
        forgetting = {"half_life": self.half_life} if self.half_life is not None else \
            {"decay_factor": self.decay_factor}
        if self.algorithm == "dpgmm":
            return DPGMM(alpha=self.alpha, max_components=self.max_components, covariance_type=self.covariance,
                         **forgetting, seed=self.seed)
        if self.algorithm == "dpmeans":
            scale = {"lambda_": self.lambda_} if self.lambda_ is not None else {"k": self.k}
            return DPMeans(**scale, **forgetting, merge_within=self.merge_within, retire_below=self.retire_below,
                           seed=self.seed)
        return StreamingKMeans(self.k, dim=dim or self.dim, time_unit=self.time_unit, init_weight=self.init_weight,
                               seed=self.seed, init=self.init, init_sample=self.max_offsets_per_trigger,
                               **forgetting)


def _check_job(job: str) -> str:
    if not isinstance(job, str) or not job.strip() or len(job) > _MAX_JOB_LENGTH \
            or any(ord(ch) < 32 for ch in job):
        raise ClusterStreamError(f"job name {job!r} must be 1 to {_MAX_JOB_LENGTH} printable characters")
    return job


def cluster_settings(config: ClusterConfig | None = None, *, topic: str | None = None, version: int | None = None,
                     job: str | None = None, k: int | None = None, dim: int | None = None,
                     decay_factor: float | None = None, half_life: float | None = None,
                     time_unit: str | None = None, seed: int | None = None, algorithm: str | None = None,
                     init: str | None = None, lambda_: float | None = None) -> ClusterSettings:
    """The settings of a run: the arguments given, else ``config``'s. A ``decay_factor`` or ``half_life``
    given here replaces the configured forgetting; bad values raise :class:`ClusterStreamError`.

    >>> s = cluster_settings(ClusterConfig(), topic="pts", version=2, half_life=5)
    >>> s.job, s.tables.assignments, s.half_life, s.decay_factor
    ('kmeans:pts', 'cluster_assignments_2', 5, None)
    >>> cluster_settings(ClusterConfig(), decay_factor=0.5, half_life=2)
    Traceback (most recent call last):
    ...
    ssp.streaming.cluster_stream.ClusterStreamError: give a decay factor or a half-life, not both
    """
    config = config or ClusterConfig()
    algorithm = algorithm or config.algorithm
    if algorithm not in ALGORITHMS:
        raise ClusterStreamError(f"unknown algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")
    if decay_factor is not None and half_life is not None:
        raise ClusterStreamError("give a decay factor or a half-life, not both")
    if decay_factor is None and half_life is None:
        decay_factor, half_life = (None, config.half_life) if config.half_life is not None else \
            (config.decay_factor, None)
    topic = topic or TopicsConfig().points_topic
    try:
        tables = ClusterTables.for_version(config.version if version is None else version, config.dead_letter_table)
        settings = ClusterSettings(
            algorithm=algorithm, topic=topic, job=_check_job(job or config.job_for(topic, algorithm)), tables=tables,
            k=config.k if k is None else k, dim=config.dim if dim is None else dim, decay_factor=decay_factor,
            half_life=half_life, time_unit=time_unit or config.time_unit, seed=config.seed if seed is None else seed,
            init=init or config.init, init_weight=config.init_weight, max_record_bytes=config.max_record_bytes,
            max_offsets_per_trigger=config.max_offsets_per_trigger, trigger_seconds=config.trigger_seconds,
            starting_offsets=config.starting_offsets, lambda_=config.dp_lambda if lambda_ is None else lambda_,
            merge_within=config.dp_merge_within, retire_below=config.dp_retire_below, alpha=config.dp_alpha,
            max_components=config.dp_max_components, covariance=config.dp_covariance,
        )
        if algorithm != "kmeans" and (settings.time_unit != "batches" or settings.dim is not None):
            raise ClusterStreamError(f"{algorithm} forgets per micro-batch and takes the dimension from the stream: "
                                     "leave out --time-unit points and --dim")
        settings.new_model()  # the model's own checks: k, dim, forgetting, time unit, seed
    except ClusterStreamError:
        raise
    except ValueError as err:
        raise ClusterStreamError(str(err)) from err
    return settings


def resume_model(stored: StoredModel, settings: ClusterSettings):
    """The committed model, checked against the settings asked for: resuming must not silently change the
    algorithm, ``k`` (or lambda), the dimension or the forgetting."""
    try:
        model = model_from_state(stored.state)
    except ValueError as err:
        raise ClusterStreamError(f"the model of job {stored.job!r} at batch {stored.batch_id} cannot be read: {err}") \
            from err
    wanted = settings.new_model()
    checks = [("algorithm", stored.algorithm, settings.algorithm), ("decay_factor", model.decay_factor,
                                                                     wanted.decay_factor)]
    if isinstance(model, StreamingKMeans):
        checks += [("k", model.k, wanted.k), ("time_unit", model.time_unit, wanted.time_unit)]
    elif isinstance(model, DPMeans) and settings.lambda_ is not None:
        checks.append(("lambda", model.lambda_, settings.lambda_))
    elif isinstance(model, DPGMM):
        checks += [("alpha", model.alpha, settings.alpha), ("covariance", model.covariance_type, settings.covariance)]
    differences = [f"{name} {have!r} (asked: {want!r})" for name, have, want in checks
                   if have != want and not (isinstance(have, float) and isinstance(want, float)
                                            and math.isclose(have, want, rel_tol=1e-12))]
    if settings.dim is not None and model.dim is not None and model.dim != settings.dim:
        differences.append(f"dim {model.dim} (asked: {settings.dim})")
    if differences:
        raise ClusterStreamError(
            f"job {stored.job!r} (version {stored.version}) resumes a model with {', '.join(differences)}: run with "
            "the settings it started with, or give another --job or --version")
    return model


def _copy(model):
    return model_from_state(model.to_state())


class ClusterJob:
    """The driver's state across micro-batches: the model, the last committed batch, the progress."""

    def __init__(self, settings: ClusterSettings, database_url: str, model: StreamingKMeans,
                 last_batch: int | None, on_progress: Callable[[int], None] | None = None) -> None:
        self.settings, self.database_url = settings, libpq_url(database_url)
        self.model, self.last_batch = model, last_batch
        self.progress = StreamProgress()
        self.on_progress = on_progress
        self._connections: dict[str, Any] = {}  # the commit transactions' connection, kept across batches

    def _model_with_centres(self, records, model):
        """``model`` given its initial centres (from the batch's first valid points, in Kafka order) if it has
        none yet: a bounded probe of ``records`` (:data:`WORKER_COLUMNS`), at most ``init_sample`` points
        per task; as it is if it has centres (DP models are from the start: their points open clusters)."""
        if model.initialised:
            return model
        limit = model.init_sample if model.init == "kmeans++" else 1
        found = sorted(((row["partition"], row["offset"], row["x"]) for row in records.mapInArrow(
            _first_points(self.settings.max_record_bytes, limit), FIRST_POINTS_SCHEMA).collect()),
            key=lambda row: row[:2])[:limit]
        if not found:
            return model
        dims = {len(row[2]) for row in found}
        sample = [row[2] for row in found if len(row[2]) == len(found[0][2])]  # the first point's sets it
        log.info("job %s: the first valid point has %d coordinates%s; drawing %d centres (%s)", self.settings.job,
                 len(found[0][2]), "" if len(dims) == 1 else " (others differ: dead letters)", model.k, model.init)
        fresh = self.settings.new_model(len(found[0][2]))
        fresh.initialise(sample)
        fresh.n_batches, fresh.n_points = model.n_batches, model.n_points
        return fresh

    def write_batch(self, batch_df, batch_id: int) -> None:
        """``foreachBatch``: one model update and one transaction per micro-batch."""
        if self.last_batch is not None and batch_id <= self.last_batch:
            log.info("job %s: micro-batch %d is already committed; skipped", self.settings.job, batch_id)
            self.progress.add(0, skipped=1)
            return
        settings = self.settings
        if "plain" not in batch_df.columns:  # a stream without plain_points on it
            batch_df = plain_points(batch_df.select(*KAFKA_COLUMNS), job=settings.job,
                                    max_bytes=settings.max_record_bytes)
        model = self._model_with_centres(batch_df.select(*WORKER_COLUMNS), _copy(self.model))
        folded = self._local_steps(batch_df.select(*worker_columns(model.dim if model.initialised else _NO_MODEL)),
                                   batch_id, model)
        relabels: list[tuple[int, int, int]] = []
        counts: list[int] = []
        merges: dict[int, int] = {}
        if folded.stats is not None:
            before = model.cluster_ids.tolist()
            update = model.global_step(folded.stats)
            final = [int(c) for c in getattr(update, "candidate_labels", ())]
            relabels = [(p, o, c) for (p, o), c in zip(folded.candidates, final, strict=True)]
            merges = {int(a): int(b) for a, b in getattr(update, "merges", {}).items()}
            # points per cluster: hard counts, or a mixture's expected counts (its responsibilities)
            taken = folded.stats["counts"] if "counts" in folded.stats else folded.stats["n"]
            counts = batch_counts(before, taken, final, merges, model.cluster_ids.tolist())
        learned = folded.stats is not None
        committed = self._commit(BatchCommit(
            job=settings.job, version=settings.tables.version, batch_id=batch_id,
            algorithm=settings.algorithm, state=model.to_state(),
            centres=model.centres.tolist() if learned else (), weights=model.weights.tolist() if learned else (),
            counts=counts, cluster_ids=model.cluster_ids.tolist() if learned else (), relabels=relabels, merges=merges,
            points=folded.good, dead=folded.dead, learned=learned,
        ))
        if committed:
            self.model, self.last_batch = model, batch_id
        self.progress.add(folded.seen, points=folded.good if committed else 0, dead=folded.dead,
                          committed=int(committed), skipped=int(not committed))
        log.info("job %s batch %d: %d records, %d points, %d dead letters%s", settings.job, batch_id, folded.seen,
                 folded.good, folded.dead, "" if committed else " (already committed: skipped)")
        if self.on_progress is not None:
            self.on_progress(folded.seen)

    def _local_steps(self, records, batch_id: int, model) -> BatchSums:
        """The executors' half (``mapInArrow``): each task runs :func:`process_records` on its records against
        the broadcast model state, stages its assignments, writes its dead letters and hands back its
        statistics only; they are folded here in Kafka order (:func:`fold_partials`)."""
        kind = type(model)
        context = records.sparkSession.sparkContext
        if kind is StreamingKMeans:
            # one task per core, not one per Kafka partition: each task costs a Python worker hand-off. (A DP
            # model's births need every task's points in one run of Kafka order: one Kafka partition a task.)
            records = records.coalesce(tasks_per_micro_batch(records.sparkSession))
        broadcast = context.broadcast(model.local_state() if model.initialised else None)
        try:
            worker = _partition_worker(self.database_url, self.settings.tables, self.settings.job, batch_id, kind,
                                       broadcast, model.dim, self.settings.max_record_bytes)
            partials = records.mapInArrow(worker, PARTIAL_SCHEMA).collect()
        finally:
            broadcast.unpersist()
        return fold_partials(partials, kind)

    def _commit(self, commit: BatchCommit) -> bool:
        """One transaction: :func:`~ssp.storage.clusters.commit_batch` (on the connection the job keeps)."""
        done = False

        def write(conn) -> None:
            nonlocal done
            done = commit_batch(conn, self.settings.tables, commit)

        kept_connection_write(self.database_url, write, self._connections)
        return done

    def close(self) -> None:
        """Close the job's database connection (the workers' close with their processes)."""
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()


@dataclass
class ClusterStreamResult:
    """What a run did, and the model it left."""

    settings: ClusterSettings
    seen: int
    points: int
    dead: int
    committed: int
    skipped: int
    seconds: float
    resumed_from: int | None
    model_batches: int
    weights: list[float] = field(default_factory=list)

    def line(self) -> str:
        s = self.settings
        rate = self.seen / self.seconds if self.seconds > 0 else 0.0
        resumed = f"resumed from batch {self.resumed_from}, " if self.resumed_from is not None else ""
        skipped = f", {self.skipped} replayed micro-batches skipped" if self.skipped else ""
        weights = ", ".join(f"{w:.1f}" for w in self.weights) or "no centres yet"
        shape = f"k={s.k}" if s.algorithm == "kmeans" else f"{len(self.weights)} clusters"
        return (f"clustered {self.points} points from {s.topic} into {s.tables.assignments} with {s.algorithm} "
                f"(job {s.job}, {shape}; {resumed}{self.committed} micro-batches committed{skipped}; {self.seen} records "
                f"read, {self.dead} to {s.tables.dead}); the model has learnt {self.model_batches} batches, weights "
                f"[{weights}]; {self.seconds:.1f} s ({rate:,.0f} records/s)")


def cluster_checkpoint_dir(settings: ClusterSettings, state_dir: Path | None = None) -> Path:
    """Where a job keeps its Spark checkpoint: one folder per job, topic and version."""
    safe_job = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in settings.job)
    return job_checkpoint_dir("cluster", settings.topic, settings.tables.assignments, state_dir) / safe_job


def _checkpoint_has_batches(checkpoint: Path) -> bool:
    commits = checkpoint / "commits"
    return commits.is_dir() and any(path.name.isdigit() for path in commits.iterdir())


def run_cluster_stream(
    spark,
    *,
    infra: InfraConfig | None = None,
    config: ClusterConfig | None = None,
    topic: str | None = None,
    version: int | None = None,
    job: str | None = None,
    k: int | None = None,
    dim: int | None = None,
    decay_factor: float | None = None,
    half_life: float | None = None,
    time_unit: str | None = None,
    seed: int | None = None,
    init: str | None = None,
    lambda_: float | None = None,
    algorithm: str | None = None,
    max_records: int | None = None,
    until_idle: float | None = None,
    checkpoint_dir: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ClusterStreamResult:
    """Cluster the points of ``topic`` until ``max_records`` records were read, it is idle for ``until_idle``
    seconds, or it is stopped (Ctrl-C, SIGTERM); resumes from the job's last committed model."""
    infra = infra or InfraConfig()
    settings = cluster_settings(config, topic=topic, version=version, job=job, k=k, dim=dim, decay_factor=decay_factor,
                                half_life=half_life, time_unit=time_unit, seed=seed, init=init,
                                lambda_=lambda_, algorithm=algorithm)
    checkpoint = Path(checkpoint_dir) if checkpoint_dir else cluster_checkpoint_dir(settings)
    engine = make_engine(infra.database_url)
    try:
        ensure_cluster_tables(engine, settings.tables)
        stored = latest_model(engine, settings.tables.version, settings.job, settings.tables.models)
    finally:
        engine.dispose()
    if stored is not None and not _checkpoint_has_batches(checkpoint):
        raise ClusterStreamError(
            f"job {settings.job!r} (version {settings.tables.version}) has a model committed at micro-batch "
            f"{stored.batch_id}, but the checkpoint {checkpoint} has no micro-batch: resume with the checkpoint it "
            "ran with (--checkpoint-dir), or start another --job or --version")
    model = resume_model(stored, settings) if stored is not None else settings.new_model()
    if stored is not None:
        log.info("job %s: resuming from the model of micro-batch %d", settings.job, stored.batch_id)
    driver = ClusterJob(settings, infra.database_url, model, stored.batch_id if stored else None, on_progress)
    stream = kafka_stream(spark, infra, settings.topic, settings.starting_offsets, settings.max_offsets_per_trigger)
    # parsed in Spark SQL on the executors, analysed once for the whole stream
    stream = plain_points(stream.select(*KAFKA_COLUMNS), job=settings.job, max_bytes=settings.max_record_bytes)
    try:
        seconds = run_until_done(
            stream, driver.write_batch, driver.progress,
            name=f"cluster_{settings.tables.assignments}_{checkpoint.name}", checkpoint=checkpoint,
            trigger_seconds=settings.trigger_seconds, max_records=max_records, until_idle=until_idle,
        )
    finally:
        driver.close()
    counts = driver.progress.counts
    final = driver.model
    return ClusterStreamResult(
        settings=settings, seen=driver.progress.seen, points=counts.get("points", 0), dead=counts.get("dead", 0),
        committed=counts.get("committed", 0), skipped=counts.get("skipped", 0), seconds=seconds,
        resumed_from=stored.batch_id if stored else None, model_batches=final.n_batches,
        weights=final.weights.tolist() if final.initialised else [],
    )


# ---------------------------------------------------------------------- ssp cluster show
@dataclass(frozen=True)
class ClusterModelView:
    """A committed model as ``ssp cluster show`` prints it."""

    stored: StoredModel
    model: Any

    def _shape(self) -> str:
        m = self.model
        unit = getattr(m, "time_unit", "batches")
        forgetting = f"half-life {m.half_life:g} {unit}" if m.half_life is not None else \
            f"decay factor {m.decay_factor:g} per {unit.removesuffix('es').removesuffix('s')}"
        if isinstance(m, StreamingKMeans):
            scale = f"k={m.k}"
        elif isinstance(m, DPGMM):
            scale = f"{len(m.cluster_ids)} components, alpha={m.alpha:g}, {m.covariance_type} covariances"
        else:
            scale = f"{len(m.cluster_ids)} clusters, " + (f"lambda={m.lambda_:g}" if m.lambda_ is not None else f"k~{m.k}")
        return f"{scale}  dim={m.dim}  {forgetting}"

    def lines(self) -> list[str]:
        m = self.model
        out = [f"job {self.stored.job}  version {self.stored.version}  algorithm {self.stored.algorithm}  "
               f"micro-batch {self.stored.batch_id}  updated {self.stored.updated:%Y-%m-%d %H:%M:%S %Z}",
               f"{self._shape()}  batches learnt {m.n_batches}  points {m.n_points}"]
        if not m.initialised or not len(m.cluster_ids):
            return out + ["no clusters yet: no valid point has arrived"]
        for cluster, centre, weight in zip(m.cluster_ids.tolist(), m.centres.tolist(), m.weights.tolist(), strict=True):
            coordinates = ", ".join(f"{c:.4f}" for c in centre)
            out.append(f"  cluster {cluster}: weight {weight:12.4f}  centre [{coordinates}]")
        return out

    def line(self) -> str:
        m = self.model
        return (f"model of job {self.stored.job} (version {self.stored.version}) at micro-batch {self.stored.batch_id}: "
                f"{self._shape().replace('  ', ', ')}, {m.n_batches} batches and {m.n_points} points learnt")


def cluster_show(database_url: str, version: int, job: str | None = None,
                 models: str = CLUSTER_MODELS_TABLE) -> ClusterModelView:
    """The newest committed model of ``job`` (default: the job of ``version`` updated last)."""
    engine = make_engine(database_url)
    try:
        tables = ClusterTables.for_version(version, models=models)
        stored = latest_model(engine, tables.version, job, tables.models) if table_exists(engine, tables.models) \
            else None
    finally:
        engine.dispose()
    if stored is None:
        which = f"job {job!r} of version {version}" if job else f"version {version}"
        raise ClusterStreamError(f"no clustering model for {which} yet: run `ssp cluster stream --version {version}`")
    try:
        model = model_from_state(stored.state)
    except ValueError as err:
        raise ClusterStreamError(f"the model of job {stored.job!r} cannot be read: {err}") from err
    return ClusterModelView(stored, model)


# ---------------------------------------------------------------------- ssp cluster plot
@dataclass(frozen=True)
class PlotResult:
    path: Path
    job: str
    version: int
    points: int
    batches: int

    def line(self) -> str:
        return (f"plotted {self.points} points and {self.batches} micro-batches of centre trails of job {self.job} "
                f"(version {self.version}) to {self.path}")


def cluster_colour(cluster: int) -> str:
    """The colour of a cluster, the same in the PNG and the live view (Tableau's 10, then 20 more).

    >>> cluster_colour(0), cluster_colour(10)
    ('#1f77b4', '#393b79')
    """
    return _PALETTE[cluster % len(_PALETTE)]


_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363",
)


def _xy(coordinates: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """The first two coordinates (a 1-D point is drawn on y = 0)."""
    xs = [c[0] for c in coordinates]
    ys = [c[1] if len(c) > 1 else 0.0 for c in coordinates]
    return xs, ys


def cluster_plot_png(engine, tables: ClusterTables, job: str, *, points: int = 5000, trail: int = 200) -> tuple[
        bytes, int, int]:
    """The newest ``points`` points coloured by cluster, the centres and the last ``trail`` micro-batches of
    their trails, as a PNG (matplotlib's Agg canvas); returns the PNG, the points and the batches drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, _ = assignments_after(engine, tables, job, None, points)
    history = centres_history(engine, tables, job, last_batches=trail)
    figure = Figure(figsize=(8, 7), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if rows:
        xs, ys = _xy([r.x for r in rows])
        axes.scatter(xs, ys, s=6, c=[cluster_colour(r.cluster) for r in rows], alpha=0.45, linewidths=0)
    trails: dict[int, list[list[float]]] = {}
    for row in history:
        trails.setdefault(row.cluster, []).append(row.centre)
    for cluster, path in sorted(trails.items()):
        xs, ys = _xy(path)
        axes.plot(xs, ys, color=cluster_colour(cluster), linewidth=1.5, alpha=0.8)
        axes.scatter(xs[-1:], ys[-1:], marker="X", s=160, color=cluster_colour(cluster), edgecolors="black",
                     linewidths=1.0, zorder=3, label=f"cluster {cluster}")
    dim = len(rows[0].x) if rows else (len(history[0].centre) if history else 2)
    batches = len({row.batch_id for row in history})
    axes.set_title(f"{job}, version {tables.version}: {len(rows)} points, centres and {batches} micro-batches of "
                   f"trails" + ("" if dim <= 2 else f" (first 2 of {dim} coordinates)"), fontsize=10)
    axes.set_xlabel("x[0]")
    axes.set_ylabel("x[1]" if dim > 1 else "")
    if trails:
        axes.legend(loc="best", fontsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue(), len(rows), batches


def cluster_plot(database_url: str, version: int, output: Path, *, job: str | None = None, points: int = 5000,
                 trail: int = 200) -> PlotResult:
    """Write the PNG of :func:`cluster_plot_png` for ``job`` (default: the job of ``version`` updated last)."""
    engine = make_engine(database_url)
    try:
        tables = ClusterTables.for_version(version)
        if not all(table_exists(engine, name) for name in (tables.models, tables.assignments, tables.centres)):
            raise ClusterStreamError(f"no clustering job has written version {version} yet: run "
                                     f"`ssp cluster stream --version {version}`")
        if job is None:
            stored = latest_model(engine, tables.version, None, tables.models)
            if stored is None:
                raise ClusterStreamError(f"no clustering job has written version {version} yet: run "
                                         f"`ssp cluster stream --version {version}`")
            job = stored.job
        png, drawn, batches = cluster_plot_png(engine, tables, job, points=points, trail=trail)
    finally:
        engine.dispose()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(png)
    return PlotResult(output, job, tables.version, drawn, batches)
