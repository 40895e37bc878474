"""The tables of the video colour-clustering stream, its one-transaction-per-micro-batch write and its readers.

One version ``<v>`` owns two tables, and every job shares two more:

* ``video_frames_<v>``: one row per quantised frame, keyed by ``(job, video, frame_index)``: the
  micro-batch, stream time, size, the number of colours, lambda, the coreset size, the seconds coreset +
  fit + repaint took, the repainted frame as a PNG (palette mode when it has at most 256 colours) and
  the frame's Kafka position. The output video is assembled from these rows, in frame order, so a
  restarted job neither repeats nor loses a frame of it;
* ``video_palettes_<v>``: each frame's colours (``rgb``, the DP-means centre, ``float8[3]``) and their
  pixel shares, keyed by ``(job, video, frame_index, colour)``;
* ``video_batches``: one row per committed micro-batch, keyed by ``(job, version, batch_id)``;
* ``dead_letter_frames``: records that are not frames, and frames that came again (reason and bytes).

:func:`commit_frames` writes a micro-batch's frames, palettes, dead letters and batch row in the
caller's transaction, after checking under a lock on the job that the batch id is not committed yet: a
replayed micro-batch changes nothing. Table names go through :func:`versioned_table_name`; values are
bound parameters.

>>> tables = VideoTables.for_version(2)
>>> tables.frames, tables.palettes, tables.batches, tables.dead
('video_frames_2', 'video_palettes_2', 'video_batches', 'dead_letter_frames')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.engine import Engine

from ssp.kafka.records import RowText, write_dead_letters
from ssp.storage.postgres import ensure_tables
from ssp.storage.tables import dead_letter_table, validate_identifier, validate_version, versioned_table_name

__all__ = ["FrameBatchCommit", "FrameRow", "VideoTables", "commit_frames", "ensure_video_tables",
           "frame_pngs", "last_frame_batch", "stored_palette", "video_frames_table", "video_jobs",
           "video_palettes_table", "video_batches_table"]

VIDEO_FRAMES_PREFIX = "video_frames"
VIDEO_PALETTES_PREFIX = "video_palettes"
VIDEO_BATCHES_TABLE = "video_batches"
DEFAULT_FRAMES_DEAD_LETTER_TABLE = "dead_letter_frames"
FRAME_COLUMNS = ("job", "video", "frame_index", "batch_id", "ts", "width", "height", "colours", "lambda",
                 "coreset_size", "seconds", "png", "kafka_partition", "kafka_offset")


def _keyed(name: str, metadata: MetaData | None, key: Sequence[str], *columns: Column) -> Table:
    validate_identifier(name, "table name")
    return Table(name, metadata or MetaData(), *columns,
                 Column("written_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
                 PrimaryKeyConstraint(*key, name=f"{name}_pkey"))


def video_frames_table(name: str, metadata: MetaData | None = None) -> Table:
    """Every quantised frame, once per (job, video, frame index)."""
    return _keyed(
        name, metadata, ("job", "video", "frame_index"),
        Column("job", Text, nullable=False), Column("video", Text, nullable=False),
        Column("frame_index", BigInteger, nullable=False), Column("batch_id", BigInteger, nullable=False),
        Column("ts", DateTime(timezone=True)), Column("width", Integer, nullable=False),
        Column("height", Integer, nullable=False), Column("colours", Integer, nullable=False),
        Column("lambda", Float(precision=53), nullable=False), Column("coreset_size", Integer, nullable=False),
        Column("seconds", Float(precision=53), nullable=False), Column("png", LargeBinary, nullable=False),
        Column("kafka_partition", Integer, nullable=False), Column("kafka_offset", BigInteger, nullable=False),
    )


def video_palettes_table(name: str, metadata: MetaData | None = None) -> Table:
    """Each frame's colours and their pixel shares."""
    return _keyed(
        name, metadata, ("job", "video", "frame_index", "colour"),
        Column("job", Text, nullable=False), Column("video", Text, nullable=False),
        Column("frame_index", BigInteger, nullable=False), Column("colour", Integer, nullable=False),
        Column("rgb", ARRAY(Float(precision=53)), nullable=False), Column("share", Float(precision=53), nullable=False),
    )


def video_batches_table(name: str = VIDEO_BATCHES_TABLE, metadata: MetaData | None = None) -> Table:
    """The micro-batches a video job committed, with what each held."""
    return _keyed(
        name, metadata, ("job", "version", "batch_id"),
        Column("job", Text, nullable=False), Column("version", BigInteger, nullable=False),
        Column("batch_id", BigInteger, nullable=False), Column("frames", BigInteger, nullable=False),
        Column("dead", BigInteger, nullable=False),
    )


@dataclass(frozen=True)
class VideoTables:
    """The tables one version of the video stream writes, plus the shared batch and dead-letter tables."""

    version: int
    frames: str
    palettes: str
    batches: str
    dead: str

    @classmethod
    def for_version(cls, version: int | str, dead_letter: str = DEFAULT_FRAMES_DEAD_LETTER_TABLE) -> VideoTables:
        version = validate_version(version)
        return cls(version, versioned_table_name(VIDEO_FRAMES_PREFIX, version),
                   versioned_table_name(VIDEO_PALETTES_PREFIX, version), VIDEO_BATCHES_TABLE,
                   validate_identifier(dead_letter, "dead-letter table name"))

    def schemas(self) -> tuple[Table, ...]:
        return (video_frames_table(self.frames), video_palettes_table(self.palettes),
                video_batches_table(self.batches), dead_letter_table(self.dead))


