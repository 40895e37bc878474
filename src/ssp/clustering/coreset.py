"""The lightweight coreset (Bachem, Lucic & Krause, "Scalable k-Means Clustering via Lightweight
Coresets", KDD 2018): a few weighted points that stand for many in any k-means-like cost.

Every point ``x`` of ``n`` gets the sampling probability

    q(x) = 1 / (2 n)  +  d(x, mean)^2 / (2 * sum over y of d(y, mean)^2)

(half uniform, half by its squared distance to the data's mean, so far and rare points, such as a
small patch of a strong colour, are not missed); ``m`` points are drawn from ``q`` with replacement and
each draw weighs ``1 / (m q(x))``. The weighted cost of any set of centres on the coreset is then an
unbiased estimate of its cost on the whole data, and the weights add up to ``n`` in expectation. With
``m = O((d k log k + log(1/delta)) / eps^2)`` it is within ``eps`` of the cost of every ``k`` centres
with probability ``1 - delta`` (the paper's Theorem 2), whatever ``n`` is: :func:`coreset_size`.
Building it is two passes over the data, O(n d), pure numpy, seeded.

>>> points = np.array([[0.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 2.0]])
>>> probabilities(points).tolist()  # every point as far from the mean (1, 1): q is uniform
[0.25, 0.25, 0.25, 0.25]
>>> q = probabilities(np.array([[0.0], [0.0], [0.0], [4.0]]))  # mean 1: 1/8 + (1, 1, 1, 9) / (2 * 12)
>>> (q * 24).round(9).tolist()
[4.0, 4.0, 4.0, 12.0]
>>> core = lightweight_coreset(points, 3, seed=1)
>>> core.points.shape, core.weights.tolist()  # each of the 3 draws weighs 1 / (3 * 0.25)
((3, 2), [1.3333333333333333, 1.3333333333333333, 1.3333333333333333])
>>> lightweight_coreset(points, 3, seed=1).indices.tolist() == core.indices.tolist()  # seeded
True
>>> lightweight_coreset(points, 0)
Traceback (most recent call last):
...
ValueError: m (the coreset size) must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssp.clustering._checks import finite_points
from ssp.clustering.dpmeans import squared_distances

__all__ = ["Coreset", "coreset_size", "lightweight_coreset", "probabilities", "weighted_cost"]


@dataclass(frozen=True, eq=False)
class Coreset:
    """``m`` sampled ``points`` ``(m, d)``, their ``weights`` ``(m,)``, their rows in the data and their
    sampling probabilities ``q`` ``(m,)``."""

    points: np.ndarray
    weights: np.ndarray
    indices: np.ndarray
    q: np.ndarray

    def __len__(self) -> int:
        return len(self.points)

    def farthest_first(self) -> Coreset:
        """The same coreset with its points in decreasing distance to the data's mean (decreasing ``q``;
        draw order on a tie). DP-means opens clusters in row order: fed the far points first it opens the
        extreme colours before the middle ones, much as farthest-first seeding does, instead of letting
        the draw order decide which point of a gradient founds a cluster.

        >>> core = lightweight_coreset(np.array([[0.0], [0.0], [0.0], [4.0]]), 4, seed=3)
        >>> core.points[:, 0].tolist(), core.farthest_first().points[:, 0].tolist()
        ([0.0, 0.0, 4.0, 4.0], [4.0, 4.0, 0.0, 0.0])
        """
        order = np.argsort(-self.q, kind="stable")
        return Coreset(self.points[order], self.weights[order], self.indices[order], self.q[order])


def probabilities(points: Any) -> np.ndarray:
    """The lightweight coreset's sampling distribution ``q`` over the rows of ``points`` (it sums to 1).

    All points equal: no distance to share out, ``q`` is uniform.
    """
    array = finite_points(points, None)
    if len(array) == 0:
        raise ValueError("points must hold at least one point")
    return _probabilities(array)


def _probabilities(array: np.ndarray) -> np.ndarray:
    """:func:`probabilities` of a checked, non-empty float64 ``(n, d)`` array. The mean is the einsum sum over
    n (numpy's ``mean(axis=0)`` over a short second axis is 5x slower; on whole-number data, such as RGB
    pixels, both sums are exact, so the mean is the same to the bit)."""
    n = len(array)
    centred = array - np.einsum("nd->d", array) / n
    distances = np.einsum("nd,nd->n", centred, centred)
    total = float(distances.sum())
    if total <= 0.0:
        return np.full(n, 1.0 / n)
    distances *= 0.5  # in place, in the order of 0.5 / n + 0.5 * distances / total
    distances /= total
    distances += 0.5 / n
    return distances


def lightweight_coreset(points: Any, m: int, *, seed: int | np.random.Generator | None = 0) -> Coreset:
    """``m`` points drawn (with replacement) from ``q`` (:func:`probabilities`), each weighing ``1 / (m q)``.

    ``seed``: an integer (the same coreset every time) or a numpy ``Generator``. ``m`` may exceed the
    number of points (draws repeat); the weights always add up to about ``n``.
    """
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m (the coreset size) must be an integer >= 1, got {m!r}")
    array = finite_points(points, None)
    if len(array) == 0:
        raise ValueError("points must hold at least one point")
    q = _probabilities(array)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    # inverse-CDF draws: one cumulative sum and a binary search, no per-draw work
    cumulative = np.cumsum(q)
    cumulative /= cumulative[-1]
    indices = np.minimum(np.searchsorted(cumulative, rng.random(int(m)), side="right"), len(array) - 1)
    return Coreset(array[indices], 1.0 / (int(m) * q[indices]), indices.astype(np.int64), q[indices])


def weighted_cost(points: Any, centres: Any, weights: Any = None) -> float:
    """``sum of w * (squared distance to the nearest centre)``: the k-means part of the DP-means cost.

    >>> weighted_cost([[0.0], [3.0]], [[1.0]], [2.0, 1.0])
    6.0
    """
    array = finite_points(points, None)
    centre_array = finite_points(centres, array.shape[1])
    w = np.ones(len(array)) if weights is None else np.asarray(weights, dtype=np.float64)
    return float((w * squared_distances(array, centre_array).min(axis=1)).sum())


def coreset_size(k: int, *, dim: int = 3, eps: float = 0.1, delta: float = 0.1, n: int | None = None) -> int:
    """The coreset size of the lightweight coreset's guarantee, ``(dim k log k + log(1/delta)) / eps^2``
    (the paper's Theorem 2 with its constant taken as 1), for about ``k`` clusters in ``dim`` coordinates,
    at most ``n`` (the data's size) when given.

    >>> coreset_size(8)  # (3 * 8 * ln 8 + ln 10) / 0.01
    5221
    >>> coreset_size(8, eps=0.2, n=2000)
    1306
    >>> coreset_size(8, n=2000)
    2000
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if not 0 < eps < 1 or not 0 < delta < 1:
        raise ValueError(f"eps and delta must be in (0, 1), got eps={eps!r}, delta={delta!r}")
    size = math.ceil((dim * k * math.log(max(k, 2)) + math.log(1.0 / delta)) / eps**2)
    return size if n is None else min(size, int(n))
