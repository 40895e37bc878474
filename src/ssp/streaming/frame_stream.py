"""Kafka -> colour clustering of video frames -> PostgreSQL and an output video, on Structured Streaming.

The frames topic holds one record per frame (:mod:`ssp.video.record`), keyed by video id. Each
micro-batch:

1. groups the records by video id (``groupBy(key).applyInPandasWithState``): each video's frames go to
   one task with that video's state, the last palette (a :class:`~ssp.clustering.palette.FrameQuantiser`
   as JSON), so the frames of different videos are quantised on different executors at once, and a
   video's frames one after another, in Kafka order, each warm-started from the one before;
2. per frame (:func:`quantise_records`, no Spark or database in it): decode, coreset, weighted DP-means,
   repaint, the repainted frame as a palette PNG; a record that is not a frame, or a frame index not
   after the video's last one (a video sent again), becomes a dead letter with the reason. Only the fit
   needs the frame before it, so the coresets of the frames to come and the repaints and PNGs of those
   fitted run on other threads meanwhile (:meth:`~ssp.clustering.palette.FrameQuantiser.quantise_frames`);
3. on the driver, in one PostgreSQL transaction keyed by the micro-batch id
   (:func:`ssp.storage.video.commit_frames`): the frames, their palettes, the dead letters and the batch
   row. A micro-batch already committed (Spark replays the last one after a crash) writes nothing.

Spark keeps the per-video state in its checkpoint, versioned by micro-batch: a replayed micro-batch starts
from the state the batch before left, so it computes the same frames again (the coresets are seeded by
the frame index), and the commit's batch id check keeps them from being written twice. A job killed with
SIGKILL and restarted ends with every frame once. The output video is assembled from the frames table in
frame order when the run ends (and by ``ssp video export``), so it has each frame once, none missing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssp.clustering.coreset import coreset_size as bound_coreset_size
from ssp.clustering.palette import FrameQuantiser
from ssp.config import InfraConfig, TopicsConfig, VideoConfig
from ssp.errors import SspError
from ssp.kafka.records import RowText, dead_letter_row
from ssp.storage.postgres import libpq_url, make_engine
from ssp.storage.video import (
    FrameBatchCommit,
    FrameRow,
    VideoTables,
    commit_frames,
    ensure_video_tables,
    frame_pngs,
    last_frame_batch,
)
from ssp.streaming.runner import StreamProgress, job_checkpoint_dir, kafka_stream, run_until_done
from ssp.video.output import encode_png, safe_name, write_png, write_video
from ssp.video.record import FrameParseError, decode_frame

log = logging.getLogger(__name__)

__all__ = ["FrameSettings", "FrameStreamError", "FrameStreamResult", "export_video", "frame_settings",
           "quantise_records", "run_frame_stream"]

KAFKA_COLUMNS = ("key", "value", "topic", "partition", "offset")
OUTPUT_SCHEMA = ("video string, frame_index long, ts_ms long, width int, height int, lambda double, "
                 "coreset_size int, seconds double, png binary, colours array<double>, shares array<double>, "
                 "kafka_partition int, kafka_offset long, topic string, dead_reason string, dead_error string, "
                 "dead_key binary, dead_value binary")
STATE_SCHEMA = "quantiser string"
_OUTPUT_NAMES = tuple(part.strip().split(" ")[0] for part in OUTPUT_SCHEMA.split(","))
PIPELINE_THREADS = 2  # a task's threads for the coresets ahead and the repaints behind the fits (FrameQuantiser)
# The frames topic's Kafka consumer, for this job only: a frame is about 289 kB, so the default 1 MB a
# partition a fetch and 64 kB socket buffer take a round trip every 3 frames; and a partition's offsets of
# a micro-batch are read by 2 tasks at once (one video's frames all sit in one partition; the stateful
# operator puts them back in order). The fetch wait at the topic's head is StreamingConfig's, as for every stream.
KAFKA_SOURCE_OPTIONS = {"kafka.max.partition.fetch.bytes": str(32 * 1024 * 1024),
                        "kafka.fetch.max.bytes": str(64 * 1024 * 1024),
                        "kafka.receive.buffer.bytes": str(4 * 1024 * 1024),
                        "minPartitions": "2"}


class FrameStreamError(SspError, ValueError):
    """A video job that cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class FrameSettings:
    """One video clustering run's settings, resolved from :class:`VideoConfig` and the command line."""

    topic: str
    job: str
    tables: VideoTables
    lambda_: float | None
    colours: int | None
    coreset_size: int
    max_iter: int
    seed: int
    fps: float
    max_offsets_per_trigger: int
    trigger_seconds: float
    starting_offsets: str
    output_dir: Path
    png: bool = False

    def new_quantiser(self) -> FrameQuantiser:
        scale = {"colours": self.colours} if self.colours is not None else {"lambda_": self.lambda_}
        return FrameQuantiser(**scale, coreset_size=self.coreset_size, max_iter=self.max_iter, seed=self.seed)

    def model_args(self) -> dict[str, Any]:
        """What the executors need, small and picklable."""
        return {"lambda": self.lambda_, "colours": self.colours, "coreset_size": self.coreset_size,
                "max_iter": self.max_iter, "seed": self.seed}

    def describe(self) -> str:
        scale = f"lambda {self.lambda_:g}" if self.colours is None else f"about {self.colours} colours"
        return f"{scale}, coreset of {self.coreset_size} pixels"


