"""ssp.clustering.dpmeans: DP-means (Kulis & Jordan 2012), batch and online, pure numpy.

Hand-worked tiny inputs, lambda against K, seeded Gaussian streams against scikit-learn's batch
``BayesianGaussianMixture(weight_concentration_prior_type="dirichlet_process")`` on the same points,
the executor/driver split of a batch (``local_step`` per chunk, ``merge_stats``, ``global_step``)
against ``learn_many`` on the whole batch, the JSON state, and bad inputs.
"""

from __future__ import annotations

import doctest
import json
import pickle

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import BayesianGaussianMixture

import ssp.clustering.dpmeans
from ssp.clustering.dpmeans import DPMeans, DPUpdate, lambda_from_k, squared_distances
from ssp.sources.points import PointsSource, parse_scenario, scenario_preset

LINE = [[0.0], [1.0], [10.0], [11.0]]


def test_the_doctests():
    assert doctest.testmod(ssp.clustering.dpmeans).failed == 0


def objective(points, centres, lam, weights=None):
    w = np.ones(len(points)) if weights is None else np.asarray(weights)
    return float((w * squared_distances(np.asarray(points), centres).min(axis=1)).sum() + lam * len(centres))


# ---------------------------------------------------------------------- batch, by hand
def test_fit_on_four_points_by_hand():
    # lambda 4: from the mean 5.5 every point is beyond; 0 opens, 1 joins, 10 opens, 11 joins; means 0.5, 10.5
    model = DPMeans(lambda_=4).fit(LINE)
    assert model.centres.tolist() == [[0.5], [10.5]]
    assert model.labels_.tolist() == [0, 0, 1, 1] and model.weights.tolist() == [2.0, 2.0]
    assert objective(LINE, model.centres, 4) == pytest.approx(4 * 0.25 + 2 * 4)
    # lambda 30: only 0 and 11 (30.25 from the mean) are beyond; they open clusters, 1 and 10 follow the nearest
    assert DPMeans(lambda_=30).fit(LINE).centres.tolist() == [[0.5], [10.5]]
    # lambda 0.1: every point its own cluster; lambda 200: one cluster at the mean
    assert DPMeans(lambda_=0.1).fit(LINE).centres.tolist() == LINE
    assert DPMeans(lambda_=200).fit(LINE).centres.tolist() == [[5.5]]


def test_fit_weights_count_as_copies():
    weighted = DPMeans(lambda_=100).fit([[0.0], [4.0]], weights=[3, 1])
    copies = DPMeans(lambda_=100).fit([[0.0], [0.0], [0.0], [4.0]])
    assert weighted.centres.tolist() == copies.centres.tolist() == [[1.0]]
    assert weighted.weights.tolist() == copies.weights.tolist() == [4.0]
    # lambda 3: 4 is 9 from the mean 1 and opens a cluster; 0 (1 from the mean) stays; weights 3 and 1
    split = DPMeans(lambda_=3).fit([[0.0], [4.0]], weights=[3, 1])
    assert split.centres.tolist() == [[0.0], [4.0]] and split.weights.tolist() == [3.0, 1.0]


def test_fit_runs_to_a_fixed_point_and_gives_new_ids_each_time():
    _, x, _ = PointsSource(scenario_preset("static", k=4, dim=2, seed=3), seed=3).arrays(400)
    model = DPMeans(lambda_=20).fit(x)
    labels = model.labels_.copy()
    # converged: every point is nearest its own centre, within lambda, and the centres are its cluster's means
    d = squared_distances(x, model.centres)
    assert (model.cluster_ids[d.argmin(axis=1)] == labels).all() and (d.min(axis=1) <= 20).all()
    for cid, centre in zip(model.cluster_ids, model.centres, strict=True):
        np.testing.assert_allclose(x[labels == cid].mean(axis=0), centre, atol=1e-12)
    first_ids = model.cluster_ids.tolist()
    assert first_ids == list(range(len(first_ids)))
    model.fit(x)  # the same clusters again, under new ids (ids are never reused)
    assert model.cluster_ids.tolist() == [i + len(first_ids) for i in first_ids]


