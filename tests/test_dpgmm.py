"""ssp.clustering.dpgmm: the online variational DP Gaussian mixture, pure (no Spark).

Accuracy is checked against scikit-learn's batch ``BayesianGaussianMixture`` with a Dirichlet-process
prior on the same points (ARI within 0.02 or above), the two-halves contract (local step per chunk,
merged statistics, global step) against ``learn_many`` on the whole batch, and the JSON state.
"""

from __future__ import annotations

import ast
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import BayesianGaussianMixture

from ssp.clustering.dpgmm import DPGMM, DPGMMUpdate, digamma, gammaln
from ssp.sources.points import PointsSource, parse_scenario, scenario_preset

SOURCE = Path(__file__).resolve().parents[1] / "src" / "ssp" / "clustering" / "dpgmm.py"


def stream(k: int, dim: int, n: int, *, seed: int = 42, late: tuple[int, ...] = (), appear: float = 5.0):
    """``n`` points of the static preset (``k`` centres, rate 100/s); the centres in ``late`` appear at ``appear`` s."""
    spec = scenario_preset("static", k=k, dim=dim, seed=seed).to_dict()
    for index in late:
        spec["centres"][index]["appear"] = appear
    _, x, truth = PointsSource(parse_scenario(spec), seed=seed, rate=100).arrays(n)
    return x, truth


def online(model: DPGMM, x: np.ndarray, batch: int) -> list[np.ndarray]:
    return [model.learn_predict_many(x[start:start + batch]) for start in range(0, len(x), batch)]


def bgmm_ari(x: np.ndarray, truth: np.ndarray, covariance_type: str = "diag") -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = BayesianGaussianMixture(n_components=15, weight_concentration_prior_type="dirichlet_process",
                                            covariance_type=covariance_type, max_iter=300, random_state=0).fit(x)
    return adjusted_rand_score(truth, reference.predict(x))


# ---------------------------------------------------------------------- accuracy
@pytest.mark.parametrize(("k", "dim", "late", "covariance_type"), [
    (3, 2, (2,), "diag"),
    (5, 2, (3, 4), "diag"),
    (5, 2, (4,), "full"),
    (8, 10, (6, 7), "diag"),
])
def test_ari_matches_batch_bgmm_and_k_is_right_after_1000_points(k, dim, late, covariance_type):
    x, truth = stream(k, dim, 3000, seed=k + dim, late=late)
    model = DPGMM(covariance_type=covariance_type, seed=0)
    labels = online(model, x[:1000], 250)
    assert abs(model.k - len(set(truth[:1000].tolist()))) <= 1
    labels += online(model, x[1000:], 250)
    assert abs(model.k - k) <= 1
    reference = bgmm_ari(x, truth, covariance_type)
    assert adjusted_rand_score(truth, model.predict_many(x)) >= reference - 0.02
    assert adjusted_rand_score(truth, np.concatenate(labels)) >= reference - 0.02  # the labels as streamed


def test_overlapping_clusters_as_well_as_bgmm():
    scenario = parse_scenario({"dim": 2, "std": 1.0, "centres": [
        {"at": [0, 0]}, {"at": [4, 0]}, {"at": [0, 4.5]}, {"at": [8, 6]}, {"at": [-5, -4], "appear": 20}]})
    _, x, truth = PointsSource(scenario, seed=3, rate=100).arrays(4000)
    model = DPGMM(seed=0)
    online(model, x, 500)
    assert model.k == 5
    assert adjusted_rand_score(truth, model.predict_many(x)) >= bgmm_ari(x, truth) - 0.02


def test_twenty_five_components_and_the_truncation():
    x, truth = stream(25, 2, 6000, seed=5)
    model = DPGMM(seed=0)
    labels = np.concatenate(online(model, x, 1000))
    assert model.k >= 24 and len(set(model.cluster_ids.tolist())) == model.k
    assert adjusted_rand_score(truth, labels) > 0.95
    capped = DPGMM(max_components=10, seed=0)
    online(capped, x, 1000)
    assert 1 <= capped.k <= 10
    assert capped.predict_many(x).min() >= 0


def test_learn_one_from_scratch():
    x, truth = stream(3, 2, 600, seed=7)
    model = DPGMM(seed=0)
    for row in x:
        model.learn_one(row)
    assert model.k == 3
    assert adjusted_rand_score(truth, model.predict_many(x)) > 0.98
    assert model.predict_one(x[0].tolist()) == model.predict_many(x[:1])[0]


