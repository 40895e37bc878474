"""``ssp demo --use-case video``: the generated test video in, the colour-quantised video out.

The local stack, then two child processes: ``ssp produce --source video`` streaming the generated video
(``VideoConfig``'s scene, size and length) into a topic of the run's own at its frame rate, and ``ssp
video cluster`` on it, whose lines (``Number of colors detected: N`` and the seconds, per frame) are
relayed here as they come. The job stops once no frame has come for a while (or on Ctrl-C, SIGTERM or
``--duration``), assembles the quantised video from the stored frames and the demo prints its path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import click

from ssp.config import TopicsConfig, VideoConfig, default_state_dir
from ssp.errors import SspError
from ssp.signals import stop_on_sigterm

__all__ = ["video_demo"]

IDLE_SECONDS = 15.0  # the job stops when no frame came for this long (the video has ended)


def _argv(ctx: click.Context, *args: str) -> list[str]:
    root = ctx.find_root().params
    gin = [item for path in root.get("gin_files") or () for item in ("--gin-file", path)]
    gin += [item for binding in root.get("gin_params") or () for item in ("--gin-param", binding)]
    return [sys.executable, "-m", "ssp.cli", *gin, *args]


def _stop(process: subprocess.Popen, timeout: float = 60.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def video_demo(ctx: click.Context, version: int, fps: float | None, duration: float | None) -> None:
    from ssp.infra.cli import infra_up

    start = time.monotonic()
    echo = lambda text: click.echo(text, err=True)  # noqa: E731 - the steps go to stderr, the frames to stdout
    echo("[1/3] starting the local stack (Kafka, PostgreSQL)")
    ctx.invoke(infra_up)
    config, logs = VideoConfig(), default_state_dir() / "logs" / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    fps = config.fps if fps is None else fps
    topic = f"{TopicsConfig().frames_topic}_{int(time.time())}"  # each run a topic of its own
    echo(f"[2/3] streaming the generated video ({config.frames} frames of {config.width}x{config.height}, scene "
         f"{config.scene!r}) into {topic} at {fps:g} frames/s (log in {logs / 'video_produce.log'})")
    with (logs / "video_produce.log").open("ab") as log:
        producer = subprocess.Popen(_argv(ctx, "produce", "--source", "video", "--topic", topic, "--fps", str(fps)),
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
    time.sleep(3.0)  # the producer creates the topic (with its record limit) before the job subscribes
    echo(f"[3/3] clustering each frame's colours (ssp video cluster, version {version}; stops {IDLE_SECONDS:.0f} s "
         "after the last frame)")
    with (logs / "video_cluster.log").open("ab") as log:
        job = subprocess.Popen(_argv(ctx, "video", "cluster", "--topic", topic, "--version", str(version),
                                     "--until-idle", str(IDLE_SECONDS)),
                               stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    click.echo(f"demo ready in {time.monotonic() - start:.0f} s: frames go through Kafka and Spark; Ctrl-C stops")
    lines: list[str] = []
    stop = threading.Event()
    timer = threading.Timer(duration, stop.set) if duration else None

    def relay() -> None:
        for line in job.stdout:
            lines.append(line.rstrip("\n"))
            click.echo(lines[-1])

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    try:
        with stop_on_sigterm(lambda *_: stop.set()):
            if timer is not None:
                timer.start()
            while job.poll() is None and not stop.is_set():
                stop.wait(0.5)
    except KeyboardInterrupt:
        echo("Ctrl-C: stopping")
    finally:
        if timer is not None:
            timer.cancel()
        code = _stop(job)  # SIGTERM: the job finishes its micro-batch and writes the video
        _stop(producer, 10.0)
        reader.join(10)
    summary = next((line for line in reversed(lines) if line.startswith("quantised ")), None)
    if code != 0 or summary is None:
        raise SspError(f"ssp video cluster ended with exit code {code}; see {logs / 'video_cluster.log'}")
    output = summary.rsplit(" -> ", 1)[-1] if " -> " in summary else "no video (no frame arrived)"
    click.echo(f"demo stopped after {time.monotonic() - start:.0f} s; the quantised video: {output} "
               "(the stack is still up: `ssp infra down` stops it)")
