"""Choosing k from a k-means sweep: the kneedle elbow of the WCSS curve, the silhouette as a tie-break.

Pure numpy: the sweep (one k-means fit per k) runs elsewhere (``ssp.users.pipeline`` on Spark ML); this
module only reads its figures and states the rule it applied, so a tracked run can say why it chose k.

The rule (:data:`RULE`), after Satopää et al., "Finding a 'Kneedle' in a Haystack" (2011):

1. Scale the ks and the WCSS values to [0, 1] (the WCSS falls as k grows).
2. The elbow is where the curve lies farthest below the straight line from its first to its last point:
   ``d(k) = (1 - wcss_scaled(k)) - k_scaled(k)`` is largest there.
3. Every k whose ``d`` is within ``tolerance`` of the largest is a candidate; among candidates the highest
   silhouette wins (then the smaller k).

A curve that falls sharply until k = 4 and then flattens has its elbow at 4:

>>> choice = choose_k([2, 3, 4, 5, 6, 7], [100.0, 55.0, 12.0, 10.5, 9.5, 9.0],
...                   [0.41, 0.52, 0.71, 0.60, 0.55, 0.50])
>>> choice.k, choice.candidates
(4, (4,))
>>> [round(d, 3) for d in choice.distances]
[0.0, 0.295, 0.567, 0.384, 0.195, 0.0]
>>> print(choice.line())
k = 4 by the kneedle elbow of WCSS over k = 2..7 (candidates within 0.05 of the largest distance: 4; silhouette 0.710)

Two near-equal elbows are settled by the silhouette:

>>> choose_k([2, 3, 4, 5], [10.0, 4.0, 3.95, 1.0], [0.3, 0.6, 0.2, 0.4], tolerance=0.2).k
3

Bad sweeps get a clear error:

>>> choose_k([2, 3], [5.0, 4.0], [0.1, 0.2])
Traceback (most recent call last):
...
ValueError: choosing k needs at least 3 values of k, got 2
>>> choose_k([2, 3, 3], [5.0, 4.0, 3.0], [0.1, 0.2, 0.3])
Traceback (most recent call last):
...
ValueError: ks must be strictly increasing, got [2, 3, 3]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["RULE", "KChoice", "adjusted_rand_index", "choose_k", "kneedle_distances"]

RULE = ("kneedle elbow of WCSS (the k farthest below the chord from the first to the last k, both axes "
        "scaled to [0, 1]); ks within `tolerance` of the largest distance are candidates and the highest "
        "silhouette among them wins, then the smaller k")


@dataclass(frozen=True)
class KChoice:
    """The k chosen from a sweep, with what the rule saw."""

    k: int
    ks: tuple[int, ...]
    wcss: tuple[float, ...]
    silhouette: tuple[float, ...]
    distances: tuple[float, ...]
    candidates: tuple[int, ...]
    tolerance: float
    rule: str = RULE

    def line(self) -> str:
        index = self.ks.index(self.k)
        return (f"k = {self.k} by the kneedle elbow of WCSS over k = {self.ks[0]}..{self.ks[-1]} (candidates "
                f"within {self.tolerance:g} of the largest distance: {', '.join(map(str, self.candidates))}; "
                f"silhouette {self.silhouette[index]:.3f})")


def _curve(ks: Sequence[int], values: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(list(ks), dtype=np.float64)
    y = np.asarray(list(values), dtype=np.float64)
    if x.ndim != 1 or len(x) < 3:
        raise ValueError(f"choosing k needs at least 3 values of k, got {len(x)}")
    if len(y) != len(x):
        raise ValueError(f"{name} has {len(y)} values for {len(x)} values of k")
    if not np.all(np.diff(x) > 0):
        raise ValueError(f"ks must be strictly increasing, got {[int(k) for k in x]}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} must be finite numbers, got {list(values)}")
    return x, y


def kneedle_distances(ks: Sequence[int], wcss: Sequence[float]) -> np.ndarray:
    """How far below the chord each point of the falling WCSS curve lies, both axes scaled to [0, 1].

    >>> kneedle_distances([1, 2, 3], [9.0, 1.0, 0.0]).round(3).tolist()
    [0.0, 0.389, 0.0]
    >>> kneedle_distances([1, 2, 3], [1.0, 1.0, 1.0]).tolist()  # a flat curve has no elbow
    [0.0, 0.0, 0.0]
    """
    x, y = _curve(ks, wcss, "wcss")
    span = y.max() - y.min()
    if span == 0:
        return np.zeros_like(y)
    x_scaled = (x - x[0]) / (x[-1] - x[0])
    fallen = (y.max() - y) / span  # rises from 0 to 1 as the WCSS falls
    return np.maximum(fallen - x_scaled, 0.0)


def choose_k(ks: Sequence[int], wcss: Sequence[float], silhouette: Sequence[float],
             tolerance: float = 0.05) -> KChoice:
    """The k the rule (:data:`RULE`) picks from a sweep's WCSS and silhouette per k."""
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    distances = kneedle_distances(ks, wcss)
    _, scores = _curve(ks, silhouette, "silhouette")
    ks_int = tuple(int(k) for k in ks)
    best = distances.max()
    candidates = [i for i, d in enumerate(distances) if d >= best - tolerance]
    # highest silhouette first, then the smaller k
    chosen = min(candidates, key=lambda i: (-scores[i], ks_int[i]))
    return KChoice(
        k=ks_int[chosen], ks=ks_int, wcss=tuple(float(v) for v in wcss),
        silhouette=tuple(float(s) for s in scores), distances=tuple(float(d) for d in distances),
        candidates=tuple(ks_int[i] for i in candidates), tolerance=float(tolerance),
    )


def adjusted_rand_index(truth: Sequence, found: Sequence) -> float:
    """How well a clustering ``found`` matches the labels ``truth``, corrected for chance (Hubert & Arabie
    1985): 1 for the same partition whatever the cluster names, about 0 for a random one.

    >>> adjusted_rand_index(["a", "a", "b", "b"], [1, 1, 0, 0])
    1.0
    >>> round(adjusted_rand_index([0, 0, 1, 1, 2, 2], [0, 0, 1, 2, 2, 2]), 3)
    0.444
    """
    truth_codes = np.unique(np.asarray(list(truth)), return_inverse=True)[1]
    found_codes = np.unique(np.asarray(list(found)), return_inverse=True)[1]
    if len(truth_codes) != len(found_codes):
        raise ValueError(f"truth has {len(truth_codes)} labels, found {len(found_codes)}")
    table = np.zeros((truth_codes.max() + 1, found_codes.max() + 1), dtype=np.float64)
    np.add.at(table, (truth_codes, found_codes), 1)

    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1) / 2).sum())

    together, rows, columns = pairs(table), pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    total = len(truth_codes) * (len(truth_codes) - 1) / 2
    expected = rows * columns / total if total else 0.0
    top = (rows + columns) / 2
    return 1.0 if top == expected else (together - expected) / (top - expected)
