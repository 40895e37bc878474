"""DP-means (Kulis & Jordan, 2012): k-means that opens a cluster when a point is too far from every centre.

DP-means minimises ``sum of squared distances + lambda * K``: the number of clusters ``K`` is not
given, a point whose squared distance to every centre exceeds ``lambda`` opens a new cluster (it is
the small-variance limit of a Dirichlet-process Gaussian mixture). :class:`DPMeans` does it both ways:

* batch, :meth:`DPMeans.fit` (the paper's algorithm run to convergence): start from one cluster at the
  (weighted) mean; every pass opens clusters for the points beyond ``lambda`` of every centre (several
  per pass, in row order: a far point opens one, the later far points within ``lambda`` of it join
  it), assigns every point to its nearest centre, recomputes the weighted means and drops empty
  clusters, until the assignments stop changing (at most ``max_iter`` passes). Each step lowers the
  objective, so it converges (to a local optimum). No merges: that is the paper's objective, whose
  optimum splits big clusters when ``lambda`` is small next to their points' total spread (splitting
  ``n`` Gaussian points in two saves about ``0.64 n sigma^2`` in 2-D, more than a small ``lambda``);
* online, :meth:`DPMeans.learn_many` / :meth:`~DPMeans.learn_one` (a batch of one point): one batch
  is one step of the "optimistic concurrency" distributed DP-means (Pan et al., 2013), in two halves
  that a stream job runs apart, the first on its executors and the second on its driver:

  1. :meth:`DPMeans.local_step` (pure, per task, against :meth:`~DPMeans.local_state`): each point
     within ``lambda`` of its nearest centre is labelled with that centre's id and adds to its
     cluster's weighted count and coordinate sum; the others are *candidates* (label -1), kept in
     row order. :meth:`DPMeans.merge_stats` adds the tasks' sums and concatenates their candidates
     in order;
  2. :meth:`DPMeans.global_step` (the driver): forgets (every weight times ``decay_factor``), folds
     the sums into the centres as weighted running means (``c <- (w c + sum) / (w + count)``),
     retires dead clusters (below), then validates the candidates one by one in order: a candidate
     beyond ``lambda`` of every centre (the existing ones and those the earlier candidates opened)
     opens a cluster at itself, the others join the nearest. A candidate that joins a cluster moves
     its centre (weighted running mean, as the sums did) before the next candidate is compared, so a
     new cluster's centre is its members' weighted mean, and a cluster's first points do not split it
     because its founder sat at its edge;
  3. merges (``merge_within``, default 1; 0 turns them off): two clusters whose centres have come within
     ``merge_within * lambda`` (squared distance) of each other are merged, closest pair first, the
     lighter into the heavier (on equal weight the younger into the older), at their weighted mean. A
     centre within lambda of another would itself have joined it, by the birth rule; without merges a
     cluster born from an outlier next to a real one lives on beside it, halving it. :class:`DPUpdate`
     lists merged ids among the deaths and maps each to its survivor in ``merges``.

  :meth:`~DPMeans.learn_predict_many` returns each point's final id (:meth:`DPUpdate.relabel`: the
  candidates' from the driver, and ids merged away in the step replaced by their survivors).

Weights: a point of weight ``w`` counts as ``w`` points (``w`` copies of it), so it opens a cluster
on the same distance rule as any point, and adds ``w`` to its cluster's weight and ``w x`` to its sum.

Forgetting is per batch, as :class:`~ssp.clustering.streaming_kmeans.StreamingKMeans`'s
``time_unit="batches"``: ``decay_factor`` ``a`` in [0, 1] (default 1, never forget) or
``half_life`` ``h`` (``a = 0.5 ** (1 / h)``); an empty batch still forgets. Retirement is optional:
with ``retire_below=f > 0`` a cluster whose weight falls below ``f`` times the total weight (after
forgetting and folding the batch's sums, before its candidates are validated, so a cluster opened in
a batch lives at least until the next) is retired: its centre and weight are dropped, its id is never
used again. The heaviest cluster is never retired. With no forgetting weights never shrink, but a
cluster's share still does when it stops getting points.

Identities: each cluster gets an integer id when it opens, from a counter kept in the state, and
keeps it while it lives; ids of retired or merged clusters are never reused. :attr:`~DPMeans.cluster_ids`
lists the live ones, :attr:`~DPMeans.centres` and :attr:`~DPMeans.weights` are aligned with it.

Lambda can come from an approximate number of clusters: ``DPMeans(k=...)`` derives it from the first
batch (or :meth:`~DPMeans.fit`'s data) with :func:`lambda_from_k`, the farthest-first heuristic.

Worked by hand, batch: four points on a line and ``lambda = 4``. The first pass starts from the mean
5.5, at squared distance 30.25 or 20.25 of every point, all beyond 4: 0 opens a cluster, 1 joins it
(distance 1), 10 opens another, 11 joins it; the mean's cluster ends empty and is dropped; the means
are 0.5 and 10.5, every point is 0.25 from its own, and the second pass changes nothing:

>>> model = DPMeans(lambda_=4).fit([[0], [1], [10], [11]])
>>> model.centres.tolist(), model.labels_.tolist(), model.cluster_ids.tolist(), model.weights.tolist()
([[0.5], [10.5]], [0, 0, 1, 1], [0, 1], [2.0, 2.0])
>>> DPMeans(lambda_=200).fit([[0], [1], [10], [11]]).centres.tolist()  # nothing beyond 200 of 5.5
[[5.5]]

Online, by hand (``lambda = 4``): the first batch has no centres, so every point is a candidate: 0
opens cluster 0, 1 joins it (1 <= 4), 10 opens cluster 1. In the second batch, 11 is within 4 of 10
(label 1) and 5 is beyond 4 of both centres (candidate): the driver folds 11 into cluster 1
(``(1 * 10 + 11) / 2 = 10.5``) and 5, still 20.25 and 30.25 away, opens cluster 2:

>>> online = DPMeans(lambda_=4)
>>> online.learn_predict_many([[0], [1], [10]]).tolist()
[0, 0, 1]
>>> online.centres.tolist(), online.weights.tolist()
([[0.5], [10.0]], [2.0, 1.0])
>>> labels, stats = DPMeans.local_step(online.local_state(), [[11], [5]])
>>> labels.tolist(), stats["counts"].tolist(), stats["candidates"].tolist()
([1, -1], [0.0, 1.0], [[5.0]])
>>> update = online.global_step(stats)
>>> update.births, update.deaths, update.candidate_labels.tolist()
([2], [], [2])
>>> online.centres.tolist(), online.weights.tolist(), online.predict_one([6])
([[0.5], [10.5], [5.0]], [2.0, 2.0, 1.0], 2)

Forgetting and retirement: with ``decay_factor=0.5`` and ``retire_below=0.2``, cluster 0 gets no
point in the second batch: its weight halves to 0.5, below 0.2 of the total 3.5, and it is retired:

>>> fading = DPMeans(lambda_=4, decay_factor=0.5, retire_below=0.2)
>>> fading.learn_many([[0], [10], [10]]).weights.tolist()
[1.0, 2.0]
>>> fading.learn_many([[10], [10]]).last_update.deaths, fading.cluster_ids.tolist(), fading.weights.tolist()
([0], [1], [3.0])

The state is plain JSON and restores exactly:

>>> import json
>>> twin = DPMeans.from_state(json.loads(json.dumps(online.to_state())))
>>> twin.cluster_ids.tolist(), bool((twin.centres == online.centres).all()), twin.lambda_
([0, 1, 2], True, 4.0)
>>> DPMeans(lambda_=-1)
Traceback (most recent call last):
...
ValueError: lambda_ must be a finite number > 0, got -1
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssp.clustering._checks import finite_points as _points
from ssp.clustering._checks import preview as _preview
from ssp.clustering.streaming_kmeans import resolve_forgetting

__all__ = ["DPMeans", "DPUpdate", "lambda_from_k", "squared_distances"]

STATE_MODEL = "dpmeans"
STATE_VERSION = 1
STAT_KEYS = ("ids", "counts", "sums", "points", "candidates", "candidate_weights")
_BLOCK = 4096  # rows per block of direct distance computation (bounded memory, chunking-independent results)


# ---------------------------------------------------------------------- helpers
def squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The ``(n, k)`` squared Euclidean distances of ``points`` ``(n, d)`` to ``centres`` ``(k, d)``.

    Computed as differences (not ``|x|^2 - 2 x.c + |c|^2``), block by block, so each row is the same
    whatever batch it comes in and the comparisons with lambda do not suffer cancellation.

    >>> squared_distances(np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 0.0], [3.0, 0.0]])).tolist()
    [[0.0, 9.0], [25.0, 16.0]]
    """
    out = np.empty((len(points), len(centres)))
    for start in range(0, len(points), _BLOCK):
        block = points[start:start + _BLOCK]
        diff = block[:, None, :] - centres[None, :, :]
        out[start:start + _BLOCK] = np.einsum("nkd,nkd->nk", diff, diff)
    return out