def test_larger_lambda_never_gives_more_clusters():
    _, x, _ = PointsSource(scenario_preset("static", k=5, dim=2, seed=2), seed=2).arrays(600)
    lambdas = [0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096]
    batch = [DPMeans(lambda_=lam).fit(x).n_clusters for lam in lambdas]
    online = []
    for lam in lambdas:
        model = DPMeans(lambda_=lam)
        for start in range(0, len(x), 100):
            model.learn_many(x[start:start + 100])
        online.append(model.n_clusters)
    assert batch == sorted(batch, reverse=True) and batch[-1] == 1 and batch[0] > 20
    assert online == sorted(online, reverse=True) and online[-1] == 1


# ---------------------------------------------------------------------- lambda from k
def test_lambda_from_k_farthest_first():
    assert lambda_from_k(LINE, 2, seed=0) == 1.0
    # start at 0 (index 0) or 1: the farthest is 11, at 121 or 100
    assert {lambda_from_k(LINE, 1, seed=seed) for seed in range(20)} <= {100.0, 121.0}
    points = np.array([[0.0, 0.0], [0.0, 1.0], [50.0, 0.0], [50.0, 1.0], [0.0, 80.0], [0.0, 81.0]])
    for seed in range(5):
        lam = lambda_from_k(points, 3, seed=seed)
        assert lam == 1.0  # three pairs: after one point in each, the next is the start's neighbour
        assert DPMeans(lambda_=lam).fit(points).n_clusters == 3
    with pytest.raises(ValueError, match="needs at least 4 points"):
        lambda_from_k(points[:3], 3)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        lambda_from_k(points, 0)


def test_k_derives_lambda_from_the_first_batch():
    _, x, truth = PointsSource(scenario_preset("static", k=4, dim=2, seed=5), seed=5).arrays(1000)
    model = DPMeans(k=4, seed=9, retire_below=0.01)
    assert model.lambda_ is None
    model.learn_many(np.zeros((0, 2)))  # an empty first batch: still no lambda
    assert model.lambda_ is None and model.n_clusters == 0
    model.learn_many(x[:200])
    assert model.lambda_ == lambda_from_k(x[:200], 4, seed=9)
    for start in range(200, 1000, 100):
        model.learn_many(x[start:start + 100])
    assert abs(model.n_clusters - 4) <= 1
    assert adjusted_rand_score(truth, model.predict_many(x)) > 0.97
    fitted = DPMeans(k=4, seed=9).fit(x)
    assert fitted.lambda_ == lambda_from_k(x, 4, seed=9)
    with pytest.raises(ValueError, match="needs at least 5 points"):
        DPMeans(k=4).learn_many(x[:3])


# ---------------------------------------------------------------------- online, by hand
def test_online_by_hand():
    model = DPMeans(lambda_=4)
    assert model.learn_predict_many([[0], [1], [10]]).tolist() == [0, 0, 1]
    assert model.centres.tolist() == [[0.5], [10.0]] and model.weights.tolist() == [2.0, 1.0]
    assert model.learn_predict_many([[11], [5]]).tolist() == [1, 2]
    assert model.centres.tolist() == [[0.5], [10.5], [5.0]] and model.cluster_ids.tolist() == [0, 1, 2]
    assert model.last_update.births == [2] and model.last_update.deaths == []
    assert model.predict_many([[-3], [7], [8]]).tolist() == [0, 2, 1]
    model.learn_one([0.5], w=2)  # within 4 of centre 0: (2 * 0.5 + 2 * 0.5) / 4
    assert model.centres[0].tolist() == [0.5] and model.weights.tolist() == [4.0, 2.0, 1.0]
    assert model.n_batches == 3 and model.n_points == 6


