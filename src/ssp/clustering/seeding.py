"""Choosing initial centres from data: k-means++ (Arthur & Vassilvitskii, 2007), seeded and weighted.

Each next centre is a point drawn with probability proportional to its weight times its squared
distance to the nearest centre chosen so far, so centres start spread over the data instead of
where random draws put them. Deterministic for a seed:

>>> import numpy as np
>>> points = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 10.0], [10.1, 10.0], [-10.0, 5.0]])
>>> centres = kmeans_plus_plus(points, 3, seed=1)
>>> sorted(np.round(centres).tolist())  # one centre in each of the three groups
[[-10.0, 5.0], [0.0, 0.0], [10.0, 10.0]]
>>> bool((kmeans_plus_plus(points, 3, seed=1) == centres).all())
True

With fewer distinct points than ``k``, the remaining centres repeat chosen ones (the streaming
k-means split rule later moves them apart):

>>> kmeans_plus_plus([[1.0], [1.0]], 2, seed=0).tolist()
[[1.0], [1.0]]
>>> kmeans_plus_plus([], 2)
Traceback (most recent call last):
...
ValueError: k-means++ needs at least one point, got none
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["kmeans_plus_plus"]


def kmeans_plus_plus(points: Any, k: int, *, seed: int = 0, weights: Any = None) -> np.ndarray:
    """``k`` centres chosen from ``points`` (an ``(n, dim)`` array) by weighted k-means++ seeding."""
    array = np.asarray(points, dtype=np.float64)
    if array.size == 0:
        raise ValueError("k-means++ needs at least one point, got none")
    if array.ndim != 2 or not np.isfinite(array).all():
        raise ValueError(f"points must be an (n, dim) array of finite numbers, got shape {array.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer of 1 or more, got {k!r}")
    w = np.ones(len(array)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(array),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be one finite, non-negative weight per point, not all zero")
    rng = np.random.default_rng(seed)
    chosen = [int(rng.choice(len(array), p=w / w.sum()))]
    nearest = ((array - array[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(1, k):
        mass = w * nearest
        total = mass.sum()
        if total <= 0:  # every point sits on a chosen centre: repeat them
            chosen.append(chosen[-1])
            continue
        index = int(rng.choice(len(array), p=mass / total))
        chosen.append(index)
        nearest = np.minimum(nearest, ((array - array[index]) ** 2).sum(axis=1))
    return array[chosen].copy()
