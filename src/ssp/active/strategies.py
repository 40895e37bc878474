"""Query strategies: which unlabelled tweet the annotator should see next.

Each strategy turns per-tweet probabilities into an informativeness score (higher = ask
first); :func:`order` sorts by it. Only numpy is needed, so the tagger can rank a page of
tweets without loading TensorFlow: the model's probabilities come from the model server.

* ``least_confidence``: ``1 - max(p, 1 - p)``, highest at p = 0.5 (uncertainty sampling);
* ``entropy``: the binary entropy of p in bits; for two classes it orders tweets exactly as
  least confidence does, and is kept because its scale (0..1 bits) reads more naturally;
* ``disagreement``: ``|p_model - p_snorkel|``, where the classifier and the Snorkel label
  model disagree. A tweet no labelling function voted on (``slabel_prob`` NULL, i.e. NaN
  here) counts as ``p_snorkel = 0.5``, "no opinion": such a tweet scores high only when the
  classifier is confident, which points the annotator at confident predictions that weak
  supervision never checked;
* ``stochastic_uncertainty``: uncertainty sampling drawn at random rather than taken from the top:
  the ranking is a weighted draw without replacement, each tweet's chance proportional to its
  least-confidence score (Efraimidis and Spirakis's key ``log(u) / w``, ``u`` the random strategy's
  seeded hash, so a tweet keeps its place on every reload). This is "power" acquisition with
  exponent 1 (Kirsch et al. 2023, "Stochastic batch acquisition: a simple baseline for deep active
  learning"): a batch still leans on the uncertain tweets, but it is not the ``batch`` near-copies
  scored closest to 0.5, and tweets the model is wrong about with some confidence (p = 0.3 has 60%
  of p = 0.5's weight) keep a fair chance; only near-certain ones (p ~ 0 or 1) are practically
  never drawn. A tweet with score 0 gets the lowest key, ``log(u) / 1e-12``;
* ``random``: the control. The score is a seeded hash of ``(seed, id)``, not a draw from a
  random generator, so a tweet keeps its place however often the page is reloaded and
  whichever other tweets are on it.

>>> p = np.array([0.9, 0.5, 0.2, 0.65])
>>> order("least_confidence", p).tolist()
[1, 3, 2, 0]
>>> order("disagreement", p, snorkel_probs=np.array([0.1, 0.5, np.nan, 0.6])).tolist()
[0, 2, 3, 1]
>>> sorted(order("stochastic_uncertainty", p, seed=3).tolist())
[0, 1, 2, 3]
"""

from __future__ import annotations

import numpy as np

STRATEGIES = ("least_confidence", "entropy", "disagreement", "stochastic_uncertainty", "random")
# The weight below which a tweet counts as "never draw" in stochastic_uncertainty: keeps its key finite.
MIN_WEIGHT = 1e-12

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _probabilities(name: str, values: np.ndarray | None, allow_nan: bool = False) -> np.ndarray:
    """``values`` as a 1-D float array of probabilities, or a ValueError naming ``name`` and the bad entry."""
    if values is None:
        raise ValueError(f"{name} is required")
    array = np.asarray(values, dtype="float64")
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of P(AI) values, got shape {array.shape}")
    checked = array[~np.isnan(array)] if allow_nan else array
    bad = ~np.isfinite(checked) | (checked < 0) | (checked > 1)
    if bad.any():
        index = int(np.flatnonzero(~np.isnan(array))[np.argmax(bad)] if allow_nan else np.argmax(bad))
        allowed = "in [0, 1] or NaN" if allow_nan else "in [0, 1]"
        raise ValueError(f"{name} must hold probabilities {allowed}; entry {index} is {array[index]}")
    return array


