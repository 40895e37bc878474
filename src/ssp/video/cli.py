"""``ssp video``: colour clustering of video frames on coresets (cluster, export, silhouette)."""

from __future__ import annotations

from pathlib import Path

import click

from ssp.config import InfraConfig, VideoConfig
from ssp.errors import SspError, reported

_VERSION_HELP = "Table version: video_frames_<v> and video_palettes_<v> (default: VideoConfig.version)."
_JOB_HELP = "Job name (default: VideoConfig.job, else palette:<topic>; for export and silhouette the job that " \
            "wrote the video last)."


@click.group("video")
def video() -> None:
    """Colour clustering of video frames: each frame's palette by weighted DP-means on a lightweight coreset,
    warm-started from the previous frame, in a Spark stream over the frames topic; the quantised video, the
    palettes in PostgreSQL and silhouette diagrams."""


@video.command("cluster")
@click.option("--topic", default=None, help="Kafka topic of frames (default: TopicsConfig.frames_topic).")
@click.option("--version", "version", type=click.IntRange(min=0), default=None, help=_VERSION_HELP)
@click.option("--job", default=None, help=_JOB_HELP)
@click.option("--lambda", "lambda_", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Squared RGB distance beyond which a pixel opens a new colour (default: "
                   "VideoConfig.colour_lambda, 2500 = a distance of 50).")
@click.option("--colours", "--colors", "colours", type=click.IntRange(min=1), default=None,
              help="About how many colours, instead of --lambda: lambda is derived from the first frame "
                   "(farthest-first) and kept for the video.")
@click.option("--coreset-size", default=None, metavar="M|auto",
              help="Pixels in each frame's coreset (default: VideoConfig.coreset_size, 1000); auto: the "
                   "lightweight coreset's bound (d k log k + log 1/delta) / eps^2 for --colours (else 16).")
@click.option("--png", is_flag=True, help="Also write every quantised frame as a PNG beside the video.")
@click.option("--output-dir", type=click.Path(file_okay=False), default=None,
              help="Where the videos (and PNGs) go (default: VideoConfig.output_dir, else <state dir>/video).")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after reading this many frames.")
@click.option("--until-idle", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop when no frame arrived for this many seconds.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="Spark checkpoint folder, with the per-video palettes (default: under the state dir).")
@click.option("--quiet", is_flag=True, help="No line per frame, the summary only.")
def cluster(topic, version, job, lambda_, colours, coreset_size, png, output_dir, max_frames, until_idle,
            checkpoint_dir, quiet) -> None:
    """Cluster each frame's colours as frames arrive, one line per frame (Number of colors detected: N, and
    the seconds coreset + fit + repaint took), the frames and palettes committed once per micro-batch; when
    it stops (Ctrl-C, SIGTERM, --max-frames, --until-idle), the quantised video of each video it saw is
    assembled from the stored frames and its path printed. A restart resumes every video's palette."""
    from ssp.infra.spark import spark_session
    from ssp.progress import summary
    from ssp.streaming.frame_stream import frame_settings, run_frame_stream

    if max_frames is not None and until_idle is not None:
        raise SspError("give --max-frames or --until-idle, not both")
    infra = InfraConfig()
    settings = frame_settings(VideoConfig(), topic=topic, version=version, job=job, lambda_=lambda_,
                              colours=colours, coreset_size=coreset_size, png=png,
                              output_dir=Path(output_dir) if output_dir else None)
    on_frame = None if quiet else (lambda frame: click.echo(frame.line()))
    with reported(f"writing {settings.tables.frames}", RuntimeError):
        spark = spark_session(f"ssp-video-{settings.tables.frames}", infra)
        result = run_frame_stream(spark, infra=infra, settings=settings, max_frames=max_frames, until_idle=until_idle,
                                  checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None, on_frame=on_frame)
    summary(result.line())


def _job_and_video(database_url: str, version: int, job: str | None, video_id: str | None):
    from ssp.storage.postgres import make_engine, table_exists
    from ssp.storage.video import VideoTables, video_jobs

    tables = VideoTables.for_version(version, VideoConfig().dead_letter_table)
    engine = make_engine(database_url)
    try:
        pairs = video_jobs(engine, tables) if table_exists(engine, tables.frames) else []
    finally:
        engine.dispose()
    matching = [(j, v) for j, v in pairs if (job is None or j == job) and (video_id is None or v == video_id)]
    if not matching:
        which = " and ".join(f"{name} {value!r}" for name, value in (("job", job), ("video", video_id)) if value)
        raise SspError(f"no quantised frames{' of ' + which if which else ''} in {tables.frames}: run "
                       f"`ssp video cluster --version {version}` first")
    return tables, *matching[0]


@video.command("export")
@click.option("--version", "version", type=click.IntRange(min=0), default=None, help=_VERSION_HELP)
@click.option("--job", default=None, help=_JOB_HELP)
@click.option("--video", "video_id", default=None, help="Video id (default: the video written last).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="MP4 file to write (default: <output dir>/<job>/<video>.mp4).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Frames per second (default: VideoConfig.fps).")
def export(version, job, video_id, output, fps) -> None:
    """Assemble a quantised video from its stored frames, in frame order (each frame once)."""
    from ssp.progress import summary
    from ssp.streaming.frame_stream import export_video, frame_settings, video_output_path

    config, database_url = VideoConfig(), InfraConfig().database_url
    version = config.version if version is None else version
    with reported(f"reading video_frames_{version}"):
        tables, job, video_id = _job_and_video(database_url, version, job, video_id)
        path = Path(output) if output else video_output_path(frame_settings(config, version=version, job=job),
                                                             video_id)
        frames = export_video(database_url, tables, job, video_id, path, fps or config.fps)
    summary(f"wrote {frames} quantised frames of video {video_id} (job {job}, {tables.frames}) to {path}")


@video.command("silhouette")
@click.option("--frame", "frame_index", type=click.IntRange(min=0), required=True, help="Frame index in its video.")
@click.option("--video", "video_id", default=None, help="Video id (default: the video written last).")
@click.option("--path", default=None,
              help="The video file the frames came from (not needed for the generated video, drawn again from "
                   "its id).")
@click.option("--version", "version", type=click.IntRange(min=0), default=None, help=_VERSION_HELP)
@click.option("--job", default=None, help=_JOB_HELP)
@click.option("--sample", type=click.IntRange(min=2), default=None,
              help="Pixels sampled for the Euclidean silhouette (default: VideoConfig.silhouette_sample).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="PNG to write (default: silhouette_<video>_<frame>.png in the current folder).")
def silhouette(frame_index, video_id, path, version, job, sample, output) -> None:
    """Draw the silhouette diagram of one quantised frame: the exact squared-Euclidean silhouette of every
    pixel (per-cluster knives, sorted, coloured by the cluster's RGB; the average as a dashed red line), with
    the Euclidean silhouette of a seeded sample and its error; the labels are the stream's (each pixel's
    nearest colour of the palette stored for that frame)."""
    from ssp.progress import summary
    from ssp.video.diagram import frame_silhouette

    config, database_url = VideoConfig(), InfraConfig().database_url
    version = config.version if version is None else version
    with reported(f"reading video_palettes_{version}"):
        tables, job, video_id = _job_and_video(database_url, version, job, video_id)
        output = Path(output) if output else Path(f"silhouette_{video_id}_{frame_index}.png")
        result = frame_silhouette(database_url, tables, job, video_id, frame_index, output, path=path,
                                  sample=sample or config.silhouette_sample, seed=config.seed)
    summary(result.line())