# ---------------------------------------------------------------------- ids, births, merges, deaths
def test_births_keep_ids_and_ids_are_never_reused():
    x, _ = stream(4, 2, 3000, seed=11, late=(3,), appear=15)
    model = DPGMM(seed=0, half_life=2)
    seen: set[int] = set()
    for start in range(0, len(x), 250):
        before = set(model.cluster_ids.tolist())
        update = model.learn_many(x[start:start + 250]).last_update
        assert not set(update.births) & seen  # a fresh id every time
        seen |= set(update.births)
        assert set(model.cluster_ids.tolist()) == (before | set(update.births)) - set(update.merges) - set(update.deaths)
    assert model.next_id == len(seen) and model.k == 4


def test_a_cluster_that_stops_dies_with_forgetting():
    rng = np.random.default_rng(0)
    model = DPGMM(seed=0, decay_factor=0.5)
    model.learn_many(np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(20, 1, (200, 2))]))
    assert model.k == 2
    gone = model.predict_one([20.0, 20.0])
    deaths = []
    for _ in range(12):
        deaths += model.learn_many(rng.normal(0, 1, (200, 2))).last_update.deaths
    assert deaths == [gone] and model.k == 1


def test_two_halves_of_one_cluster_merge_into_the_heavier():
    rng = np.random.default_rng(1)
    blob = rng.normal(3.0, 1.0, (600, 2))
    left, right = blob[blob[:, 0] < 3.2], blob[blob[:, 0] >= 3.2]
    model = DPGMM(seed=0, prior_variance=1.0)
    model.learn_many(blob[:200])
    state = model.to_state()
    state["ids"], state["next_id"] = [0, 1], 2
    state["counts"] = [float(len(left)), float(len(right))]
    state["sums"] = [left.sum(axis=0).tolist(), right.sum(axis=0).tolist()]
    state["sums_sq"] = [(left ** 2).sum(axis=0).tolist(), (right ** 2).sum(axis=0).tolist()]
    split = DPGMM.from_state(state)
    update = split.learn_many(np.zeros((0, 2))).last_update
    heavier = 0 if len(left) >= len(right) else 1
    assert update.merges == {1 - heavier: heavier} and split.cluster_ids.tolist() == [heavier]
    assert split.weights[0] == pytest.approx(600.0)
    assert update.relabel(np.array([0, 1, -1])[:2]).tolist() == [heavier, heavier]
    apart = DPGMM.from_state({**state, "params": {**state["params"], "merge": False}})
    assert apart.learn_many([]).k == 2


def test_learn_predict_many_names_the_candidates():
    rng = np.random.default_rng(2)
    model = DPGMM(seed=0)
    first = model.learn_predict_many(rng.normal(0, 1, (300, 2)))
    assert (first >= 0).all() and set(first.tolist()) <= set(model.cluster_ids.tolist())
    batch = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal([15, 15], 1, (100, 2))])
    labels, stats = DPGMM.local_step(model.local_state(), batch)
    assert (labels[100:] == -1).all() and (labels[:100] >= 0).all()
    update = model.global_step(stats)
    assert len(update.births) == 1 and update.candidate_labels.tolist() == update.births * 100
    assert (update.relabel(labels)[100:] == update.births[0]).all()


# ---------------------------------------------------------------------- the two halves
def run_split(model: DPGMM, batch: np.ndarray, weights: np.ndarray | None, cuts: list[int]):
    state = model.local_state()
    bounds = [0, *cuts, len(batch)]
    labels, merged = [], None
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        part_labels, part = DPGMM.local_step(state, batch[lo:hi], None if weights is None else weights[lo:hi])
        labels.append(part_labels)
        merged = part if merged is None else DPGMM.merge_stats(merged, part)
    update = model.global_step(merged)
    return update.relabel(np.concatenate(labels)), update


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], list) and a[key] and not isinstance(a[key][0], int):
            np.testing.assert_allclose(np.asarray(a[key], dtype=float), np.asarray(b[key], dtype=float),
                                       rtol=1e-9, atol=1e-9, err_msg=key)
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_chunked_local_steps_equal_learn_many(covariance_type):
    x, _ = stream(5, 3, 2500, seed=9, late=(4,), appear=12)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(x))
    whole, parts = DPGMM(covariance_type=covariance_type, seed=3), DPGMM(covariance_type=covariance_type, seed=3)
    for start in range(0, len(x), 500):
        batch, w = x[start:start + 500], weights[start:start + 500]
        expected = whole.learn_predict_many(batch, w)
        got, update = run_split(parts, batch, w, [7, 7, 180, 333])  # an empty chunk too
        assert got.tolist() == expected.tolist()
        assert (update.births, update.merges, update.deaths) == (whole.last_update.births, whole.last_update.merges,
                                                                whole.last_update.deaths)
        assert_same_state(parts.to_state(), whole.to_state())
    assert whole.k == 5


