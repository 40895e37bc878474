"""Benchmark: the users job end to end at 100,000 and 1,000,000 generated users on ``local[2]``, and the same
transform and k-means step on pandas + scikit-learn at 100,000 (the reference project's approach).

Each size: ``generate`` writes the events as parquet (partitioned by day) into a temporary folder, then
:func:`ssp.users.run.run_pipeline` (what ``ssp users run`` does) reads them with Spark and runs ingest,
transform (aggregation per user, VectorAssembler -> StandardScaler(withMean) -> PCA), train (Spark ML KMeans
for k = ``--k-min``..``--k-max``, ``--restarts`` fits each, WCSS and silhouette per k, the k rule), analyse,
visualise and the MLflow tracking (a SQLite store in the temporary folder, the Spark model logged). Seconds
per step, in total and users/s are printed, with the chosen k and the ARI against the planted personas.

scikit-learn, at 100,000: the same events read with pandas, the same features by a pandas groupby,
StandardScaler + PCA (the same explained-variance target), then KMeans (``n_init=--restarts``) for the same
ks with ``silhouette_score`` on a seeded sample of 10,000 users (the exact silhouette is quadratic; Spark's
ClusteringEvaluator computes its own linear form on every user), single process. The ratio compares Spark's
transform + train with scikit-learn's transform + k-means on the same machine in the same run.

    .venv/bin/python bench/users.py                 # 100k and 1M
    .venv/bin/python bench/users.py --sizes 100000  # 100k only

The last line is one JSON object: ``seconds_1m``, ``seconds_100k``, ``sklearn_seconds_100k``, ``ari_planted``
and more.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def spark_run(spark, users: int, root: Path, args) -> dict:
    from ssp.config import UsersConfig
    from ssp.users import steps
    from ssp.users.run import run_pipeline
    from ssp.users.store import Workdir

    config = UsersConfig(users=users, k_min=args.k_min, k_max=args.k_max, kmeans_restarts=args.restarts,
                         mlflow_dir=str(root / "mlflow"), seed=args.seed)
    start = time.monotonic()
    generated = steps.generate(config, str(root / f"input-{users}"))
    seconds = {"generate": time.monotonic() - start}
    result = run_pipeline(spark, Workdir(root / f"work-{users}"), config, str(root / f"input-{users}"),
                          seconds=seconds)
    total = sum(seconds.values())
    return {"users": users, "events": generated.events, "seconds": seconds, "total": total,
            "users_per_s": users / total, "k": result.k, "ari": result.ari}


def sklearn_run(users: int, root: Path, args) -> dict:
    import numpy as np
    import pandas as pd
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score, silhouette_score
    from sklearn.preprocessing import StandardScaler

    from ssp.clustering.elbow import choose_k
    from ssp.users.generate import EVENTS
    from ssp.users.pipeline import ACTIVITY_FEATURES
    from ssp.users.store import read_parquet_frame

    start = time.monotonic()
    events = read_parquet_frame(str(root / f"input-{users}" / "events"))
    read = time.monotonic() - start
    start = time.monotonic()
    hour = events["event_time"].dt.hour
    frame = pd.DataFrame({"user_id": events["user_id"], "session_id": events["session_id"],
                          **{f"{e}_share": (events["event"] == e).astype(float) for e in EVENTS},
                          "night_share": (hour < 6).astype(float),
                          "morning_share": ((hour >= 6) & (hour < 12)).astype(float),
                          "evening_share": (hour >= 18).astype(float),
                          "news_share": (events["topic"] == "news").astype(float)})
    grouped = frame.groupby("user_id")
    features = grouped[[c for c in frame.columns if c.endswith("_share")]].mean()
    counts = grouped.size()
    sessions = grouped["session_id"].nunique()
    features["log_events"] = np.log1p(counts)
    features["log_events_per_session"] = np.log(counts / sessions.clip(lower=1))
    matrix = StandardScaler().fit_transform(features[list(ACTIVITY_FEATURES)].to_numpy())
    full = PCA().fit(matrix)
    n = int(np.searchsorted(np.cumsum(full.explained_variance_ratio_), 0.95 - 1e-12) + 1)
    reduced = PCA(n_components=max(n, 2)).fit_transform(matrix)
    transform = time.monotonic() - start
    start = time.monotonic()
    ks, wcss, silhouette, labels = [], [], [], {}
    rng = np.random.default_rng(args.seed)
    sample = rng.choice(len(reduced), size=min(10_000, len(reduced)), replace=False)
    for k in range(args.k_min, args.k_max + 1):
        model = KMeans(n_clusters=k, n_init=args.restarts, random_state=args.seed).fit(reduced)
        ks.append(k)
        wcss.append(float(model.inertia_))
        silhouette.append(float(silhouette_score(reduced[sample], model.labels_[sample])))
        labels[k] = model.labels_
    choice = choose_k(ks, wcss, silhouette, tolerance=0.1)
    kmeans = time.monotonic() - start
    truth = read_parquet_frame(str(root / f"input-{users}" / "truth")).set_index("user_id")["persona"]
    ari = adjusted_rand_score(truth.loc[features.index].to_numpy(), labels[choice.k])
    return {"users": users, "seconds": {"read": read, "transform": transform, "kmeans": kmeans},
            "total": read + transform + kmeans, "k": choice.k, "ari": float(ari)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="Comma-separated user counts.")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--k-min", type=int, default=2)
    parser.add_argument("--k-max", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    from ssp.config import InfraConfig
    from ssp.infra.spark import spark_session

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    figures: dict = {"master": args.master, "k_range": [args.k_min, args.k_max], "restarts": args.restarts}
    with tempfile.TemporaryDirectory(prefix="ssp-bench-users-") as tmp:
        root = Path(tmp)
        spark = spark_session("ssp-bench-users", InfraConfig(spark_master=args.master,
                                                             spark_driver_memory=args.driver_memory))
        runs = {}
        for users in sizes:
            run = spark_run(spark, users, root, args)
            runs[users] = run
            steps = ", ".join(f"{name} {value:.1f} s" for name, value in run["seconds"].items())
            print(f"spark {users:>9,} users ({run['events']:,} events): {run['total']:.1f} s, "
                  f"{run['users_per_s']:,.0f} users/s, k = {run['k']}, ARI {run['ari']:.3f}; {steps}", flush=True)
        spark.stop()
        if 100_000 in runs:
            sk = sklearn_run(100_000, root, args)
            steps = ", ".join(f"{name} {value:.1f} s" for name, value in sk["seconds"].items())
            print(f"sklearn   100,000 users: {sk['total']:.1f} s, k = {sk['k']}, ARI {sk['ari']:.3f}; {steps}")
            spark_part = runs[100_000]["seconds"]["transform"] + runs[100_000]["seconds"]["train"]
            sk_part = sk["seconds"]["transform"] + sk["seconds"]["kmeans"]
            print(f"transform + k-means at 100,000: Spark {spark_part:.1f} s, scikit-learn {sk_part:.1f} s "
                  f"(ratio {spark_part / sk_part:.2f})")
            figures.update(sklearn_seconds_100k=round(sk["total"], 2), sklearn_transform_kmeans_100k=round(sk_part, 2),
                           spark_transform_train_100k=round(spark_part, 2),
                           spark_over_sklearn_100k=round(spark_part / sk_part, 3), sklearn_k_100k=sk["k"],
                           sklearn_ari_100k=round(sk["ari"], 4))
    for users, run in runs.items():
        tag = {100_000: "100k", 1_000_000: "1m"}.get(users, str(users))
        figures[f"seconds_{tag}"] = round(run["total"], 2)
        figures[f"users_per_s_{tag}"] = round(run["users_per_s"], 1)
        figures[f"steps_{tag}"] = {name: round(value, 2) for name, value in run["seconds"].items()}
        figures[f"k_{tag}"] = run["k"]
        figures[f"ari_{tag}"] = round(run["ari"], 4)
    figures["ari_planted"] = round(min(run["ari"] for run in runs.values()), 4)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