def frame_settings(config: VideoConfig | None = None, *, topic: str | None = None, version: int | None = None,
                   job: str | None = None, lambda_: float | None = None, colours: int | None = None,
                   coreset_size: int | str | None = None, png: bool = False,
                   output_dir: Path | None = None) -> FrameSettings:
    """The settings of a run: the arguments given, else ``config``'s. ``coreset_size="auto"`` takes the
    lightweight coreset's bound for about ``colours`` (else 16) colours at ``VideoConfig.coreset_eps``.

    >>> s = frame_settings(VideoConfig(), topic="frames", version=3, colours=8, coreset_size="auto")
    >>> s.job, s.tables.frames, s.lambda_, s.colours, s.coreset_size
    ('palette:frames', 'video_frames_3', None, 8, 5221)
    >>> frame_settings(VideoConfig(), lambda_=100.0, colours=8)
    Traceback (most recent call last):
    ...
    ssp.streaming.frame_stream.FrameStreamError: give --lambda or --colours, not both
    """
    config = config or VideoConfig()
    if lambda_ is not None and colours is not None:
        raise FrameStreamError("give --lambda or --colours, not both")
    if lambda_ is None and colours is None:
        lambda_, colours = (None, config.colours) if config.colours is not None else (config.colour_lambda, None)
    size = config.coreset_size if coreset_size is None else coreset_size
    try:
        if size == "auto":
            size = bound_coreset_size(colours or 16, eps=config.coreset_eps)
        elif isinstance(size, str):
            size = int(size)
        topic = topic or TopicsConfig().frames_topic
        settings = FrameSettings(
            topic=topic, job=job or config.job_for(topic),
            tables=VideoTables.for_version(config.version if version is None else version, config.dead_letter_table),
            lambda_=lambda_, colours=colours, coreset_size=size, max_iter=config.max_iter, seed=config.seed,
            fps=config.fps, max_offsets_per_trigger=config.max_offsets_per_trigger,
            trigger_seconds=config.trigger_seconds, starting_offsets=config.starting_offsets,
            output_dir=Path(output_dir) if output_dir else config.output_path, png=png)
        settings.new_quantiser()  # the quantiser's own checks: lambda, colours, coreset size
    except ValueError as err:
        raise FrameStreamError(f"--coreset-size must be a whole number or 'auto', got {size!r}"
                               if "invalid literal" in str(err) else str(err)) from err
    if not settings.job.strip() or len(settings.job) > 200:
        raise FrameStreamError(f"job name {settings.job!r} must be 1 to 200 characters")
    return settings


# ---------------------------------------------------------------------- the executors' half
def _dead(row: dict, reason: str, error: str) -> dict:
    return {"video": None, "frame_index": None, "topic": row["topic"], "kafka_partition": row["partition"],
            "kafka_offset": row["offset"], "dead_reason": reason, "dead_error": error,
            "dead_key": row["key"], "dead_value": row["value"]}


