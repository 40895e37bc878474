"""``ssp users``: user-activity clustering, a batch job on Spark ML tracked in MLflow.

``run`` does every step in one process; the single steps (``ingest``, ``transform``, ``train``,
``analyse``, ``visualise``) each read and write a run folder (``--workdir``), as the Airflow DAG
``dags/user_activity_clustering.py`` runs them.
"""

from __future__ import annotations

import time

import click

from ssp.config import InfraConfig, UsersConfig, default_state_dir, overridden
from ssp.errors import SspError, reported

_WORKDIR_HELP = "The run folder: a local path or an fsspec URL; every step reads and writes its files there."
_SOURCE_HELP = ("The input: a parquet folder or URL (what `ssp users generate --out` wrote, or its events/), "
                "kafka:<topic>, or tweets:<version> (raw_tweet_dataset_<v>, plus classified_tweets_<v> when present).")


@click.group("users")
def users() -> None:
    """User-activity clustering: per-user features with Spark, StandardScaler + PCA, k-means for a range of k, k
    chosen by the kneedle elbow (silhouette as tie-break), cluster profiles and plots, tracked in MLflow."""


def _config(**values) -> UsersConfig:
    config = overridden(UsersConfig(), **values)
    if config.k_min < 2 or config.k_max - config.k_min < 2:
        raise SspError(f"the k range needs k-min >= 2 and at least 3 values of k, got {config.k_min}..{config.k_max}")
    return config


def _spark(name: str):
    from ssp.infra.spark import spark_session

    return spark_session(f"ssp-users-{name}", InfraConfig())


def _workdir(path: str | None):
    from ssp.users.store import Workdir

    return Workdir(path or default_state_dir() / "users" / time.strftime("run-%Y%m%d-%H%M%S"))


def _source(source: str | None, from_tweets: bool, version: int | None) -> str | None:
    if from_tweets:
        if source:
            raise SspError("give --source or --from-tweets, not both")
        from ssp.config import DatasetConfig

        return f"tweets:{DatasetConfig().version if version is None else version}"
    if version is not None:
        raise SspError("--version goes with --from-tweets")
    return source


def _generate_options(f):
    for decorator in reversed((
        click.option("--users", "n_users", type=click.IntRange(min=1), default=None,
                     help="Users to generate (default: UsersConfig.users)."),
        click.option("--posts-per-user", "mean_events", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Mean events (posts, views, likes, comments, shares) per user before each persona's "
                          "activity factor (default: UsersConfig.mean_events)."),
        click.option("--personas", type=click.IntRange(min=2), default=None,
                     help="How many planted personas (default: UsersConfig.personas)."),
        click.option("--seed", type=int, default=None, help="Seed of the generator and of k-means."),
    )):
        f = decorator(f)
    return f


@users.command("generate")
@_generate_options
@click.option("--days", type=click.IntRange(min=1), default=None, help="Days of activity (default: UsersConfig.days).")
@click.option("--out", default=None, help="Write parquet here (events/ partitioned by day, truth/): a path or fsspec URL.")
@click.option("--to-kafka", is_flag=True, help="Send the events to Kafka as JSON instead (the truth still to --out).")
@click.option("--topic", default=None, help="--to-kafka: the topic (default: UsersConfig.topic).")
def generate(n_users, mean_events, personas, seed, days, out, to_kafka, topic) -> None:
    """Generate user activity from planted personas (lurkers, night posters, news sharers, power users,
    commenters, likers) with heavy-tailed counts; the same seed gives the same events."""
    from ssp.progress import progress_bar, summary
    from ssp.users import steps

    if not out and not to_kafka:
        raise SspError("give --out PATH or --to-kafka")
    config = _config(users=n_users, mean_events=mean_events, personas=personas, seed=seed, days=days)
    with reported("generating user activity", ValueError, OSError), \
            progress_bar("generating users", config.users) as advance:
        result = steps.generate(config, out, (topic or config.topic) if to_kafka else None,
                                InfraConfig().kafka_bootstrap, advance)
    summary(result.line())


