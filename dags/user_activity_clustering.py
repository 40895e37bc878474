"""User-activity clustering on a schedule (Airflow 3): one task per ``ssp users`` step.

    prepare -> generate -> ingest -> transform -> train -> analyse -> visualise

Tasks pass paths, never data: ``prepare`` names the run folder (``<workdir_root>/<run id>``), each bash task
runs one ``ssp users <step> --workdir <folder>`` and prints the folder as its last line, which Airflow hands
to the next task (XCom). Every step reads and writes only that folder, and they all add to one MLflow run.

Params (``airflow dags trigger -c '{...}'`` or ``dag.test(run_conf=...)``): ``users``, ``seed``, ``k_min``,
``k_max``, ``restarts``, ``source`` (a parquet folder or URL, ``kafka:<topic>`` or ``tweets:<version>``; empty: generate
``users`` users first) and ``workdir_root``.

ssp runs in its own environment: ``$SSP_COMMAND`` when set, else the repository's ``.venv/bin/ssp``, else
``ssp`` on the PATH. Airflow's own virtual environment (``.venv-airflow``, made by ``make test``) needs
nothing of ssp's.
"""

from __future__ import annotations

import os
import re
import shlex
from datetime import datetime
from pathlib import Path

from airflow.sdk import Param, dag, task

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = os.environ.get("SSP_USERS_WORKDIR_ROOT") or str(
    Path(os.environ.get("SSP_STATE_DIR") or Path.home() / ".local" / "state" / "ssp") / "users" / "airflow")


def ssp_command() -> str:
    """How the tasks call ssp."""
    if os.environ.get("SSP_COMMAND"):
        return os.environ["SSP_COMMAND"]
    local = REPO / ".venv" / "bin" / "ssp"
    return shlex.quote(str(local)) if local.exists() else "ssp"


def step(name: str, workdir: str, *args: str) -> str:
    """The bash command of one step: run it, then print the run folder for the next task."""
    quoted = " ".join(shlex.quote(a) for a in args)
    return f"{ssp_command()} users {name} --workdir {shlex.quote(workdir)} {quoted}".rstrip() + \
        f" && echo {shlex.quote(workdir)}"


@dag(
    dag_id="user_activity_clustering",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["ssp", "users", "clustering"],
    params={
        "users": Param(10_000, type="integer", minimum=10),
        "seed": Param(42, type="integer"),
        "k_min": Param(2, type="integer", minimum=2),
        "k_max": Param(10, type="integer", minimum=4),
        "restarts": Param(5, type="integer", minimum=1),
        "source": Param("", type="string"),
        "workdir_root": Param(DEFAULT_ROOT, type="string"),
    },
    doc_md=__doc__,
)
def user_activity_clustering():
    @task
    def prepare(params=None, run_id=None) -> str:
        """The run folder: one per DAG run."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
        return f"{params['workdir_root'].rstrip('/')}/{safe}"

    @task.bash
    def generate(workdir: str, params=None) -> str:
        if params["source"]:
            return f"echo {shlex.quote(params['source'])}"
        out = f"{workdir}/input"
        return (f"{ssp_command()} users generate --users {int(params['users'])} --seed {int(params['seed'])} "
                f"--out {shlex.quote(out)} && echo {shlex.quote(out)}")

    @task.bash
    def ingest(source: str, workdir: str) -> str:
        return step("ingest", workdir, "--source", source)

    @task.bash
    def transform(workdir: str, params=None) -> str:
        return step("transform", workdir, "--k-min", str(params["k_min"]), "--k-max", str(params["k_max"]))

    @task.bash
    def train(workdir: str, params=None) -> str:
        return step("train", workdir, "--k-min", str(params["k_min"]), "--k-max", str(params["k_max"]),
                    "--restarts", str(params["restarts"]), "--seed", str(params["seed"]))

    @task.bash
    def analyse(workdir: str) -> str:
        return step("analyse", workdir)

    @task.bash
    def visualise(workdir: str) -> str:
        return step("visualise", workdir)

    folder = prepare()
    source = generate(folder)
    visualise(analyse(train(transform(ingest(source, folder)))))


user_activity_clustering()