def test_local_state_is_small_and_local_step_pure():
    x, _ = stream(3, 2, 600, seed=4)
    model = DPGMM(seed=0).learn_many(x[:300])
    state = model.local_state()
    import pickle

    assert len(pickle.dumps(state)) < 10_000
    before = model.to_state()
    a = DPGMM.local_step(state, x[300:])
    b = DPGMM.local_step(state, x[300:])
    assert model.to_state() == before and a[0].tolist() == b[0].tolist()
    assert set(a[1]) >= {"n", "sum", "sum_sq", "candidates", "candidate_weights"}
    assert a[1]["n"].sum() + a[1]["candidate_weights"].sum() == pytest.approx(300.0)


def test_empty_batches():
    fresh = DPGMM()
    assert fresh.learn_predict_many([]).tolist() == [] and fresh.k == 0 and fresh.n_batches == 1
    assert fresh.predict_many(np.zeros((2, 3))).tolist() == [-1, -1]
    x, _ = stream(3, 2, 500, seed=1)
    model = DPGMM(seed=0).learn_many(x)
    labels, stats = DPGMM.local_step(model.local_state(), np.zeros((0, 2)))
    assert labels.shape == (0,) and stats["candidates"].shape == (0, 2)
    update = model.global_step(DPGMM.merge_stats(stats, DPGMM.local_step(model.local_state(), [])[1]))
    assert update.points == 0 and update.births == [] and model.k == 3
    assert model.predict_many([]).tolist() == []


def test_too_few_points_wait_pending():
    model = DPGMM(init_points=50)
    labels = model.learn_predict_many(np.random.default_rng(0).normal(0, 1, (20, 2)))
    assert labels.tolist() == [-1] * 20 and model.k == 0 and model.pending == 20
    labels = model.learn_predict_many(np.random.default_rng(1).normal(0, 1, (40, 2)))
    assert model.k == 1 and (labels == model.cluster_ids[0]).all() and model.pending == 0


# ---------------------------------------------------------------------- state
@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_state_round_trip_is_exact_and_continues_the_same(covariance_type):
    x, _ = stream(4, 2, 1500, seed=2, late=(3,), appear=8)
    model = DPGMM(covariance_type=covariance_type, half_life=10, seed=5)
    online(model, x[:1000], 200)
    text = json.dumps(model.to_state())
    twin = DPGMM.from_state(json.loads(text))
    assert json.dumps(twin.to_state()) == text
    assert twin.predict_many(x).tolist() == model.predict_many(x).tolist()
    np.testing.assert_array_equal(twin.predict_proba_many(x), model.predict_proba_many(x))
    for start in range(1000, 1500, 100):
        assert twin.learn_predict_many(x[start:start + 100]).tolist() == \
            model.learn_predict_many(x[start:start + 100]).tolist()
    assert json.dumps(twin.to_state()) == json.dumps(model.to_state())
    assert DPGMM.from_state(DPGMM().to_state()).to_state() == DPGMM().to_state()


