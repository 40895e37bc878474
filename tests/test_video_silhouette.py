"""ssp.video.silhouette: the exact O(N K) squared-Euclidean silhouette equals scikit-learn's
``silhouette_score(metric="sqeuclidean")`` to 1e-9 on small frames, the sampled Euclidean estimate is
within its stated error of scikit-learn's exact Euclidean value, and the diagram is drawn."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from sklearn.metrics import silhouette_samples, silhouette_score

import ssp.video.silhouette
from ssp.clustering.palette import FrameQuantiser
from ssp.sources.video import generated_frames
from ssp.video.silhouette import sampled_euclidean_silhouette, silhouette_png, squared_euclidean_silhouette


def test_the_doctests():
    assert doctest.testmod(ssp.video.silhouette).failed == 0


def quantised(scene: str, seed: int, width: int = 48, height: int = 27):
    *_, (index, frame) = generated_frames(seed + 1, scene=scene, seed=seed, width=width, height=height)
    result = FrameQuantiser(lambda_=2500.0, seed=seed, coreset_size=300).quantise(frame, index)
    return frame.reshape(-1, 3).astype(np.float64), result.labels.ravel(), result


@pytest.mark.parametrize("scene,seed", [("landscape", 0), ("landscape", 3), ("palette", 1)])
def test_exact_squared_euclidean_equals_scikit_learn(scene, seed):
    points, labels, _ = quantised(scene, seed)
    ours = squared_euclidean_silhouette(points, labels)
    assert ours.score == pytest.approx(silhouette_score(points, labels, metric="sqeuclidean"), abs=1e-9)
    np.testing.assert_allclose(ours.samples, silhouette_samples(points, labels, metric="sqeuclidean"),
                               rtol=0, atol=1e-9)


def test_singletons_and_arbitrary_label_values_follow_scikit_learn():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(40, 3)) * 20
    labels = np.where(np.arange(40) == 7, 99, rng.integers(0, 3, 40) * 5)  # one cluster of one point
    ours = squared_euclidean_silhouette(points, labels)
    assert ours.samples[7] == 0.0
    assert ours.score == pytest.approx(silhouette_score(points, labels, metric="sqeuclidean"), abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_sampled_euclidean_estimate_is_within_its_stated_error(seed):
    points, labels, _ = quantised("landscape", seed, width=64, height=36)
    exact = silhouette_score(points, labels, metric="euclidean")
    sampled = sampled_euclidean_silhouette(points, labels, sample=400, seed=seed)
    assert sampled.size == 400 and sampled.population == len(points) and sampled.standard_error > 0
    assert abs(sampled.score - exact) <= sampled.margin, sampled.line()
    # each sampled point's silhouette is exact (distances by the |x|^2 - 2 x.y + |y|^2 expansion: to 1e-7)
    np.testing.assert_allclose(sampled.samples, silhouette_samples(points, labels)[sampled.indices], rtol=0,
                               atol=1e-7)
    full = sampled_euclidean_silhouette(points, labels, sample=len(points) + 5)
    assert full.score == pytest.approx(exact, abs=1e-7) and full.standard_error == 0.0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="one label per point"):
        squared_euclidean_silhouette(np.zeros((3, 3)), [0, 1])
    with pytest.raises(ValueError, match="2 to n - 1 clusters"):
        squared_euclidean_silhouette(np.zeros((3, 3)), [0, 1, 2])
    with pytest.raises(ValueError, match="sample must be an integer >= 2"):
        sampled_euclidean_silhouette(np.arange(6.0).reshape(3, 2), [0, 0, 1], sample=1)


def test_the_diagram_is_a_png_that_names_its_metric(tmp_path):
    points, labels, result = quantised("palette", 0)
    exact = squared_euclidean_silhouette(points, labels)
    path = silhouette_png(tmp_path / "s.png", exact, result.palette.rgb(), title="frame 0",
                          sampled=sampled_euclidean_silhouette(points, labels, sample=100))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
