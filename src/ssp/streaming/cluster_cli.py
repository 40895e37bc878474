"""``ssp cluster``: streaming clustering of the points stream (stream, show, view, plot)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ssp.config import CLUSTER_ALGORITHMS as ALGORITHMS
from ssp.config import ClusterConfig, InfraConfig
from ssp.errors import SspError, reported

_VERSION_HELP = "Table version: cluster_assignments_<v> and cluster_centres_<v> (default: ClusterConfig.version)."
_JOB_HELP = "Job name in cluster_models (default: ClusterConfig.job, else <algorithm>:<topic>; for show, view and " \
            "plot the version's job updated last)."


@click.group("cluster")
def cluster() -> None:
    """Streaming clustering of the points stream: Spark MLlib's streaming k-means on Structured Streaming,
    its model in PostgreSQL, a live Bokeh view and a PNG plot."""


@cluster.command("stream")
@click.option("--algorithm", type=click.Choice(ALGORITHMS), default=None,
              help="kmeans: Spark MLlib's streaming k-means (k clusters); dpmeans: online DP-means, the number "
                   "of clusters follows the data (default: ClusterConfig.algorithm, kmeans).")
@click.option("--topic", default=None, help="Kafka topic of points to read (default: TopicsConfig.points_topic).")
@click.option("--version", "version", type=click.IntRange(min=0), default=None, help=_VERSION_HELP)
@click.option("--job", default=None, help=_JOB_HELP)
@click.option("--k", "k", type=click.IntRange(min=1), default=None,
              help="Number of clusters; for dpmeans without --lambda, about how many (default: ClusterConfig.k).")
@click.option("--lambda", "lambda_", type=click.FloatRange(min=0, min_open=True), default=None,
              help="dpmeans: the squared distance beyond which a point opens a cluster (default: "
                   "ClusterConfig.dp_lambda, else derived from --k on the first micro-batch).")
@click.option("--dim", type=click.IntRange(min=1), default=None,
              help="Coordinates per point (default: ClusterConfig.dim, else the first valid point's).")
@click.option("--decay", "decay_factor", type=click.FloatRange(0.0, 1.0), default=None,
              help="Decay factor a in [0, 1]: weights are multiplied by a per time unit (1 forgets nothing).")
@click.option("--half-life", type=float, default=None,
              help="Half-life in time units: data that old weighs half (instead of --decay).")
@click.option("--time-unit", type=click.Choice(("batches", "points")), default=None,
              help="What the decay counts: micro-batches or points (default: ClusterConfig.time_unit).")
@click.option("--init", type=click.Choice(("kmeans++", "random")), default=None,
              help="Initial centres: k-means++ on the first micro-batch, or MLlib's random standard normal draws "
                   "(default: ClusterConfig.init).")
@click.option("--seed", type=int, default=None, help="Seed of the initial centres (default: ClusterConfig.seed).")
@click.option("--max-records", type=click.IntRange(min=1), default=None, help="Stop after reading this many records.")
@click.option("--until-idle", type=float, default=None, metavar="SECONDS",
              help="Stop when no record arrived for this many seconds.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="Spark checkpoint folder (default: under the state dir, per topic, version and job).")
def stream(algorithm, topic, version, job, k, lambda_, dim, decay_factor, half_life, time_unit, init, seed,
           max_records, until_idle, checkpoint_dir) -> None:
    """Cluster the points of a Kafka topic (streaming k-means or online DP-means), one model update per
    micro-batch.

    Executors assign points to the broadcast centres and add up per-cluster sums; the driver folds them into
    the model (MLlib's rule, with forgetting; for DP-means it also opens clusters for the points no centre
    took, and merges and retires clusters) and writes the assignments, the centres and the model state in one
    transaction per micro-batch. Bad points go to the dead-letter table with the reason. A restart resumes from
    the last committed model, so a killed job ends with the model an uninterrupted one has. Stops on Ctrl-C or
    SIGTERM, after --max-records, or after --until-idle.
    """
    from ssp.infra.spark import spark_session
    from ssp.progress import progress_bar, summary
    from ssp.streaming.cluster_stream import cluster_settings, run_cluster_stream

    if max_records is not None and until_idle is not None:
        raise SspError("give --max-records or --until-idle, not both")
    if until_idle is not None and not until_idle > 0:
        raise click.BadParameter(f"must be above 0 seconds, got {until_idle}", param_hint="--until-idle")
    infra, config = InfraConfig(), ClusterConfig()
    options = dict(algorithm=algorithm, topic=topic, version=version, job=job, k=k, dim=dim,
                   decay_factor=decay_factor, half_life=half_life, time_unit=time_unit, init=init, seed=seed,
                   lambda_=lambda_)
    settings = cluster_settings(config, **options)  # a ClusterStreamError is an SspError
    with reported(f"writing {settings.tables.assignments}", RuntimeError):  # a failed stream
        spark = spark_session(f"ssp-cluster-{settings.tables.assignments}", infra)
        with progress_bar(f"clustering {settings.topic} into {settings.tables.assignments}", max_records) as advance:
            result = run_cluster_stream(
                spark, infra=infra, config=config, **options, max_records=max_records, until_idle=until_idle,
                checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None, on_progress=advance)
    summary(result.line())


@cluster.command("show")
@click.option("--version", "version", type=click.IntRange(min=0), default=None, help=_VERSION_HELP)
@click.option("--job", default=None, help=_JOB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the stored model state as one JSON object instead.")
def show(version, job, as_json) -> None:
    """Print the current model of a clustering job: its centres, weights, forgetting and what it has learnt."""
    import json

    from ssp.progress import summary
    from ssp.streaming.cluster_stream import cluster_show

    version = ClusterConfig().version if version is None else version
    click.echo(f"reading the newest model of version {version} ...", err=True)
    with reported("reading cluster_models"):
        view = cluster_show(InfraConfig().database_url, version, job)
    if as_json:
        click.echo(json.dumps({"job": view.stored.job, "version": view.stored.version,
                               "batch_id": view.stored.batch_id, "state": view.stored.state}))
        return
    for line in view.lines():
        click.echo(line)
    summary(view.line())


@cluster.command("view")
@click.option("--version", "version", type=click.IntRange(min=0), default=None, help=_VERSION_HELP)
@click.option("--job", default=None, help=_JOB_HELP)
@click.option("--host", default=None, help="Address to listen on (default: ClusterConfig.view_host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(min=1, max=65535), default=None,
              help="Port to listen on (default: ClusterConfig.view_port, 5006).")
@click.option("--points", type=click.IntRange(min=1), default=None,
              help="Points kept on screen, the newest (default: ClusterConfig.view_points).")
def view(version, job, host, port, points) -> None:
    """Serve the live cluster view (Bokeh): points coloured by cluster as they arrive, the centres with their
    trails, each cluster's weight and the number of clusters over micro-batches. Read-only; stop with Ctrl-C."""
    import threading

    from ssp.progress import summary
    from ssp.signals import stop_on_sigterm
    from ssp.web.cluster_view import serve_view

    config = ClusterConfig()
    version = config.version if version is None else version
    start = time.monotonic()
    with reported("starting the cluster view"):
        server = serve_view(InfraConfig().database_url, version, port or config.view_port,
                            host=host or config.view_host, job=job, poll_ms=config.view_poll_ms,
                            points=points or config.view_points, trail=config.view_trail)
    click.echo(f"cluster view of version {version} on {server.url} (Ctrl-C stops it)", err=True)
    stopped = threading.Event()
    try:
        with stop_on_sigterm(lambda *_: stopped.set()):
            while not stopped.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    summary(f"served the cluster view of version {version} on {server.url} for {time.monotonic() - start:.0f} s "
            f"({server.sessions_opened} browser sessions)")


@cluster.command("plot")
@click.option("--version", "version", type=click.IntRange(min=0), default=None, help=_VERSION_HELP)
@click.option("--job", default=None, help=_JOB_HELP)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="PNG file to write (default: cluster_<version>.png in the current folder).")
@click.option("--points", type=click.IntRange(min=1), default=None,
              help="The newest points to draw (default: ClusterConfig.plot_points).")
@click.option("--trail", type=click.IntRange(min=1), default=None,
              help="Micro-batches of centre trail to draw (default: ClusterConfig.plot_trail).")
def plot(version, job, output, points, trail) -> None:
    """Draw the newest points coloured by cluster, the centres and their trails to a PNG, for reports."""
    from ssp.progress import summary
    from ssp.streaming.cluster_stream import cluster_plot

    config = ClusterConfig()
    version = config.version if version is None else version
    output = Path(output or f"cluster_{version}.png")
    click.echo(f"plotting version {version} to {output} ...", err=True)
    with reported(f"reading cluster_assignments_{version}"):
        result = cluster_plot(InfraConfig().database_url, version, output, job=job,
                              points=points or config.plot_points, trail=trail or config.plot_trail)
    summary(result.line())