def ensure_video_tables(engine: Engine, tables: VideoTables) -> None:
    """Create the video tables of ``tables`` that do not exist yet."""
    ensure_tables(engine, *tables.schemas())


@dataclass(frozen=True)
class FrameRow:
    """One quantised frame as the stream commits it; ``palette`` holds (rgb, share) per colour."""

    video: str
    frame_index: int
    ts_ms: int
    width: int
    height: int
    lambda_: float
    coreset_size: int
    seconds: float
    png: bytes
    kafka_partition: int
    kafka_offset: int
    palette: Sequence[tuple[Sequence[float], float]] = ()

    @property
    def colours(self) -> int:
        return len(self.palette)


@dataclass(frozen=True)
class FrameBatchCommit:
    job: str
    version: int
    batch_id: int
    frames: Sequence[FrameRow] = ()
    dead: Sequence[RowText] = field(default_factory=list)


def last_frame_batch(conn, tables: VideoTables, job: str, version: int) -> int | None:
    """The newest batch id committed for ``job`` and ``version``, or None."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT max(batch_id) FROM {tables.batches} WHERE job = %s AND version = %s", (job, version))
        row = cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def commit_frames(conn, tables: VideoTables, commit: FrameBatchCommit) -> bool:
    """Write one micro-batch's frames, palettes, dead letters and batch row in the caller's transaction (the
    caller commits). Returns False, writing nothing, when ``commit.batch_id`` is already committed."""
    from psycopg2 import Binary
    from psycopg2.extras import execute_values

    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (f"video:{commit.job}", commit.version))
        last = last_frame_batch(conn, tables, commit.job, commit.version)
        if last is not None and commit.batch_id <= last:
            return False
        frames = [(commit.job, f.video, f.frame_index, commit.batch_id,
                   datetime.fromtimestamp(f.ts_ms / 1000, tz=UTC), f.width, f.height, f.colours, f.lambda_,
                   f.coreset_size, f.seconds, Binary(f.png), f.kafka_partition, f.kafka_offset)
                  for f in commit.frames]
        if frames:
            execute_values(cur, f"INSERT INTO {tables.frames} ({', '.join(FRAME_COLUMNS)}) VALUES %s "
                                "ON CONFLICT (job, video, frame_index) DO NOTHING", frames, page_size=100)
            palettes = [(commit.job, f.video, f.frame_index, colour, [float(v) for v in rgb], float(share))
                        for f in commit.frames for colour, (rgb, share) in enumerate(f.palette)]
            execute_values(cur, f"INSERT INTO {tables.palettes} (job, video, frame_index, colour, rgb, share) "
                                "VALUES %s ON CONFLICT DO NOTHING", palettes, page_size=1000)
        write_dead_letters(conn, tables.dead, commit.dead)
        cur.execute(f"INSERT INTO {tables.batches} (job, version, batch_id, frames, dead) VALUES (%s, %s, %s, %s, %s)",
                    (commit.job, commit.version, commit.batch_id, len(commit.frames), len(commit.dead)))
    return True


# ---------------------------------------------------------------------- reading
def video_jobs(engine: Engine, tables: VideoTables) -> list[tuple[str, str]]:
    """The (job, video) pairs with frames in ``tables.frames``, the most recently written first."""
    t = video_frames_table(tables.frames)
    statement = (select(t.c.job, t.c.video).group_by(t.c.job, t.c.video)
                 .order_by(func.max(t.c.written_at).desc(), t.c.job, t.c.video))
    with engine.connect() as conn:
        return [(row.job, row.video) for row in conn.execute(statement)]


def frame_pngs(engine: Engine, tables: VideoTables, job: str, video: str):
    """``(frame_index, png)`` of every stored frame of ``video`` by ``job``, in frame order (a generator that
    reads them in pages, so a long video is not held in memory)."""
    t = video_frames_table(tables.frames)
    after = -1
    while True:
        statement = (select(t.c.frame_index, t.c.png).where(t.c.job == job, t.c.video == video,
                                                             t.c.frame_index > after)
                     .order_by(t.c.frame_index).limit(200))
        with engine.connect() as conn:
            rows = conn.execute(statement).all()
        if not rows:
            return
        for row in rows:
            yield int(row.frame_index), bytes(row.png)
        after = int(rows[-1].frame_index)


def stored_palette(engine: Engine, tables: VideoTables, job: str, video: str, frame_index: int) -> tuple[
        list[list[float]], list[float]]:
    """The colours and shares of one stored frame (empty lists when the frame is not stored)."""
    t = video_palettes_table(tables.palettes)
    statement = (select(t.c.rgb, t.c.share).where(t.c.job == job, t.c.video == video,
                                                  t.c.frame_index == int(frame_index)).order_by(t.c.colour))
    with engine.connect() as conn:
        rows = conn.execute(statement).all()
    return [list(row.rgb) for row in rows], [float(row.share) for row in rows]