def _nearest(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's nearest centre index (lowest on a tie) and squared distance; inf and -1 with no centre."""
    if len(centres) == 0 or len(points) == 0:
        return np.full(len(points), -1, dtype=np.int64), np.full(len(points), np.inf)
    distances = squared_distances(points, centres)
    index = distances.argmin(axis=1)
    return index.astype(np.int64), distances[np.arange(len(points)), index]


def _open_clusters(candidates: np.ndarray, index: np.ndarray, best: np.ndarray, lambda_: float,
                   first_new: int) -> list[int]:
    """Validate ``candidates`` in row order (in place): each one beyond ``lambda_`` of every centre
    (``best`` is its squared distance to the nearest one so far, ``index`` that centre) opens a centre at
    itself, numbered ``first_new`` onwards, which the later candidates see. Returns the founders' rows.

    Equivalent to looping over the candidates one by one, but each birth costs one vectorised pass over
    the candidates after it, and a candidate no birth reaches costs nothing."""
    founders: list[int] = []
    start = 0
    while start < len(candidates):
        beyond = np.flatnonzero(best[start:] > lambda_)
        if not beyond.size:
            break
        row = start + int(beyond[0])
        founders.append(row)
        index[row], best[row] = first_new + len(founders) - 1, 0.0
        later = candidates[row + 1:]
        if len(later):
            distance = squared_distances(later, candidates[row:row + 1])[:, 0]
            closer = distance < best[row + 1:]  # strictly: on a tie the earlier centre stays
            best[row + 1:][closer] = distance[closer]
            index[row + 1:][closer] = index[row]
        start = row + 1
    return founders


def _weighted_sums(points: np.ndarray, weights: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray,
                                                                                                 np.ndarray]:
    """Per-cluster weighted counts ``(k,)`` and weighted coordinate sums ``(k, d)`` of the labelled points."""
    dim = points.shape[1]
    counts = np.bincount(labels, weights=weights, minlength=k).astype(np.float64)
    if len(points) == 0 or dim == 0:
        return counts, np.zeros((k, dim))
    flat = (labels[:, None] * dim + np.arange(dim)).ravel()
    sums = np.bincount(flat, weights=(points * weights[:, None]).ravel(), minlength=k * dim).reshape(k, dim)
    return counts, sums




def _point_weights(value: Any, n: int) -> np.ndarray:
    if value is None:
        return np.ones(n)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"weights must be numbers, got {_preview(value)} ({err})") from None
    if array.shape != (n,):
        raise ValueError(f"weights must hold one weight per point ({n}), got shape {array.shape}")
    if not np.isfinite(array).all() or (array <= 0).any():
        raise ValueError(f"weights must be finite numbers > 0, got {_preview(array.tolist())}")
    return array




