"""``ssp users run``: every step in one process on one Spark session, tracked as one MLflow run."""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

from ssp.config import UsersConfig
from ssp.users import steps, tracking
from ssp.users.plots import visualise
from ssp.users.store import Workdir


@dataclass
class RunResult:
    workdir: str
    users: int
    k: int
    ari: float | None
    seconds: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    model_uri: str | None = None
    plots: tuple[str, ...] = ()
    k_line: str = ""

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def line(self) -> str:
        ari = f", ARI {self.ari:.3f} against the planted personas" if self.ari is not None else ""
        run = f"; MLflow run {self.run_id}" if self.run_id else ""
        return (f"clustered {self.users:,} users into k = {self.k} clusters in {self.total_seconds:.1f} s "
                f"({self.users / max(self.total_seconds, 1e-9):,.0f} users/s){ari}; outputs in {self.workdir}{run}")


@contextmanager
def _timed(seconds: dict, name: str):
    start = time.monotonic()
    yield
    seconds[name] = time.monotonic() - start


def run_pipeline(spark, work: Workdir, config: UsersConfig, source: str, truth: str | None = None,
                 bootstrap: str | None = None, database_url: str | None = None, track: bool = True,
                 plots: bool = True, progress=None, seconds: dict | None = None) -> RunResult:
    """ingest -> transform -> train -> analyse -> visualise on ``source`` (see :func:`ssp.users.steps.ingest`),
    logging each step to one new MLflow run when ``track``."""
    seconds = {} if seconds is None else seconds
    context = tracking.tracked(work, config, new=True) if track else nullcontext(None)
    with context as mlflow:
        with _timed(seconds, "ingest"):
            ingested = steps.ingest(spark, work, source, truth=truth, bootstrap=bootstrap, database_url=database_url)
        with _timed(seconds, "transform"):
            transformed = steps.transform(spark, work, config)
        with _timed(seconds, "train"):
            sweep, model, assigned = steps.train(spark, work, config, progress, reduced=transformed.frame,
                                                 preprocess=transformed.preprocess)
        with _timed(seconds, "analyse"):
            analysed = steps.analyse(spark, work, assigned)
        plotted = ()
        if plots:
            with _timed(seconds, "visualise"):
                plotted = visualise(work, config.plot_points, config.seed).paths
        assigned.unpersist()
        transformed.frame.unpersist()
        run_id = model_uri = None
        if mlflow is not None:
            with _timed(seconds, "track"):
                log_everything(mlflow, work, config, steps.manifest(work), ingested, transformed, sweep, analysed)
                model_uri = tracking.log_model(mlflow, model, work)
                run_id = tracking.run_id(work)
    return RunResult(work.url, transformed.users, sweep.choice.k, analysed.ari, seconds, run_id, model_uri, plotted,
                     sweep.choice.line())


def log_everything(mlflow, work: Workdir, config: UsersConfig, meta, ingested, transformed, sweep, analysed) -> None:
    """What every step logs, in one place (``run`` logs it all at the end, the single steps their own part)."""
    if ingested is not None:
        tracking.log_ingest(mlflow, meta, ingested.rows)
    if transformed is not None:
        tracking.log_transform(mlflow, transformed, config)
    if sweep is not None:
        tracking.log_sweep(mlflow, sweep, config)
        tracking.log_files(mlflow, work, "sweep.json", "transform.json")
    if analysed is not None:
        if analysed.ari is not None:
            mlflow.log_metric("ari", analysed.ari)
        mlflow.log_metric("clusters", len(analysed.profile.table))
        tracking.log_files(mlflow, work, "profile.csv", "profile.json")
    tracking.log_files(mlflow, work, *(f"plots/{name}" for name in _plot_names()), folder="plots")


def _plot_names() -> tuple[str, ...]:
    from ssp.users.plots import PLOTS

    return PLOTS
