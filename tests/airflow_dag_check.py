"""Run by tests/test_users_dag.py with Airflow's own interpreter (``.venv-airflow``): load the dags folder in a
DagBag and print one JSON line (import errors, tasks, edges, schedule); with a run conf as the second
argument, also run the DAG once with ``dag.test()`` and print the run's state and each task's.

    .venv-airflow/bin/python tests/airflow_dag_check.py dags '{"users": 600}'
"""

from __future__ import annotations

import json
import sys

DAG_ID = "user_activity_clustering"


def main(folder: str, conf: str | None) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow before 3.1
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    dag = bag.dags.get(DAG_ID)
    report = {
        "errors": {path: str(error) for path, error in bag.import_errors.items()},
        "dags": sorted(bag.dag_ids),
        "tasks": sorted(dag.task_ids) if dag else [],
        "edges": sorted([up, down] for up in dag.task_ids for down in dag.get_task(up).downstream_task_ids)
        if dag else [],
        "schedule": str(getattr(dag, "schedule", "")) if dag else "",
    }
    print(json.dumps(report), flush=True)
    if conf is not None and dag is not None:
        run = dag.test(run_conf=json.loads(conf))
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        print(json.dumps({"state": str(run.state), "tasks": states, "run_id": run.run_id}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
