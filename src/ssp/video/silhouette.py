"""Silhouettes of a quantised frame, labelled with their metric: exact squared-Euclidean in O(N K), and
Euclidean on a seeded sample with its standard error; and the silhouette diagram as a PNG.

The silhouette of point ``i`` in cluster ``A`` is ``s(i) = (b - a) / max(a, b)``, ``a`` the mean distance
to the other points of ``A``, ``b`` the smallest mean distance to the points of another cluster (0 for a
point alone in its cluster), and a clustering's score is the mean of ``s`` over the points, as in
scikit-learn's ``silhouette_score``.

**Squared Euclidean, exact, O(N K)** (the identity Spark's ``ClusteringEvaluator`` uses): the mean squared
distance of ``x`` to the ``n_C`` points of cluster ``C`` is

    (1 / n_C) sum_j |x - y_j|^2 = |x|^2 - 2 x . (S_C / n_C) + Q_C / n_C

with ``S_C`` the sum of ``C``'s points and ``Q_C`` the sum of their squared norms, so every point's mean
distance to every cluster comes from ``K`` counts, sums and sums of squares: one ``(N, K)`` matrix, no
pairwise distances (``a`` scales the own cluster's mean by ``n_A / (n_A - 1)``, leaving ``x`` out). The
points are centred on their mean first (distances do not change, the cancellation does).
**Euclidean, on a sample**: plain distances have no such identity, so ``s(i)`` is computed exactly
(against all N points) for a seeded uniform sample of ``m`` points; their mean estimates the frame's
score, with standard error ``sd(s) / sqrt(m) * sqrt(1 - m / N)`` (sampling without replacement).

>>> points = np.array([[0.0], [1.0], [10.0], [12.0]])
>>> labels = np.array([0, 0, 1, 1])
>>> exact = squared_euclidean_silhouette(points, labels)
>>> exact.samples.round(4).tolist()  # point 0: a = 1, b = (100 + 144) / 2 = 122, s = 121 / 122
[0.9918, 0.9901, 0.9558, 0.9698]
>>> round(exact.score, 6), exact.metric
(0.976879, 'squared Euclidean')
>>> sampled = sampled_euclidean_silhouette(points, labels, sample=4)
>>> round(sampled.score, 6), sampled.standard_error  # the sample is every point: no error
(0.856163, 0.0)
>>> squared_euclidean_silhouette(points, np.zeros(4, dtype=int))
Traceback (most recent call last):
...
ValueError: a silhouette needs 2 to n - 1 clusters (n = 4 points), got 1
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssp.clustering._checks import finite_points

__all__ = ["Silhouette", "SampledSilhouette", "sampled_euclidean_silhouette", "silhouette_png",
           "squared_euclidean_silhouette"]

_BLOCK = 16384  # points per block of the (N, K) matrix
_SAMPLE_BLOCK = 64  # sampled points per block of their (m, N) distances
Z99 = 2.5758293035489004  # the 99% two-sided normal quantile: the stated error is Z99 standard errors


@dataclass(frozen=True, eq=False)
class Silhouette:
    """Every point's silhouette ``samples`` ``(N,)``, their mean ``score`` and the ``metric``."""

    score: float
    samples: np.ndarray
    labels: np.ndarray
    metric: str


@dataclass(frozen=True, eq=False)
class SampledSilhouette:
    """The mean silhouette of ``size`` sampled points (``indices``) of ``population``, and its error."""

    score: float
    standard_error: float
    size: int
    population: int
    indices: np.ndarray
    samples: np.ndarray
    metric: str = "Euclidean"

    @property
    def margin(self) -> float:
        """The stated error: half the 99% interval, ``Z99`` standard errors."""
        return Z99 * self.standard_error

    def line(self) -> str:
        return (f"{self.metric} silhouette {self.score:.4f} +- {self.margin:.4f} (99%; standard error "
                f"{self.standard_error:.4f}, {self.size} of {self.population} points sampled)")