def test_online_weights_count_as_copies():
    weighted = DPMeans(lambda_=20).learn_many([[0.0], [4.0]], [3, 1])
    copies = DPMeans(lambda_=20).learn_many([[0.0], [0.0], [0.0], [4.0]])
    assert weighted.centres.tolist() == copies.centres.tolist() == [[1.0]]
    assert weighted.weights.tolist() == copies.weights.tolist() == [4.0]


def test_forgetting_applies_to_empty_batches_and_retires_dead_clusters():
    model = DPMeans(lambda_=4, half_life=1, retire_below=0.1)
    model.learn_many([[0.0], [0.0], [20.0], [20.0]])
    assert model.weights.tolist() == [2.0, 2.0]
    model.learn_many([])
    assert model.weights.tolist() == [1.0, 1.0] and model.n_batches == 2
    deaths = []
    for _ in range(4):  # only the cluster at 20 gets points: the one at 0 fades below 10% of the total
        model.learn_many([[20.0], [20.0]])
        deaths += model.last_update.deaths
    assert deaths == [0] and model.cluster_ids.tolist() == [1]
    labels = model.learn_predict_many([[0.0]])  # the old place again: a new cluster, with a new id
    assert labels.tolist() == [2] and model.last_update.births == [2]
    never = DPMeans(lambda_=4, decay_factor=0.5)  # no retirement by default: clusters fade but stay
    never.learn_many([[0.0], [20.0]])
    for _ in range(30):
        never.learn_many([[20.0]])
    assert never.cluster_ids.tolist() == [0, 1] and never.weights[0] == 0.5 ** 30


def test_close_clusters_merge_and_the_update_says_so():
    model = DPMeans(lambda_=10)
    model.learn_many([[0.0], [5.0]])  # 25 apart: two clusters
    assert model.cluster_ids.tolist() == [0, 1]
    # 3 goes to 5 (4 away): its centre moves to 4, 16 from 0; then 2, 2.5 and 2 pull the clusters within 10
    labels = model.learn_predict_many([[3.0], [2.0], [2.5], [2.0]])
    update = model.last_update
    assert update.merges and set(update.deaths) == set(update.merges)
    survivor = model.cluster_ids.tolist()
    assert len(survivor) == 1 and set(labels.tolist()) == set(survivor)
    assert model.weights.tolist() == [6.0]
    np.testing.assert_allclose(model.centres, [[14.5 / 6]])
    off = DPMeans(lambda_=10, merge_within=0)
    off.learn_many([[0.0], [5.0]])
    off.learn_many([[3.0], [2.0], [2.5], [2.0]])
    assert off.n_clusters == 2 and off.last_update.merges == {}


def test_update_relabel_checks_the_candidates():
    update = DPUpdate(births=[5], deaths=[1], candidate_labels=np.array([5]), merges={1: 0})
    assert update.relabel([0, -1, 1]).tolist() == [0, 5, 0]
    with pytest.raises(ValueError, match="2 candidates"):
        update.relabel([-1, -1])


# ---------------------------------------------------------------------- Gaussian streams
def late_scenario(k: int, dim: int, seed: int, late: int) -> object:
    """The static preset with its last ``late`` centres appearing at 3 s and 6 s (points 300 and 600)."""
    spec = scenario_preset("static", k=k, dim=dim, seed=seed).to_dict()
    for index, centre in enumerate(spec["centres"][k - late:]):
        centre["appear"] = 3.0 * (index + 1)
    return parse_scenario(spec)


STREAMS = [  # (k, dim, seed, late, lambda)
    (3, 2, 2, 1, 16.0),
    (5, 2, 1, 2, 16.0),
    (8, 2, 3, 2, 16.0),
    (4, 10, 4, 1, 40.0),
    (8, 10, 2, 2, 40.0),
]


