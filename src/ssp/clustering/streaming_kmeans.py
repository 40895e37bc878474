"""Streaming k-means with forgetting: Spark MLlib's ``StreamingKMeansModel.update`` rule, in numpy.

Spark's only streaming k-means (``pyspark.mllib.clustering.StreamingKMeans``) runs on DStreams;
this model is its update rule with no Spark at all, so that a Structured Streaming job, a test or a
notebook can run it, and ``tests/test_streaming_kmeans.py`` checks it equal to MLlib's to 1e-9.
It reads like River's ``river.cluster.KMeans``: :meth:`StreamingKMeans.learn_many` /
:meth:`~StreamingKMeans.predict_many` take a batch of points (a 2-D array or a list of lists),
``learn_one`` / ``predict_one`` a single point (a list or 1-D array; River's take dicts).

The rule, for one batch (MLlib's, step by step):

1. every cluster's weight is discounted: ``w <- w * a`` with the decay factor ``a`` when
   ``time_unit="batches"``, or ``w <- w * a ** n`` with ``n`` the number of points in the batch
   when ``time_unit="points"``. An empty batch still discounts (a DStream batch with no data does);
2. each point goes to its nearest centre (squared Euclidean distance, the lowest index on a tie);
3. each cluster with ``m > 0`` new points whose mean is ``mean``: ``w' = w + m``,
   ``lambda = m / max(w', 1e-16)`` and ``c' = (1 - lambda) * c + (lambda / m) * sum``, that is
   ``c + (m / w') * (mean - c)``; clusters with no new point keep their centre;
4. a dying cluster is replaced: when the smallest weight is below ``1e-8`` of the largest, the
   largest cluster is split in two. Both get weight ``(max + min) / 2``, the largest keeps
   ``x + p`` and the smallest moves to ``x - p``, with ``x`` the largest's centre and
   ``p = 1e-14 * max(|x|, 1)`` per coordinate.

``half_life=h`` sets ``a = 0.5 ** (1 / h)`` (computed as MLlib does, ``exp(log(0.5) / h)``): data
seen ``h`` batches (or points) ago weighs half as much as new data. ``a = 1`` never forgets;
``a = 0`` keeps only the last batch.

Assignments agree with MLlib's except for points whose two nearest centres are equally far up to
floating-point rounding; there either answer is right, and the two implementations may differ (MLlib's
``fastSquaredDistance`` expands ``|x|^2 + |c|^2 - 2 x.c``, this model leaves out ``|x|^2``, which is
the same for every centre). Right after a split the two halves are only ``2 * p`` apart, so for data
far from the origin (norms of 10 and more) which half a point joins is such a rounding call, and the
two models can drift apart from there; near the origin geometry decides, and they stay equal.

A step size that is a property of the model, ``mu <- (1 - alpha) * mu + alpha * mean`` with one
``alpha`` (the seed project's description of the update), is *not* Spark's rule: Spark's step
``lambda = m / (a * w + m)`` differs per cluster and per batch, so a cluster holding many past
points barely moves while one that has been starved for a while jumps almost to the new mean.

The hand check (two centres, one batch of two points, a = 0.5):

>>> model = StreamingKMeans(centres=[[0, 0], [100, 100]], weights=[1, 1], decay_factor=0.5)
>>> model.learn_many([[1, 1], [3, 3]]).centres.tolist()
[[1.6, 1.6], [100.0, 100.0]]
>>> model.weights.tolist()
[2.5, 0.5]
>>> model.predict_one([90, 95]), model.predict_many([[2, 2], [60, 70]]).tolist()
(1, [0, 1])

Here both weights are discounted to 0.5, cluster 0 gains 2 points (w' = 2.5, lambda = 0.8, so it
moves 80% of the way from (0, 0) to the batch mean (2, 2)) and cluster 1 gains none.

A dying cluster: with ``a = 0`` (only the last batch counts) a cluster that gets no point falls to
weight 0, and the largest (at 2) is split into 2 + 2e-14 and 2 - 2e-14, half the weight each:

>>> model = StreamingKMeans(centres=[[0.0], [10.0]], weights=[5, 5], decay_factor=0.0)
>>> update = model.learn_many([[1.0], [3.0]]).last_update
>>> update.split, model.weights.tolist()
((0, 1), [1.0, 1.0])
>>> model.centres[:, 0].tolist()
[2.00000000000002, 1.99999999999998]

Random initial centres are standard normal draws (as MLlib's ``setRandomCenters``), seeded, each
with weight ``init_weight``; without ``dim`` they are drawn when the first batch shows the
dimension. Standard normal centres suit standardised data; for data elsewhere (most streams),
``init="kmeans++"`` draws the initial centres from the first batch (its first ``init_sample``
points) by k-means++ seeding instead (an addition to MLlib, which has only random or given centres):

>>> far = [[100, 100], [100.5, 100], [100, 120], [100, 120.5], [120, 100], [120.5, 100]]
>>> random_start = StreamingKMeans(k=3, seed=3).learn_many(far)
>>> len(set(random_start.predict_many(far).tolist()))  # one centre took all three groups
1
>>> seeded = StreamingKMeans(k=3, seed=3, init="kmeans++").learn_many(far)
>>> seeded.predict_many(far).tolist()
[0, 0, 1, 1, 2, 2]

The state The state is plain JSON and restores exactly:

>>> import json
>>> model = StreamingKMeans(k=3, dim=2, half_life=5, time_unit="points", seed=7)
>>> round(model.decay_factor, 6)
0.870551
>>> twin = StreamingKMeans.from_state(json.loads(json.dumps(model.learn_one([0.5, -1.0]).to_state())))
>>> bool((twin.centres == model.centres).all()), twin.weights.tolist() == model.weights.tolist()
(True, True)
>>> StreamingKMeans(k=2, time_unit="seconds")
Traceback (most recent call last):
...
ValueError: time_unit must be 'batches' or 'points', got 'seconds'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssp.clustering._checks import preview as _preview
from ssp.clustering.seeding import kmeans_plus_plus

__all__ = [
    "DYING_RATIO",
    "INITS",
    "TIME_UNITS",
    "KMeansUpdate",
    "StreamingKMeans",
    "assign",
    "cluster_sums",
    "decay_from_half_life",
    "resolve_forgetting",
]

TIME_UNITS = ("batches", "points")
INITS = ("random", "kmeans++")  # MLlib's standard normal draws, or k-means++ on the first batch
DYING_RATIO = 1e-8  # MLlib: a cluster below this share of the largest weight is dying
SPLIT_OFFSET = 1e-14  # MLlib: the split moves the two halves this much (relative) apart
STATE_MODEL = "streaming_kmeans"
STATE_VERSION = 1


def decay_from_half_life(half_life: float) -> float:
    """The decay factor ``a`` with ``a ** half_life == 0.5``, computed as MLlib's ``setHalfLife`` does.

    >>> decay_from_half_life(1.0), decay_from_half_life(2.0) ** 2
    (0.5, 0.5000000000000001)
    """
    if isinstance(half_life, bool) or not isinstance(half_life, (int, float)) or not math.isfinite(half_life) \
            or half_life <= 0:
        raise ValueError(f"half_life must be a positive finite number, got {half_life!r}")
    return math.exp(math.log(0.5) / half_life)


def resolve_forgetting(decay_factor: float | None, half_life: float | None) -> float:
    """The decay factor per time unit of a model given ``decay_factor`` in [0, 1] or ``half_life`` > 0
    (not both; neither: 1.0, no forgetting). Every model of ssp.clustering forgets by this rule.

    >>> resolve_forgetting(None, None), resolve_forgetting(0.25, None), resolve_forgetting(None, 1)
    (1.0, 0.25, 0.5)
    >>> resolve_forgetting(1.5, None)
    Traceback (most recent call last):
    ...
    ValueError: decay_factor must be a number between 0 and 1, got 1.5
    """
    if decay_factor is not None and half_life is not None:
        raise ValueError("give decay_factor or half_life, not both")
    if half_life is not None:
        return decay_from_half_life(half_life)
    if decay_factor is None:
        return 1.0
    if isinstance(decay_factor, bool) or not isinstance(decay_factor, (int, float)) or not 0.0 <= decay_factor <= 1.0:
        raise ValueError(f"decay_factor must be a number between 0 and 1, got {decay_factor!r}")
    return float(decay_factor)


def assign(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The index of the nearest centre (squared Euclidean distance, lowest index on a tie) of each point.

    ``points`` is ``(n, d)``, ``centres`` ``(k, d)``; the result is ``(n,)`` int64. This is the part a
    stream job runs on its executors against broadcast centres.

    >>> assign(np.array([[0.0, 1.0], [9.0, 9.0]]), np.array([[0.0, 0.0], [10.0, 10.0]])).tolist()
    [0, 1]
    """
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 is the same for every centre, so it is left out
    scores = (centres * centres).sum(axis=1) - 2.0 * (points @ centres.T)
    return scores.argmin(axis=1).astype(np.int64)


