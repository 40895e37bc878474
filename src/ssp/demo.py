"""``ssp demo``: the whole cycle on the embedded default, from an empty machine to a live dashboard.

``ssp demo --use-case kmeans`` is the clustering use case's: the local stack, then a points stream
from a drifting Gaussian mixture (a jump, a birth and a death), the streaming k-means job and the
live Bokeh view, as child processes, with the view's URL.

The tweets use case:

Batch steps run in this process, one after the other, each with its own progress: the local
stack, a burst of synthetic tweets into Kafka, the ingest stream until it is idle, dataset
preparation, weak labelling and a first model. Then the long-running parts start as child
processes, each logging to its own file: the model server, the live classification stream, a
slow synthetic stream for it to classify, the dashboard and the tagger. The command prints their
URLs and waits; Ctrl-C (or SIGTERM, or ``--duration``) stops the children in reverse order, each
with SIGTERM first and SIGKILL only if it does not stop in time. The local stack stays up for the
next run (``ssp infra down`` stops it).
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from ssp.config import default_state_dir
from ssp.errors import SspError
from ssp.signals import stop_on_sigterm

STOP_TIMEOUT_SECONDS = 45.0  # a Spark job finishes its micro-batch (up to 20 s) and shuts its JVM down


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its whole life
        self.process = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env}, start_new_session=True,  # Ctrl-C reaches us, we stop them in order
        )
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def ssp_argv(*args: str, gin_files: tuple[str, ...] = (), gin_params: tuple[str, ...] = ()) -> list[str]:
    """This interpreter running ``ssp`` with the same gin configuration as the demo itself."""
    argv = [sys.executable, "-m", "ssp.cli"]
    for path in gin_files:
        argv += ["--gin-file", path]
    for binding in gin_params:
        argv += ["--gin-param", binding]
    return [*argv, *args]


def wait_for_http(url: str, child: Child, timeout: float) -> None:
    """Until ``url`` answers (any HTTP status), or fail naming the child and its last log lines."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise SspError(f"{child.name} stopped while starting; the end of {child.log_path}:\n"
                                       f"{child.tail()}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise SspError(f"{child.name} did not answer at {url} within {timeout:.0f} s; see {child.log_path}")


def run_services(children: list[Child], urls: dict[str, str], duration: float | None, echo) -> None:
    """Wait until Ctrl-C, SIGTERM, ``duration`` or a child dying; then stop them all, last started first."""
    stop = threading.Event()
    try:
        with stop_on_sigterm(lambda *_: stop.set()):
            for name, url in urls.items():
                echo(f"  {name:<22s} {url}")
            echo("running; Ctrl-C stops everything" + (f" (or after {duration:.0f} s)" if duration else ""))
            deadline = None if duration is None else time.monotonic() + duration
            while not stop.is_set():
                dead = [c for c in children if not c.alive()]
                if dead:
                    echo(f"{dead[0].name} stopped (exit code {dead[0].process.returncode}); the end of "
                         f"{dead[0].log_path}:\n{dead[0].tail()}")
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                stop.wait(0.5)
    except KeyboardInterrupt:
        echo("Ctrl-C: stopping")
    finally:
        for child in reversed(children):
            code = child.stop()
            echo(f"  stopped {child.name} (exit code {code})")


def new_token() -> str:
    return secrets.token_urlsafe(16)


def demo_log_dir() -> Path:
    return default_state_dir() / "logs" / "demo"


def start_children(plan: list[tuple[Child, str | None, str]], echo,
                   pause_after: dict[int, float] | None = None) -> list[Child]:
    """Start each child of ``plan`` (child, URL to wait for or None, step text) in order, waiting
    ``pause_after[i]`` seconds after the i-th; if one fails to start or to answer, stop those already
    started and raise."""
    started: list[Child] = []
    try:
        for index, (child, url, text) in enumerate(plan):
            if text:
                echo(text)
            child.start()
            started.append(child)
            if url:
                wait_for_http(url, child, 120)
            time.sleep((pause_after or {}).get(index, 0.0))
    except BaseException:
        for child in reversed(started):
            child.stop()
        raise
    return started


# ---------------------------------------------------------------- the command
USE_CASES = ("tweets", "kmeans", "dp", "video", "users")
# the clustering use cases: the algorithm and the points scenario each one shows
CLUSTER_DEMOS = {"kmeans": ("kmeans", "events"), "dp": ("dpmeans", "merge")}


@click.command("demo")
@click.option("--use-case", type=click.Choice(USE_CASES), default="tweets", show_default=True,
              help="tweets: the AI-tweet pipeline (dashboard, tagger). kmeans: streaming k-means on a drifting "
                   "points stream with its live view. dp: online DP-means on points whose clusters appear and "
                   "merge. video: colour clustering of a generated video's frames, the quantised video out. "
                   "users: user-activity clustering (Spark ML, MLflow) on generated users, with its PNGs.")