def quantise_records(records: list[dict], state: dict | None, model_args: dict[str, Any]) -> tuple[
        list[dict], dict | None]:
    """Quantise one video's records of a micro-batch (dicts with :data:`KAFKA_COLUMNS`), in Kafka order,
    starting from ``state`` (None: the video's first frames); returns the output rows (frames and dead
    letters, :data:`OUTPUT_SCHEMA`'s columns) and the state after them. Pure: no Spark, no database."""
    quantiser = FrameQuantiser.from_state(state) if state is not None else FrameQuantiser(
        **({"colours": model_args["colours"]} if model_args["colours"] is not None
           else {"lambda_": model_args["lambda"]}),
        coreset_size=model_args["coreset_size"], max_iter=model_args["max_iter"], seed=model_args["seed"])
    out: list[dict | None] = []
    frames: list[tuple[int, Any, dict]] = []  # (its place in out, the frame, its record), in Kafka order
    last = quantiser.last_index
    for row in sorted(records, key=lambda r: (r["partition"], r["offset"])):
        try:
            frame = decode_frame(row["value"], row["key"])
            if last is not None and frame.index <= last:
                raise FrameParseError("replayed_frame", f"frame {frame.index} of video {frame.video} comes after "
                                                        f"frame {last}: the video was sent again")
        except FrameParseError as err:
            out.append(_dead(row, err.reason, str(err)))
            continue
        last = frame.index
        frames.append((len(out), frame, row))
        out.append(None)
    results = quantiser.quantise_frames(((frame.index, frame.pixels) for _, frame, _ in frames),
                                        threads=PIPELINE_THREADS,
                                        then=lambda result: (result, encode_png(result.labels, result.palette.rgb())))
    for (place, frame, row), (result, png) in zip(frames, results, strict=True):
        out[place] = {"video": frame.video, "frame_index": frame.index, "ts_ms": frame.ts_ms, "width": frame.width,
                      "height": frame.height, "lambda": result.lambda_, "coreset_size": result.coreset_size,
                      "seconds": result.seconds, "png": png,
                      "colours": result.palette.colours.ravel().tolist(), "shares": result.palette.shares.tolist(),
                      "kafka_partition": row["partition"], "kafka_offset": row["offset"], "topic": row["topic"]}
    touched = quantiser.frames > (0 if state is None else state["frames"])
    return out, (quantiser.to_state() if touched else state)


def _group_worker(model_args: dict[str, Any]) -> Callable:
    """The function ``applyInPandasWithState`` runs per video and micro-batch."""

    def work(key, frames, state) -> Iterator:
        import warnings

        import pandas as pd

        # pyspark's own concat of the state and the rows warns of all-None columns (a batch without dead letters)
        warnings.filterwarnings("ignore", category=FutureWarning, module="pyspark")

        records = [row for part in frames for row in part.to_dict("records")]
        previous = json.loads(state.get[0]) if state.exists else None
        out, after = quantise_records(records, previous, model_args)
        if after is not None and key[0] is not None:
            state.update((json.dumps(after),))
        yield pd.DataFrame([{name: row.get(name) for name in _OUTPUT_NAMES} for row in out],
                           columns=list(_OUTPUT_NAMES))

    return work


# ---------------------------------------------------------------------- the driver's half
@dataclass(frozen=True)
class FrameLine:
    """What the driver logs of one committed frame, like the original: the colours and the time."""

    video: str
    frame_index: int
    colours: int
    seconds: float

    def line(self) -> str:
        return (f"video {self.video} frame {self.frame_index}: Number of colors detected: {self.colours} "
                f"({self.seconds:.3f} s)")


def _frame_row(row: dict) -> FrameRow:
    colours = np.asarray(row["colours"], dtype=np.float64).reshape(-1, 3)
    return FrameRow(row["video"], int(row["frame_index"]), int(row["ts_ms"]), int(row["width"]), int(row["height"]),
                    float(row["lambda"]), int(row["coreset_size"]), float(row["seconds"]), bytes(row["png"]),
                    int(row["kafka_partition"]), int(row["kafka_offset"]),
                    [(rgb.tolist(), float(share)) for rgb, share in zip(colours, row["shares"], strict=True)])