def test_accessors_align():
    x, _ = stream(3, 2, 600, seed=8)
    model = DPGMM(seed=0).learn_many(x)
    assert model.centres.shape == (3, 2) and model.weights.shape == (3,) and model.covariances.shape == (3, 2)
    assert model.weights.sum() == pytest.approx(600.0)
    proba = model.predict_proba_many(x[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert model.predict_many(x[:5]).tolist() == model.cluster_ids[proba.argmax(axis=1)].tolist()
    full = DPGMM(covariance_type="full", seed=0).learn_many(x)
    assert full.covariances.shape == (3, 2, 2)
    assert "DPGMM(k=3" in repr(model)


# ---------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"covariance_type": "tied"}, "covariance_type must be one of diag, full, got 'tied'"),
    ({"alpha": 0}, "alpha must be a finite number > 0, got 0"),
    ({"alpha": float("nan")}, "alpha must be a finite number > 0"),
    ({"max_components": 0}, "max_components must be an integer >= 1, got 0"),
    ({"decay_factor": 1.5}, "decay_factor must be a number between 0 and 1, got 1.5"),
    ({"decay_factor": 0.5, "half_life": 3}, "give decay_factor or half_life, not both"),
    ({"half_life": -1}, "half_life must be a positive finite number, got -1"),
    ({"birth_threshold": 0}, "birth_threshold must be a finite number > 0 and <= 1, got 0"),
    ({"birth_min_count": 2.5}, "birth_min_count must be an integer >= 1, got 2.5"),
    ({"prior_variance": -1.0}, "prior_variance must be a finite number > 0, got -1.0"),
    ({"merge": "yes"}, "merge must be True or False, got 'yes'"),
    ({"seed": "x"}, "seed must be an integer, got 'x'"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DPGMM(**kwargs)


def test_bad_points_weights_stats_and_states():
    x, _ = stream(3, 2, 300, seed=1)
    model = DPGMM(seed=0).learn_many(x)
    with pytest.raises(ValueError, match="points must have 2 coordinates, got 3"):
        model.learn_many(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"point 1, coordinate 0 is nan"):
        model.learn_many([[0.0, 1.0], [float("nan"), 0.0]])
    with pytest.raises(ValueError, match="points must be a 2-D array"):
        model.predict_many([[[1.0]]])
    with pytest.raises(ValueError, match="points must be numbers"):
        model.learn_many([["a", "b"]])
    with pytest.raises(ValueError, match="x must be one point"):
        model.learn_one([[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"weights must hold one weight per point \(2\)"):
        model.learn_many(x[:2], [1.0])
    with pytest.raises(ValueError, match="weights must be finite and 0 or more"):
        model.learn_many(x[:2], [1.0, -1.0])
    stale = DPGMM.local_step(DPGMM().local_state(), x[:5])[1]
    with pytest.raises(ValueError, match="stats were computed against components"):
        model.global_step(stale)
    with pytest.raises(ValueError, match="statistics of different model states cannot be merged"):
        DPGMM.merge_stats(stale, DPGMM.local_step(model.local_state(), x[:5])[1])
    with pytest.raises(ValueError, match="stats lack"):
        model.global_step({"n": np.zeros(3)})
    with pytest.raises(ValueError, match="not a dpgmm state of version 1"):
        DPGMM.from_state({"model": "streaming_kmeans", "state_version": 1})
    state = model.to_state()
    with pytest.raises(ValueError, match="DPGMM state lacks prior"):
        DPGMM.from_state({key: value for key, value in state.items() if key != "prior"})
    with pytest.raises(ValueError, match=r"DPGMM state sums must be \(3, 2\) finite numbers"):
        DPGMM.from_state({**state, "sums": [[1.0, 2.0]]})
    with pytest.raises(ValueError, match="ids must be distinct and below next_id"):
        DPGMM.from_state({**state, "ids": [0, 0, 1]})


# ---------------------------------------------------------------------- helpers, purity, speed
def test_special_functions():
    import math

    values = np.array([1e-3, 0.5, 1.0, 2.5, 7.0, 30.0, 1e4])
    np.testing.assert_allclose(gammaln(values), [math.lgamma(v) for v in values], rtol=1e-12, atol=1e-12)
    step = 1e-6
    numeric = (np.array([math.lgamma(v + step) - math.lgamma(v - step) for v in values[1:]])) / (2 * step)
    np.testing.assert_allclose(digamma(values[1:]), numeric, rtol=1e-6, atol=1e-6)


def test_module_is_pure():
    forbidden = ("pyspark", "py4j", "kafka", "confluent_kafka", "psycopg2", "sqlalchemy", "flask", "bokeh", "sklearn", "scipy",
                 "river", "ssp.streaming", "ssp.storage", "ssp.web")
    names = []
    for node in ast.walk(ast.parse(SOURCE.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    assert not [name for name in names if name.split(".")[0] in forbidden or name in forbidden]


def test_update_record():
    update = DPGMMUpdate(3, 1.0, [5], {2: 1}, [], np.array([5]), 0, 2)
    assert update.relabel(np.array([2, -1, 1])).tolist() == [1, 5, 1]


def test_fast_enough():
    x, _ = stream(8, 10, 10_000, seed=3)
    model = DPGMM(seed=0)
    start = time.perf_counter()
    online(model, x, 1000)
    per_point_ms = (time.perf_counter() - start) / len(x) * 1e3
    assert per_point_ms < 1.0


def test_all_components_gone_and_too_few_candidates():
    rng = np.random.default_rng(3)
    model = DPGMM(seed=0, decay_factor=0.0).learn_many(rng.normal(0, 1, (200, 2)))
    assert model.k == 1
    labels = model.learn_predict_many(rng.normal(50, 1, (3, 2)))  # the old component gets nothing and dies
    assert labels.tolist() == [-1, -1, -1] and model.k == 0 and model.pending == 3
    assert model.last_update.deaths == [0]
    labels = model.learn_predict_many(rng.normal(50, 1, (30, 2)))
    assert model.k == 1 and model.cluster_ids.tolist() == [1] and (labels == 1).all()


def test_state_with_unknown_params_is_rejected():
    state = DPGMM().to_state()
    with pytest.raises(ValueError, match="unknown: \\['colour'\\]"):
        DPGMM.from_state({**state, "params": {**state["params"], "colour": "red"}})