def _positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


def _count(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------- lambda from k
def lambda_from_k(points: Any, k: int, *, seed: int = 0) -> float:
    """Lambda for about ``k`` clusters, by Kulis & Jordan's farthest-first heuristic.

    Start from one point drawn at random (seeded; the paper starts from the global mean), then add
    ``k`` times the point farthest from the chosen set; lambda is the squared distance of the ``k``-th
    added point to the points chosen before it. Every point is then within ``sqrt(lambda)`` of the start
    and the first ``k - 1`` added points, so about ``k`` centres cover the data at that scale.

    Four points in two pairs: whatever the start, the first added point is in the other pair, and the
    second is the start's neighbour (distance 1), so ``k=2`` gives 1, and DP-means with it two clusters:

    >>> lambda_from_k([[0], [1], [10], [11]], 2, seed=5)
    1.0
    >>> lambda_from_k([[0], [1], [10], [11]], 1, seed=5) in (100.0, 121.0)  # start 1 or 0: 11 is farthest
    True
    >>> lambda_from_k([[0], [0], [1]], 2)
    Traceback (most recent call last):
    ...
    ValueError: farthest-first found fewer than 3 distinct points for k=2; give lambda_ instead
    """
    k = _count("k", k)
    array = _points(points, None)
    if len(array) < k + 1:
        raise ValueError(f"farthest-first for k={k} needs at least {k + 1} points, got {len(array)}")
    _count("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    start = int(rng.integers(len(array)))
    nearest = squared_distances(array, array[start:start + 1])[:, 0]
    farthest = 0.0
    for _ in range(k):
        chosen = int(nearest.argmax())
        farthest = float(nearest[chosen])
        if farthest <= 0.0:
            raise ValueError(f"farthest-first found fewer than {k + 1} distinct points for k={k}; give lambda_ instead")
        nearest = np.minimum(nearest, squared_distances(array, array[chosen:chosen + 1])[:, 0])
    return farthest


# ---------------------------------------------------------------------- the model
@dataclass(frozen=True, eq=False)
class DPUpdate:
    """What one :meth:`DPMeans.global_step` did.

    ``births``: the ids of the clusters it opened; ``deaths``: the ids that stopped living (retired, or
    merged into another), so the live ids are the previous ones plus births minus deaths; ``merges``:
    ``{absorbed id: surviving id}`` for the merged ones (the survivor is final: chains are resolved);
    ``candidate_labels``: the final cluster id of each candidate, in candidate order (after merges).
    """

    births: list[int] = field(default_factory=list)
    deaths: list[int] = field(default_factory=list)
    candidate_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    merges: dict[int, int] = field(default_factory=dict)

    def relabel(self, labels: Any) -> np.ndarray:
        """``labels`` from :meth:`DPMeans.local_step` (in batch order) made final: the -1 entries replaced by
        ``candidate_labels`` in order, and ids merged away in this step replaced by their survivors."""
        out = np.array(labels, dtype=np.int64)
        holes = out < 0
        if int(holes.sum()) != len(self.candidate_labels):
            raise ValueError(f"labels have {int(holes.sum())} candidates (-1), the update {len(self.candidate_labels)}")
        out[holes] = self.candidate_labels
        for absorbed, survivor in self.merges.items():
            out[out == absorbed] = survivor
        return out


class DPMeans:
    """DP-means, batch and online; see the module docstring.

    ``lambda_`` > 0 is the squared distance beyond which a point opens a cluster; or give ``k``, an
    approximate number of clusters, and lambda comes from the first batch by :func:`lambda_from_k`
    (seeded by ``seed``). Forgetting per batch: ``decay_factor`` in [0, 1] or ``half_life`` > 0
    (batches). ``retire_below`` in [0, 1): retire clusters below that share of the total weight
    (0, the default, never retires). ``merge_within`` in [0, 1]: merge online clusters whose centres
    come within that fraction of lambda (0 never merges). ``max_iter`` bounds :meth:`fit`'s passes.
    """

    def __init__(
        self,
        lambda_: float | None = None,
        *,
        k: int | None = None,
        decay_factor: float | None = None,
        half_life: float | None = None,
        retire_below: float = 0.0,
        merge_within: float = 1.0,
        max_iter: int = 100,
        seed: int = 0,
    ) -> None:
        if (lambda_ is None) == (k is None):
            raise ValueError("give lambda_ (the squared distance that opens a cluster) or k (to derive it), "
                             "exactly one of them")
        self.lambda_ = None if lambda_ is None else _positive("lambda_", lambda_)
        self.k = None if k is None else _count("k", k)
        decay_factor = resolve_forgetting(decay_factor, half_life)
        if isinstance(retire_below, bool) or not isinstance(retire_below, (int, float)) \
                or not 0.0 <= retire_below < 1.0:
            raise ValueError(f"retire_below must be a number in [0, 1), got {retire_below!r}")
        if isinstance(merge_within, bool) or not isinstance(merge_within, (int, float)) \
                or not 0.0 <= merge_within <= 1.0:
            raise ValueError(f"merge_within must be a number in [0, 1], got {merge_within!r}")
        self.merge_within = float(merge_within)
        self.decay_factor = float(decay_factor)
        self.half_life = None if half_life is None else float(half_life)
        self.retire_below = float(retire_below)
        self.max_iter = _count("max_iter", max_iter)
        self.seed = _count("seed", seed, minimum=0)
        self.dim: int | None = None
        self.next_id = 0
        self.n_batches = 0
        self.n_points = 0
        self.last_update: DPUpdate | None = None
        self.labels_: np.ndarray | None = None
        self._ids = np.zeros(0, dtype=np.int64)
        self._centres = np.zeros((0, 0))
        self._weights = np.zeros(0)

    # ------------------------------------------------------------------ reading
    @property
    def initialised(self) -> bool:
        """Always True: DP-means needs no initial centres, its first points open its clusters (the stream
        jobs ask k-means and DP-means the same question)."""
        return True

    @property
    def cluster_ids(self) -> np.ndarray:
        """The live clusters' ids, in the order they opened (int64)."""
        return self._ids.copy()

    @property
    def centres(self) -> np.ndarray:
        """A copy of the ``(K, dim)`` centres, row ``i`` the cluster ``cluster_ids[i]``."""
        return self._centres.copy()

    @property
    def weights(self) -> np.ndarray:
        """A copy of the ``(K,)`` cluster weights (discounted weighted point counts), aligned with ``cluster_ids``."""
        return self._weights.copy()

    @property
    def n_clusters(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        scale = f"lambda_={self.lambda_:g}" if self.lambda_ is not None else f"k={self.k}"
        return (f"DPMeans({scale}, decay_factor={self.decay_factor:g}, clusters={self.n_clusters}, "
                f"batches={self.n_batches}, points={self.n_points})")

    def _set_clusters(self, ids: np.ndarray, centres: np.ndarray, weights: np.ndarray) -> None:
        self._ids = np.asarray(ids, dtype=np.int64)
        self._centres = np.asarray(centres, dtype=np.float64)
        self._weights = np.asarray(weights, dtype=np.float64)

    def _new_ids(self, count: int) -> np.ndarray:
        ids = np.arange(self.next_id, self.next_id + count, dtype=np.int64)
        self.next_id += count
        return ids

    # ------------------------------------------------------------------ batch
    def fit(self, points: Any, weights: Any = None, *, init: Any = None) -> DPMeans:
        """Batch DP-means on ``points`` (with optional per-point ``weights``) run to convergence; replaces
        the model's clusters (with new ids) and sets :attr:`labels_` (each point's cluster id).

        ``init``: the centres the first pass starts from instead of the weighted mean (a warm start, e.g.
        the previous frame's palette); those no point is nearest to are dropped like any empty cluster,
        and the survivors keep their order, ahead of the clusters opened on the way.

        >>> DPMeans(lambda_=4).fit([[0], [1], [10], [11]], init=[[10], [30], [0]]).centres.tolist()
        [[10.5], [0.5]]
        """
        array = _points(points, self.dim)
        w = _point_weights(weights, len(array))
        if len(array) == 0:
            raise ValueError("fit needs at least one point")
        lam = self.lambda_ if self.lambda_ is not None else lambda_from_k(array, self.k, seed=self.seed)
        centres = ((w[:, None] * array).sum(axis=0) / w.sum())[None, :] if init is None else \
            _points(init, array.shape[1], name="init")
        if not len(centres):
            raise ValueError("init must hold at least one centre (or be None: start from the mean)")
        labels = np.zeros(len(array), dtype=np.int64)
        for iteration in range(self.max_iter):
            index, best = _nearest(array, centres)
            beyond = np.flatnonzero(best > lam)
            if beyond.size:
                candidates = array[beyond]
                founders = _open_clusters(candidates, index[beyond].copy(), best[beyond].copy(), lam, len(centres))
                centres = np.vstack([centres, candidates[founders]])
                index, best = _nearest(array, centres)
            counts, sums = _weighted_sums(array, w, index, len(centres))
            keep = counts > 0
            remap = np.cumsum(keep) - 1
            new_labels = remap[index]
            centres = sums[keep] / counts[keep][:, None]
            if iteration and not beyond.size and keep.all() and (new_labels == labels).all():
                break
            labels = new_labels
        counts, _ = _weighted_sums(array, w, labels, len(centres))
        self.lambda_, self.dim = float(lam), array.shape[1]
        ids = self._new_ids(len(centres))
        self._set_clusters(ids, centres, counts)
        self.labels_ = ids[labels]
        return self

    # ------------------------------------------------------------------ the two halves
    def local_state(self) -> dict[str, Any]:
        """What :meth:`local_step` needs, small and picklable: lambda, the live ids, centres and the dimension."""
        return {"lambda": self.lambda_, "ids": self._ids.copy(), "centres": self._centres.copy(), "dim": self.dim}

    @staticmethod
    def local_step(state: Mapping[str, Any], points: Any, weights: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        """The executor's half (pure): labels and additive statistics of a part of a batch.

        ``labels[i]`` is the id of the point's nearest centre when it is within lambda (squared distance
        at most lambda), else -1 (a candidate). ``stats``: ``ids`` (the state's), ``counts`` ``(K,)``
        (weighted) and ``sums`` ``(K, d)`` of the labelled points, aligned with ``ids``; ``points`` (how
        many rows); ``candidates`` ``(m, d)`` and ``candidate_weights`` ``(m,)``, the -1 rows in order.
        """
        ids = np.asarray(state["ids"], dtype=np.int64)
        centres = np.asarray(state["centres"], dtype=np.float64)
        dim = state.get("dim")
        array = _points(points, dim)
        w = _point_weights(weights, len(array))
        if dim is None:
            dim = array.shape[1]
            centres = centres.reshape(0, dim)
        index, best = _nearest(array, centres)
        within = best <= (np.inf if state["lambda"] is None else state["lambda"])
        within &= index >= 0
        labels = np.where(within, ids[np.maximum(index, 0)] if len(ids) else -1, -1).astype(np.int64)
        counts, sums = _weighted_sums(array[within], w[within], index[within], len(ids))
        return labels, {"ids": ids, "counts": counts, "sums": sums.reshape(len(ids), dim),
                        "points": np.int64(len(array)), "candidates": array[~within],
                        "candidate_weights": w[~within]}

    @staticmethod
    def merge_stats(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        """Two tasks' statistics as one: counts, sums and points added, candidates ``a``'s then ``b``'s."""
        for name, stats in (("a", a), ("b", b)):
            missing = [key for key in STAT_KEYS if key not in stats]
            if missing:
                raise ValueError(f"stats {name} lacks {', '.join(missing)} (use DPMeans.local_step's)")
        if not np.array_equal(a["ids"], b["ids"]):
            raise ValueError(f"stats are for different clusters: ids {np.asarray(a['ids']).tolist()} and "
                             f"{np.asarray(b['ids']).tolist()} (computed against different local states)")
        return {"ids": np.asarray(a["ids"], dtype=np.int64).copy(),
                "counts": np.asarray(a["counts"], dtype=np.float64) + np.asarray(b["counts"], dtype=np.float64),
                "sums": _add_rows("sums", a["sums"], b["sums"]),
                "points": np.int64(int(a["points"]) + int(b["points"])),
                "candidates": _concat_rows(a["candidates"], b["candidates"]),
                "candidate_weights": np.concatenate([np.asarray(a["candidate_weights"], dtype=np.float64),
                                                     np.asarray(b["candidate_weights"], dtype=np.float64)])}

    def _checked_stats(self, stats: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
        missing = [key for key in STAT_KEYS if key not in stats]
        if missing:
            raise ValueError(f"stats lack {', '.join(missing)} (use DPMeans.local_step's)")
        if not np.array_equal(np.asarray(stats["ids"], dtype=np.int64), self._ids):
            raise ValueError(f"stats are for clusters {np.asarray(stats['ids']).tolist()}, the model has "
                             f"{self._ids.tolist()}: compute them against this model's local_state()")
        counts = np.asarray(stats["counts"], dtype=np.float64)
        candidates = np.asarray(stats["candidates"], dtype=np.float64)
        candidate_weights = np.asarray(stats["candidate_weights"], dtype=np.float64)
        k = len(self._ids)
        dim = self.dim if self.dim is not None else (candidates.shape[1] if candidates.ndim == 2 else 0)
        sums = np.asarray(stats["sums"], dtype=np.float64).reshape(k, -1) if k else np.zeros((0, dim))
        if counts.shape != (k,) or (k and sums.shape != (k, dim)):
            raise ValueError(f"stats counts must be ({k},) and sums ({k}, {dim}), got {counts.shape} and {sums.shape}")
        if candidates.size == 0:
            candidates = candidates.reshape(0, dim)
        if candidates.ndim != 2 or candidates.shape[1] != dim or candidate_weights.shape != (len(candidates),):
            raise ValueError(f"stats candidates must be (m, {dim}) with m candidate_weights, got {candidates.shape} "
                             f"and {candidate_weights.shape}")
        for name, value in (("counts", counts), ("sums", sums), ("candidates", candidates),
                            ("candidate_weights", candidate_weights)):
            if not np.isfinite(value).all():
                raise ValueError(f"stats {name} must be finite")
        if (counts < 0).any() or (candidate_weights <= 0).any():
            raise ValueError("stats counts must be >= 0 and candidate_weights > 0")
        return counts, sums, int(stats["points"]), candidates, candidate_weights

    def global_step(self, stats: Mapping[str, Any]) -> DPUpdate:
        """The driver's half: forget, fold the sums, retire dead clusters, validate the candidates in order."""
        counts, sums, points, candidates, candidate_weights = self._checked_stats(stats)
        lam = self.lambda_
        if lam is None and len(candidates):
            lam = lambda_from_k(candidates, self.k, seed=self.seed)  # the first batch (k given); fails before changes
        if len(candidates):
            self.dim = candidates.shape[1]
        self.lambda_ = lam
        self._weights = self._weights * self.decay_factor
        self._fold(counts, sums)
        deaths = self._retire()
        labels = np.zeros(0, dtype=np.int64)
        births: list[int] = []
        if len(candidates):
            labels, births = self._validate(candidates, candidate_weights, lam)
        merges = self._merge(lam) if lam is not None else {}
        for absorbed, survivor in merges.items():
            labels[labels == absorbed] = survivor
        self.n_batches += 1
        self.n_points += points
        self.last_update = DPUpdate(births=births, deaths=deaths + list(merges), candidate_labels=labels,
                                    merges=merges)
        return self.last_update

    def _merge(self, lam: float) -> dict[int, int]:
        """Merge, closest pair first, clusters whose centres are within ``merge_within * lam`` (squared) of
        each other: the lighter (on equal weights the younger) goes into the other, at the weighted mean."""
        merges: dict[int, int] = {}
        limit = self.merge_within * lam
        while self.merge_within > 0 and len(self._ids) > 1:
            distances = squared_distances(self._centres, self._centres)
            distances[np.diag_indices(len(distances))] = np.inf
            a, b = np.unravel_index(int(distances.argmin()), distances.shape)
            if distances[a, b] > limit:
                break
            keep, drop = (a, b) if (self._weights[a], -a) >= (self._weights[b], -b) else (b, a)
            total = self._weights[keep] + self._weights[drop]
            if total > 0:
                self._centres[keep] = (self._weights[keep] * self._centres[keep]
                                       + self._weights[drop] * self._centres[drop]) / total
            self._weights[keep] = total
            survivor, absorbed = int(self._ids[keep]), int(self._ids[drop])
            merges = {old: (survivor if new == absorbed else new) for old, new in merges.items()}
            merges[absorbed] = survivor
            alive = np.arange(len(self._ids)) != drop
            self._set_clusters(self._ids[alive], self._centres[alive], self._weights[alive])
        return merges

    def _fold(self, counts: np.ndarray, sums: np.ndarray) -> None:
        """Weighted running means: ``c <- (w c + sum) / (w + count)`` for the clusters with points."""
        seen = counts > 0
        if not seen.any():
            return
        updated = self._weights[seen] + counts[seen]
        self._centres[seen] = (self._weights[seen, None] * self._centres[seen] + sums[seen]) / updated[:, None]
        self._weights[seen] = updated

    def _retire(self) -> list[int]:
        if self.retire_below <= 0 or len(self._ids) < 2:
            return []
        dead = self._weights < self.retire_below * self._weights.sum()
        dead[int(self._weights.argmax())] = False
        if not dead.any():
            return []
        deaths = self._ids[dead].tolist()
        self._set_clusters(self._ids[~dead], self._centres[~dead], self._weights[~dead])
        return deaths

    def _validate(self, candidates: np.ndarray, weights: np.ndarray, lam: float) -> tuple[np.ndarray, list[int]]:
        """Each candidate in order opens a cluster at itself when beyond ``lam`` of every centre, else joins
        the nearest, whose centre moves to the weighted running mean at once (the later candidates see it)."""
        k, (m, dim) = len(self._ids), candidates.shape
        centres = np.empty((k + m, dim))
        centres[:k] = self._centres.reshape(k, dim)
        cluster_weights = np.empty(k + m)
        cluster_weights[:k] = self._weights
        labels = np.empty(m, dtype=np.int64)
        live = k
        for row in range(m):
            x, w = candidates[row], weights[row]
            diff = centres[:live] - x
            distances = np.einsum("kd,kd->k", diff, diff)
            nearest = int(distances.argmin()) if live else -1
            if nearest < 0 or distances[nearest] > lam:
                centres[live], cluster_weights[live], labels[row] = x, w, live
                live += 1
                continue
            total = cluster_weights[nearest] + w
            centres[nearest] += (w / total) * (x - centres[nearest])
            cluster_weights[nearest] = total
            labels[row] = nearest
        new_ids = self._new_ids(live - k)
        self._set_clusters(np.concatenate([self._ids, new_ids]), centres[:live].copy(), cluster_weights[:live].copy())
        return self._ids[labels], new_ids.tolist()

    # ------------------------------------------------------------------ online
    def learn_predict_many(self, points: Any, weights: Any = None) -> np.ndarray:
        """Learn one batch (:meth:`local_step` then :meth:`global_step`) and return each point's cluster id:
        the nearest centre's when within lambda, else the cluster its candidate opened or joined."""
        labels, stats = self.local_step(self.local_state(), points, weights)
        return self.global_step(stats).relabel(labels)

    def learn_many(self, points: Any, weights: Any = None) -> DPMeans:
        """Learn one batch of points (optionally weighted); returns the model."""
        self.learn_predict_many(points, weights)
        return self

    def learn_one(self, x: Any, w: float = 1.0) -> DPMeans:
        """Learn one point of weight ``w`` as a batch of one (so forgetting applies once per call)."""
        self.learn_many(self._one(x), [_positive("w", w)])
        return self

    # ------------------------------------------------------------------ predicting
    def predict_many(self, points: Any) -> np.ndarray:
        """The id of each point's nearest centre (whatever its distance), as an int64 array."""
        if not len(self._ids):
            raise ValueError("the model has no clusters yet: learn a batch or fit first")
        index, _ = _nearest(_points(points, self.dim), self._centres)
        return self._ids[index] if len(index) else np.zeros(0, dtype=np.int64)

    def predict_one(self, x: Any) -> int:
        """The id of the nearest centre to one point."""
        return int(self.predict_many(self._one(x))[0])

    def _one(self, x: Any) -> np.ndarray:
        try:
            array = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"x must be numbers, got {_preview(x)} ({err})") from None
        if array.ndim != 1 or array.size == 0:
            raise ValueError(f"x must be one point (a flat list of numbers), got shape {array.shape}")
        return _points(array[None, :], self.dim, name="x")

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """The whole model as JSON-able plain values; :meth:`from_state` restores it exactly (not ``labels_``)."""
        return {
            "model": STATE_MODEL,
            "state_version": STATE_VERSION,
            "lambda": self.lambda_,
            "k": self.k,
            "decay_factor": self.decay_factor,
            "half_life": self.half_life,
            "retire_below": self.retire_below,
            "merge_within": self.merge_within,
            "max_iter": self.max_iter,
            "seed": self.seed,
            "dim": self.dim,
            "next_id": self.next_id,
            "batches": self.n_batches,
            "points": self.n_points,
            "ids": self._ids.tolist(),
            "centres": self._centres.tolist(),
            "weights": self._weights.tolist(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> DPMeans:
        """The model :meth:`to_state` described; a ValueError names what is missing or wrong."""
        if not isinstance(state, Mapping):
            raise ValueError(f"a DP-means state must be a JSON object, got {type(state).__name__}")
        if state.get("model") != STATE_MODEL or state.get("state_version") != STATE_VERSION:
            raise ValueError(f"not a {STATE_MODEL} state of version {STATE_VERSION}: model={state.get('model')!r}, "
                             f"state_version={state.get('state_version')!r}")
        keys = ("lambda", "k", "decay_factor", "half_life", "retire_below", "merge_within", "max_iter", "seed", "dim", "next_id",
                "batches", "points", "ids", "centres", "weights")
        missing = [key for key in keys if key not in state]
        if missing:
            raise ValueError(f"DP-means state lacks {', '.join(missing)}")
        forgetting = {"half_life": state["half_life"]} if state["half_life"] is not None else \
            {"decay_factor": state["decay_factor"]}
        scale = {"lambda_": state["lambda"]} if state["k"] is None else {"k": state["k"]}
        model = cls(**scale, **forgetting, retire_below=state["retire_below"],
                    merge_within=state["merge_within"], max_iter=state["max_iter"],
                    seed=state["seed"])
        if state["lambda"] is not None:
            model.lambda_ = _positive("lambda", state["lambda"])
        if state["half_life"] is not None and state["decay_factor"] != model.decay_factor:
            raise ValueError(f"decay_factor {state['decay_factor']!r} does not match half_life {state['half_life']!r}")
        model.dim = None if state["dim"] is None else _count("dim", state["dim"])
        model.next_id = _count("next_id", state["next_id"], minimum=0)
        model.n_batches = _count("batches", state["batches"], minimum=0)
        model.n_points = _count("points", state["points"], minimum=0)
        model._restore_clusters(state["ids"], state["centres"], state["weights"])
        return model

    def _restore_clusters(self, ids: Any, centres: Any, weights: Any) -> None:
        id_array = np.asarray(ids, dtype=np.int64).reshape(-1)
        weight_array = np.asarray(weights, dtype=np.float64).reshape(-1)
        centre_array = np.asarray(centres, dtype=np.float64).reshape(len(id_array), self.dim or 0)
        if len(id_array) and self.lambda_ is None:
            raise ValueError("DP-means state has clusters but no lambda")
        if weight_array.shape != id_array.shape or not np.isfinite(centre_array).all() \
                or not np.isfinite(weight_array).all() or (weight_array < 0).any():
            raise ValueError("DP-means state: ids, centres and weights must align, finite, weights >= 0")
        if len(set(id_array.tolist())) != len(id_array) or (len(id_array) and id_array.max() >= self.next_id) \
                or (id_array < 0).any():
            raise ValueError(f"DP-means state: ids must be distinct, in [0, next_id={self.next_id}), "
                             f"got {id_array.tolist()}")
        self._set_clusters(id_array, centre_array, weight_array)


def _add_rows(name: str, a: Any, b: Any) -> np.ndarray:
    first, second = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if first.size == 0 and second.size == 0:
        return first if first.ndim == 2 and first.shape[1] >= (second.shape[1] if second.ndim == 2 else 0) \
            else second
    if first.shape != second.shape:
        raise ValueError(f"stats {name} have different shapes: {first.shape} and {second.shape}")
    return first + second


def _concat_rows(a: Any, b: Any) -> np.ndarray:
    parts = [np.asarray(part, dtype=np.float64) for part in (a, b)]
    filled = [part for part in parts if part.size]
    if not filled:
        return parts[0] if parts[0].ndim == 2 and parts[0].shape[1] else parts[1]
    if len(filled) == 2 and filled[0].shape[1] != filled[1].shape[1]:
        raise ValueError(f"stats candidates have different dimensions: {filled[0].shape[1]} and {filled[1].shape[1]}")
    return np.concatenate(filled) if len(filled) == 2 else filled[0].copy()
