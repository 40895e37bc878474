"""ssp.clustering.coreset: the lightweight coreset (Bachem, Lucic & Krause 2018) on seeded frames.

The DP-means cost of a whole frame under the centres fitted on its coreset (farthest points first, as the
palette fits them) is within 5% of the cost under the centres fitted on the whole frame; the weights add
up to about the frame's pixel count; the coreset's weighted cost of fixed centres estimates the frame's;
the warm start of DP-means."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import ssp.clustering.coreset
from ssp.clustering.coreset import coreset_size, lightweight_coreset, probabilities, weighted_cost
from ssp.clustering.dpmeans import DPMeans
from ssp.sources.video import generated_frames

LAMBDA = 2500.0


def test_the_doctests():
    assert doctest.testmod(ssp.clustering.coreset).failed == 0


def frame(scene: str, seed: int, index: int) -> np.ndarray:
    *_, (_, pixels) = generated_frames(index + 1, scene=scene, seed=seed, width=213, height=113)
    return pixels.reshape(-1, 3).astype(np.float64)


def dp_cost(points: np.ndarray, centres: np.ndarray) -> float:
    return weighted_cost(points, centres) + LAMBDA * len(centres)


@pytest.mark.parametrize("scene", ["landscape", "palette"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coreset_centres_cost_the_frame_within_5_percent_of_the_full_fit(scene, seed):
    points = frame(scene, seed, 7 * seed + 3)
    full = DPMeans(lambda_=LAMBDA).fit(points)
    core = lightweight_coreset(points, 1000, seed=seed)
    ordered = core.farthest_first()
    on_core = DPMeans(lambda_=LAMBDA).fit(ordered.points, ordered.weights)
    assert dp_cost(points, on_core.centres) <= 1.05 * dp_cost(points, full.centres)
    assert core.weights.sum() == pytest.approx(len(points), rel=0.03)
    assert len(core) == 1000 and (core.points == points[core.indices]).all()


def test_the_weighted_cost_of_fixed_centres_is_estimated():
    points = frame("landscape", 4, 10)
    centres = DPMeans(lambda_=LAMBDA).fit(points).centres
    estimates = [weighted_cost(c.points, centres, c.weights)
                 for c in (lightweight_coreset(points, 2000, seed=s) for s in range(5))]
    exact = weighted_cost(points, centres)
    assert abs(np.mean(estimates) / exact - 1) < 0.05


def test_probabilities_are_half_uniform_half_by_distance():
    points = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])  # mean (1, 4/3)
    q = probabilities(points)
    distances = ((points - points.mean(axis=0)) ** 2).sum(axis=1)
    np.testing.assert_allclose(q, 1 / 6 + distances / (2 * distances.sum()), rtol=0, atol=1e-15)
    assert q.sum() == pytest.approx(1.0, abs=1e-12)
    assert probabilities([[5.0, 5.0]] * 4).tolist() == [0.25] * 4


def test_seeded_and_generator_draws():
    points = frame("palette", 0, 0)
    a, b = lightweight_coreset(points, 300, seed=9), lightweight_coreset(points, 300, seed=9)
    assert a.indices.tolist() == b.indices.tolist()
    assert a.indices.tolist() != lightweight_coreset(points, 300, seed=10).indices.tolist()
    generator = lightweight_coreset(points, 300, seed=np.random.default_rng(9))
    assert generator.indices.tolist() == a.indices.tolist()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="m \\(the coreset size\\) must be an integer >= 1"):
        lightweight_coreset([[1.0]], 2.5)
    with pytest.raises(ValueError, match="points must be finite"):
        lightweight_coreset([[1.0], [float("inf")]], 2)
    with pytest.raises(ValueError, match="at least one point"):
        probabilities(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="eps and delta"):
        coreset_size(8, eps=1.5)


def test_coreset_size_follows_the_bound():
    assert coreset_size(8) == 5221
    assert coreset_size(16) > coreset_size(8) > coreset_size(8, eps=0.2)
    assert coreset_size(8, n=700) == 700


def test_dp_means_warm_start_keeps_the_surviving_centres_first():
    points = np.array([[0.0], [1.0], [10.0], [11.0], [30.0]])
    model = DPMeans(lambda_=4).fit(points, init=[[10.0], [50.0]])
    # 50 takes no point and is dropped; 0 and 30 are beyond 4 of 10 and open clusters behind it
    assert model.centres.tolist() == [[10.5], [0.5], [30.0]]
    with pytest.raises(ValueError, match="init must have 1 coordinates"):
        DPMeans(lambda_=4).fit(points, init=[[1.0, 2.0]])
