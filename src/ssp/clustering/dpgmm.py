"""An online variational Dirichlet-process Gaussian mixture that carries its posterior forward.

scikit-learn's ``BayesianGaussianMixture(weight_concentration_prior_type="dirichlet_process")`` is
batch only: re-fitting it per batch forgets everything that came before. :class:`DPGMM` is the
streaming version (Huynh, Phung & Venkatesh 2015; the memoized sufficient statistics of Hughes &
Sudderth 2013): each component's conjugate posterior (Normal-Gamma per coordinate for
``covariance_type="diag"``, Normal-Wishart for ``"full"``) is the prior plus its accumulated,
optionally forgotten, sufficient statistics ``N_k``, ``sum x`` and ``sum x^2`` (``sum x x^T`` for
full), so the posterior after a batch is the prior of the next. Mixing weights are a truncated
stick-breaking process with concentration ``alpha``, the sticks ordered by expected count.

One batch, in two halves (what the Spark job runs on executors and on the driver):

1. **local step** (:meth:`DPGMM.local_step`, pure, per partition): each point's responsibilities
   under the current posterior (the variational E-step: ``E[log pi_k] + E[log N(x | mu_k, Lambda_k)]``).
   A point is a *birth candidate* (label -1) when the DP's "new component" (the stick left over times
   the prior predictive, a Student-t) takes more than ``birth_threshold`` of its mass, that is when
   every component explains it badly. Candidates are kept as rows; every other point adds its
   weighted responsibilities to the per-component statistics, which add up across partitions
   (:meth:`DPGMM.merge_stats`).
2. **global step** (:meth:`DPGMM.global_step`, on the driver): the accumulated statistics are
   discounted by the decay factor and the batch's are added. Then

   * **births**: the candidates (with the still pending ones of earlier batches) are clustered by
     DP-means (farthest-first, radius ``lambda`` from the prior's scale) to start new components,
     refined by variational EM on the candidates against all components; a new component holding at
     least ``birth_min_count`` candidates is born with a fresh id. Candidates that joined no new
     component stay *pending* (up to ``max_pending`` rows, oldest dropped) and take part in later
     births; their label is the best existing component;
   * **merges** (``merge=True``): two components merge when the merge does not lower the collapsed
     evidence: the log marginal likelihood of the merged statistics under the conjugate prior plus the
     Chinese-restaurant partition prior (``lgamma(N_a + N_b) - lgamma(N_a) - lgamma(N_b) - log alpha``)
     is at least that of the two apart. This is the ELBO difference with hard assignments (Hughes &
     Sudderth's merge test without the entropy of the soft responsibilities); greedy, best pair first,
     the heavier component keeps its id (an existing one always, against a component born in the
     same batch: a birth merged away in its own batch is never named);
   * **deaths**: a component whose expected count fell below ``min_weight`` is retired.

Ids come from a counter and are never reused; ``cluster_ids``, ``centres`` (posterior means) and
``weights`` (expected counts) are aligned. ``learn_many(x)`` is exactly ``local_step(local_state(), x)``
then ``global_step``, and ``learn_predict_many`` returns the labels of that local step with
:meth:`DPGMMUpdate.relabel` applied (candidates named, merged ids mapped, ids that died in the batch -1).

Limits: one E-step per batch (the posterior before the batch labels it; candidates get a small
variational EM of their own), so a component that swallowed two clusters is not split (there is no
split move; the default variance prior errs small so that this does not happen at the start, and
merges undo the surplus); with drift, forgetting (``half_life``) decides how far a component lags.

The prior: the mean prior is the first data's mean (``m0``), the component variance prior
``prior_variance`` (``sigma0^2``; by default estimated from the first ``init_points`` points as the
within-cluster variance of a k-means with one centre per 10 points, at most ``max_components``, which
errs small: merges fix that), the mean precision ``kappa0 = sigma0^2 / s^2`` (``s^2`` the data's variance, so the prior on
a new centre is as wide as the data) and ``prior_strength`` pseudo-points for the covariance.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> blobs = np.concatenate([rng.normal(c, 0.5, (100, 2)) for c in ([0, 0], [6, 0], [0, 6])])
>>> model = DPGMM(seed=1)
>>> labels = model.learn_predict_many(rng.permutation(blobs))
>>> model.cluster_ids.tolist(), np.round(model.weights).tolist()
([0, 1, 2], [100.0, 100.0, 100.0])
>>> sorted(np.abs(np.round(model.centres)).tolist())
[[0.0, 0.0], [0.0, 6.0], [6.0, 0.0]]

A cluster that appears later is born with the next id, the others keep theirs:

>>> update = model.learn_many(rng.normal([6, 6], 0.5, (80, 2))).last_update
>>> update.births, model.cluster_ids.tolist(), model.predict_one([6.1, 5.8])
([3], [0, 1, 2, 3], 3)

The two halves, as a stream job runs them (partition statistics add up):

>>> batch = rng.normal([0, 6], 0.5, (50, 2))
>>> state = model.local_state()
>>> labels_a, stats_a = DPGMM.local_step(state, batch[:20])
>>> labels_b, stats_b = DPGMM.local_step(state, batch[20:])
>>> update = model.global_step(DPGMM.merge_stats(stats_a, stats_b))
>>> update.births, update.merges, update.deaths, int((labels_a == -1).sum() + (labels_b == -1).sum())
([], {}, [], 0)

The state is plain JSON and restores exactly:

>>> import json
>>> twin = DPGMM.from_state(json.loads(json.dumps(model.to_state())))
>>> bool((twin.predict_many(blobs) == model.predict_many(blobs)).all()), twin.to_state() == model.to_state()
(True, True)
>>> DPGMM(covariance_type="spherical")
Traceback (most recent call last):
...
ValueError: covariance_type must be one of diag, full, got 'spherical'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssp.clustering._checks import finite_points as _points
from ssp.clustering._checks import preview as _preview
from ssp.clustering.seeding import kmeans_plus_plus
from ssp.clustering.streaming_kmeans import resolve_forgetting

__all__ = ["COVARIANCE_TYPES", "DPGMM", "DPGMMUpdate", "digamma", "gammaln"]

COVARIANCE_TYPES = ("diag", "full")
STATE_MODEL = "dpgmm"
STATE_VERSION = 1
LOG_2PI = math.log(2.0 * math.pi)
_ADDITIVE = ("count", "rows", "n", "sum", "sum_sq")
_PARAMS = ("alpha", "max_components", "covariance_type", "decay_factor", "half_life", "birth_threshold",
           "birth_min_count", "max_pending", "min_weight", "merge", "prior_variance", "prior_strength", "init_points",
           "seed")
_VB_ITERATIONS = 40  # variational EM passes over the candidates per birth round
_VB_TOL = 1e-2  # stop when no component's candidate mass moves more than this (in points)
_VB_RELATIVE_TOL = 1e-3  # or than this share of the candidates' weight
_SHIFT = np.arange(10.0)  # the special functions' recurrence shift
_PROBE_POINTS = 10  # the default variance prior: one k-means centre per this many first points


# ---------------------------------------------------------------------- special functions (numpy only)
def gammaln(x: Any) -> np.ndarray:
    """``log(Gamma(x))`` for ``x > 0``, vectorised (Stirling's series after shifting by 10; error < 1e-13).

    >>> bool(abs(gammaln(0.5) - math.lgamma(0.5)) < 1e-12), bool(abs(gammaln(1e5) - math.lgamma(1e5)) < 1e-7)
    (True, True)
    """
    x = np.asarray(x, dtype=np.float64)
    shift = np.log(x[..., None] + _SHIFT).sum(axis=-1)  # log(x (x+1) ... (x+9))
    y = x + 10.0
    inv = 1.0 / y
    inv2 = inv * inv
    series = inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 * (1 / 1680 - inv2 / 1188))))
    return (y - 0.5) * np.log(y) - y + 0.5 * LOG_2PI + series - shift


def digamma(x: Any) -> np.ndarray:
    """The digamma function ``d/dx log(Gamma(x))`` for ``x > 0``, vectorised (error < 1e-13).

    >>> round(float(digamma(1.0)), 12)  # minus the Euler-Mascheroni constant
    -0.577215664902
    """
    x = np.asarray(x, dtype=np.float64)
    shift = -(1.0 / (x[..., None] + _SHIFT)).sum(axis=-1)
    y = x + 10.0
    inv = 1.0 / y
    inv2 = inv * inv
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    return shift + np.log(y) - 0.5 * inv - series


def _logsumexp(a: np.ndarray) -> np.ndarray:
    """Row-wise ``log(sum(exp(a)))`` of an ``(n, k)`` array with ``k >= 1``."""
    top = a.max(axis=1)
    return top + np.log(np.exp(a - top[:, None]).sum(axis=1))


def _chi2_quantile(dof: int, z: float = 2.326) -> float:
    """The Wilson-Hilferty approximation of the chi-square quantile at the normal quantile ``z`` (0.99)."""
    c = 2.0 / (9.0 * dof)
    return dof * (1.0 - c + z * math.sqrt(c)) ** 3


# ---------------------------------------------------------------------- the conjugate posterior
@dataclass(frozen=True)
class _Prior:
    """The base measure: mean ``m0``, mean precision ``kappa0``, variance ``var0`` and ``strength`` pseudo-points."""

    mean: np.ndarray
    kappa: float
    var: float
    strength: float
    covariance_type: str

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    @property
    def dof(self) -> float:
        """Gamma shape ``a0`` (diag) or Wishart degrees of freedom ``nu0`` (full)."""
        return self.strength / 2.0 if self.covariance_type == "diag" else self.dim - 1.0 + self.strength

    def posterior(self, n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(kappa, mean, shape, scale)`` of each component from its statistics: ``shape`` is the Gamma
        ``a`` (diag) or Wishart ``nu`` (full), ``scale`` the Gamma rates ``b`` ``(k, d)`` or ``W^-1`` ``(k, d, d)``."""
        kappa = self.kappa + n
        mean = (self.kappa * self.mean + s1) / kappa[:, None]
        xbar = s1 / np.maximum(n, 1e-300)[:, None]
        dev = xbar - self.mean
        shrink = self.kappa * n / kappa
        if self.covariance_type == "diag":
            scatter = np.maximum(s2 - s1 * xbar, 0.0)
            rate = self.dof * self.var + 0.5 * (scatter + shrink[:, None] * dev * dev)
            return kappa, mean, self.dof + 0.5 * n, rate
        scatter = s2 - s1[:, :, None] * xbar[:, None, :]
        scatter = 0.5 * (scatter + scatter.transpose(0, 2, 1))
        winv = (self.dof * self.var) * np.eye(self.dim) + scatter + shrink[:, None, None] * dev[:, :, None] * dev[:, None, :]
        return kappa, mean, self.dof + n, winv

    def log_evidence(self, n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        """Each component's log marginal likelihood of its statistics, up to terms linear in ``N`` (which
        cancel when a merge is compared with the two components apart)."""
        kappa, _, shape, scale = self.posterior(n, s1, s2)
        d = self.dim
        common = 0.5 * d * (math.log(self.kappa) - np.log(kappa))
        if self.covariance_type == "diag":
            b0 = self.dof * self.var
            return common + d * (gammaln(shape) - math.lgamma(self.dof) + self.dof * math.log(b0)) \
                - shape * np.log(scale).sum(axis=1)
        _, logdet = np.linalg.slogdet(scale)
        half = np.arange(d) / 2.0
        gamma_d = gammaln(shape[:, None] / 2.0 - half).sum(axis=1)
        gamma_0 = sum(math.lgamma(self.dof / 2.0 - h) for h in half)
        return common + gamma_d - gamma_0 + 0.5 * self.dof * d * math.log(self.dof * self.var) \
            - 0.5 * shape * logdet

    def predictive(self) -> dict[str, Any]:
        """The prior predictive (a Student-t) of a new component, as the local step evaluates it."""
        d = self.dim
        if self.covariance_type == "diag":
            nu = 2.0 * self.dof
            scale2 = self.var * (self.kappa + 1.0) / self.kappa
            const = d * (math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi * scale2))
            return {"new_kind": "diag", "new_loc": self.mean, "new_denom": nu * scale2, "new_power": (nu + 1) / 2,
                    "new_const": const}
        nu = self.dof - d + 1.0
        scale2 = (self.kappa + 1.0) * self.dof * self.var / (self.kappa * nu)
        const = math.lgamma((nu + d) / 2) - math.lgamma(nu / 2) - 0.5 * d * math.log(nu * math.pi * scale2)
        return {"new_kind": "full", "new_loc": self.mean, "new_denom": nu * scale2, "new_power": (nu + d) / 2,
                "new_const": const}


def _stick_log_weights(n: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """``E[log pi_k]`` of each component under the stick-breaking posterior (sticks ordered by decreasing
    count, ties by position) and ``E[log pi_new]`` of a component beyond them."""
    if n.size == 0:
        return np.zeros(0), _new_stick(alpha)
    order = np.argsort(-n, kind="stable")
    sorted_n = n[order]
    rest = sorted_n.sum() - np.cumsum(sorted_n)
    g1, g2 = 1.0 + sorted_n, alpha + np.maximum(rest, 0.0)
    psi = digamma(np.concatenate([g1 + g2, g1, g2])).reshape(3, -1)
    log_v, log_1v = psi[1] - psi[0], psi[2] - psi[0]
    before = np.concatenate([[0.0], np.cumsum(log_1v)[:-1]])
    out = np.empty_like(n)
    out[order] = log_v + before
    return out, float(log_1v.sum()) + _new_stick(alpha)


def _new_stick(alpha: float) -> float:
    """``E[log v]`` of a fresh stick ``v ~ Beta(1, alpha)``."""
    psi = digamma(np.array([1.0, 1.0 + alpha]))
    return float(psi[0] - psi[1])


def _e_step_terms(prior: _Prior, n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> dict[str, np.ndarray]:
    """What the E-step needs per component: means, precisions (diag) or precision Cholesky factors
    (full) and the constant ``log_norm`` of ``E[log N(x | mu, Lambda)]``."""
    kappa, mean, shape, scale = prior.posterior(n, s1, s2)
    d = prior.dim
    if prior.covariance_type == "diag":
        log_norm = 0.5 * (d * digamma(shape) - np.log(scale).sum(axis=1)) - 0.5 * d * LOG_2PI - 0.5 * d / kappa
        return {"means": mean, "precisions": shape[:, None] / scale, "log_norm": log_norm}
    chol = np.linalg.cholesky(scale)  # W^-1 = L L^T
    inv_chol = np.linalg.inv(chol)
    prec_chol = np.sqrt(shape)[:, None, None] * inv_chol.transpose(0, 2, 1)  # nu W = P P^T
    logdet_w = -2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    elog_det = digamma((shape[:, None] - np.arange(d)) / 2.0).sum(axis=1) + d * math.log(2.0) + logdet_w
    log_norm = 0.5 * elog_det - 0.5 * d * LOG_2PI - 0.5 * d / kappa
    return {"means": mean, "prec_chol": prec_chol, "log_norm": log_norm}


def _expected_loglik(terms: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """``E[log N(x_i | mu_k, Lambda_k)]`` ``(n, k)`` for the terms of :func:`_e_step_terms`."""
    means = terms["means"]
    if "precisions" in terms:
        prec = terms["precisions"]
        quad = (x * x) @ prec.T - 2.0 * x @ (prec * means).T + (prec * means * means).sum(axis=1)
    else:
        chol = terms["prec_chol"]
        y = np.matmul(x[None, :, :], chol) - np.matmul(means[:, None, :], chol)
        quad = (y * y).sum(axis=2).T
    return terms["log_norm"] - 0.5 * np.maximum(quad, 0.0)


def _new_loglik(state: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """The prior predictive log density of each point under a new component."""
    dev2 = (x - state["new_loc"]) ** 2
    if state["new_kind"] == "diag":
        return state["new_const"] - state["new_power"] * np.log1p(dev2 / state["new_denom"]).sum(axis=1)
    return state["new_const"] - state["new_power"] * np.log1p(dev2.sum(axis=1) / state["new_denom"])


def _sufficient(x: np.ndarray, weights: np.ndarray, resp: np.ndarray, full: bool) -> tuple[np.ndarray, ...]:
    """Weighted statistics ``(N, sum x, sum x^2 or x x^T)`` of rows ``x`` with responsibilities ``resp``."""
    r = resp * weights[:, None]
    s2 = np.einsum("nk,nd,ne->kde", r, x, x, optimize=True) if full else r.T @ (x * x)
    return r.sum(axis=0), r.T @ x, s2


# ---------------------------------------------------------------------- the update record
@dataclass(frozen=True, eq=False)
class DPGMMUpdate:
    """What one batch did: ``births`` (new ids), ``merges`` (``{from_id: into_id}``, chains resolved to the
    final id), ``deaths`` (retired ids), ``candidate_labels`` (the final id of each of the batch's birth
    candidates, in order; -1 while the model has no component), ``points`` (rows), ``discount`` (the
    decay applied), ``pending`` (candidate rows kept for later births) and ``k`` (live components after)."""

    points: int
    discount: float
    births: list[int] = field(default_factory=list)
    merges: dict[int, int] = field(default_factory=dict)
    deaths: list[int] = field(default_factory=list)
    candidate_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pending: int = 0
    k: int = 0

    def relabel(self, labels: np.ndarray) -> np.ndarray:
        """``labels`` of the batch (-1 for candidates, in order) with candidates given their final id,
        merged ids mapped to the component they went into and ids that died in this batch to -1."""
        out = np.asarray(labels, dtype=np.int64).copy()
        out[out == -1] = self.candidate_labels
        for source, target in self.merges.items():
            out[out == source] = target
        if self.deaths:
            out[np.isin(out, self.deaths)] = -1
        return out


# ---------------------------------------------------------------------- the model
class DPGMM:
    """An online variational DP Gaussian mixture; see the module docstring.

    ``alpha`` is the DP concentration, ``max_components`` the truncation (births stop there),
    ``covariance_type`` "diag" or "full". Forgetting: ``decay_factor`` in [0, 1] per batch (default 1,
    never forget) or ``half_life`` in batches. Births: ``birth_threshold`` (the new component's share of
    a point's mass that makes it a candidate), ``birth_min_count`` (candidates a new component needs),
    ``max_pending`` (candidate rows kept for later batches). ``min_weight``: the expected count below which
    a component is retired; ``merge``: whether to merge. The prior: ``prior_variance`` (``sigma0^2``,
    default estimated), ``prior_strength`` (pseudo-points) and ``init_points`` (points needed before the
    first components are born). ``seed`` makes the births' k-means seeding reproducible.
    """

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        max_components: int = 50,
        covariance_type: str = "diag",
        decay_factor: float | None = None,
        half_life: float | None = None,
        birth_threshold: float = 0.5,
        birth_min_count: int = 5,
        max_pending: int = 500,
        min_weight: float = 0.5,
        merge: bool = True,
        prior_variance: float | None = None,
        prior_strength: float = 2.0,
        init_points: int = 100,
        seed: int = 0,
    ) -> None:
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {', '.join(COVARIANCE_TYPES)}, got {covariance_type!r}")
        decay_factor = resolve_forgetting(decay_factor, half_life)
        if not isinstance(merge, bool):
            raise ValueError(f"merge must be True or False, got {merge!r}")
        self.alpha = _check_number("alpha", alpha, minimum=0.0, strict=True)
        self.max_components = _check_count("max_components", max_components)
        self.covariance_type = covariance_type
        self.decay_factor = float(decay_factor)
        self.half_life = None if half_life is None else float(half_life)
        self.birth_threshold = _check_number("birth_threshold", birth_threshold, minimum=0.0, maximum=1.0,
                                             strict=True)
        self.birth_min_count = _check_count("birth_min_count", birth_min_count)
        self.max_pending = _check_count("max_pending", max_pending, minimum=0)
        self.min_weight = _check_number("min_weight", min_weight, minimum=0.0)
        self.merge = merge
        self.prior_variance = None if prior_variance is None else _check_number(
            "prior_variance", prior_variance, minimum=0.0, strict=True)
        self.prior_strength = _check_number("prior_strength", prior_strength, minimum=0.0, strict=True)
        self.init_points = _check_count("init_points", init_points)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        self.dim: int | None = None
        self.n_batches = 0
        self.n_points = 0
        self.next_id = 0
        self.last_update: DPGMMUpdate | None = None
        self._prior: _Prior | None = None
        self._ids = np.zeros(0, dtype=np.int64)
        self._n = np.zeros(0)
        self._s1 = np.zeros((0, 0))
        self._s2 = np.zeros((0, 0))
        self._pending = np.zeros((0, 0))
        self._pending_w = np.zeros(0)
        self._local: dict[str, Any] | None = None

    # ------------------------------------------------------------------ reading
    @property
    def k(self) -> int:
        """The number of live components."""
        return int(self._ids.size)

    @property
    def initialised(self) -> bool:
        """Always True: the mixture needs no initial components, its first points open them (the stream
        jobs ask every model the same question)."""
        return True

    @property
    def cluster_ids(self) -> np.ndarray:
        """The live components' ids, ascending (a copy)."""
        return self._ids.copy()

    @property
    def weights(self) -> np.ndarray:
        """Each live component's expected (discounted) count, aligned with :attr:`cluster_ids`."""
        return self._n.copy()

    @property
    def centres(self) -> np.ndarray:
        """Each live component's posterior mean ``(k, dim)``, aligned with :attr:`cluster_ids`."""
        if self._prior is None or not self.k:
            return np.zeros((0, self.dim or 0))
        return self._prior.posterior(self._n, self._s1, self._s2)[1]

    @property
    def covariances(self) -> np.ndarray:
        """Each component's covariance ``E[Lambda]^-1``: ``(k, dim)`` variances (diag) or ``(k, dim, dim)``."""
        if self._prior is None or not self.k:
            return np.zeros((0, self.dim or 0) if self.covariance_type == "diag" else (0, self.dim or 0, self.dim or 0))
        _, _, shape, scale = self._prior.posterior(self._n, self._s1, self._s2)
        if self.covariance_type == "diag":
            return scale / shape[:, None]
        return scale / shape[:, None, None]

    @property
    def pending(self) -> int:
        """Candidate rows waiting for a later birth."""
        return int(self._pending_w.size)

    def __repr__(self) -> str:
        return (f"DPGMM(k={self.k}, dim={self.dim}, alpha={self.alpha:g}, covariance_type={self.covariance_type!r}, "
                f"batches={self.n_batches}, points={self.n_points})")

    # ------------------------------------------------------------------ the local step
    def local_state(self) -> dict[str, Any]:
        """What an executor needs for :meth:`local_step`: plain numpy arrays and floats, picklable."""
        if self._local is None:
            state: dict[str, Any] = {"covariance_type": self.covariance_type, "dim": self.dim,
                                     "ids": self._ids.copy(), "birth_threshold": self.birth_threshold}
            if self._prior is not None:
                log_weights, new_log_weight = _stick_log_weights(self._n, self.alpha)
                state.update(_e_step_terms(self._prior, self._n, self._s1, self._s2))
                state.update(self._prior.predictive())
                state.update(log_weights=log_weights, new_log_weight=new_log_weight)
            self._local = state
        return self._local

    @staticmethod
    def local_step(state: Mapping[str, Any], x: Any, weights: Any = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The E-step of one part of a batch under ``state`` (:meth:`local_state`); pure.

        Returns ``labels`` (the MAP component id of each row, -1 for a birth candidate) and ``stats``:
        per component (aligned with ``state["ids"]``) ``n``, ``sum``, ``sum_sq`` (``x^2`` or ``x x^T``),
        ``count`` (rows) and ``rows``, all additive, plus ``candidates`` and ``candidate_weights`` in row
        order and ``ids``.
        """
        dim = state["dim"]
        points = _points(x, dim)
        w = _weights(weights, len(points))
        d = points.shape[1] if dim is None else dim
        ids = np.asarray(state["ids"], dtype=np.int64)
        k, full = ids.size, state["covariance_type"] == "full"
        labels = np.full(len(points), -1, dtype=np.int64)
        candidate = np.ones(len(points), dtype=bool)
        resp = np.zeros((len(points), k))
        if k and len(points):
            scores = _expected_loglik(state, points) + state["log_weights"]
            norm = _logsumexp(scores)
            new = _new_loglik(state, points) + state["new_log_weight"]
            total = np.logaddexp(norm, new)
            candidate = new - total > math.log(state["birth_threshold"])
            resp = np.exp(scores - norm[:, None])
            resp[candidate] = 0.0
            labels = np.where(candidate, -1, ids[scores.argmax(axis=1)])
        n, s1, s2 = _sufficient(points, w, resp, full) if k else (
            np.zeros(0), np.zeros((0, d)), np.zeros((0, d, d) if full else (0, d)))
        stats = {"ids": ids, "n": n, "sum": s1, "sum_sq": s2, "count": np.array(float(w.sum())),
                 "rows": np.array(len(points), dtype=np.int64), "candidates": points[candidate],
                 "candidate_weights": w[candidate]}
        return labels, stats

    @staticmethod
    def merge_stats(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The statistics of two parts of a batch: additive arrays summed, candidates ``a`` then ``b``."""
        if not np.array_equal(a["ids"], b["ids"]):
            raise ValueError(f"statistics of different model states cannot be merged: component ids "
                             f"{np.asarray(a['ids']).tolist()} and {np.asarray(b['ids']).tolist()}")
        out = {"ids": np.asarray(a["ids"])}
        for key in _ADDITIVE:
            left, right = np.asarray(a[key]), np.asarray(b[key])
            if left.shape != right.shape:
                raise ValueError(f"statistics {key!r} have different shapes: {left.shape} and {right.shape}")
            out[key] = left + right
        parts = [np.asarray(s["candidates"], dtype=np.float64) for s in (a, b) if len(s["candidates"])]
        widths = {p.shape[1] for p in parts}
        if len(widths) > 1:
            raise ValueError(f"candidates have different dimensions: {sorted(widths)}")
        out["candidates"] = np.concatenate(parts) if parts else np.asarray(a["candidates"], dtype=np.float64)
        out["candidate_weights"] = np.concatenate([np.asarray(a["candidate_weights"], dtype=np.float64),
                                                   np.asarray(b["candidate_weights"], dtype=np.float64)])
        return out

    # ------------------------------------------------------------------ the global step
    def global_step(self, stats: Mapping[str, Any]) -> DPGMMUpdate:
        """Fold one batch's statistics (:meth:`local_step`, :meth:`merge_stats`) into the posterior:
        forgetting, births from the candidates, merges and deaths. Returns the :class:`DPGMMUpdate`."""
        stats = self._checked_stats(stats)
        discount = self.decay_factor
        self._n = self._n * discount + stats["n"]
        self._s1 = self._s1 * discount + stats["sum"]
        self._s2 = self._s2 * discount + stats["sum_sq"]
        self._pending_w = self._pending_w * discount
        candidate_labels = self._births(stats["candidates"], stats["candidate_weights"])
        merges = self._merges() if self.merge else {}
        births, merges, candidate_labels = self._name_births(merges, candidate_labels)
        deaths = self._deaths()
        if deaths:
            candidate_labels[np.isin(candidate_labels, deaths)] = -1
        self.n_batches += 1
        self.n_points += int(stats["rows"])
        self._local = None
        self.last_update = DPGMMUpdate(int(stats["rows"]), discount, births, merges, deaths, candidate_labels,
                                    self.pending, self.k)
        return self.last_update

    def _name_births(self, merges: dict[int, int], labels: np.ndarray) -> tuple[list[int], dict[int, int], np.ndarray]:
        """Fresh ids for the new components that survived the merges (they carry placeholder ids -2, -3, ...
        until here, so a birth merged away in its own batch never shows); the merges among existing
        components, and the candidates' final ids."""
        placeholders = self._ids < -1
        births = list(range(self.next_id, self.next_id + int(placeholders.sum())))
        self.next_id += len(births)
        names = dict(zip(self._ids[placeholders].tolist(), births, strict=True))
        self._ids = self._ids.copy()
        self._ids[placeholders] = births
        final = {source: names.get(target, target) for source, target in merges.items()}
        lookup = {**final, **names}
        labels = np.array([lookup.get(int(label), int(label)) for label in labels], dtype=np.int64)
        return births, {source: target for source, target in final.items() if source >= 0}, labels

    def _checked_stats(self, stats: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(stats, Mapping):
            raise ValueError(f"stats must be the dict local_step returns, got {type(stats).__name__}")
        missing = [key for key in (*_ADDITIVE, "ids", "candidates", "candidate_weights") if key not in stats]
        if missing:
            raise ValueError(f"stats lack {', '.join(missing)}")
        if not np.array_equal(np.asarray(stats["ids"]), self._ids):
            raise ValueError(f"stats were computed against components {np.asarray(stats['ids']).tolist()}, the "
                             f"model has {self._ids.tolist()}: run local_step on the current local_state()")
        out = {key: np.asarray(stats[key], dtype=np.float64) for key in ("n", "sum", "sum_sq", "count",
                                                                      "candidate_weights")}
        out["rows"] = np.asarray(stats["rows"])
        candidates = np.asarray(stats["candidates"], dtype=np.float64)
        if len(candidates):
            if candidates.ndim != 2 or (self.dim is not None and candidates.shape[1] != self.dim):
                raise ValueError(f"candidates must be rows of {self.dim} coordinates, got shape {candidates.shape}")
            if self.dim is None:
                self._set_dim(candidates.shape[1])
        out["candidates"] = candidates.reshape(len(candidates), self.dim or 0)
        if out["candidate_weights"].shape != (len(candidates),):
            raise ValueError("candidate_weights must hold one weight per candidate")
        if self.k and (out["n"].shape != (self.k,) or out["sum"].shape != self._s1.shape
                       or out["sum_sq"].shape != self._s2.shape):
            raise ValueError(f"stats do not fit the model's {self.k} components of dimension {self.dim}")
        if not self.k:
            out["n"], out["sum"], out["sum_sq"] = self._n, self._s1, self._s2  # nothing to add
        return out

    def _set_dim(self, dim: int) -> None:
        self.dim = dim
        self._s1 = np.zeros((0, dim))
        self._s2 = np.zeros((0, dim, dim) if self.covariance_type == "full" else (0, dim))
        self._pending = np.zeros((0, dim))

    # ------------------------------------------------------------------ births
    def _births(self, candidates: np.ndarray, cand_w: np.ndarray) -> np.ndarray:
        """Births from this batch's candidates and the pending ones (new components get placeholder ids);
        returns the component of each of this batch's candidates (before merges)."""
        fresh = len(candidates)
        if not fresh:
            return np.zeros(0, dtype=np.int64)
        rows = np.concatenate([self._pending, candidates])
        row_w = np.concatenate([self._pending_w, cand_w])
        if self._prior is None:
            if row_w.sum() < self.init_points or not (row_w > 0).any():
                self._keep_pending(rows, row_w, np.zeros(len(rows), dtype=bool))
                return np.full(fresh, -1, dtype=np.int64)
            self._prior = self._make_prior(rows, row_w)
        free = self.max_components - self.k
        starts = self._dp_means(rows, row_w, free) if free > 0 else np.zeros((0, rows.shape[1]))
        resp, born = self._candidate_vb(rows, row_w, starts)
        k_old = self.k
        scores = resp.argmax(axis=1) if resp.shape[1] else np.full(len(rows), -1)
        placed = scores >= k_old
        # only the rows that joined a new component add their statistics; the rest wait
        n, s1, s2 = _sufficient(rows[placed], row_w[placed], resp[placed], self.covariance_type == "full")
        new_ids = list(range(-2, -2 - born, -1))  # placeholders: _name_births gives the survivors ids
        self._ids = np.concatenate([self._ids, np.array(new_ids, dtype=np.int64)])
        self._n = np.concatenate([self._n, np.zeros(born)]) + n
        self._s1 = np.concatenate([self._s1, np.zeros((born, *self._s1.shape[1:]))]) + s1
        self._s2 = np.concatenate([self._s2, np.zeros((born, *self._s2.shape[1:]))]) + s2
        self._keep_pending(rows, row_w, placed)
        labels = np.where(scores >= 0, self._ids[np.maximum(scores, 0)], -1) if self.k else np.full(len(rows), -1)
        return labels[len(rows) - fresh:].astype(np.int64)

    def _keep_pending(self, rows: np.ndarray, row_w: np.ndarray, placed: np.ndarray) -> None:
        keep = ~placed & (row_w > 0)
        start = max(int(keep.sum()) - self.max_pending, 0)
        self._pending = rows[keep][start:].copy()
        self._pending_w = row_w[keep][start:].copy()

    def _make_prior(self, rows: np.ndarray, row_w: np.ndarray) -> _Prior:
        """The base measure from the first points: their mean, spread and (unless given) within-cluster variance."""
        p = row_w / row_w.sum()
        mean = p @ rows
        spread = float(p @ ((rows - mean) ** 2).sum(axis=1)) / rows.shape[1]
        var = self.prior_variance
        if var is None:
            k = int(min(max(1, len(rows) // _PROBE_POINTS), self.max_components))
            sample = rows[: 200 * _PROBE_POINTS]
            centres = _lloyd(sample, row_w[: len(sample)], kmeans_plus_plus(sample, k, seed=self.seed,
                                                                             weights=row_w[: len(sample)]), 10)
            nearest = ((sample - centres[_nearest_index(sample, centres)]) ** 2).sum(axis=1)
            var = float(row_w[: len(sample)] @ nearest / row_w[: len(sample)].sum()) / rows.shape[1]
        spread = max(spread, 1e-12)
        var = min(max(var, 1e-6 * spread, 1e-300), spread)
        kappa = float(min(max(var / spread, 1e-8), 1.0))
        return _Prior(mean, kappa, var, self.prior_strength, self.covariance_type)

    def _dp_means(self, rows: np.ndarray, row_w: np.ndarray, cap: int) -> np.ndarray:
        """Starting centres for new components: DP-means on the candidates (radius from the prior's
        variance), farthest point first, at most ``cap``, then a few Lloyd passes."""
        assert self._prior is not None
        live = row_w > 0
        pts, w = rows[live], row_w[live]
        if not len(pts):
            return np.zeros((0, rows.shape[1]))
        lam = self._prior.var * _chi2_quantile(rows.shape[1])
        cap = min(cap, max(1, len(pts) // self.birth_min_count))
        rng = np.random.default_rng([self.seed, self.n_batches])
        centres = [pts[int(rng.choice(len(pts), p=w / w.sum()))]]
        nearest = ((pts - centres[0]) ** 2).sum(axis=1)
        while len(centres) < cap:
            far = int(nearest.argmax())
            if nearest[far] <= lam:
                break
            centres.append(pts[far])
            nearest = np.minimum(nearest, ((pts - pts[far]) ** 2).sum(axis=1))
        return _lloyd(pts, w, np.array(centres), 3)

    def _candidate_vb(self, rows: np.ndarray, row_w: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, int]:
        """Variational EM on the candidate rows against the existing components (their statistics fixed,
        plus the candidates' share) and new ones started at ``starts``; new components under
        ``birth_min_count`` are dropped and the rest refitted. Returns the responsibilities ``(rows,
        k + born)`` and the number born (the new components are the last columns)."""
        assert self._prior is not None
        k_old, full = self.k, self.covariance_type == "full"
        resp = np.zeros((len(rows), k_old + len(starts)))
        if len(starts):
            resp[np.arange(len(rows)), k_old + _nearest_index(rows, starts)] = 1.0
        for _ in range(4):
            resp = self._vb_loop(rows, row_w, resp, full)
            mass = (resp[:, k_old:] * row_w[:, None]).sum(axis=0)
            small = mass < self.birth_min_count
            if not small.any():
                break
            keep = np.concatenate([np.ones(k_old, dtype=bool), ~small])
            resp = resp[:, keep]
            if resp.shape[1] == 0:
                break
            resp = resp / np.maximum(resp.sum(axis=1, keepdims=True), 1e-300)
        return resp, resp.shape[1] - k_old

    def _vb_loop(self, rows: np.ndarray, row_w: np.ndarray, resp: np.ndarray, full: bool) -> np.ndarray:
        assert self._prior is not None
        k_old, k_all = self.k, resp.shape[1]
        if k_all == 0:
            return resp
        pad = k_all - k_old
        base_n = np.concatenate([self._n, np.zeros(pad)])
        base_s1 = np.concatenate([self._s1, np.zeros((pad, rows.shape[1]))])
        base_s2 = np.concatenate([self._s2, np.zeros((pad, *self._s2.shape[1:]))])
        last, tol = None, max(_VB_TOL, _VB_RELATIVE_TOL * float(row_w.sum()))
        for _ in range(_VB_ITERATIONS):
            n, s1, s2 = _sufficient(rows, row_w, resp, full)
            if last is not None and np.abs(n - last).max() < tol:
                break
            last = n
            total_n = base_n + n
            terms = _e_step_terms(self._prior, total_n, base_s1 + s1, base_s2 + s2)
            scores = _expected_loglik(terms, rows) + _stick_log_weights(total_n, self.alpha)[0]
            resp = np.exp(scores - _logsumexp(scores)[:, None])
        return resp

    # ------------------------------------------------------------------ merges and deaths
    def _merge_gains(self) -> np.ndarray:
        """The change of the collapsed evidence of merging each pair ``(i, j)``, ``i < j`` (else -inf)."""
        assert self._prior is not None
        k = self.k
        i, j = np.triu_indices(k, 1)
        gains = np.full((k, k), -np.inf)
        if not i.size:
            return gains
        own = self._prior.log_evidence(self._n, self._s1, self._s2)
        joint = self._prior.log_evidence(self._n[i] + self._n[j], self._s1[i] + self._s1[j], self._s2[i] + self._s2[j])
        n_i, n_j = np.maximum(self._n[i], 1e-12), np.maximum(self._n[j], 1e-12)
        partition = gammaln(n_i + n_j) - gammaln(n_i) - gammaln(n_j) - math.log(self.alpha)
        gains[i, j] = joint - own[i] - own[j] + partition
        return gains

    def _merges(self) -> dict[int, int]:
        merges: dict[int, int] = {}
        while self.k > 1:
            gains = self._merge_gains()
            i, j = np.unravel_index(int(gains.argmax()), gains.shape)
            if not gains[i, j] >= 0.0:
                break
            # an existing component keeps its id against a newborn; else the heavier keeps its own
            newborn_i, newborn_j = self._ids[i] < -1, self._ids[j] < -1
            first = self._n[i] >= self._n[j] if newborn_i == newborn_j else newborn_j
            keep, drop = (i, j) if first else (j, i)
            source, target = int(self._ids[drop]), int(self._ids[keep])
            for key, value in list(merges.items()):
                if value == source:
                    merges[key] = target
            merges[source] = target
            self._n[keep] += self._n[drop]
            self._s1[keep] += self._s1[drop]
            self._s2[keep] += self._s2[drop]
            self._remove(np.arange(self.k) == drop)
        return merges

    def _deaths(self) -> list[int]:
        dead = self._n < self.min_weight
        ids = self._ids[dead].tolist()
        if ids:
            self._remove(dead)
        return ids

    def _remove(self, mask: np.ndarray) -> None:
        keep = ~mask
        self._ids, self._n, self._s1, self._s2 = self._ids[keep], self._n[keep], self._s1[keep], self._s2[keep]

    # ------------------------------------------------------------------ learning and predicting
    def learn_predict_many(self, x: Any, weights: Any = None) -> np.ndarray:
        """Learn one batch and return each point's component id (its MAP component, candidates the id they
        were born into or joined, merged ids mapped; -1 only while the model has no component)."""
        labels, stats = self.local_step(self.local_state(), x, weights)
        return self.global_step(stats).relabel(labels)

    def learn_many(self, x: Any, weights: Any = None) -> DPGMM:
        """Learn one batch of points (an ``(n, dim)`` array or list of lists); returns the model."""
        self.learn_predict_many(x, weights)
        return self

    def learn_one(self, x: Any, w: float = 1.0) -> DPGMM:
        """Learn one point (a flat list or 1-D array) as a batch of one: with forgetting, one batch of decay."""
        return self.learn_many(_one(x), [w])

    def predict_proba_many(self, x: Any) -> np.ndarray:
        """Each point's responsibilities ``(n, k)`` over the live components, aligned with :attr:`cluster_ids`."""
        state = self.local_state()
        points = _points(x, self.dim)
        if not self.k:
            return np.zeros((len(points), 0))
        scores = _expected_loglik(state, points) + state["log_weights"]
        return np.exp(scores - _logsumexp(scores)[:, None]) if len(points) else np.zeros((0, self.k))

    def predict_many(self, x: Any) -> np.ndarray:
        """Each point's MAP component id (int64; -1 while the model has no component); nothing is learnt."""
        proba = self.predict_proba_many(x)
        if not self.k:
            return np.full(len(proba), -1, dtype=np.int64)
        return self._ids[proba.argmax(axis=1)] if len(proba) else np.zeros(0, dtype=np.int64)

    def predict_one(self, x: Any) -> int:
        """One point's MAP component id (-1 while the model has no component)."""
        return int(self.predict_many(_one(x))[0])

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """The whole model as JSON-able plain values; :meth:`from_state` restores it exactly."""
        prior = None if self._prior is None else {"mean": self._prior.mean.tolist(), "kappa": self._prior.kappa,
                                                  "variance": self._prior.var}
        return {
            "model": STATE_MODEL, "state_version": STATE_VERSION,
            "params": {"alpha": self.alpha, "max_components": self.max_components,
                       "covariance_type": self.covariance_type, "decay_factor": self.decay_factor,
                       "half_life": self.half_life, "birth_threshold": self.birth_threshold,
                       "birth_min_count": self.birth_min_count, "max_pending": self.max_pending,
                       "min_weight": self.min_weight, "merge": self.merge, "prior_variance": self.prior_variance,
                       "prior_strength": self.prior_strength, "init_points": self.init_points, "seed": self.seed},
            "dim": self.dim, "batches": self.n_batches, "points": self.n_points, "next_id": self.next_id,
            "prior": prior, "ids": self._ids.tolist(), "counts": self._n.tolist(), "sums": self._s1.tolist(),
            "sums_sq": self._s2.tolist(), "pending": self._pending.tolist(), "pending_weights": self._pending_w.tolist(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> DPGMM:
        """The model :meth:`to_state` described; a ValueError names what is missing or wrong."""
        if not isinstance(state, Mapping):
            raise ValueError(f"a DPGMM state must be a JSON object, got {type(state).__name__}")
        if state.get("model") != STATE_MODEL or state.get("state_version") != STATE_VERSION:
            raise ValueError(f"not a {STATE_MODEL} state of version {STATE_VERSION}: model={state.get('model')!r}, "
                             f"state_version={state.get('state_version')!r}")
        keys = ("params", "dim", "batches", "points", "next_id", "prior", "ids", "counts", "sums", "sums_sq",
                "pending", "pending_weights")
        missing = [key for key in keys if key not in state]
        if missing:
            raise ValueError(f"DPGMM state lacks {', '.join(missing)}")
        params = dict(state["params"]) if isinstance(state["params"], Mapping) else {}
        unknown = sorted(set(params) - set(_PARAMS))
        if unknown or not params:
            raise ValueError(f"DPGMM state params must be an object of {', '.join(_PARAMS)}; unknown: {unknown}")
        if params.get("half_life") is not None:
            params.pop("decay_factor", None)
        model = cls(**params)
        if state["dim"] is not None:
            model._set_dim(_check_count("dim", state["dim"]))
        model.n_batches = _check_count("batches", state["batches"], minimum=0)
        model.n_points = _check_count("points", state["points"], minimum=0)
        model.next_id = _check_count("next_id", state["next_id"], minimum=0)
        model._load_arrays(state)
        return model

    def _load_arrays(self, state: Mapping[str, Any]) -> None:
        d = self.dim or 0
        ids = np.asarray(state["ids"], dtype=np.int64).reshape(-1)
        k = ids.size
        shapes = {"counts": (k,), "sums": (k, d), "sums_sq": (k, d, d) if self.covariance_type == "full" else (k, d)}
        arrays = {}
        for key, shape in shapes.items():
            array = np.asarray(state[key], dtype=np.float64)
            if array.size != math.prod(shape) or not np.isfinite(array).all():
                raise ValueError(f"DPGMM state {key} must be {shape} finite numbers")
            arrays[key] = array.reshape(shape)
        if len(set(ids.tolist())) != k or (k and (ids.min() < 0 or ids.max() >= self.next_id)):
            raise ValueError(f"DPGMM state ids must be distinct and below next_id ({self.next_id}), got {ids.tolist()}")
        if k and state["prior"] is None:
            raise ValueError("DPGMM state has components but no prior")
        self._ids, self._n, self._s1, self._s2 = ids, arrays["counts"], arrays["sums"], arrays["sums_sq"]
        pending_w = np.asarray(state["pending_weights"], dtype=np.float64).reshape(-1)
        self._pending = np.asarray(state["pending"], dtype=np.float64).reshape(len(pending_w), d)
        self._pending_w = pending_w
        if state["prior"] is not None:
            prior = state["prior"]
            self._prior = _Prior(np.asarray(prior["mean"], dtype=np.float64).reshape(d), float(prior["kappa"]),
                                 float(prior["variance"]), self.prior_strength, self.covariance_type)


# ---------------------------------------------------------------------- helpers
def _lloyd(points: np.ndarray, weights: np.ndarray, centres: np.ndarray, passes: int) -> np.ndarray:
    """A few weighted Lloyd passes from ``centres``; centres left without points are dropped."""
    for _ in range(passes):
        nearest = _nearest_index(points, centres)
        mass = np.bincount(nearest, weights=weights, minlength=len(centres))
        sums = np.zeros_like(centres)
        np.add.at(sums, nearest, points * weights[:, None])
        used = mass > 0
        centres = sums[used] / mass[used][:, None]
    return centres


def _nearest_index(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The nearest centre of each point (squared Euclidean distance, ``|x|^2`` left out)."""
    return ((centres * centres).sum(axis=1) - 2.0 * points @ centres.T).argmin(axis=1)




def _one(x: Any) -> np.ndarray:
    try:
        array = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"x must be numbers, got {_preview(x)} ({err})") from None
    if array.ndim != 1:
        raise ValueError(f"x must be one point (a flat list of numbers), got shape {array.shape}")
    return array[None, :]




def _weights(weights: Any, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    try:
        array = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"weights must be numbers, got {_preview(weights)} ({err})") from None
    if array.shape != (n,):
        raise ValueError(f"weights must hold one weight per point ({n}), got shape {array.shape}")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"weights must be finite and 0 or more, got {_preview(array.tolist())}")
    return array


def _check_count(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_number(name: str, value: Any, *, minimum: float, maximum: float | None = None,
                  strict: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer)) \
        and math.isfinite(value) and (value > minimum if strict else value >= minimum) \
        and (maximum is None or value <= maximum)
    if not ok:
        low = f"> {minimum:g}" if strict else f">= {minimum:g}"
        high = "" if maximum is None else f" and <= {maximum:g}"
        raise ValueError(f"{name} must be a finite number {low}{high}, got {value!r}")
    return float(value)
