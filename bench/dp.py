"""Benchmark: online Dirichlet-process clustering (ssp's DPGMM and DP-means) against River and batch BGMM.

Two seeded streams from the points source (``ssp.sources.points``), each with clusters appearing late:

* 2-D: ``--n2d`` points (10,000) from 5 Gaussians of std 1, three of them only 4-5 std apart (they
  overlap, so no method reaches ARI 1), the fifth appearing at a third of the stream;
* 10-D: ``--n10d`` points (100,000) from the ``static`` preset's 8 Gaussians, two appearing late.

Each stream goes in batches of ``--batch`` (1,000) through:

* ``dpgmm``: :class:`ssp.clustering.dpgmm.DPGMM` (defaults, diagonal covariances), ``learn_predict_many``
  per batch; timed over the whole stream;
* ``dpmeans``: :class:`ssp.clustering.dpmeans.DPMeans` (``k`` = the true count, from which it derives
  lambda), if that module is there (else null);
* ``dbstream`` / ``clustream``: River's ``DBSTREAM`` and ``CluStream`` (``n_macro_clusters`` the true
  count), point by point (``learn_one`` then ``predict_one``, River's way), on the first ``--river-n``
  points of each stream (River is pure Python and slow on 10-D);
* ``bgmm``: scikit-learn's ``BayesianGaussianMixture(weight_concentration_prior_type="dirichlet_process",
  n_components=20, max_iter=500)`` fitted on all the points at once (the accuracy reference; batch);
* ``bgmm_refit``: BGMM "online" by re-fitting per batch, two ways. ``refit`` (the speedup's reference):
  at each batch, fit on all the points seen so far, the batch way to a model of the whole stream (what
  the online DPGMM holds); timed on ``--cumulative-fits`` batches spread over the stream and averaged
  (re-fits use scikit-learn's default ``max_iter=100``).
  ``refit_batch_only``: fit on the newest batch alone, carrying nothing forward (the reference demo's
  way; fresh fits and ``warm_start=True``), timed on the first ``--refit-batches`` batches.

ARI (``sklearn.metrics.adjusted_rand_score`` against the true centre of each point) is taken for the
online models on the final model's predictions of all points (``ari_*``, comparable with the batch
reference) and on the labels as streamed (``ari_*_online``; DPGMM's with merges mapped). The last line
printed is one JSON object. Goals: ``ari_dpgmm_2d >= 0.95``, ``ari_dpgmm_10d >= ari_bgmm_10d - 0.02``,
``ms_per_point_dpgmm <= 1`` and ``dpgmm_speedup_over_bgmm_refit >= 20``.

    .venv/bin/python bench/dp.py                  # the full run, a few minutes
    .venv/bin/python bench/dp.py --n10d 20000     # quicker
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import warnings

import numpy as np
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import BayesianGaussianMixture

from ssp.clustering.dpgmm import DPGMM
from ssp.sources.points import PointsSource, parse_scenario, scenario_preset


def streams(n2d: int, n10d: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    rate = 100.0
    two = parse_scenario({"dim": 2, "std": 1.0, "centres": [
        {"at": [0, 0]}, {"at": [4.5, 0]}, {"at": [0, 5]}, {"at": [9, 6]},
        {"at": [-6, -5], "appear": n2d / rate / 3}]})
    ten = scenario_preset("static", k=8, dim=10, seed=seed).to_dict()
    for index, share in ((6, 0.25), (7, 0.5)):
        ten["centres"][index]["appear"] = n10d / rate * share
    out = {}
    for name, scenario, n, k in (("2d", two, n2d, 5), ("10d", parse_scenario(ten), n10d, 8)):
        _, x, truth = PointsSource(scenario, seed=seed, rate=rate).arrays(n)
        out[name] = (x, truth, k)
    return out


def run_dpgmm(x: np.ndarray, truth: np.ndarray, batch: int) -> dict:
    model = DPGMM(seed=0)
    start = time.perf_counter()
    labels = []
    for lo in range(0, len(x), batch):
        labels.append(model.learn_predict_many(x[lo:lo + batch]))
        merges = model.last_update.merges
        if merges:  # the stream job recolours the points already drawn; here: the labels so far
            for part in labels:
                for source, target in merges.items():
                    part[part == source] = target
    seconds = time.perf_counter() - start
    return {"ari": adjusted_rand_score(truth, model.predict_many(x)),
            "ari_online": adjusted_rand_score(truth, np.concatenate(labels)),
            "seconds": seconds, "points_per_s": len(x) / seconds, "k": model.k}


def run_dpmeans(x: np.ndarray, truth: np.ndarray, batch: int, k: int) -> dict | None:
    try:
        module = importlib.import_module("ssp.clustering.dpmeans")
        model = module.DPMeans(k=k, seed=0)
        start = time.perf_counter()
        labels = [np.asarray(model.learn_predict_many(x[lo:lo + batch])) for lo in range(0, len(x), batch)]
        seconds = time.perf_counter() - start
        return {"ari": adjusted_rand_score(truth, np.asarray(model.predict_many(x))),
                "ari_online": adjusted_rand_score(truth, np.concatenate(labels)),
                "seconds": seconds, "points_per_s": len(x) / seconds,
                "k": int(len(getattr(model, "cluster_ids", getattr(model, "centres", []))))}
    except Exception as err:  # the module is written in parallel: report it missing, do not fail the bench
        print(f"dpmeans: not available ({type(err).__name__}: {err})")
        return None


def run_river(x: np.ndarray, truth: np.ndarray, k: int, n: int) -> dict[str, dict | None]:
    try:
        from river import cluster
    except ImportError:
        print("river: not installed (.venv/bin/pip install --no-deps river==0.26.1: River asks for a newer numpy than ssp pins, and runs on the pinned one)")
        return {"dbstream": None, "clustream": None}
    x, truth = x[:n], truth[:n]
    rows = [dict(enumerate(row)) for row in x.tolist()]
    radius = 1.5 * (x.shape[1] / 2) ** 0.5  # points of one std-1 cluster are about sqrt(2 dim) apart
    models = {"dbstream": cluster.DBSTREAM(clustering_threshold=radius, fading_factor=0.01, cleanup_interval=2,
                                           intersection_factor=0.3, minimum_weight=1.0),
              "clustream": cluster.CluStream(n_macro_clusters=k, max_micro_clusters=100, time_gap=500, seed=0)}
    out: dict[str, dict | None] = {}
    for name, model in models.items():
        start = time.perf_counter()
        labels = []
        for row in rows:
            model.learn_one(row)
            labels.append(model.predict_one(row))
        seconds = time.perf_counter() - start
        out[name] = {"ari_online": adjusted_rand_score(truth, labels), "seconds": seconds,
                     "points_per_s": len(rows) / seconds, "points": len(rows)}
    return out


def bgmm(max_iter: int = 100, **kwargs) -> BayesianGaussianMixture:
    """BGMM-DP as the reference fits it (``max_iter=500``) or as a re-fit per batch would (sklearn's 100)."""
    return BayesianGaussianMixture(n_components=20, weight_concentration_prior_type="dirichlet_process",
                                   covariance_type="diag", max_iter=max_iter, random_state=0, **kwargs)


def run_bgmm(x: np.ndarray, truth: np.ndarray) -> dict:
    start = time.perf_counter()
    labels = bgmm(500).fit(x).predict(x)
    seconds = time.perf_counter() - start
    return {"ari": adjusted_rand_score(truth, labels), "seconds": seconds, "k": len(set(labels.tolist()))}


def run_cumulative_refit(x: np.ndarray, batch: int, fits: int) -> float:
    """ms per point of re-fitting BGMM on everything seen so far at every batch, from ``fits`` sample batches."""
    batches = max(len(x) // batch, 1)
    spent = []
    for index in range(fits):
        end = min(len(x), (int((index + 0.5) * batches / fits) + 1) * batch)
        start = time.perf_counter()
        bgmm().fit(x[:end]).predict(x[end - batch:end])
        spent.append(time.perf_counter() - start)
    return float(np.mean(spent)) * batches / len(x) * 1e3


def run_refit(x: np.ndarray, batch: int, batches: int) -> dict:
    fresh = warm = 0.0
    warm_model = bgmm(warm_start=True)
    for index in range(batches):
        part = x[index * batch:(index + 1) * batch]
        start = time.perf_counter()
        bgmm().fit(part).predict(part)
        fresh += time.perf_counter() - start
        start = time.perf_counter()
        warm_model.fit(part).predict(part)
        warm += time.perf_counter() - start
    points = batches * batch
    return {"ms_per_point": fresh / points * 1e3, "ms_per_point_warm": warm / points * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n2d", type=int, default=10_000)
    parser.add_argument("--n10d", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--river-n", type=int, default=10_000, help="points River's models see per stream")
    parser.add_argument("--refit-batches", type=int, default=10, help="batches timed for the batch-only re-fit")
    parser.add_argument("--cumulative-fits", type=int, default=2, help="sample batches for the cumulative re-fit")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", module="sklearn")
    result: dict = {}
    for name, (x, truth, k) in streams(args.n2d, args.n10d, args.seed).items():
        print(f"== {name}: {len(x)} points, {k} clusters, batches of {args.batch}")
        dpgmm = run_dpgmm(x, truth, args.batch)
        print(f"dpgmm    ARI {dpgmm['ari']:.4f} (as streamed {dpgmm['ari_online']:.4f}), k={dpgmm['k']}, "
              f"{dpgmm['points_per_s']:,.0f} points/s")
        dpmeans = run_dpmeans(x, truth, args.batch, k)
        if dpmeans:
            print(f"dpmeans  ARI {dpmeans['ari']:.4f} (as streamed {dpmeans['ari_online']:.4f}), k={dpmeans['k']}, "
                  f"{dpmeans['points_per_s']:,.0f} points/s")
        river = run_river(x, truth, k, args.river_n)
        for river_name, figures in river.items():
            if figures:
                print(f"{river_name:9s}ARI {figures['ari_online']:.4f} (as streamed, first {figures['points']} "
                      f"points), {figures['points_per_s']:,.0f} points/s")
        reference = run_bgmm(x, truth)
        print(f"bgmm-dp  ARI {reference['ari']:.4f}, k={reference['k']}, {reference['seconds']:.1f} s (batch)")
        refit = run_refit(x, args.batch, min(args.refit_batches, len(x) // args.batch))
        cumulative = run_cumulative_refit(x, args.batch, args.cumulative_fits)
        ms_dpgmm = dpgmm["seconds"] / len(x) * 1e3
        print(f"bgmm re-fit per batch on all points so far {cumulative:.3f} ms/point; on the batch alone "
              f"{refit['ms_per_point']:.3f} (warm start {refit['ms_per_point_warm']:.3f}); dpgmm {ms_dpgmm:.4f} ms/point")
        result.update({
            f"ari_dpgmm_{name}": round(dpgmm["ari"], 4), f"ari_dpgmm_{name}_online": round(dpgmm["ari_online"], 4),
            f"k_dpgmm_{name}": dpgmm["k"], f"points_per_s_dpgmm_{name}": round(dpgmm["points_per_s"]),
            f"ms_per_point_dpgmm_{name}": round(ms_dpgmm, 5),
            f"ari_dpmeans_{name}": None if dpmeans is None else round(dpmeans["ari"], 4),
            f"ari_dpmeans_{name}_online": None if dpmeans is None else round(dpmeans["ari_online"], 4),
            f"points_per_s_dpmeans_{name}": None if dpmeans is None else round(dpmeans["points_per_s"]),
            f"ari_bgmm_{name}": round(reference["ari"], 4), f"seconds_bgmm_{name}": round(reference["seconds"], 2),
            f"ms_per_point_bgmm_refit_{name}": round(cumulative, 4),
            f"ms_per_point_bgmm_refit_batch_only_{name}": round(refit["ms_per_point"], 4),
            f"ms_per_point_bgmm_refit_batch_only_warm_{name}": round(refit["ms_per_point_warm"], 4),
            f"dpgmm_speedup_over_bgmm_refit_{name}": round(cumulative / ms_dpgmm, 1),
            f"dpgmm_speedup_over_bgmm_refit_batch_only_{name}": round(refit["ms_per_point"] / ms_dpgmm, 1),
        })
        for river_name, figures in river.items():
            result[f"ari_{river_name}_{name}"] = None if figures is None else round(figures["ari_online"], 4)
            result[f"points_per_s_{river_name}_{name}"] = None if figures is None else round(figures["points_per_s"])
    total_points = args.n2d + args.n10d
    seconds = result["ms_per_point_dpgmm_2d"] * args.n2d + result["ms_per_point_dpgmm_10d"] * args.n10d
    result["ms_per_point_dpgmm"] = round(seconds / total_points, 5)
    for suffix in ("", "_batch_only"):
        result[f"dpgmm_speedup_over_bgmm_refit{suffix}"] = min(result[f"dpgmm_speedup_over_bgmm_refit{suffix}_2d"],
                                                              result[f"dpgmm_speedup_over_bgmm_refit{suffix}_10d"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
