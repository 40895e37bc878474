"""Benchmark: ssp's streaming k-means against Spark MLlib's, on the same batches.

(a) the update alone: ``StreamingKMeans.learn_many`` against MLlib's ``StreamingKMeansModel.update``
on the same batches (k=10, d=10, batches of 10,000 points from the points source's ``drift``
scenario), from the same initial centres, in the same run. MLlib is timed two ways:

* ``mllib``: the batches already cached in the JVM as an ``RDD[Vector]`` and handed to MLlib's
  update (``PythonMLLibAPI.updateStreamingKMeansModel``, what ``StreamingKMeansModel.update`` calls),
  so the figure is MLlib's algorithm and Spark's job overhead, without Python conversion. This is the
  stronger competitor and the one the ratio uses;
* ``pyspark``: ``pyspark.mllib.clustering.StreamingKMeansModel.update`` on a cached Python RDD, what
  a Python user calls (each batch also goes through Python workers and pickling to the JVM).

Both MLlib runs and ssp's end with the same centres (printed as the largest difference).

(b) the stream job against MLlib's DStream pipeline comes with the stream job; until then its ratio
is null. The last line printed is one JSON object with the figures.

    .venv/bin/python bench/kmeans.py --batches 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from ssp.clustering import StreamingKMeans
from ssp.config import InfraConfig, load_config
from ssp.infra.spark import spark_session
from ssp.sources.points import PointsSource, scenario_preset


def make_batches(k: int, dim: int, size: int, count: int, seed: int) -> list[np.ndarray]:
    scenario = scenario_preset("drift", k=k, dim=dim, seed=seed)
    _, x, _ = PointsSource(scenario, seed=seed, rate=size).arrays(size * count)  # one batch a second
    return np.split(x, count)


def time_ssp(centres, weights, batches, decay, warmup):
    model = StreamingKMeans(centres=centres, weights=weights, decay_factor=decay)
    seconds = []
    for index, batch in enumerate(batches):
        start = time.perf_counter()
        model.learn_many(batch)
        if index >= warmup:
            seconds.append(time.perf_counter() - start)
    return model.centres, model.weights, seconds


def time_mllib_jvm(sc, centres, weights, batches, decay, warmup):
    """MLlib's update on batches cached in the JVM: no Python in the timed part but the call itself."""
    from pyspark.mllib.common import _to_java_object_rdd, callMLlibFunc
    from pyspark.mllib.linalg import _convert_to_vector

    cached = []
    for batch in batches:
        jrdd = _to_java_object_rdd(sc.parallelize(batch.tolist(), sc.defaultParallelism).map(_convert_to_vector))
        jrdd.cache()
        jrdd.count()
        cached.append(jrdd)
    current_centres = [_convert_to_vector(c) for c in centres]
    current_weights = [float(w) for w in weights]
    seconds = []
    for index, jrdd in enumerate(cached):
        start = time.perf_counter()
        updated = callMLlibFunc("updateStreamingKMeansModel", current_centres, current_weights, jrdd, decay,
                                "batches")
        if index >= warmup:
            seconds.append(time.perf_counter() - start)
        current_centres, current_weights = list(updated[0]), list(updated[1])
    for jrdd in cached:
        jrdd.unpersist()
    return np.array([c.toArray() for c in current_centres]), np.array(current_weights), seconds


def time_mllib_pyspark(sc, centres, weights, batches, decay, warmup):
    """``StreamingKMeansModel.update`` as a Python user calls it, on cached Python RDDs."""
    from pyspark.mllib.clustering import StreamingKMeansModel

    rdds = []
    for batch in batches:
        rdd = sc.parallelize(batch.tolist(), sc.defaultParallelism).cache()
        rdd.count()
        rdds.append(rdd)
    model = StreamingKMeansModel([c.tolist() for c in centres], [float(w) for w in weights])
    seconds = []
    for index, rdd in enumerate(rdds):
        start = time.perf_counter()
        model = model.update(rdd, decay, "batches")
        if index >= warmup:
            seconds.append(time.perf_counter() - start)
    for rdd in rdds:
        rdd.unpersist()
    return np.array(model.centers, dtype=float), np.array(model.clusterWeights, dtype=float), seconds


def describe(name: str, seconds: list[float], size: int) -> float:
    rate = size * len(seconds) / sum(seconds)
    print(f"{name:<8} {rate:>14,.0f} points/s   median batch {statistics.median(seconds) * 1000:9.2f} ms   "
          f"({len(seconds)} batches of {size:,})")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=10, help="clusters (default 10)")
    parser.add_argument("--dim", type=int, default=10, help="dimensions (default 10)")
    parser.add_argument("--batch", type=int, default=10_000, help="points per batch (default 10000)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="batches run first and not timed (default 3)")
    parser.add_argument("--decay", type=float, default=0.9, help="decay factor per batch (default 0.9)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    load_config()
    infra = InfraConfig()
    batches = make_batches(args.k, args.dim, args.batch, args.warmup + args.batches, args.seed)
    # the same start for all three: k points of the first batch, weight 1 each
    rng = np.random.default_rng(args.seed)
    centres = batches[0][rng.choice(args.batch, args.k, replace=False)]
    weights = np.ones(args.k)

    ssp_centres, ssp_weights, ssp_seconds = time_ssp(centres, weights, batches, args.decay, args.warmup)
    spark = spark_session("ssp-bench-kmeans", infra)
    sc = spark.sparkContext
    jvm_centres, jvm_weights, jvm_seconds = time_mllib_jvm(sc, centres, weights, batches, args.decay, args.warmup)
    py_centres, py_weights, py_seconds = time_mllib_pyspark(sc, centres, weights, batches, args.decay, args.warmup)
    parallelism = sc.defaultParallelism
    spark.stop()

    print(f"k={args.k} d={args.dim}, {args.warmup} warm-up + {args.batches} timed batches of {args.batch:,}, "
          f"decay {args.decay}, Spark master {infra.resolved_spark_master} ({parallelism} partitions)")
    ssp_rate = describe("ssp", ssp_seconds, args.batch)
    jvm_rate = describe("mllib", jvm_seconds, args.batch)
    py_rate = describe("pyspark", py_seconds, args.batch)
    difference = max(float(np.abs(ssp_centres - other).max()) for other in (jvm_centres, py_centres))
    weight_difference = max(float(np.abs(ssp_weights - other).max()) for other in (jvm_weights, py_weights))
    print(f"final models: largest difference {difference:.2e} in centres, {weight_difference:.2e} in weights")
    print(f"update: ssp / mllib {ssp_rate / jvm_rate:,.1f}x, ssp / pyspark {ssp_rate / py_rate:,.1f}x")
    print(json.dumps({
        "update_ssp_points_per_s": round(ssp_rate),
        "update_mllib_points_per_s": round(jvm_rate),
        "update_pyspark_points_per_s": round(py_rate),
        "update_ssp_over_pyspark": round(ssp_rate / py_rate, 2),
        "max_centre_difference": difference,
        "k": args.k, "dim": args.dim, "batch": args.batch, "batches": args.batches,
        "update_ssp_over_mllib": round(ssp_rate / jvm_rate, 2),
        "stream_ssp_over_dstream": None,
    }))


if __name__ == "__main__":
    main()