@users.command("ingest")
@click.option("--workdir", required=True, help=_WORKDIR_HELP)
@click.option("--source", default=None, help=_SOURCE_HELP)
@click.option("--from-tweets", is_flag=True, help="Cluster the authors of the ingested tweets (raw_tweet_dataset_<v>).")
@click.option("--version", type=click.IntRange(min=0), default=None, help="--from-tweets: the dataset version.")
@click.option("--truth", default=None, help="Planted personas (user_id, persona) to score against (default: "
                                           "the source's truth/ when it has one).")
def ingest(workdir, source, from_tweets, version, truth) -> None:
    """Record the run's input (copying Kafka records and tweet rows into the run folder) and start its
    MLflow run."""
    from ssp.progress import summary
    from ssp.users import steps, tracking

    source = _source(source, from_tweets, version)
    if not source:
        raise SspError("give --source or --from-tweets")
    work, config, infra = _workdir(workdir), UsersConfig(), InfraConfig()
    with reported(f"ingesting {source}", ValueError, OSError):
        result = steps.ingest(_spark("ingest"), work, source, truth, infra.kafka_bootstrap, infra.database_url)
        with tracking.tracked(work, config, new=True) as mlflow:
            tracking.log_ingest(mlflow, steps.manifest(work), result.rows)
    summary(result.line())


def _k_options(f):
    f = click.option("--restarts", "kmeans_restarts", type=click.IntRange(min=1), default=None,
                     help="k-means fits per k, the lowest WCSS kept (default: UsersConfig.kmeans_restarts).")(f)
    f = click.option("--k-max", type=click.IntRange(min=2), default=None, help="Largest k (default: UsersConfig.k_max).")(f)
    return click.option("--k-min", type=click.IntRange(min=2), default=None,
                        help="Smallest k (default: UsersConfig.k_min).")(f)


@users.command("transform")
@click.option("--workdir", required=True, help=_WORKDIR_HELP)
@_k_options
def transform(workdir, k_min, k_max, kmeans_restarts) -> None:
    """Aggregate per user with Spark, then VectorAssembler -> StandardScaler(withMean) -> PCA; reports the
    explained variance."""
    from ssp.progress import summary
    from ssp.users import steps, tracking

    work, config = _workdir(workdir), _config(k_min=k_min, k_max=k_max)
    with reported("transforming user activity", ValueError, OSError):
        steps.manifest(work)  # before Spark starts: a missing ingest is a clear error at once
        result = steps.transform(_spark("transform"), work, config)
        with tracking.tracked(work, config) as mlflow:
            tracking.log_transform(mlflow, result, config)
    summary(result.line())


@users.command("train")
@click.option("--workdir", required=True, help=_WORKDIR_HELP)
@_k_options
@click.option("--seed", type=int, default=None, help="Seed of k-means (default: UsersConfig.seed).")
def train(workdir, k_min, k_max, kmeans_restarts, seed) -> None:
    """k-means for each k of the range, WCSS and silhouette per k, k by the kneedle elbow (silhouette as
    tie-break); logs the fitted pipeline to MLflow."""
    from ssp.progress import progress_bar, summary
    from ssp.users import steps, tracking
    from ssp.users.run import log_everything

    work, config = _workdir(workdir), _config(k_min=k_min, k_max=k_max, kmeans_restarts=kmeans_restarts, seed=seed)
    with reported("training k-means", ValueError, OSError), \
            progress_bar("k-means per k", config.k_max - config.k_min + 1) as advance:
        work.require("features", step="transform")
        sweep, model, _ = steps.train(_spark("train"), work, config, advance)
        with tracking.tracked(work, config) as mlflow:
            log_everything(mlflow, work, config, None, None, None, sweep, None)
            tracking.log_model(mlflow, model, work)
    summary(sweep.line())