@pytest.mark.parametrize(("k", "dim", "seed", "late", "lam"), STREAMS)
def test_online_dpmeans_matches_batch_bgmm_dp_on_gaussian_streams(k, dim, seed, late, lam):
    _, x, truth = PointsSource(late_scenario(k, dim, seed, late), seed=seed).arrays(1000)
    assert len(set(truth[:300].tolist())) == k - late  # some clusters really appear late
    model = DPMeans(lambda_=lam, retire_below=0.01, seed=seed)
    labels = np.concatenate([model.learn_predict_many(x[start:start + 100]) for start in range(0, 1000, 100)])
    bgmm = BayesianGaussianMixture(n_components=k + 3, weight_concentration_prior_type="dirichlet_process",
                                   random_state=0, max_iter=200).fit(x)
    ari_bgmm = adjusted_rand_score(truth, bgmm.predict(x))
    ari_online = adjusted_rand_score(truth, labels)  # as the stream saw them, point by point
    ari_final = adjusted_rand_score(truth, model.predict_many(x))
    print(f"k={k} dim={dim}: online DP-means ARI {ari_online:.4f} (final model {ari_final:.4f}), "
          f"batch BGMM-DP {ari_bgmm:.4f}, K={model.n_clusters}")
    assert ari_online >= ari_bgmm - 0.02 and ari_final >= ari_bgmm - 0.02
    assert abs(model.n_clusters - k) <= 1


def test_many_clusters():
    _, x, truth = PointsSource(scenario_preset("static", k=25, dim=2, seed=1), seed=1).arrays(3000)
    model = DPMeans(lambda_=16, retire_below=0.005)
    labels = np.concatenate([model.learn_predict_many(x[start:start + 250]) for start in range(0, 3000, 250)])
    assert 22 <= model.n_clusters <= 28 and len(set(model.cluster_ids.tolist())) == model.n_clusters
    assert adjusted_rand_score(truth, labels) > 0.95
    assert set(model.predict_many(x).tolist()) <= set(model.cluster_ids.tolist())


# ---------------------------------------------------------------------- the two halves
def split_rows(rng, n, parts):
    cuts = np.sort(rng.integers(0, n + 1, parts - 1))
    return np.split(np.arange(n), cuts)  # some parts may be empty


def distributed_step(model, x, w, rng, parts):
    state = pickle.loads(pickle.dumps(model.local_state()))  # as broadcast to executors
    results = [DPMeans.local_step(state, x[rows], None if w is None else w[rows])
               for rows in split_rows(rng, len(x), parts)]
    labels = np.concatenate([labels for labels, _ in results])
    stats = results[0][1]
    for _, more in results[1:]:
        stats = DPMeans.merge_stats(stats, pickle.loads(pickle.dumps(more)))
    update = model.global_step(stats)
    return update.relabel(labels), update


@pytest.mark.parametrize("options", [{}, {"decay_factor": 0.7, "retire_below": 0.05}, {"half_life": 2.0},
                                     {"k": 3}])
def test_chunks_merged_in_order_equal_learn_many(options):
    rng = np.random.default_rng(11)
    scenario = parse_scenario({"dim": 3, "std": 1.0, "centres": [
        {"at": [0, 0, 0]}, {"at": [12, 0, 0], "drift": [0, 0.5, 0]}, {"at": [0, 15, 0], "appear": 2},
        {"at": [-12, -9, 5], "appear": 4, "die": 7}]})
    _, x, _ = PointsSource(scenario, seed=4).arrays(1000)
    weights = rng.uniform(0.2, 3.0, len(x))
    scale = {} if "k" in options else {"lambda_": 14.0}
    whole, split = DPMeans(**scale, **options), DPMeans(**scale, **options)
    bounds = [0, 150, 150, 260, 400, 401, 560, 700, 850, 1000]  # an empty batch and a batch of one
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        w = None if start == 260 else weights[start:stop]
        expected = whole.learn_predict_many(x[start:stop], w)
        got, update = distributed_step(split, x[start:stop], w, rng, parts=int(rng.integers(1, 6)))
        assert got.tolist() == expected.tolist()
        assert update.births == whole.last_update.births and update.deaths == whole.last_update.deaths
        assert update.merges == whole.last_update.merges
        assert split.cluster_ids.tolist() == whole.cluster_ids.tolist()
        np.testing.assert_allclose(split.centres, whole.centres, rtol=0, atol=1e-9)
        np.testing.assert_allclose(split.weights, whole.weights, rtol=1e-12, atol=1e-9)
    assert split.n_points == whole.n_points == 1000 and split.n_batches == whole.n_batches == 9
    assert whole.next_id > 3  # births happened after the first batch too