def _ids(ids: np.ndarray | None, n: int) -> np.ndarray:
    if ids is None:
        return np.arange(n, dtype="int64")
    array = np.asarray(ids)
    if array.ndim != 1 or len(array) != n:
        raise ValueError(f"ids must be a 1-D array with one id per tweet ({n}), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"ids must be integers (tweet ids), got dtype {array.dtype}")
    return array.astype("int64")


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a well-mixed 64-bit hash that is the same in every process and platform."""
    with np.errstate(over="ignore"):
        z = (values + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def random_scores(ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """A number in [0, 1) per id, fixed by ``(seed, id)`` alone.

    >>> a = random_scores(np.array([7, 8, 9]), seed=1)
    >>> bool(np.all(random_scores(np.array([9, 7]), seed=1) == a[[2, 0]]))
    True
    """
    keys = np.asarray(ids, dtype="int64").view(np.uint64)
    mixed = _splitmix64(_splitmix64(np.full(keys.shape, np.int64(seed)).view(np.uint64)) ^ keys)
    return (mixed >> np.uint64(11)).astype("float64") * 2.0**-53


def stochastic_scores(weights: np.ndarray, ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """Keys of a weighted draw without replacement: sorting them descending draws tweet ``i`` next with
    probability ``weights[i] / sum(remaining weights)`` (``log(u) / w``, ``u = 1 - random_scores`` in (0, 1]).

    >>> w = np.array([0.5, 0.25, 0.0])
    >>> k = stochastic_scores(w, np.array([1, 2, 3]), seed=0)
    >>> bool(k[2] < min(k[0], k[1])), bool(np.all(k <= 0))
    (True, True)

    Over many seeds the more uncertain tweet comes first about twice as often (weights 0.5 and 0.25):

    >>> first = [int(np.argmax(stochastic_scores(w[:2], np.array([1, 2]), seed=s))) for s in range(2000)]
    >>> round(first.count(0) / 2000, 1)
    0.7
    """
    u = 1.0 - random_scores(ids, seed)
    return np.log(u) / np.maximum(np.asarray(weights, dtype="float64"), MIN_WEIGHT)


def scores(strategy: str, model_probs: np.ndarray | None, snorkel_probs: np.ndarray | None = None,
           ids: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Informativeness of each tweet under ``strategy``; higher means ask the annotator first.

    ``model_probs`` are the classifier's P(AI) (not needed for ``random``), ``snorkel_probs`` the
    label model's ``slabel_prob`` (only for ``disagreement``; NaN where Snorkel abstained), ``ids``
    the tweet ids (needed for ``random`` when ``model_probs`` is None; they fix the hash, and
    ``stochastic_uncertainty``'s draw; positions stand in for them when None).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"query strategy {strategy!r} is unknown: expected one of {', '.join(STRATEGIES)}")
    if strategy == "random":
        if model_probs is None and ids is None:
            raise ValueError("the random strategy needs ids or model_probs (to know how many tweets there are)")
        n = len(_probabilities("model_probs", model_probs)) if model_probs is not None else np.asarray(ids).shape[0]
        return random_scores(_ids(ids, n), seed)
    p = _probabilities("model_probs", model_probs)
    if ids is not None:
        _ids(ids, len(p))
    if strategy == "least_confidence":
        return 1.0 - np.maximum(p, 1.0 - p)
    if strategy == "stochastic_uncertainty":
        return stochastic_scores(1.0 - np.maximum(p, 1.0 - p), _ids(ids, len(p)), seed)
    if strategy == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = -(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))
        return np.nan_to_num(terms, nan=0.0)  # 0 log 0 = 0 at p = 0 and p = 1
    snorkel = _probabilities("snorkel_probs", snorkel_probs, allow_nan=True)
    if len(snorkel) != len(p):
        raise ValueError(f"snorkel_probs has {len(snorkel)} entries but model_probs has {len(p)}")
    return np.abs(p - np.where(np.isnan(snorkel), 0.5, snorkel))


def order(strategy: str, model_probs: np.ndarray | None, snorkel_probs: np.ndarray | None = None,
          ids: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Indices of the tweets, most informative first; equal scores go by ascending id (or position)."""
    values = scores(strategy, model_probs, snorkel_probs, ids, seed)
    tie_break = _ids(ids, len(values))
    # lexsort sorts by the last key first; it is stable, so equal ids keep their positions.
    return np.lexsort((tie_break, -values))
