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
* ``diverse_uncertainty``: a batch that is uncertain and diverse at once (Zhdanov 2019, "Diverse
  mini-batch active learning"): the ``10 * batch`` tweets of highest least confidence are clustered
  into ``batch`` groups by k-means on their text (hashed character n-grams, :func:`text_vectors`),
  each tweet weighing its least confidence, and the tweet nearest each group's centre is asked
  first. Top-``batch`` least confidence asks about ``batch`` near-copies of one kind of post at
  once; this asks about ``batch`` kinds. It needs the tweets' texts and the batch size;
* ``density_uncertainty``: least confidence times how typical a tweet's text is of the pool it is
  ranked in (its mean cosine similarity to the others, :func:`text_density`): "information density"
  (Settles and Craven 2008). An uncertain outlier (a one-off text, spam, another language's only post)
  teaches the model little about the rest; an uncertain post like many others teaches it about all of
  them. It needs the texts of the whole pool, which only ``ssp al simulate`` passes;
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

Two near-copies of a post are both uncertain; a diverse batch of two asks about one of them and the
other kind of post (least confidence would ask about both copies):

>>> texts = ["new paper on LLM agents", "new paper on LLM agents!", "my cat ate my homework", "sunny day"]
>>> p = np.array([0.5, 0.5, 0.4, 0.99])
>>> order("least_confidence", p)[:2].tolist(), order("diverse_uncertainty", p, texts=texts, batch=2)[:2].tolist()
([0, 1], [0, 2])
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from ssp.clustering.seeding import kmeans_plus_plus

STRATEGIES = ("least_confidence", "entropy", "disagreement", "stochastic_uncertainty", "diverse_uncertainty",
              "density_uncertainty", "random")
# Strategies that need the texts of the tweets they rank (a whole batch, or the pool), not each tweet alone.
BATCH_STRATEGIES = ("diverse_uncertainty", "density_uncertainty")
# The tagger's queue ranks one tweet at a time in SQL, so it offers the per-tweet strategies.
QUEUE_STRATEGIES = tuple(s for s in STRATEGIES if s not in BATCH_STRATEGIES)
# diverse_uncertainty clusters this many times the batch of most uncertain tweets (Zhdanov 2019's beta).
DIVERSITY_PREFILTER = 10
KMEANS_ITERATIONS = 20
TEXT_VECTOR_DIM = 1 << 12
# The weight below which a tweet counts as "never draw" in stochastic_uncertainty: keeps its key finite.
MIN_WEIGHT = 1e-12

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def queue_strategy_problem(strategy: str) -> str | None:
    """Why the tagger's queue cannot rank by ``strategy`` (None when it can).

    >>> queue_strategy_problem("random") is None
    True
    >>> queue_strategy_problem("density_uncertainty").split(",")[0]
    "query strategy 'density_uncertainty' weighs each post by the texts of the whole pool"
    >>> queue_strategy_problem("smart")
    "query strategy 'smart' is unknown: expected one of least_confidence, entropy, disagreement, \
stochastic_uncertainty, random"
    """
    if strategy in QUEUE_STRATEGIES:
        return None
    if strategy in BATCH_STRATEGIES:
        needs = ("picks whole batches from the posts' texts" if strategy == "diverse_uncertainty"
                 else "weighs each post by the texts of the whole pool")
        return (f"query strategy {strategy!r} {needs}, which only ssp al simulate does; the tagger's queue ranks "
                f"by one of {', '.join(QUEUE_STRATEGIES)}")
    return f"query strategy {strategy!r} is unknown: expected one of {', '.join(QUEUE_STRATEGIES)}"


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


def text_vectors(texts: Sequence[str], dim: int = TEXT_VECTOR_DIM) -> np.ndarray:
    """One unit vector per text: its lower-cased words' character 3- to 5-grams (each word padded with
    ``<`` and ``>``), hashed (CRC-32, the same in every process) into ``dim`` buckets, counted, then
    square-rooted and scaled to length 1. Two texts' dot product is their cosine similarity; a text
    with no word is the zero vector.

    >>> v = text_vectors(["LLM agents", "llm agents!", "sunny day", ""])
    >>> round(float(v[0] @ v[1]), 2), round(float(v[0] @ v[2]), 2), float(np.abs(v[3]).sum())
    (1.0, 0.0, 0.0)
    """
    vectors = np.zeros((len(texts), dim), dtype=np.float64)
    for row, text in enumerate(texts):
        for word in "".join(c if c.isalnum() else " " for c in str(text).lower()).split():
            padded = f"<{word}>"
            for n in (3, 4, 5):
                for start in range(max(len(padded) - n + 1, 1)):
                    vectors[row, zlib.crc32(padded[start:start + n].encode("utf-8")) % dim] += 1.0
    vectors = np.sqrt(vectors)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def text_density(texts: Sequence[str]) -> np.ndarray:
    """Each text's mean cosine similarity to the others (:func:`text_vectors`): how typical of the pool it is.

    >>> [round(float(d), 2) for d in text_density(["LLM agents", "llm agents!", "sunny day"])]
    [0.5, 0.5, 0.0]
    """
    vectors = text_vectors(texts)
    if len(vectors) < 2:
        return np.ones(len(vectors))
    return np.clip((vectors @ vectors.sum(axis=0) - (vectors**2).sum(axis=1)) / (len(vectors) - 1), 0.0, None)


def diverse_batch(model_probs: np.ndarray, texts: Sequence[str], batch: int, ids: np.ndarray | None = None,
                  seed: int = 0, prefilter: int = DIVERSITY_PREFILTER) -> np.ndarray:
    """Indices of ``batch`` tweets, uncertain and unlike each other, most uncertain first (see the module's
    ``diverse_uncertainty``): weighted k-means (k-means++ seeding, :data:`KMEANS_ITERATIONS` Lloyd steps) of
    the ``prefilter * batch`` most uncertain tweets' :func:`text_vectors`, then each cluster's member nearest
    its centre. Clusters that end empty (copies of one text) leave their place to the next most uncertain
    tweets, so there are always ``min(batch, n)``.

    >>> diverse_batch(np.array([0.5, 0.5, 0.1]), ["a b", "a b", "c d"], 2).tolist()
    [0, 2]
    """
    p = _probabilities("model_probs", model_probs)
    if len(texts) != len(p):
        raise ValueError(f"texts has {len(texts)} entries but model_probs has {len(p)}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be an integer of 1 or more, got {batch!r}")
    uncertainty = 1.0 - np.maximum(p, 1.0 - p)
    ranked = np.lexsort((_ids(ids, len(p)), -uncertainty))
    top = ranked[:prefilter * batch]
    if len(top) <= batch:
        return top
    vectors = text_vectors([texts[i] for i in top])
    weights = uncertainty[top] + MIN_WEIGHT
    centres = kmeans_plus_plus(vectors, batch, seed=seed, weights=weights)
    for _ in range(KMEANS_ITERATIONS):
        # squared distances up to a per-row constant: |c|^2 - 2 x.c (|x| is 1 or 0 for every row)
        nearest = np.argmin((centres**2).sum(axis=1)[None, :] - 2.0 * vectors @ centres.T, axis=1)
        mass = np.bincount(nearest, weights=weights, minlength=batch)
        sums = np.zeros_like(centres)
        np.add.at(sums, nearest, vectors * weights[:, None])
        moved = np.where(mass[:, None] > 0, sums / np.maximum(mass, MIN_WEIGHT)[:, None], centres)
        if np.array_equal(moved, centres):
            break
        centres = moved
    distance = (vectors**2).sum(axis=1)[:, None] + (centres**2).sum(axis=1)[None, :] - 2.0 * vectors @ centres.T
    nearest = np.argmin(distance, axis=1)
    chosen = []
    for cluster in range(batch):
        members = np.flatnonzero(nearest == cluster)  # in `top`'s order: most uncertain first
        if len(members):
            chosen.append(int(members[np.argmin(distance[members, cluster])]))
    picked = set(chosen)
    chosen += [i for i in range(len(top)) if i not in picked][:batch - len(chosen)]
    return top[np.sort(np.asarray(chosen))]


def scores(strategy: str, model_probs: np.ndarray | None, snorkel_probs: np.ndarray | None = None,
           ids: np.ndarray | None = None, seed: int = 0, texts: Sequence[str] | None = None,
           batch: int | None = None) -> np.ndarray:
    """Informativeness of each tweet under ``strategy``; higher means ask the annotator first.

    ``model_probs`` are the classifier's P(AI) (not needed for ``random``), ``snorkel_probs`` the
    label model's ``slabel_prob`` (only for ``disagreement``; NaN where Snorkel abstained), ``ids``
    the tweet ids (needed for ``random`` when ``model_probs`` is None; they fix the hash, and
    ``stochastic_uncertainty``'s draw; positions stand in for them when None). ``diverse_uncertainty`` also
    needs the tweets' ``texts`` and the ``batch`` size: its batch scores 1 more than any other tweet, whose
    score is its least confidence.
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
    if strategy == "diverse_uncertainty":
        if texts is None or batch is None:
            raise ValueError("the diverse_uncertainty strategy needs the tweets' texts and the batch size")
        values = 1.0 - np.maximum(p, 1.0 - p)
        values[diverse_batch(p, texts, batch, ids, seed)] += 1.0
        return values
    if strategy == "density_uncertainty":
        if texts is None:
            raise ValueError("the density_uncertainty strategy needs the tweets' texts")
        return (1.0 - np.maximum(p, 1.0 - p)) * text_density(texts)
    if strategy == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = -(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))
        return np.nan_to_num(terms, nan=0.0)  # 0 log 0 = 0 at p = 0 and p = 1
    snorkel = _probabilities("snorkel_probs", snorkel_probs, allow_nan=True)
    if len(snorkel) != len(p):
        raise ValueError(f"snorkel_probs has {len(snorkel)} entries but model_probs has {len(p)}")
    return np.abs(p - np.where(np.isnan(snorkel), 0.5, snorkel))


def order(strategy: str, model_probs: np.ndarray | None, snorkel_probs: np.ndarray | None = None,
          ids: np.ndarray | None = None, seed: int = 0, texts: Sequence[str] | None = None,
          batch: int | None = None) -> np.ndarray:
    """Indices of the tweets, most informative first; equal scores go by ascending id (or position)."""
    values = scores(strategy, model_probs, snorkel_probs, ids, seed, texts, batch)
    tie_break = _ids(ids, len(values))
    # lexsort sorts by the last key first; it is stable, so equal ids keep their positions.
    return np.lexsort((tie_break, -values))