class FrameJob:
    """The driver's state across micro-batches: the last committed batch and the progress."""

    def __init__(self, settings: FrameSettings, database_url: str, last_batch: int | None,
                 on_frame: Callable[[FrameLine], None] | None = None) -> None:
        self.settings, self.database_url = settings, libpq_url(database_url)
        self.last_batch = last_batch
        self.progress = StreamProgress()
        self.on_frame = on_frame
        self.videos: set[str] = set()
        self.frame_seconds: list[float] = []

    def write_batch(self, batch_df, batch_id: int) -> None:
        """``foreachBatch``: the batch's frames (already quantised by the stateful operator) in one transaction."""
        if self.last_batch is not None and batch_id <= self.last_batch:
            log.info("job %s: micro-batch %d is already committed; skipped", self.settings.job, batch_id)
            self.progress.add(0, skipped=1)
            return
        rows = [row.asDict() for row in batch_df.collect()]
        frames = sorted((_frame_row(r) for r in rows if r["dead_reason"] is None),
                        key=lambda f: (f.video, f.frame_index))
        dead: list[RowText] = [
            dead_letter_row(self.settings.tables.frames, r["topic"], r["kafka_partition"], r["kafka_offset"],
                            None if r["dead_key"] is None else bytes(r["dead_key"]),
                            None if r["dead_value"] is None else bytes(r["dead_value"]), r["dead_reason"],
                            r["dead_error"])
            for r in rows if r["dead_reason"] is not None]
        committed = self._commit(FrameBatchCommit(self.settings.job, self.settings.tables.version, batch_id,
                                                  frames, dead), lambda: self._emit(frames))
        if committed:
            self.last_batch = batch_id
        self.progress.add(len(rows), frames=len(frames) if committed else 0, dead=len(dead) if committed else 0,
                          committed=int(committed), skipped=int(not committed))
        log.info("job %s batch %d: %d records, %d frames, %d dead letters%s", self.settings.job, batch_id, len(rows),
                 len(frames), len(dead), "" if committed else " (already committed: skipped)")

    def _emit(self, frames: list[FrameRow]) -> None:
        """A batch's outputs: its PNGs and one line a frame. They run before the batch's commit, so every committed
        frame has been written and logged even if the job dies just after; a replay (the commit never happened)
        writes the same files again."""
        for frame in frames:
            self.videos.add(frame.video)
            self.frame_seconds.append(frame.seconds)
            if self.settings.png:
                write_png(self.settings.output_dir / safe_name(self.settings.job) / safe_name(frame.video)
                          / f"frame_{frame.frame_index:06d}.png", frame.png)
            if self.on_frame is not None:
                self.on_frame(FrameLine(frame.video, frame.frame_index, frame.colours, frame.seconds))

    def _commit(self, commit: FrameBatchCommit, before_commit: Callable[[], None]) -> bool:
        """One transaction; ``before_commit`` runs inside it once the rows are written, only if the batch is new."""
        import psycopg2

        conn = psycopg2.connect(self.database_url)
        try:
            done = commit_frames(conn, self.settings.tables, commit)
            if done:
                before_commit()
            conn.commit()
            return done
        finally:
            conn.close()


@dataclass
class FrameStreamResult:
    """What a run did, and the videos it wrote."""

    settings: FrameSettings
    seen: int
    frames: int
    dead: int
    committed: int
    skipped: int
    seconds: float
    resumed_from: int | None
    frame_seconds: list[float] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)

    def line(self) -> str:
        s = self.settings
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        per_frame = f"{np.mean(self.frame_seconds):.3f}" if self.frame_seconds else "-"
        resumed = f"resumed from batch {self.resumed_from}, " if self.resumed_from is not None else ""
        skipped = f", {self.skipped} replayed micro-batches skipped" if self.skipped else ""
        videos = "; ".join(f"{video} -> {path}" for video, path in sorted(self.outputs.items())) or "no video written"
        return (f"quantised {self.frames} frames from {s.topic} into {s.tables.frames} (job {s.job}, {s.describe()}; "
                f"{resumed}{self.committed} micro-batches committed{skipped}; {self.seen} records read, {self.dead} to "
                f"{s.tables.dead}); {per_frame} s a frame for coreset + fit + repaint; ran {self.seconds:.1f} s with "
                f"Spark's start and any idle wait ({rate:.1f} frames/s over it); {videos}")