def _checked(points: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Points centred on their mean, labels as 0..K-1 and K; a ValueError for bad input."""
    array = finite_points(points, None)
    raw = np.asarray(labels)
    if raw.shape != (len(array),):
        raise ValueError(f"labels must hold one label per point ({len(array)}), got shape {raw.shape}")
    _, codes = np.unique(raw, return_inverse=True)
    k = int(codes.max()) + 1 if len(codes) else 0
    if not 2 <= k <= len(array) - 1:
        raise ValueError(f"a silhouette needs 2 to n - 1 clusters (n = {len(array)} points), got {k}")
    return array - array.mean(axis=0), codes.astype(np.int64), k


def _silhouettes(a: np.ndarray, b: np.ndarray, alone: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b - a) / np.maximum(a, b)
    s = np.nan_to_num(s)  # a = b = 0: 0, as scikit-learn
    s[alone] = 0.0
    return s


def squared_euclidean_silhouette(points: Any, labels: Any) -> Silhouette:
    """The exact squared-Euclidean silhouette of every point, from per-cluster counts, sums and sums of
    squares (see the module docstring); equal to scikit-learn's ``silhouette_score(metric="sqeuclidean")``."""
    array, codes, k = _checked(points, labels)
    counts = np.bincount(codes, minlength=k).astype(np.float64)
    norms = np.einsum("nd,nd->n", array, array)
    sums = np.zeros((k, array.shape[1]))
    np.add.at(sums, codes, array)
    means, mean_norms = sums / counts[:, None], np.bincount(codes, weights=norms, minlength=k) / counts
    samples = np.empty(len(array))
    for start in range(0, len(array), _BLOCK):
        rows = slice(start, start + _BLOCK)
        own = codes[rows]
        distances = norms[rows, None] - 2.0 * (array[rows] @ means.T) + mean_norms[None, :]
        np.maximum(distances, 0.0, out=distances)  # rounding can dip below 0
        a = distances[np.arange(len(own)), own] * counts[own] / np.maximum(counts[own] - 1, 1)
        distances[np.arange(len(own)), own] = np.inf
        samples[rows] = _silhouettes(a, distances.min(axis=1), counts[own] == 1)
    return Silhouette(float(samples.mean()), samples, codes, "squared Euclidean")


def sampled_euclidean_silhouette(points: Any, labels: Any, *, sample: int = 1000, seed: int = 0) -> SampledSilhouette:
    """The Euclidean silhouette of ``sample`` points drawn uniformly without replacement (seeded), each
    computed exactly against all the points; their mean estimates the whole set's score."""
    array, codes, k = _checked(points, labels)
    n = len(array)
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 2:
        raise ValueError(f"sample must be an integer >= 2, got {sample!r}")
    size = min(sample, n)
    indices = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    counts = np.bincount(codes, minlength=k).astype(np.float64)
    one_hot = np.zeros((n, k))
    one_hot[np.arange(n), codes] = 1.0
    norms = np.einsum("nd,nd->n", array, array)
    samples = np.empty(size)
    for start in range(0, size, _SAMPLE_BLOCK):
        chosen = indices[start:start + _SAMPLE_BLOCK]
        squared = norms[chosen, None] - 2.0 * (array[chosen] @ array.T) + norms[None, :]
        totals = np.sqrt(np.maximum(squared, 0.0)) @ one_hot  # (block, K) sums of distances per cluster
        own = codes[chosen]
        rows = np.arange(len(chosen))
        a = totals[rows, own] / np.maximum(counts[own] - 1, 1)
        means = totals / counts[None, :]
        means[rows, own] = np.inf
        samples[start:start + len(chosen)] = _silhouettes(a, means.min(axis=1), counts[own] == 1)
    spread = float(samples.std(ddof=1)) if size > 1 else 0.0
    error = spread / math.sqrt(size) * math.sqrt(max(0.0, 1.0 - size / n))
    return SampledSilhouette(float(samples.mean()), error, size, n, indices, samples)


def silhouette_png(path: Path | str, silhouette: Silhouette, colours: np.ndarray, *, title: str,
                   sampled: SampledSilhouette | None = None, max_rows: int = 4000) -> Path:
    """The silhouette diagram: one knife per cluster (its points' silhouettes sorted, drawn as horizontal
    bars, each cluster as thick as its share of the points), coloured by the cluster's RGB ``colours``
    ``(K, 3)`` uint8; the average as a dashed red line; the metric in the title and on the x axis. Drawn
    from at most ``max_rows`` quantiles of the points (every point when there are fewer)."""
    from ssp.charts import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(figsize=(8, 6), dpi=100)
    n, k = len(silhouette.samples), int(silhouette.labels.max()) + 1
    scale = min(1.0, max_rows / n)
    bottom = 0.0
    for cluster in range(k):
        values = np.sort(silhouette.samples[silhouette.labels == cluster])
        rows = max(1, int(round(len(values) * scale)))
        drawn = np.quantile(values, np.linspace(0, 1, rows)) if rows < len(values) else values
        heights = bottom + np.arange(len(drawn)) * (len(values) / len(drawn))
        colour = np.asarray(colours[cluster], dtype=np.float64) / 255.0
        axes.fill_betweenx(heights, 0, drawn, facecolor=colour, edgecolor=colour * 0.7, linewidth=0.3)
        axes.text(-0.05, bottom + len(values) / 2, str(cluster), ha="right", va="center", fontsize=8)
        bottom += len(values) + n * 0.01
    axes.axvline(silhouette.score, color="red", linestyle="--", linewidth=1.5,
                 label=f"average {silhouette.score:.4f} ({silhouette.metric})")
    if sampled is not None:
        axes.axvline(sampled.score, color="grey", linestyle=":", linewidth=1.2,
                     label=f"{sampled.metric}: {sampled.score:.4f} +- {sampled.margin:.4f} (99%, {sampled.size} sampled)")
    axes.set_xlabel(f"silhouette coefficient ({silhouette.metric} distance, every one of the {n:,} pixels)")
    axes.set_ylabel("pixels, by colour cluster")
    axes.set_yticks([])
    axes.set_xlim(min(-0.1, float(silhouette.samples.min()) - 0.05), 1.0)
    axes.set_title(title, fontsize=10)
    axes.legend(loc="lower right", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    return path