def test_local_step_labels_and_stats():
    model = DPMeans(lambda_=4).learn_many([[0.0, 0.0], [10.0, 0.0]])
    labels, stats = DPMeans.local_step(model.local_state(), [[1.0, 1.0], [5.0, 0.0], [9.0, 0.0], [2.0, 0.0]],
                                       [2.0, 1.0, 1.0, 0.5])
    assert labels.tolist() == [0, -1, 1, 0]  # (1, 1) is 2 from (0, 0); (2, 0) is 4, not beyond
    assert stats["counts"].tolist() == [2.5, 1.0] and stats["sums"].tolist() == [[3.0, 2.0], [9.0, 0.0]]
    assert stats["candidates"].tolist() == [[5.0, 0.0]] and stats["candidate_weights"].tolist() == [1.0]
    assert int(stats["points"]) == 4 and stats["ids"].tolist() == [0, 1]
    _, empty = DPMeans.local_step(model.local_state(), [])
    merged = DPMeans.merge_stats(empty, stats)
    assert merged["counts"].tolist() == [2.5, 1.0] and merged["candidates"].tolist() == [[5.0, 0.0]]
    fresh = DPMeans(lambda_=4).local_state()  # no dimension yet: an empty part merges with any
    _, nothing = DPMeans.local_step(fresh, [])
    _, some = DPMeans.local_step(fresh, [[1.0, 2.0]])
    both = DPMeans.merge_stats(nothing, some)
    assert both["candidates"].tolist() == [[1.0, 2.0]] and int(both["points"]) == 1


def test_stats_must_match_the_model():
    model = DPMeans(lambda_=4).learn_many([[0.0], [10.0]])
    old_state = model.local_state()
    model.learn_many([[30.0]])
    _, stale = DPMeans.local_step(old_state, [[1.0]])
    with pytest.raises(ValueError, match="stats are for clusters \\[0, 1\\], the model has \\[0, 1, 2\\]"):
        model.global_step(stale)
    _, current = DPMeans.local_step(model.local_state(), [[1.0]])
    with pytest.raises(ValueError, match="different clusters"):
        DPMeans.merge_stats(stale, current)
    with pytest.raises(ValueError, match="lack candidates"):
        model.global_step({key: value for key, value in current.items() if key != "candidates"})
    with pytest.raises(ValueError, match="must have 1 coordinates, got 2"):
        DPMeans.local_step(model.local_state(), [[1.0, 2.0]])


# ---------------------------------------------------------------------- state
def test_state_round_trip_is_exact_and_continues_identically():
    _, x, _ = PointsSource(late_scenario(4, 3, 7, 1, ), seed=7).arrays(600)
    model = DPMeans(lambda_=20, half_life=3, retire_below=0.02, seed=3)
    for start in range(0, 300, 50):
        model.learn_many(x[start:start + 50])
    state = model.to_state()
    twin = DPMeans.from_state(json.loads(json.dumps(state)))
    assert twin.to_state() == state
    for start in range(300, 600, 50):
        assert model.learn_predict_many(x[start:start + 50]).tolist() == \
            twin.learn_predict_many(x[start:start + 50]).tolist()
    assert twin.to_state() == model.to_state()
    pending = DPMeans(k=3, decay_factor=0.9)  # before the first batch: no lambda, no dimension yet
    assert DPMeans.from_state(json.loads(json.dumps(pending.to_state()))).to_state() == pending.to_state()
    fitted = DPMeans(lambda_=4).fit(LINE)
    assert DPMeans.from_state(fitted.to_state()).centres.tolist() == [[0.5], [10.5]]