@click.option("--tweets", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="Tweets: synthetic tweets for the first dataset.")
@click.option("--version", "version", type=click.IntRange(min=0), default=0, show_default=True,
              help="Dataset (or clustering tables) version for every table of the run.")
@click.option("--rate", type=click.FloatRange(min=0.1), default=None,
              help="Records per second of the live stream: tweets the classifier sees (default 20) or points "
                   "(default 200).")
@click.option("--half-life", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="kmeans, dp: the model's half-life in micro-batches, so it follows the moving centres.")
@click.option("--duration", type=click.FloatRange(min=1), default=None,
              help="Stop after this many seconds of running services (default: until Ctrl-C).")
@click.option("--source", type=click.Choice(("synthetic", "bluesky")), default="synthetic", show_default=True,
              help="Tweets: the live stream the classifier sees: synthetic (offline) or bluesky (public Bluesky "
                   "posts from Jetstream, needs the internet; the first dataset stays synthetic).")
@click.pass_context
def demo(ctx: click.Context, use_case: str, tweets: int, version: int, rate: float | None, half_life: float,
         duration: float | None, source: str) -> None:
    """The whole cycle on the embedded default: local stack, synthetic stream, ingest, dataset, Snorkel labels,
    a first model; then the model server, live classification, the dashboard and the tagger, with their URLs.
    With --use-case kmeans (or dp): the stack, a points stream, streaming k-means (or DP-means) and its live
    view.
    Ctrl-C stops everything."""
    if source != "synthetic" and use_case != "tweets":
        raise SspError(f"--source picks the live stream of the tweets use case; leave it out for --use-case {use_case}")
    if use_case == "users":  # a batch job: generate, cluster, track; no services stay up
        from ssp.users.cli import run as users_run

        ctx.invoke(users_run, workdir=None, source=None, from_tweets=False, version=None, n_users=None,
                   mean_events=None, personas=None, seed=None, k_min=None, k_max=None, kmeans_restarts=None,
                   no_mlflow=False)
    elif use_case == "video":  # --rate: the video's frames per second
        from ssp.video.demo import video_demo

        video_demo(ctx, version, rate, duration)
    elif use_case in CLUSTER_DEMOS:
        _cluster_demo(ctx, *CLUSTER_DEMOS[use_case], version, 200.0 if rate is None else rate, half_life, duration)
    else:
        _tweets_demo(ctx, tweets, version, 20.0 if rate is None else rate, duration, source)


def _gin(ctx: click.Context) -> dict[str, tuple[str, ...]]:
    """The demo's own gin options, for its children."""
    root = ctx.find_root().params
    return {"gin_files": tuple(root.get("gin_files") or ()), "gin_params": tuple(root.get("gin_params") or ())}


def _cluster_demo(ctx: click.Context, algorithm: str, scenario: str, version: int, rate: float, half_life: float,
                  duration: float | None) -> None:
    from ssp.config import ClusterConfig, InfraConfig, ProducerConfig, TopicsConfig
    from ssp.infra.cli import infra_up

    start = time.monotonic()
    echo = functools.partial(click.echo, err=True)
    echo("[1/4] starting the local stack (Kafka, PostgreSQL)")
    ctx.invoke(infra_up)
    gin, logs, cluster, points = _gin(ctx), demo_log_dir(), ClusterConfig(), ProducerConfig()
    view_url = f"http://{cluster.view_host}:{cluster.view_port}/"
    # k-means keeps k clusters; DP-means derives lambda from about how many there are: the merge scenario
    # peaks at one more than it starts with
    k = cluster.k if algorithm == "kmeans" else points.points_k + 1
    # each run streams into a topic of its own, so its model learns this run's scenario from its start
    stamp = int(time.time())
    topic = f"{TopicsConfig().points_topic}_{stamp}"
    children = [
        (Child("points stream", ssp_argv("produce", "--source", "points", "--topic", topic, "--rate", str(rate),
                                         "--max-records", str(10**12), "--seed", str(stamp), "--scenario", scenario,
                                         **gin), logs / "points.log"),
         None, f"[2/4] streaming points into {topic} at {rate:g}/s: {points.points_k} centres, scenario "
               f"{scenario!r} (logs in {logs})"),
        (Child(f"{algorithm} stream", ssp_argv("cluster", "stream", "--algorithm", algorithm, "--topic", topic,
                                               "--version", str(version), "--half-life", str(half_life),
                                               "--k", str(k), **gin), logs / f"{algorithm}.log"),
         None, f"[3/4] starting {algorithm} (k={k}, half-life {half_life:g} micro-batches) on Spark "
               f"{InfraConfig().resolved_spark_master}"),
        (Child("cluster view", ssp_argv("cluster", "view", "--version", str(version), **gin), logs / "view.log"),
         view_url, "[4/4] starting the live view"),
    ]
    # the stream job starts once the topic holds a few seconds of points, so its first micro-batch is not a
    # handful of points (DP-means derives lambda from it)
    started = start_children(children, echo, pause_after={0: 5.0})
    click.echo(f"demo ready in {time.monotonic() - start:.0f} s: open {view_url}")
    run_services(started, {"cluster view": view_url}, duration, echo)
    click.echo(f"demo stopped after {time.monotonic() - start:.0f} s; the stack is still up (`ssp infra down` stops it)")


