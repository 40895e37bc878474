"""The Airflow DAG ``dags/user_activity_clustering.py``, in Airflow's own virtual environment (``.venv-airflow``,
made by ``make test``; ``$SSP_AIRFLOW_PYTHON`` points at another): it loads in a DagBag without import
errors, has one task per step wired in order, and one ``dag.test()`` run on 600 generated users succeeds,
its tasks calling this checkout's ``ssp users`` commands and passing the run folder between them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "tests" / "airflow_dag_check.py"
TASKS = ["analyse", "generate", "ingest", "prepare", "train", "transform", "visualise"]
EDGES = [["analyse", "visualise"], ["generate", "ingest"], ["ingest", "transform"], ["prepare", "generate"],
         ["prepare", "ingest"], ["train", "analyse"], ["transform", "train"]]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    """Airflow's interpreter and an environment with a fresh AIRFLOW_HOME (its SQLite database migrated)."""
    python = Path(os.environ.get("SSP_AIRFLOW_PYTHON") or REPO / ".venv-airflow" / "bin" / "python")
    if not python.exists():
        reason = f"Airflow's virtual environment is missing ({python}): `make airflow` creates it"
        if os.environ.get("SSP_REQUIRE_FIXTURES") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        # the tasks run this checkout's ssp, on its own small state folder
        "SSP_COMMAND": f"{sys.executable} -m ssp.cli",
        "SSP_STATE_DIR": str(home / "ssp-state"),
        "SSP_SPARK_MASTER": "local[2]",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    migrated = subprocess.run([str(python.parent / "airflow"), "db", "migrate"], env=env, capture_output=True,
                              text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return python, env, home


def _check(airflow, *args: str, timeout: float) -> list[dict]:
    python, env, _ = airflow
    done = subprocess.run([str(python), str(CHECK), str(REPO / "dags"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-5000:])
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_the_dag_loads_with_its_tasks_and_edges(airflow):
    (report,) = _check(airflow, timeout=180)
    assert report["errors"] == {}
    assert report["dags"] == ["user_activity_clustering"]
    assert report["tasks"] == TASKS
    assert report["edges"] == EDGES
    assert report["schedule"] == "@daily"


def test_one_dag_run_on_a_small_input_succeeds(airflow):
    _, _, home = airflow
    root = home / "runs"
    conf = {"users": 600, "k_min": 2, "k_max": 4, "restarts": 1, "seed": 3, "workdir_root": str(root)}
    report, run = _check(airflow, json.dumps(conf), timeout=900)
    assert report["errors"] == {}
    assert run["state"] == "success", run
    assert run["tasks"] == {task: "success" for task in TASKS}
    (workdir,) = list(root.iterdir())
    assert workdir.name == run["run_id"].replace(":", "_").replace("+", "_")
    for name in ("clusters.png", "elbow.png", "silhouette.png", "profiles.png"):
        assert (workdir / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    profile = json.loads((workdir / "profile.json").read_text())
    assert sum(c["users"] for c in profile["clusters"]) == 600
    assert 0 < profile["ari"] <= 1  # k up to 4 for 5 personas: a rough fit, but a fit
    # every task added to the one MLflow run the ingest task started
    import mlflow

    record = json.loads((workdir / "mlflow_run.json").read_text())
    client = mlflow.MlflowClient(record["tracking_uri"])
    tracked = client.get_run(record["run_id"])
    assert tracked.data.metrics["chosen_k"] == json.loads((workdir / "sweep.json").read_text())["k"]
    assert tracked.data.params["input_kind"] == "activity" and "pca_components" in tracked.data.params
    artifacts = {a.path for a in client.list_artifacts(record["run_id"])}
    assert {"profile.csv", "profile.json", "sweep.json", "plots"} <= artifacts
    assert record["model_uri"].startswith(("models:/", "runs:/"))  # MLflow names a logged model either way