@users.command("analyse")
@click.option("--workdir", required=True, help=_WORKDIR_HELP)
def analyse(workdir) -> None:
    """Cluster sizes, the mean of every raw feature per cluster and a short name per cluster (profile.csv)."""
    from ssp.progress import summary
    from ssp.users import steps, tracking
    from ssp.users.run import log_everything

    work, config = _workdir(workdir), UsersConfig()
    with reported("analysing clusters", ValueError, OSError):
        work.require("assignments", step="train")
        result = steps.analyse(_spark("analyse"), work)
        with tracking.tracked(work, config) as mlflow:
            log_everything(mlflow, work, config, None, None, None, None, result)
    summary(result.line())


@users.command("visualise")
@click.option("--workdir", required=True, help=_WORKDIR_HELP)
def visualise(workdir) -> None:
    """PNGs: users on the first two principal components by cluster, elbow curve, silhouette per k, profiles."""
    from ssp.progress import summary
    from ssp.users import plots, tracking

    work, config = _workdir(workdir), UsersConfig()
    with reported("drawing the plots", ValueError, OSError):
        result = plots.visualise(work, config.plot_points, config.seed)
        with tracking.tracked(work, config) as mlflow:
            tracking.log_files(mlflow, work, *(f"plots/{name}" for name in plots.PLOTS), folder="plots")
    click.echo(f"MLflow UI: {tracking.ui_command(config)}", err=True)
    summary(result.line())


@users.command("run")
@click.option("--workdir", default=None, help=_WORKDIR_HELP + " Default: <state dir>/users/run-<time>.")
@click.option("--source", default=None, help=_SOURCE_HELP + " Default: generate users into <workdir>/input.")
@click.option("--from-tweets", is_flag=True, help="Cluster the authors of the ingested tweets (raw_tweet_dataset_<v>).")
@click.option("--version", type=click.IntRange(min=0), default=None, help="--from-tweets: the dataset version.")
@_generate_options
@_k_options
@click.option("--no-mlflow", is_flag=True, help="Do not track the run in MLflow.")
def run(workdir, source, from_tweets, version, n_users, mean_events, personas, seed, k_min, k_max, kmeans_restarts,
        no_mlflow) -> None:
    """Every step in one process: (generate,) ingest, transform, train, analyse, visualise, tracked as one
    MLflow run; prints the PNG paths and the MLflow UI command."""
    from ssp.progress import progress_bar, summary
    from ssp.users import steps, tracking
    from ssp.users.run import run_pipeline

    source = _source(source, from_tweets, version)
    config = _config(users=n_users, mean_events=mean_events, personas=personas, seed=seed, k_min=k_min, k_max=k_max,
                     kmeans_restarts=kmeans_restarts)
    work, infra = _workdir(workdir), InfraConfig()
    echo = click.echo
    with reported("clustering users", ValueError, OSError):
        if not source:
            with progress_bar("generating users", config.users) as advance:
                generated = steps.generate(config, work.path("input"), progress=advance)
            echo(generated.line(), err=True)
            source = work.path("input")
        with progress_bar("k-means per k", config.k_max - config.k_min + 1) as advance:
            result = run_pipeline(_spark("run"), work, config, source, bootstrap=infra.kafka_bootstrap,
                                  database_url=infra.database_url, track=not no_mlflow, progress=advance)
    echo(result.k_line, err=True)
    for path in result.plots:
        echo(f"  plot: {path}", err=True)
    if not no_mlflow:
        echo(f"MLflow UI: {tracking.ui_command(config)}", err=True)
    summary(result.line())


@users.command("runs")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs, newest first.")
def runs(limit) -> None:
    """The past runs of the MLflow experiment: id, start, status, input, users, chosen k, ARI."""
    from ssp.progress import summary
    from ssp.users import tracking

    config = UsersConfig()
    with reported("listing MLflow runs", ValueError, OSError):
        rows = tracking.past_runs(config, limit)
    for row in rows:
        click.echo(row.line())
    click.echo(f"MLflow UI: {tracking.ui_command(config)}", err=True)
    summary(f"{len(rows)} runs in experiment {config.experiment} at {tracking.tracking_uri(config)}")