def _tweets_demo(ctx: click.Context, tweets: int, version: int, rate: float, duration: float | None,
                 source: str = "synthetic") -> None:
    from ssp.config import ServeConfig, WebConfig
    from ssp.dataset.cli import prepare
    from ssp.infra.cli import infra_up
    from ssp.kafka.cli import produce
    from ssp.labeling.cli import label
    from ssp.model.cli import train
    from ssp.streaming.cli import ingest

    start = time.monotonic()
    steps = 9

    def step(n: int, text: str) -> None:
        click.echo(f"[{n}/{steps}] {text}", err=True)

    step(1, "starting the local stack (Kafka, PostgreSQL)")
    ctx.invoke(infra_up)
    step(2, f"producing {tweets:,} synthetic tweets into Kafka")
    ctx.invoke(produce, source="synthetic", topic=None, ai_topic=True, rate=0.0, max_records=tweets, seed=None,
               path=None, loop=False)
    step(3, "ingesting them into PostgreSQL with Spark Structured Streaming")
    ctx.invoke(ingest, topic=None, table_prefix=None, version=version, max_records=None, until_idle=10.0,
               checkpoint_dir=None)
    step(4, "deduplicating and splitting the dataset")
    ctx.invoke(prepare, version=version, overwrite=False)
    step(5, "weak labels with Snorkel")
    ctx.invoke(label, version=version, engine=None)
    step(6, "training the classifier and exporting a model version")
    ctx.invoke(train, version=version, architecture=None, epochs=None, model_dir=None)

    gin = _gin(ctx)
    serve_config, web = ServeConfig(), WebConfig()
    logs = demo_log_dir()
    token = os.environ.get("SSP_TAGGER_TOKEN") or new_token()
    model_url = serve_config.url
    urls = {
        "model server": f"{model_url}/v1/models/{serve_config.model_name}",
        "dashboard": f"http://{web.host}:{web.dashboard_port}/",
        "live view": f"http://{web.host}:{web.dashboard_port}/live",
        "tagger": f"http://{web.host}:{web.tagger_port}/",
    }
    serve = Child("model server", ssp_argv("serve", **gin), logs / "serve.log")
    plan = [
        (serve, urls["model server"], f"[7/{steps}] starting the model server (log: {serve.log_path})"),
        (Child("classify stream", ssp_argv("classify", "--version", str(version), **gin), logs / "classify.log"),
         None, f"[8/{steps}] starting live classification and "
               + (f"a live synthetic stream at {rate:g} tweets/s" if source == "synthetic" else
                  "the live Bluesky stream (Jetstream)") + f" (logs in {logs})"),
        (Child("live synthetic tweets", ssp_argv("produce", "--rate", str(rate), "--max-records", str(10**9),
                                                 "--seed", str(int(time.time())), **gin), logs / "produce.log")
         if source == "synthetic" else  # the live Bluesky firehose at its own pace: --rate does not apply
         Child("live Bluesky posts", ssp_argv("produce", "--source", "bluesky", **gin), logs / "produce.log"),
         None, ""),
        (Child("dashboard", ssp_argv("dashboard", "--version", str(version), **gin), logs / "dashboard.log",
               env={"SSP_TAGGER_TOKEN": token}),  # the same sign-in reviews reposts on its Reposts page
         urls["dashboard"], f"[9/{steps}] starting the dashboard and the tagger"),
        (Child("tagger", ssp_argv("tagger", "--model-url", model_url, **gin), logs / "tagger.log",
               env={"SSP_TAGGER_TOKEN": token}), urls["tagger"], ""),
    ]
    echo = functools.partial(click.echo, err=True)
    started = start_children(plan, echo)
    click.echo(f"demo ready in {time.monotonic() - start:.0f} s; sign in to the tagger with any name and the token "
               f"{token}" + ("" if os.environ.get("SSP_TAGGER_TOKEN") else " (set SSP_TAGGER_TOKEN to choose it)"))
    run_services(started, urls, duration, echo)
    click.echo(f"demo stopped after {time.monotonic() - start:.0f} s; the stack is still up (`ssp infra down` stops it)")