def cluster_sums(points: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster coordinate sums ``(k, d)`` and point counts ``(k,)`` of ``points`` labelled ``labels``.

    Sums and counts of disjoint parts of a batch add up to those of the batch, which is what lets
    executors compute them per partition and the driver fold them.

    >>> sums, counts = cluster_sums(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), np.array([1, 1, 0]), 3)
    >>> sums.tolist(), counts.tolist()
    ([[5.0, 6.0], [4.0, 6.0], [0.0, 0.0]], [1, 2, 0])
    """
    n, dim = points.shape
    counts = np.bincount(labels, minlength=k).astype(np.int64)
    flat = (labels[:, None] * dim + np.arange(dim)).ravel()
    sums = np.bincount(flat, weights=points.ravel(), minlength=k * dim).reshape(k, dim)
    return sums, counts


@dataclass(frozen=True)
class KMeansUpdate:
    """What one batch did to the model: its points, the weight discount, and the split if a cluster died
    (``(largest, smallest)``: the largest was split and the smallest took its other half)."""

    points: int
    discount: float
    split: tuple[int, int] | None = None


class StreamingKMeans:
    """Streaming k-means with Spark MLlib's update rule; see the module docstring.

    Give ``centres`` (and ``weights``, default ``init_weight`` each) or ``k`` for seeded standard
    normal centres in ``dim`` dimensions (drawn at the first batch when ``dim`` is None; with
    ``init="kmeans++"`` chosen from the first batch's points instead). Forgetting is
    ``decay_factor`` in [0, 1] (default 1, no forgetting) or ``half_life`` > 0, in ``time_unit``
    "batches" or "points".
    """

    def __init__(
        self,
        k: int | None = None,
        *,
        decay_factor: float | None = None,
        half_life: float | None = None,
        time_unit: str = "batches",
        centres: Sequence[Sequence[float]] | np.ndarray | None = None,
        weights: Sequence[float] | np.ndarray | None = None,
        dim: int | None = None,
        init_weight: float = 1.0,
        seed: int = 0,
        init: str = "random",
        init_sample: int = 10_000,
    ) -> None:
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        _check_count("init_sample", init_sample)
        if time_unit not in TIME_UNITS:
            raise ValueError(f"time_unit must be 'batches' or 'points', got {time_unit!r}")
        decay_factor = resolve_forgetting(decay_factor, half_life)
        _check_number("init_weight", init_weight, minimum=0.0)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.decay_factor = float(decay_factor)
        self.half_life = None if half_life is None else float(half_life)
        self.time_unit = time_unit
        self.init_weight = float(init_weight)
        self.seed = int(seed)
        self.init, self.init_sample = init, int(init_sample)
        self.n_batches = 0
        self.n_points = 0
        self.last_update: KMeansUpdate | None = None
        self._centres: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        if centres is not None:
            self._set_given_centres(k, centres, weights, dim)
        else:
            if weights is not None:
                raise ValueError("weights need centres: give centres with them, or init_weight for random centres")
            self.k = _check_count("k", k, needed="k (the number of clusters) is required without centres")
            self.dim = None if dim is None else _check_count("dim", dim)
            if self.dim is not None and init == "random":
                self._init_random(self.dim)

    # ------------------------------------------------------------------ set-up
    def _set_given_centres(self, k, centres, weights, dim) -> None:
        array = _finite_matrix("centres", centres)
        if len(array) == 0:
            raise ValueError("centres must hold at least one centre")
        if k is not None and _check_count("k", k) != len(array):
            raise ValueError(f"k is {k} but {len(array)} centres were given")
        if dim is not None and _check_count("dim", dim) != array.shape[1]:
            raise ValueError(f"dim is {dim} but the centres have {array.shape[1]} coordinates")
        self.k, self.dim = array.shape
        if weights is None:
            weight_array = np.full(self.k, self.init_weight)
        else:
            weight_array = _finite_vector("weights", weights)
            if weight_array.shape != (self.k,):
                raise ValueError(f"weights must hold one weight per centre ({self.k}), got {len(weight_array)}")
            if (weight_array < 0).any():
                raise ValueError(f"weights must be 0 or more, got {weight_array.tolist()}")
        self._centres, self._weights = array.copy(), weight_array.copy()

    def _init_random(self, dim: int) -> None:
        self.dim = dim
        self._centres = np.random.default_rng(self.seed).standard_normal((self.k, dim))
        self._weights = np.full(self.k, self.init_weight)

    def initialise(self, points: Any) -> StreamingKMeans:
        """Draw the initial centres now, by the ``init`` rule, from ``points`` (the first batch; k-means++
        uses its first ``init_sample`` points, "random" only their dimension), each with weight
        ``init_weight``. A model that has centres is left as it is."""
        if self._centres is not None:
            return self
        array = self._points(points)
        if len(array) == 0:
            raise ValueError("initial centres need at least one point")
        if self.init == "random":
            self._init_random(array.shape[1])
        else:
            self.dim = array.shape[1]
            self._centres = kmeans_plus_plus(array[:self.init_sample], self.k, seed=self.seed)
            self._weights = np.full(self.k, self.init_weight)
        return self

    # ------------------------------------------------------------------ reading
    @property
    def initialised(self) -> bool:
        """Whether the model has centres (random ones without ``dim`` are drawn at the first batch)."""
        return self._centres is not None

    @property
    def centres(self) -> np.ndarray:
        """A copy of the ``(k, dim)`` centres."""
        return self._ready()[0].copy()

    @property
    def weights(self) -> np.ndarray:
        """A copy of the ``(k,)`` cluster weights (discounted point counts)."""
        return self._ready()[1].copy()

    def _ready(self) -> tuple[np.ndarray, np.ndarray]:
        if self._centres is None or self._weights is None:
            raise ValueError("the model has no centres yet: give centres or dim, or learn a batch first")
        return self._centres, self._weights

    def __repr__(self) -> str:
        forgetting = f"half_life={self.half_life:g}" if self.half_life is not None else f"decay_factor={self.decay_factor:g}"
        return (f"StreamingKMeans(k={self.k}, dim={self.dim}, {forgetting}, time_unit={self.time_unit!r}, "
                f"batches={self.n_batches}, points={self.n_points})")

    # ------------------------------------------------------------------ points
    def _points(self, points: Any, *, one: bool = False) -> np.ndarray:
        """``points`` as a finite float64 ``(n, dim)`` array, or a ValueError saying what is wrong."""
        name = "x" if one else "points"
        try:
            array = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be numbers, got {_preview(points)} ({err})") from None
        if one:
            if array.ndim != 1:
                raise ValueError(f"x must be one point (a flat list of numbers), got shape {array.shape}")
            array = array[None, :]
        elif array.ndim == 1 and array.size == 0:
            array = array.reshape(0, self.dim or 0)
        elif array.ndim != 2:
            raise ValueError(f"points must be a 2-D array (one row a point), got shape {array.shape}")
        if self.dim is not None and array.shape[1] != self.dim and len(array):
            raise ValueError(f"{name} must have {self.dim} coordinates, got {array.shape[1]}")
        if array.shape[1] == 0 and len(array):
            raise ValueError(f"{name} must have at least one coordinate")
        bad = ~np.isfinite(array)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            where = "" if one else f"point {row}, "
            raise ValueError(f"{name} must be finite numbers; {where}coordinate {column} is {array[row, column]}")
        return array

    # ------------------------------------------------------------------ learning
    def learn_many(self, points: Any) -> StreamingKMeans:
        """Update the model with one batch of points (MLlib's ``update``); returns the model."""
        self.learn_predict_many(points)
        return self

    def learn_one(self, x: Any) -> StreamingKMeans:
        """Update the model with a batch of one point: with ``time_unit="batches"`` that is one batch of decay."""
        array = self._points(x, one=True)
        self._learn(array)
        return self

    def learn_predict_many(self, points: Any) -> np.ndarray:
        """Update the model with one batch and return each point's cluster *before* the update: the
        assignment that fed it (MLlib assigns a batch against the centres it started with)."""
        return self._learn(self._points(points))

    def _learn(self, array: np.ndarray) -> np.ndarray:
        if self._centres is None:
            if len(array) == 0:
                # nothing to draw the dimension from, and no weights to discount yet
                self.n_batches += 1
                self.last_update = KMeansUpdate(0, self._discount(0))
                return np.zeros(0, dtype=np.int64)
            self.initialise(array)
        labels, stats = self.local_step(self.local_state(), array)
        self.global_step(stats)
        return labels

    def _discount(self, points: int) -> float:
        return self.decay_factor if self.time_unit == "batches" else math.pow(self.decay_factor, points)

    def update_from_sums(self, sums: Any, counts: Any) -> KMeansUpdate:
        """Fold one batch's per-cluster ``sums`` ``(k, dim)`` and ``counts`` ``(k,)`` into the model.

        This is the driver's half of a distributed update (the executors run :func:`assign` and
        :func:`cluster_sums`); :meth:`learn_many` is both halves in one process.
        """
        centres, weights = self._ready()
        sums = np.asarray(sums, dtype=np.float64)
        counts = np.asarray(counts)
        if sums.shape != centres.shape or counts.shape != (self.k,):
            raise ValueError(f"sums must be {centres.shape} and counts ({self.k},), got {sums.shape} and {counts.shape}")
        if not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any():
            raise ValueError(f"counts must be integers >= 0, got {counts.tolist()}")
        if not np.isfinite(sums).all():
            raise ValueError("sums must be finite")
        points = int(counts.sum())
        discount = self._discount(points)
        weights *= discount
        seen = counts > 0
        if seen.any():
            count = counts[seen].astype(np.float64)
            updated = weights[seen] + count
            step = count / np.maximum(updated, 1e-16)
            weights[seen] = updated
            # MLlib: c <- (1 - lambda) c, then c += (lambda / m) sum; the same operations in the same order
            centres[seen] = (1.0 - step)[:, None] * centres[seen] + (step / count)[:, None] * sums[seen]
        split = self._split_dying_cluster(centres, weights)
        self.n_batches += 1
        self.n_points += points
        self.last_update = KMeansUpdate(points, discount, split)
        return self.last_update

    # ------------------------------------------------------------------ the stream job's two halves
    # A stream job runs a batch as local_step on each executor's share (against local_state, broadcast),
    # merge_stats over the shares in Kafka order, and global_step on the driver; learn_many is the same
    # three steps in one process. Every clustering model of ssp.clustering has these four.
    @property
    def cluster_ids(self) -> np.ndarray:
        """The clusters' ids, aligned with :attr:`centres`: k-means keeps its k clusters, ids 0..k-1."""
        return np.arange(self.k, dtype=np.int64)

    def local_state(self) -> dict[str, Any]:
        """What an executor needs to assign points and add up their statistics: the centres."""
        centres, _ = self._ready()
        return {"centres": centres.copy()}

    @staticmethod
    def local_step(state: Mapping[str, Any], points: np.ndarray,
                   weights: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Each point's nearest centre and the per-cluster sums and counts of ``points`` (``(n, dim)``)
        against ``state``'s centres; sums and counts of disjoint shares add up (:meth:`merge_stats`).

        >>> labels, stats = StreamingKMeans.local_step({"centres": np.array([[0.0], [10.0]])}, np.array([[1.0], [9.0]]))
        >>> labels.tolist(), stats["sums"].tolist(), stats["counts"].tolist()
        ([0, 1], [[1.0], [9.0]], [1, 1])
        """
        if weights is not None:
            raise ValueError("streaming k-means (MLlib's rule) takes unweighted points")
        centres = np.asarray(state["centres"], dtype=np.float64)
        labels = assign(points, centres)
        sums, counts = cluster_sums(points, labels, len(centres)) if len(points) else (
            np.zeros_like(centres), np.zeros(len(centres), dtype=np.int64))
        return labels, {"sums": sums, "counts": counts}

    @staticmethod
    def merge_stats(first: Mapping[str, np.ndarray], second: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The statistics of two disjoint shares of a batch, as one."""
        return {"sums": first["sums"] + second["sums"], "counts": first["counts"] + second["counts"]}

    def global_step(self, stats: Mapping[str, np.ndarray]) -> KMeansUpdate:
        """The driver's half: fold a batch's merged statistics into the model (:meth:`update_from_sums`)."""
        return self.update_from_sums(stats["sums"], stats["counts"])

    @staticmethod
    def _split_dying_cluster(centres: np.ndarray, weights: np.ndarray) -> tuple[int, int] | None:
        largest, smallest = int(weights.argmax()), int(weights.argmin())  # first of equals, as Scala's maxBy/minBy
        if not weights[smallest] < DYING_RATIO * weights[largest]:
            return None
        weight = (weights[largest] + weights[smallest]) / 2.0
        weights[largest] = weights[smallest] = weight
        x = centres[largest].copy()
        offset = SPLIT_OFFSET * np.maximum(np.abs(x), 1.0)
        centres[largest] = x + offset
        centres[smallest] = x - offset
        return largest, smallest

    # ------------------------------------------------------------------ predicting
    def predict_many(self, points: Any) -> np.ndarray:
        """The nearest centre's index for each point, as an int64 array."""
        centres, _ = self._ready()
        return assign(self._points(points), centres)

    def predict_one(self, x: Any) -> int:
        """The nearest centre's index for one point."""
        centres, _ = self._ready()
        return int(assign(self._points(x, one=True), centres)[0])

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """The whole model as JSON-able plain values; :meth:`from_state` restores it exactly."""
        return {
            "model": STATE_MODEL,
            "state_version": STATE_VERSION,
            "k": self.k,
            "dim": self.dim,
            "decay_factor": self.decay_factor,
            "half_life": self.half_life,
            "time_unit": self.time_unit,
            "init_weight": self.init_weight,
            "seed": self.seed,
            "init": self.init,
            "init_sample": self.init_sample,
            "batches": self.n_batches,
            "points": self.n_points,
            "centres": None if self._centres is None else self._centres.tolist(),
            "weights": None if self._weights is None else self._weights.tolist(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> StreamingKMeans:
        """The model :meth:`to_state` described; a ValueError names what is missing or wrong."""
        if not isinstance(state, Mapping):
            raise ValueError(f"a streaming k-means state must be a JSON object, got {type(state).__name__}")
        if state.get("model") != STATE_MODEL or state.get("state_version") != STATE_VERSION:
            raise ValueError(f"not a {STATE_MODEL} state of version {STATE_VERSION}: model={state.get('model')!r}, "
                             f"state_version={state.get('state_version')!r}")
        keys = ("k", "dim", "decay_factor", "half_life", "time_unit", "init_weight", "seed", "batches", "points",
                "centres", "weights")
        missing = [key for key in keys if key not in state]
        if missing:
            raise ValueError(f"streaming k-means state lacks {', '.join(missing)}")
        forgetting = {"half_life": state["half_life"]} if state["half_life"] is not None else \
            {"decay_factor": state["decay_factor"]}
        common = {"time_unit": state["time_unit"], "init_weight": state["init_weight"], "seed": state["seed"],
                  # states written before init existed were random
                  "init": state.get("init", "random"), "init_sample": state.get("init_sample", 10_000)}
        if state["centres"] is None:
            model = cls(state["k"], dim=state["dim"], **forgetting, **common)
            model._centres = model._weights = None  # not drawn yet: drawn at the first batch, as before
            model.dim = state["dim"]
        else:
            model = cls(state["k"], centres=state["centres"], weights=state["weights"], dim=state["dim"],
                        **forgetting, **common)
        if state["half_life"] is not None and state["decay_factor"] != model.decay_factor:
            raise ValueError(f"decay_factor {state['decay_factor']!r} does not match half_life {state['half_life']!r}")
        model.n_batches = _check_count("batches", state["batches"], minimum=0)
        model.n_points = _check_count("points", state["points"], minimum=0)
        return model


# ---------------------------------------------------------------------- validation helpers


def _check_count(name: str, value: Any, *, minimum: int = 1, needed: str | None = None) -> int:
    if value is None and needed:
        raise ValueError(needed)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_number(name: str, value: Any, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum:g}, got {value!r}")
    return float(value)


def _finite_matrix(name: str, value: Any) -> np.ndarray:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a list of points (lists of numbers), got {_preview(value)} ({err})") from None
    if array.ndim != 2:
        raise ValueError(f"{name} must be a list of points (lists of numbers), got shape {array.shape}")
    if array.shape[1] == 0:
        raise ValueError(f"{name} must have at least one coordinate")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite numbers, got {_preview(value)}")
    return array


def _finite_vector(name: str, value: Any) -> np.ndarray:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a list of numbers, got {_preview(value)} ({err})") from None
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a flat list of finite numbers, got {_preview(value)}")
    return array
