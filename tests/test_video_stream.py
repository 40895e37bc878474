"""The video colour-clustering stream on real Kafka, Spark and PostgreSQL: a 60-frame generated video in,
60 quantised frames out, once each, after a SIGKILL and restart of the job; the killed job's palettes and
frames are the uninterrupted job's, bit for bit; bad records and a video sent again go to the dead letters;
the frames topic refuses a frame larger than its limit."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from ssp.config import VideoConfig
from ssp.kafka.producer import make_producer, produce
from ssp.sources.video import frame_records, generated_frames
from ssp.storage.video import VideoTables
from ssp.streaming.frame_stream import frame_settings, run_frame_stream
from ssp.video.output import decode_png
from ssp.video.produce import FrameTooLargeError, ensure_frames_topic, generated_video_id, topic_max_message_bytes
from ssp.video.record import frame_bytes
from test_dashboard import fresh_version

pytestmark = pytest.mark.integration

FRAMES, WIDTH, HEIGHT, SEED = 60, 64, 36, 3
PER_TRIGGER = 12
VIDEO = generated_video_id("palette", WIDTH, HEIGHT, SEED)


def send_video(topic: str) -> None:
    """The 60 frames, a record that is not a frame, and frame 5 again (the video sent again)."""
    bootstrap = os.environ["SSP_KAFKA_BOOTSTRAP"]
    ensure_frames_topic(bootstrap, topic, 2, 8 * 1024 * 1024, frame_bytes(WIDTH, HEIGHT))
    frames = list(generated_frames(FRAMES, scene="palette", width=WIDTH, height=HEIGHT, seed=SEED))
    records = list(frame_records(VIDEO, frames, fps=30))
    producer = make_producer(bootstrap)
    try:
        produce([*records, (VIDEO.encode(), b"JPEG not a frame"), records[5]], producer, topic, show_progress=False)
    finally:
        producer.close()


def command(topic: str, version: int, job: str, checkpoint, output_dir) -> list[str]:
    return [sys.executable, "-m", "ssp.cli",
            "--gin-param", f"VideoConfig.max_offsets_per_trigger = {PER_TRIGGER}",
            "--gin-param", "VideoConfig.trigger_seconds = 0.2",
            "--gin-param", f"VideoConfig.seed = {SEED}",
            "--gin-param", "InfraConfig.spark_master = 'local[2]'",
            "--gin-param", "InfraConfig.spark_driver_memory = '1g'",
            "--gin-param", "InfraConfig.spark_shuffle_partitions = 2",
            "video", "cluster", "--topic", topic, "--version", str(version), "--job", job, "--png",
            "--checkpoint-dir", str(checkpoint), "--output-dir", str(output_dir)]


def committed_batches(conn, job: str, version: int) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM video_batches WHERE job = %s AND version = %s", (job, version))
        return cur.fetchone()[0]


def kill_after_batches(proc: subprocess.Popen, database_url: str, job: str, version: int, batches: int) -> None:
    import psycopg2

    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        deadline = time.monotonic() + 150
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if committed_batches(conn, job, version) >= batches:
                    break
            except psycopg2.Error:  # the tables appear with the first run
                pass
            time.sleep(0.05)
    finally:
        conn.close()
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)


def stored(db, tables: VideoTables, job: str):
    with db.cursor() as cur:
        cur.execute(f"SELECT frame_index, colours, png FROM {tables.frames} WHERE job = %s AND video = %s "
                    "ORDER BY frame_index", (job, VIDEO))
        frames = [(i, c, bytes(p)) for i, c, p in cur.fetchall()]
        cur.execute(f"SELECT frame_index, colour, rgb, share FROM {tables.palettes} WHERE job = %s "
                    "ORDER BY frame_index, colour", (job,))
        palettes = cur.fetchall()
    return frames, palettes


def mp4_frames(path) -> list[np.ndarray]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return [np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3) for data in reader]


def test_sigkill_and_restart_writes_every_frame_once(spark, stack, db, unique_name, tmp_path):
    topic, version = unique_name("frames"), fresh_version()
    tables = VideoTables.for_version(version)
    send_video(topic)
    out = tmp_path / "out"

    log, printed = tmp_path / "killed.log", tmp_path / "killed.out"
    with log.open("wb") as stderr, printed.open("wb") as stdout:
        proc = subprocess.Popen(command(topic, version, "killed", tmp_path / "killed", out) + ["--until-idle", "30"],
                                stdout=stdout, stderr=stderr, start_new_session=True)
    killer = threading.Thread(target=kill_after_batches, args=(proc, stack.database_url, "killed", version, 2),
                              daemon=True)
    killer.start()
    try:
        settings = frame_settings(VideoConfig(seed=SEED, max_offsets_per_trigger=PER_TRIGGER, trigger_seconds=0.2),
                                  topic=topic, version=version, job="reference", output_dir=out)
        reference = run_frame_stream(spark, infra=stack, settings=settings, max_frames=FRAMES + 2,
                                     checkpoint_dir=tmp_path / "reference")
        killer.join(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text(errors="replace")[-2000:]
    assert (reference.frames, reference.dead) == (FRAMES, 2)
    at_kill = committed_batches(db, "killed", version)
    assert 2 <= at_kill < reference.committed, "the kill did not land mid-stream"
    # the killed job logged its frames as the original does, one line each
    lines = [line for line in printed.read_text().splitlines() if "Number of colors detected:" in line]
    assert len(lines) >= 2 * PER_TRIGGER and lines[0].startswith(f"video {VIDEO} frame 0: Number of colors "
                                                                    "detected: ")

    with db.cursor() as cur:
        cur.execute("SELECT sum(frames) FROM video_batches WHERE job = 'killed' AND version = %s", (version,))
        before = cur.fetchone()[0]

    # the restart (in this process: another one than the killed job's) resumes the killed job's checkpoint
    killed = dataclasses.replace(settings, job="killed", png=True)
    finish = run_frame_stream(spark, infra=stack, settings=killed, until_idle=3, checkpoint_dir=tmp_path / "killed")
    assert finish.resumed_from is not None and "resumed from batch" in finish.line()
    assert finish.frames == FRAMES - before and finish.dead == 2

    want_frames, want_palettes = stored(db, tables, "reference")
    got_frames, got_palettes = stored(db, tables, "killed")
    assert [f[0] for f in got_frames] == list(range(FRAMES))  # every frame, once
    assert got_frames == want_frames and got_palettes == want_palettes
    clean = dict(generated_frames(FRAMES, scene="palette", width=WIDTH, height=HEIGHT, seed=SEED, noise=0))
    for index, colours, _ in got_frames:  # each frame's known colours, but those on a handful of its 2,304 pixels
        _, counts = np.unique(clean[index].reshape(-1, 3), axis=0, return_counts=True)
        assert (counts >= 0.01 * WIDTH * HEIGHT).sum() <= colours <= len(counts), f"frame {index}"
    with db.cursor() as cur:
        cur.execute(f"SELECT reason, count(*) FROM {tables.dead} WHERE target_table = %s GROUP BY reason "
                    "ORDER BY reason", (tables.frames,))
        assert cur.fetchall() == [("not_a_frame", 1), ("replayed_frame", 1)]  # once per record, whichever job
        cur.execute("SELECT job, sum(frames) FROM video_batches WHERE version = %s GROUP BY job ORDER BY job",
                    (version,))
        assert cur.fetchall() == [("killed", FRAMES), ("reference", FRAMES)]

    # the output: a PNG per frame and the video, each frame once and in order
    pngs = sorted((out / "killed" / VIDEO).glob("frame_*.png"))
    assert [p.name for p in pngs] == [f"frame_{i:06d}.png" for i in range(FRAMES)]
    assert all(p.read_bytes() == png for p, (_, _, png) in zip(pngs, got_frames, strict=True))
    video = out / "killed" / f"{VIDEO}.mp4"
    assert finish.outputs == {VIDEO: video} and str(video) in finish.line()
    decoded = mp4_frames(video)
    assert len(decoded) == FRAMES
    # H.264 (4:2:0 chroma on a 64x36 frame) is lossy: each decoded frame is near its own stored frame, and far
    # from the one 20 frames away (the scene pans)
    for index in (0, 30, 59):
        own, other = (np.abs(decoded[index].astype(int) - decode_png(got_frames[i][2]).astype(int)).mean()
                      for i in (index, (index + 20) % FRAMES))
        assert own < 15 and own < other / 4, f"frame {index} differs from its PNG by {own:.1f} on average"

    # ssp video silhouette labels a frame as the stream did: its pixels drawn again, each the nearest stored colour
    from click.testing import CliRunner

    from ssp.cli import main
    from ssp.clustering.palette import nearest_colours
    from ssp.storage.postgres import make_engine
    from ssp.storage.video import stored_palette
    from ssp.video.diagram import source_frame

    engine = make_engine(stack.database_url)
    try:
        colours, shares = stored_palette(engine, tables, "killed", VIDEO, 10)
    finally:
        engine.dispose()
    palette = np.asarray(colours)
    labels = nearest_colours(source_frame(VIDEO, 10, None).reshape(-1, 3), palette)
    repainted = np.clip(np.rint(palette), 0, 255).astype(np.uint8)[labels].reshape(HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(repainted, decode_png(got_frames[10][2]))
    assert sum(shares) == pytest.approx(1.0)
    diagram = tmp_path / "silhouette.png"
    runner = CliRunner()
    shown = runner.invoke(main, ["video", "silhouette", "--frame", "10", "--version", str(version), "--job",
                                 "killed", "--sample", "200", "-o", str(diagram)])
    assert shown.exit_code == 0, shown.output
    assert f"frame 10 of video {VIDEO}" in shown.output and "squared-Euclidean silhouette" in shown.output
    assert diagram.read_bytes()[:4] == b"\x89PNG"
    exported = runner.invoke(main, ["video", "export", "--version", str(version), "--job", "killed", "-o",
                                    str(tmp_path / "again.mp4")])
    assert exported.exit_code == 0 and f"wrote {FRAMES} quantised frames of video {VIDEO}" in exported.output
    assert len(mp4_frames(tmp_path / "again.mp4")) == FRAMES


def test_a_frame_larger_than_the_topic_takes_is_refused(stack, unique_name):
    from ssp.kafka.admin import ensure_topic

    bootstrap, topic = os.environ["SSP_KAFKA_BOOTSTRAP"], unique_name("small_frames")
    assert ensure_topic(bootstrap, topic, 1, config={"max.message.bytes": "100000"})
    assert topic_max_message_bytes(bootstrap, topic) == 100000
    with pytest.raises(FrameTooLargeError, match=f"288,852 bytes, more than topic {topic}'s max.message.bytes"):
        ensure_frames_topic(bootstrap, topic, 1, 8 * 1024 * 1024, frame_bytes(426, 226))
    created = unique_name("big_frames")
    assert ensure_frames_topic(bootstrap, created, 1, 4 * 1024 * 1024, frame_bytes(426, 226)) == 4 * 1024 * 1024
    with pytest.raises(FrameTooLargeError, match="more than VideoConfig.max_frame_bytes"):
        ensure_frames_topic(bootstrap, created, 1, 1024 * 1024, frame_bytes(1920, 1080))