def test_bad_states_are_rejected():
    state = DPMeans(lambda_=4).learn_many(LINE).to_state()
    with pytest.raises(ValueError, match="not a dpmeans state"):
        DPMeans.from_state({**state, "model": "streaming_kmeans"})
    with pytest.raises(ValueError, match="lacks next_id"):
        DPMeans.from_state({key: value for key, value in state.items() if key != "next_id"})
    with pytest.raises(ValueError, match="ids must be distinct, in \\[0, next_id=1\\)"):
        DPMeans.from_state({**state, "next_id": 1})
    with pytest.raises(ValueError, match="must align"):
        DPMeans.from_state({**state, "weights": [1.0]})
    with pytest.raises(ValueError, match="must be a JSON object"):
        DPMeans.from_state([state])


# ---------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "give lambda_ .* or k"),
    ({"lambda_": 4, "k": 3}, "exactly one of them"),
    ({"lambda_": 0}, "lambda_ must be a finite number > 0, got 0"),
    ({"lambda_": float("nan")}, "lambda_ must be a finite number > 0"),
    ({"lambda_": "4"}, "lambda_ must be a finite number > 0, got '4'"),
    ({"k": 0}, "k must be an integer >= 1, got 0"),
    ({"k": 2.5}, "k must be an integer >= 1, got 2.5"),
    ({"lambda_": 4, "decay_factor": 1.5}, "decay_factor must be a number between 0 and 1"),
    ({"lambda_": 4, "decay_factor": 0.5, "half_life": 2}, "give decay_factor or half_life, not both"),
    ({"lambda_": 4, "half_life": -1}, "half_life must be a positive finite number"),
    ({"lambda_": 4, "retire_below": 1}, "retire_below must be a number in \\[0, 1\\)"),
    ({"lambda_": 4, "merge_within": 2}, "merge_within must be a number in \\[0, 1\\]"),
    ({"lambda_": 4, "max_iter": 0}, "max_iter must be an integer >= 1"),
    ({"lambda_": 4, "seed": -1}, "seed must be an integer >= 0"),
])
def test_bad_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DPMeans(**kwargs)


def test_bad_points_and_weights_are_rejected():
    model = DPMeans(lambda_=4).learn_many([[0.0, 0.0]])
    with pytest.raises(ValueError, match="points must have 2 coordinates, got 3"):
        model.learn_many([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="point 1, coordinate 0 is nan"):
        model.learn_many([[1.0, 2.0], [float("nan"), 0.0]])
    with pytest.raises(ValueError, match="2-D array"):
        model.learn_many([[[1.0, 2.0]]])
    with pytest.raises(ValueError, match="points must be numbers"):
        model.learn_many([["a", "b"]])
    with pytest.raises(ValueError, match="weights must be finite numbers > 0"):
        model.learn_many([[1.0, 2.0]], [0.0])
    with pytest.raises(ValueError, match="one weight per point \\(2\\)"):
        model.learn_many([[1.0, 2.0], [3.0, 4.0]], [1.0])
    with pytest.raises(ValueError, match="w must be a finite number > 0"):
        model.learn_one([1.0, 2.0], w=-1)
    with pytest.raises(ValueError, match="x must be one point"):
        model.learn_one([[1.0, 2.0]])
    with pytest.raises(ValueError, match="x must have 2 coordinates, got 1"):
        model.predict_one([1.0])
    with pytest.raises(ValueError, match="no clusters yet"):
        DPMeans(lambda_=4).predict_many([[1.0]])
    with pytest.raises(ValueError, match="fit needs at least one point"):
        DPMeans(lambda_=4).fit([])
    assert model.n_points == 1  # nothing above changed the model