def frame_checkpoint_dir(settings: FrameSettings, state_dir: Path | None = None) -> Path:
    """Where a job keeps its Spark checkpoint (with the per-video state): one folder per job, topic, version."""
    return job_checkpoint_dir("video", settings.topic, settings.tables.frames, state_dir) / safe_name(settings.job)


def _has_batches(checkpoint: Path) -> bool:
    commits = checkpoint / "commits"
    return commits.is_dir() and any(path.name.isdigit() for path in commits.iterdir())


def export_video(database_url: str, tables: VideoTables, job: str, video: str, path: Path, fps: float) -> int:
    """Assemble ``video``'s stored frames (by ``job``) into an MP4 at ``path``, in frame order; the frames."""
    engine = make_engine(database_url)
    try:
        return write_video(path, frame_pngs(engine, tables, job, video), fps)
    finally:
        engine.dispose()


def video_output_path(settings: FrameSettings, video: str) -> Path:
    return settings.output_dir / safe_name(settings.job) / f"{safe_name(video)}.mp4"


def frame_source(spark, infra: InfraConfig, settings: FrameSettings):
    """The frames topic as a streaming DataFrame, with :data:`KAFKA_SOURCE_OPTIONS`."""
    return kafka_stream(spark, infra, settings.topic, settings.starting_offsets, settings.max_offsets_per_trigger,
                        options=KAFKA_SOURCE_OPTIONS)


def run_frame_stream(spark, *, infra: InfraConfig | None = None, settings: FrameSettings,
                     max_frames: int | None = None, until_idle: float | None = None,
                     checkpoint_dir: Path | None = None, on_frame: Callable[[FrameLine], None] | None = None,
                     write_videos: bool = True) -> FrameStreamResult:
    """Quantise the frames of ``settings.topic`` until ``max_frames`` records were read, it is idle for
    ``until_idle`` seconds, or it is stopped (Ctrl-C, SIGTERM); then assemble each video it wrote."""
    infra = infra or InfraConfig()
    checkpoint = Path(checkpoint_dir) if checkpoint_dir else frame_checkpoint_dir(settings)
    import psycopg2

    engine = make_engine(infra.database_url)
    try:
        ensure_video_tables(engine, settings.tables)
    finally:
        engine.dispose()
    conn = psycopg2.connect(libpq_url(infra.database_url))
    try:
        last = last_frame_batch(conn, settings.tables, settings.job, settings.tables.version)
    finally:
        conn.close()
    if last is not None and not _has_batches(checkpoint):
        raise FrameStreamError(
            f"job {settings.job!r} (version {settings.tables.version}) has frames committed up to micro-batch {last}, "
            f"but the checkpoint {checkpoint} has no micro-batch (and so no palettes): resume with the checkpoint it "
            "ran with (--checkpoint-dir), or start another --job or --version")
    driver = FrameJob(settings, infra.database_url, last, on_frame)
    from pyspark.sql import functions as F

    records = frame_source(spark, infra, settings)
    quantised = (records.select(*KAFKA_COLUMNS).groupBy(F.col("key"))
                 .applyInPandasWithState(_group_worker(settings.model_args()), OUTPUT_SCHEMA, STATE_SCHEMA, "append",
                                         "NoTimeout"))
    start = time.monotonic()
    seconds = run_until_done(quantised, driver.write_batch, driver.progress,
                             name=f"video_{settings.tables.frames}_{checkpoint.name}", checkpoint=checkpoint,
                             trigger_seconds=settings.trigger_seconds, max_records=max_frames, until_idle=until_idle)
    outputs: dict[str, Path] = {}
    if write_videos:
        for video in sorted(driver.videos):
            path = video_output_path(settings, video)
            export_video(infra.database_url, settings.tables, settings.job, video, path, settings.fps)
            outputs[video] = path
    counts = driver.progress.counts
    log.info("job %s: ran %.1f s, %.1f s with the videos", settings.job, seconds, time.monotonic() - start)
    return FrameStreamResult(settings, driver.progress.seen, counts.get("frames", 0), counts.get("dead", 0),
                             counts.get("committed", 0), counts.get("skipped", 0), seconds, last,
                             driver.frame_seconds, outputs)
