"""MLflow tracking of the users job: one MLflow run per run folder, whichever steps run in whichever process.

The tracking store is ``$MLFLOW_TRACKING_URI`` when it is set; otherwise a SQLite database in the state
folder (``<state dir>/mlflow/mlflow.db``, artifacts beside it), because MLflow 3.13+ refuses its old file
store by default. The run's id is kept in the run folder (``mlflow_run.json``), so the Airflow tasks (one
process each) add to the same run as ``ssp users run`` does in one process.

What a run holds: the settings as params (k range, restarts, PCA target, features, input), the explained
variance, WCSS and silhouette per k as metrics with ``step=k``, the chosen k (metric ``chosen_k``, the rule
as the param ``k_rule``), the ARI when the input has planted personas, the fitted Spark pipeline as an MLflow
model (``model``), and the profile table and the PNGs as artifacts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ssp.config import UsersConfig
from ssp.users.store import Workdir, is_local, local_path

RUN_FILE = "mlflow_run.json"
MODEL_NAME = "model"


def tracking_uri(config: UsersConfig) -> str:
    """``$MLFLOW_TRACKING_URI``, else the SQLite store in ``config.mlflow_path``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{config.mlflow_path / 'mlflow.db'}"


def artifact_root(config: UsersConfig) -> str | None:
    """Where new experiments keep their artifacts: beside the SQLite store; the server's choice otherwise."""
    return None if os.environ.get("MLFLOW_TRACKING_URI") else (config.mlflow_path / "artifacts").as_uri()


def ui_command(config: UsersConfig) -> str:
    """The command that opens the MLflow UI on this store."""
    return f"mlflow ui --backend-store-uri {tracking_uri(config)}"


def _mlflow(config: UsersConfig):
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        config.mlflow_path.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri(config))
    return mlflow


def experiment_id(config: UsersConfig) -> str:
    mlflow = _mlflow(config)
    found = mlflow.get_experiment_by_name(config.experiment)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(config.experiment, artifact_location=artifact_root(config))


@contextmanager
def tracked(work: Workdir, config: UsersConfig, new: bool = False) -> Iterator[object]:
    """The run folder's MLflow run, active for the block: resumed from ``mlflow_run.json``, or started (and
    recorded there) when there is none or ``new``."""
    mlflow = _mlflow(config)
    known = None if new or not work.exists(RUN_FILE) else work.read_json(RUN_FILE, step="ingest")
    if known and known.get("tracking_uri") == tracking_uri(config):
        run = mlflow.start_run(run_id=known["run_id"])
    else:
        run = mlflow.start_run(experiment_id=experiment_id(config), run_name=os.path.basename(work.url))
        work.write_json(RUN_FILE, {"run_id": run.info.run_id, "tracking_uri": tracking_uri(config),
                                   "experiment": config.experiment})
    try:
        yield mlflow
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    else:
        mlflow.end_run()


def run_id(work: Workdir) -> str:
    return work.read_json(RUN_FILE, step="ingest")["run_id"]


def log_ingest(mlflow, meta: dict, rows: int) -> None:
    mlflow.log_params({"input_kind": meta["kind"], "input": meta["source"][:500], "with_ai": meta.get("with_ai", False)})
    mlflow.log_metric("input_rows", rows)


def log_transform(mlflow, result, config: UsersConfig) -> None:
    mlflow.log_params({"features": ",".join(result.features), "pca_variance_target": config.pca_variance,
                       "pca_components": len(result.explained_variance)})
    mlflow.log_metric("users", result.users)
    mlflow.log_metric("explained_variance", sum(result.explained_variance))
    for index, value in enumerate(result.explained_variance, start=1):
        mlflow.log_metric("explained_variance_pc", value, step=index)


def log_sweep(mlflow, sweep, config: UsersConfig) -> None:
    choice = sweep.choice
    mlflow.log_params({"k_min": config.k_min, "k_max": config.k_max, "kmeans_restarts": config.kmeans_restarts,
                       "kmeans_max_iter": config.kmeans_max_iter, "seed": config.seed,
                       "elbow_tolerance": choice.tolerance, "k_rule": choice.rule})
    for k, wcss, silhouette, distance in zip(choice.ks, choice.wcss, choice.silhouette, choice.distances, strict=True):
        mlflow.log_metric("wcss", wcss, step=k)
        mlflow.log_metric("silhouette", silhouette, step=k)
        mlflow.log_metric("elbow_distance", distance, step=k)
    mlflow.log_metric("chosen_k", choice.k)
    mlflow.set_tag("k_choice", choice.line())


def log_model(mlflow, model, work: Workdir) -> str:
    """The fitted Spark pipeline as the run's MLflow model; returns its URI (kept in ``mlflow_run.json``)."""
    import mlflow.spark
    import pyspark

    info = mlflow.spark.log_model(model, MODEL_NAME, pip_requirements=[f"pyspark=={pyspark.__version__}"])
    record = work.read_json(RUN_FILE, step="ingest")
    work.write_json(RUN_FILE, {**record, "model_uri": info.model_uri})
    return info.model_uri


def log_files(mlflow, work: Workdir, *names: str, folder: str | None = None) -> None:
    """Files of the run folder as artifacts (downloaded first when the folder is not local)."""
    for name in names:
        if not work.exists(name):
            continue
        if is_local(work.url):
            mlflow.log_artifact(local_path(work.path(name)), artifact_path=folder)
        else:
            with work.local_copy_source(name, step="analyse") as local:
                mlflow.log_artifact(local, artifact_path=folder)


@dataclass
class RunRow:
    run_id: str
    name: str
    status: str
    start: str
    kind: str
    users: float | None
    chosen_k: float | None
    ari: float | None

    def line(self) -> str:
        def figure(value, fmt):
            return "-" if value is None else format(value, fmt)

        return (f"{self.run_id[:12]}  {self.start:19s}  {self.status:9s}  {self.kind:8s}  "
                f"users {figure(self.users, ',.0f'):>9s}  k {figure(self.chosen_k, '.0f'):>2s}  "
                f"ARI {figure(self.ari, '.3f'):>5s}  {self.name}")


def past_runs(config: UsersConfig, limit: int = 20) -> list[RunRow]:
    """The experiment's latest runs, newest first."""
    import datetime

    mlflow = _mlflow(config)
    found = mlflow.get_experiment_by_name(config.experiment)
    if found is None:
        return []
    client = mlflow.MlflowClient()
    rows = []
    for run in client.search_runs([found.experiment_id], max_results=limit, order_by=["attributes.start_time DESC"]):
        metrics, params = run.data.metrics, run.data.params
        start = datetime.datetime.fromtimestamp(run.info.start_time / 1000, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(RunRow(run.info.run_id, run.info.run_name or "", run.info.status, start,
                           params.get("input_kind", "-"), metrics.get("users"), metrics.get("chosen_k"),
                           metrics.get("ari")))
    return rows
