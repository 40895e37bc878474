"""The learning-curve experiment: does asking for the uncertain tweets first save labels?

A pool of tweets whose gold labels are known stands in for the annotator: a strategy picks
which tweets to "ask", and the oracle answers with the known label. Each run starts from the
same few random labels (per seed), then repeats: train the classifier on the labelled rows,
score the pool, ask for the ``batch`` tweets the strategy ranks first. After every round the
classifier's F1 (AI class) is measured on a fixed gold test set that is never asked about.

The figure of merit is how many labels uncertainty sampling (``least_confidence``) needs for
its mean curve to reach the F1 that random sampling, the control, ends with: the ratio of
that number to random's final label count. Below 0.5 means uncertainty sampling got there
with at most half the labels. Curves are compared at the measured rounds only, never
interpolated, so the ratio can only err on the side of more labels.

The pool comes from a dataset version's gold labels (train split, tested on the test split's
gold labels) or from the synthetic source, whose ground truth is the oracle. The synthetic
tweets are built from templates and most are easy, so the initial labelled set is kept tiny
and the batches small: what separates good label choices from bad ones is then the rarer
kinds (traps that mention "AI" and are not about it, AI tweets without an AI keyword, other
languages), which random sampling meets late. The pool is the generator's own mix,
deduplicated as ``ssp dataset prepare`` would; how many traps and keyword-less AI tweets it
holds is reported with the figures.

A labelled file (``ssp al simulate --gold FILE``, read by :func:`ssp.evaluation.gold.read_gold`)
is the realistic pool: its definite rows are split, stratified by label and kind, into a pool and
a fixed test set (:func:`gold_data`), and Snorkel's weak labels are computed on the pool, the label
model fitted on the pool itself as ``ssp label`` fits on unlabelled rows. Two settings:

* ``from_scratch``: the classifier learns from the gold labels asked for so far, nothing else
  (the experiment above);
* ``workflow``: the tagger's real workflow. The tagger labels posts of a dataset whose other rows,
  the platform's stream, carry Snorkel's weak labels, and ``ssp train`` learns from all of them. So
  the classifier trains as ``ssp train`` does (:func:`ssp.model.train.run_targets`: a gold label
  where there is one, else Snorkel's decision, else not AI with ``TrainConfig.no_vote_weight``;
  early stopping on Snorkel's labels of held-out stream rows), on the stream's rows and the pool's
  (:func:`workflow_frame`), and every pool row a strategy has asked for so far carries its gold
  label instead of its weak one. Round 0 is the model of weak labels alone (0 gold labels); the
  strategies pick by that model's scores, as the tagger does. With a labelled file the stream is
  ``--stream N`` synthetic posts (deduplicated as ``ssp dataset prepare`` does), weak-labelled by
  the label model fitted on them and the pool together, as ``ssp label`` fits on the dataset's
  rows; with a dataset version it is the train split's rows without a gold label, and early
  stopping uses the dev split's Snorkel labels. Without a stream (``--stream 0``) only the pool's
  weak labels train, for a fixed number of epochs.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ssp.active.strategies import BATCH_STRATEGIES, STRATEGIES, order
from ssp.charts import pyplot, save_figure
from ssp.config import LabelConfig, TrainConfig
from ssp.errors import SspError

logger = logging.getLogger(__name__)

UNCERTAINTY = "least_confidence"
CONTROL = "random"
DEFAULT_STRATEGIES = (UNCERTAINTY, CONTROL)
CSV_FILE = "learning_curves.csv"
PNG_FILE = "learning_curves.png"
CSV_COLUMNS = ("strategy", "seed", "round", "labels", "f1")
GOAL_RATIO = 0.5
# Rounds train on a few dozen to a few hundred rows, with no rows to spare for early stopping,
# so a fixed number of small-batch epochs. Fewer (15 was tried) leave a model trained on 20 labels
# underfit, its P(AI) bunched around 0.5, which makes "least confident" close to noise and costs
# every strategy F1 in the early rounds.
SIM_EPOCHS = 40
SIM_BATCH_SIZE = 16
SYNTHETIC_TEST_SHARE = 0.25
SYNTHETIC_SEED = 42
FROM_SCRATCH = "from_scratch"
WORKFLOW = "workflow"
SETTINGS = (FROM_SCRATCH, WORKFLOW)
# the tagger's workflow is judged at this many gold labels on top of the weak ones
WORKFLOW_LABELS = 200
WORKFLOW_GOAL_F1 = 0.8
GOLD_TEST_SHARE = 0.2
GOLD_SEED = 42
# the synthetic stream beside a labelled file's pool in the workflow setting: its own seed, and the
# share of it held out for early stopping (Snorkel's labels), as ssp train holds out dev
STREAM_SEED = 1234
STREAM_DEV_SHARE = 0.1
STREAM_COLUMNS = ("text", "slabel", "slabel_prob")

RoundCallback = Callable[[str, int, int, float], None]


class SimulationError(SspError, ValueError):
    """The experiment cannot run as asked; the message names the input and the problem."""


@dataclass
class Pool:
    """Tweets the strategies may ask about, with the oracle's answers (and Snorkel's, if known)."""

    ids: np.ndarray
    texts: np.ndarray
    labels: np.ndarray
    snorkel_probs: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class SimulationData:
    """A pool, a fixed gold test set, and where both came from."""

    pool: Pool
    test_texts: np.ndarray
    test_labels: np.ndarray
    source: str
    details: dict = field(default_factory=dict)
    # the workflow setting's stream: rows never asked about that train with their weak labels
    # (columns STREAM_COLUMNS), and the rows whose Snorkel labels stop training early
    stream: pd.DataFrame | None = None
    stream_dev: pd.DataFrame | None = None


def synthetic_data(n: int, seed: int = SYNTHETIC_SEED, test_share: float = SYNTHETIC_TEST_SHARE) -> SimulationData:
    """``n`` synthetic tweets, deduplicated as ``ssp dataset prepare`` does, split into a test set and a pool.

    Duplicates are dropped before the split so the test set shares no text with the pool.
    """
    from ssp.sources.synthetic import SyntheticTweets
    from ssp.text import normalize_text
    from ssp.tweets import parse_tweet

    if n < 20:
        raise SimulationError(f"--synthetic needs at least 20 tweets (pool and test set), got {n}")
    if not 0 < test_share < 1:
        raise SimulationError(f"test share must be between 0 and 1, got {test_share}")
    generator = SyntheticTweets(seed)
    seen: set[str] = set()
    ids, texts, labels, traits = [], [], [], {"trap": 0, "implicit_ai": 0}
    for synthetic in generator.generate(n):
        tweet = parse_tweet(synthetic.payload)
        key = normalize_text(tweet.text)
        if key in seen:
            continue
        seen.add(key)
        ids.append(tweet.id)
        texts.append(tweet.text)
        labels.append(int(synthetic.is_ai))
        for trait in traits:
            traits[trait] += trait in synthetic.traits
    ids_array = np.asarray(ids, dtype="int64")
    is_test = np.zeros(len(ids), dtype=bool)
    is_test[np.random.default_rng(seed).permutation(len(ids))[: max(1, int(round(test_share * len(ids))))]] = True
    texts_array, labels_array = np.asarray(texts, dtype=object), np.asarray(labels, dtype="int64")
    return SimulationData(
        pool=Pool(ids_array[~is_test], texts_array[~is_test], labels_array[~is_test]),
        test_texts=texts_array[is_test],
        test_labels=labels_array[is_test],
        source=f"synthetic (seed {seed})",
        details={"generated": n, "unique": len(ids), "traps": traits["trap"], "implicit_ai": traits["implicit_ai"]},
    )


def _stratified_test_rows(strata: Sequence[tuple], test_share: float, seed: int) -> np.ndarray:
    """A boolean mask choosing ``test_share`` of each stratum (rounded, at least one row of a stratum
    of two or more, never all of it) for the test set.

    >>> mask = _stratified_test_rows([(1, "a")] * 10 + [(0, "b")] * 5 + [(0, "c")], 0.2, seed=1)
    >>> int(mask[:10].sum()), int(mask[10:15].sum()), int(mask[15:].sum())
    (2, 1, 0)
    """
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(strata), dtype=bool)
    groups: dict[tuple, list[int]] = {}
    for row, stratum in enumerate(strata):
        groups.setdefault(stratum, []).append(row)
    for stratum in sorted(groups, key=repr):
        rows = np.asarray(groups[stratum])
        take = int(round(test_share * len(rows)))
        if len(rows) >= 2:
            take = min(max(take, 1), len(rows) - 1)
        else:
            take = 0
        is_test[rng.permutation(rows)[:take]] = True
    return is_test


def _counts(values: Sequence) -> dict[str, int]:
    found: dict[str, int] = {}
    for value in values:
        found[str(value)] = found.get(str(value), 0) + 1
    return dict(sorted(found.items()))


def pool_weak_labels(frame, config: LabelConfig | None = None, background: int = 0,
                     seed: int = SYNTHETIC_SEED) -> np.ndarray:
    """Snorkel's P(AI) for each row of ``frame`` (NaN where no labelling function voted), the label
    model fitted on ``frame``'s rows plus ``background`` synthetic tweets."""
    from ssp.evaluation.scoring import background_frame
    from ssp.labeling.pipeline import LF_INPUT_COLUMNS
    from ssp.labeling.weak import label_frame

    fit_on = background_frame(background, seed) if background > 0 else None
    rows = frame[list(LF_INPUT_COLUMNS)].reset_index(drop=True)
    return label_frame(rows, config or LabelConfig(), fit_on=fit_on).probs.astype("float64")


def _weak_quality(probs: np.ndarray, labels: np.ndarray) -> dict:
    """How Snorkel's labels on the pool compare with the gold ones (no vote counts as "not AI")."""
    from ssp.labeling.metrics import binary_metrics

    voted = ~np.isnan(probs)
    predicted = np.where(voted, (np.nan_to_num(probs) > 0.5).astype(int), 0)
    metrics = binary_metrics(labels, predicted)
    return {"weak_coverage": round(float(voted.mean()), 4), "weak_f1": round(float(metrics["f1"]), 4),
            "weak_accuracy_voted": round(float((predicted[voted] == labels[voted]).mean()), 4) if voted.any() else None}


def weak_columns(probs: np.ndarray) -> dict[str, pd.Series]:
    """Snorkel's P(AI) per row (NaN: no vote) as the dataset tables hold it: ``slabel`` 0/1, -1 without
    a vote, and ``slabel_prob`` (NULL without a vote).

    >>> columns = weak_columns(np.array([0.9, np.nan, 0.2]))
    >>> columns["slabel"].tolist(), columns["slabel_prob"].tolist()
    ([1, -1, 0], [0.9, nan, 0.2])
    """
    probs = np.asarray(probs, dtype="float64")
    voted = ~np.isnan(probs)
    return {"slabel": pd.Series(np.where(voted, (np.nan_to_num(probs) > 0.5).astype(int), -1), dtype="Int64"),
            "slabel_prob": pd.Series(probs, dtype="float64")}


def synthetic_stream(n: int, seed: int = STREAM_SEED) -> pd.DataFrame:
    """``n`` synthetic posts as the labelling functions read them, deduplicated on normalised text as
    ``ssp dataset prepare`` does (the generator repeats itself)."""
    from ssp.evaluation.scoring import background_frame
    from ssp.text import normalize_text

    rows = background_frame(n, seed)
    return rows[~rows["text"].map(normalize_text).duplicated()].reset_index(drop=True)


def _split_stream(stream: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    dev = np.zeros(len(stream), dtype=bool)
    dev[np.random.default_rng(seed).permutation(len(stream))[: max(1, int(round(STREAM_DEV_SHARE * len(stream))))]] = True
    return stream[~dev].reset_index(drop=True), stream[dev].reset_index(drop=True)


def gold_data(path: str | Path, test_share: float = GOLD_TEST_SHARE, seed: int = GOLD_SEED,
              payloads: str | Path | None = None, weak: bool = True, background: int = 0,
              label_config: LabelConfig | None = None, stream: int = 0) -> SimulationData:
    """A labelled file's definite rows split into a pool and a fixed test set, stratified by label and kind.

    Ambiguous rows (label -1) are dropped. With ``weak``, the pool carries Snorkel's P(AI)
    (:func:`pool_weak_labels`) for the workflow setting and the disagreement strategy; with
    ``stream`` > 0, ``stream`` synthetic posts (:func:`synthetic_stream`) are the workflow's stream,
    weak-labelled by one label model fitted on them and the pool.
    """
    from ssp.evaluation.gold import read_gold

    if not 0 < test_share < 1:
        raise SimulationError(f"test share must be between 0 and 1, got {test_share}")
    gold = read_gold(path, payloads)
    frame = gold.scored.reset_index(drop=True)
    kinds = frame["kind"].fillna("").astype(str).to_numpy()
    labels = frame["label"].to_numpy(dtype="int64")
    is_test = _stratified_test_rows(list(zip(labels.tolist(), kinds.tolist(), strict=True)), test_share, seed)
    for name, rows in (("pool", ~is_test), ("test set", is_test)):
        if len(set(labels[rows].tolist())) < 2:
            raise SimulationError(f"{gold.path}: the {name} needs both AI (1) and not-AI (0) posts; the file has "
                                  f"{int((labels == 1).sum())} AI and {int((labels == 0).sum())} not-AI definite posts")
    pool_frame = frame[~is_test].reset_index(drop=True)
    stream_rows = synthetic_stream(stream) if weak and stream > 0 else None
    probs = stream_probs = None
    if weak:
        from ssp.labeling.pipeline import LF_INPUT_COLUMNS

        both = pool_frame if stream_rows is None else pd.concat(
            [pool_frame[list(LF_INPUT_COLUMNS)], stream_rows[list(LF_INPUT_COLUMNS)]], ignore_index=True)
        all_probs = pool_weak_labels(both, label_config, background)
        probs, stream_probs = all_probs[:len(pool_frame)], all_probs[len(pool_frame):]
    pool_labels = labels[~is_test]
    details = {
        "gold_file": str(gold.path), "posts": len(gold.frame), "ambiguous_dropped": len(gold.frame) - len(frame),
        "test_share": test_share, "split_seed": seed,
        "pool_ai": int(pool_labels.sum()), "test_ai": int(labels[is_test].sum()),
        "pool_by_kind": _counts(kinds[~is_test]), "test_by_kind": _counts(kinds[is_test]),
        "languages": int(frame["lang"].nunique()),
    }
    if probs is not None:
        details.update(weak_background=background, **_weak_quality(probs, pool_labels))
    train_stream = dev_stream = None
    if stream_rows is not None:
        stream_rows = pd.DataFrame({"text": stream_rows["text"], **weak_columns(stream_probs)})
        train_stream, dev_stream = _split_stream(stream_rows, seed)
        details.update(stream_generated=stream, stream_unique=len(stream_rows),
                       stream_weak_ai=int((stream_rows["slabel"] == 1).sum()),
                       stream_no_vote=int((stream_rows["slabel"] == -1).sum()))
    return SimulationData(
        # the file's ids are strings; the row's place in the file is the integer id the strategies hash
        pool=Pool(np.flatnonzero(~is_test).astype("int64"), frame["text"].to_numpy(dtype=object)[~is_test],
                  pool_labels, probs),
        test_texts=frame["text"].to_numpy(dtype=object)[is_test],
        test_labels=labels[is_test],
        source=f"gold file {gold.path.name}",
        details=details,
        stream=train_stream,
        stream_dev=dev_stream,
    )


def dataset_data(database_url: str, version: int) -> SimulationData:
    """The gold-labelled rows of ``train_dataset_<version>`` as the pool, those of ``test_dataset_<version>`` as the test set."""
    from ssp.model.train import load_training_data

    data = load_training_data(database_url, version)
    train_gold = data.train["label"].notna().to_numpy()
    test_gold = data.test["label"].notna().to_numpy()
    if not train_gold.any():
        raise SimulationError(f"table {data.tables['train']} has no gold labels: the pool needs tweets whose "
                              "answers are known; tag some first or use --synthetic")
    if not test_gold.any():
        raise SimulationError(f"table {data.tables['test']} has no gold labels: the simulation needs a gold test set")
    train = data.train[train_gold]
    test = data.test[test_gold]
    stream_columns = list(STREAM_COLUMNS)
    # Snorkel's opinion where it voted (slabel -1 is an abstain); NaN elsewhere, as the strategies expect.
    voted = (train["slabel"].isna() | (train["slabel"] != -1)).to_numpy(bool)
    snorkel = np.where(voted, train["slabel_prob"].to_numpy(dtype="float64", na_value=np.nan), np.nan)
    return SimulationData(
        pool=Pool(
            ids=train["id"].to_numpy(dtype="int64"),
            texts=train["text"].to_numpy(dtype=object),
            labels=train["label"].to_numpy(dtype="int64"),
            snorkel_probs=snorkel,
        ),
        test_texts=test["text"].to_numpy(dtype=object),
        test_labels=test["label"].to_numpy(dtype="int64"),
        source=f"dataset version {data.version}",
        details={"pool_table": data.tables["train"], "test_table": data.tables["test"]},
        # the tagger's workflow for real: the train split's other rows are the stream, dev stops training
        stream=data.train[~train_gold][stream_columns].reset_index(drop=True),
        stream_dev=data.dev[data.dev["label"].isna()][stream_columns].reset_index(drop=True),
    )


def simulation_config(base: TrainConfig | None = None, epochs: int = SIM_EPOCHS) -> TrainConfig:
    """The classifier of ``base`` (gin's TrainConfig by default), trained for a fixed number of small-batch epochs."""
    base = base if base is not None else TrainConfig()
    return dataclasses.replace(base, epochs=epochs, batch_size=SIM_BATCH_SIZE, patience=epochs)


@dataclass
class CurvePoint:
    strategy: str
    seed: int
    round: int
    labels: int
    f1: float


@dataclass
class SimulationResult:
    """Every measured point, the sizes it was measured at, and the headline comparison."""

    points: list[CurvePoint]
    strategies: tuple[str, ...]
    rounds: int
    batch: int
    seeds: int
    initial: int
    pool_size: int
    test_size: int
    seconds: float
    setting: str = FROM_SCRATCH

    def mean_curve(self, strategy: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels, mean F1 and its standard deviation over seeds, per round."""
        rounds = sorted({p.round for p in self.points if p.strategy == strategy})
        labels, means, stds = [], [], []
        for r in rounds:
            values = [p.f1 for p in self.points if p.strategy == strategy and p.round == r]
            labels.append(next(p.labels for p in self.points if p.strategy == strategy and p.round == r))
            means.append(float(np.mean(values)))
            stds.append(float(np.std(values)))
        return np.asarray(labels), np.asarray(means), np.asarray(stds)

    def figures(self) -> dict:
        """The headline numbers as one JSON-ready dict."""
        final = {s: self.mean_curve(s)[1][-1] for s in self.strategies}
        final_std = {s: self.mean_curve(s)[2][-1] for s in self.strategies}
        figures: dict = {
            "uncertainty_labels_over_random": None,
            "uncertainty_labels_to_reach_random_final_f1": None,
            "random_final_labels": None,
            "random_final_f1": None,
            "goal": f"uncertainty_labels_over_random <= {GOAL_RATIO}",
            "goal_met": None,
            "note": None,
            "final_f1": {s: round(v, 4) for s, v in final.items()},
            "final_f1_std": {s: round(v, 4) for s, v in final_std.items()},
            "final_labels": int(self.initial + self.rounds * self.batch),
        }
        if UNCERTAINTY in self.strategies and CONTROL in self.strategies:
            random_labels, random_means, _ = self.mean_curve(CONTROL)
            labels, means, _ = self.mean_curve(UNCERTAINTY)
            needed = labels_to_reach(labels, means, float(random_means[-1]))
            figures["random_final_labels"] = int(random_labels[-1])
            figures["random_final_f1"] = round(float(random_means[-1]), 4)
            if needed is None:
                figures["goal_met"] = False
                figures["note"] = (f"the {UNCERTAINTY} mean curve never reached random's final mean F1 "
                                   f"{random_means[-1]:.4f} within {int(labels[-1])} labels")
            else:
                ratio = needed / int(random_labels[-1])
                figures["uncertainty_labels_to_reach_random_final_f1"] = needed
                figures["uncertainty_labels_over_random"] = round(ratio, 4)
                figures["goal_met"] = ratio <= GOAL_RATIO
        else:
            figures["note"] = f"the ratio needs both {UNCERTAINTY} and {CONTROL} among the strategies"
        if CONTROL in self.strategies:
            figures["labels_over_random"] = self.labels_over_random()
        if self.setting == WORKFLOW:
            figures.update(self._workflow_figures())
        figures.update(setting=self.setting, rounds=self.rounds, batch=self.batch, seeds=self.seeds,
                       initial=self.initial, pool=self.pool_size, test=self.test_size, seconds=round(self.seconds, 1))
        return figures

    def labels_over_random(self) -> dict[str, float | None]:
        """Per strategy other than random: the labels its mean curve needs to reach random's final mean F1,
        over random's final label count (None if it never does); the headline ratio for every strategy."""
        random_labels, random_means, _ = self.mean_curve(CONTROL)
        ratios: dict[str, float | None] = {}
        for strategy in self.strategies:
            if strategy == CONTROL:
                continue
            labels, means, _ = self.mean_curve(strategy)
            needed = labels_to_reach(labels, means, float(random_means[-1]))
            ratios[strategy] = None if needed is None else round(needed / int(random_labels[-1]), 4)
        return ratios

    def _workflow_figures(self) -> dict:
        """F1 of the weak labels alone (round 0) and, per strategy, at the measured size nearest
        :data:`WORKFLOW_LABELS` gold labels."""
        labels = self.mean_curve(self.strategies[0])[0]
        at = int(labels[int(np.argmin(np.abs(labels - WORKFLOW_LABELS)))])
        f1_at = {}
        for strategy in self.strategies:
            counts, means, _ = self.mean_curve(strategy)
            f1_at[strategy] = round(float(means[list(counts).index(at)]), 4)
        figures = {
            "weak_only_f1": round(float(self.mean_curve(self.strategies[0])[1][0]), 4),
            "gold_labels_at": at,
            "f1_at_gold_labels": f1_at,
            "workflow_goal": f"{UNCERTAINTY} F1 at ~{WORKFLOW_LABELS} gold labels >= {WORKFLOW_GOAL_F1}",
            "workflow_goal_met": None,
        }
        if UNCERTAINTY in f1_at:
            figures["workflow_goal_met"] = f1_at[UNCERTAINTY] >= WORKFLOW_GOAL_F1
        return figures


def labels_to_reach(labels: Sequence[int], f1_means: Sequence[float], target: float) -> int | None:
    """The fewest measured labels at which the mean F1 is at least ``target``; None if it never is.

    >>> labels_to_reach([10, 20, 30, 40], [0.5, 0.8, 0.79, 0.9], 0.8)
    20
    >>> labels_to_reach([10, 20], [0.5, 0.6], 0.8) is None
    True
    """
    for count, value in zip(labels, f1_means, strict=True):
        # Means of the same F1 values can differ in the last bit depending on the order they were summed in.
        if value >= target - 1e-12:
            return int(count)
    return None


def workflow_frame(pool: Pool, asked: np.ndarray, stream: pd.DataFrame | None = None) -> pd.DataFrame:
    """One workflow round's training rows as a dataset table holds them (``text``, gold ``label``,
    ``slabel``, ``slabel_prob``): the pool's rows, a gold label on the rows asked for, Snorkel's weak
    label on all of them, then the stream's rows (never asked, no gold label).

    >>> pool = Pool(np.arange(3), np.array(["a", "b", "c"], dtype=object), np.array([1, 0, 1]),
    ...             np.array([0.875, np.nan, 0.25]))
    >>> stream = pd.DataFrame({"text": ["s"], "slabel": pd.array([-1], "Int64"), "slabel_prob": [np.nan]})
    >>> frame = workflow_frame(pool, np.array([False, True, True]), stream)
    >>> frame["text"].tolist(), frame["label"].tolist(), frame["slabel"].tolist()
    (['a', 'b', 'c', 's'], [<NA>, 0, 1, <NA>], [1, -1, 0, -1])
    """
    if pool.snorkel_probs is None:
        raise SimulationError("the workflow setting needs Snorkel's weak labels on the pool")
    asked = np.asarray(asked, dtype=bool)
    gold = pd.array(np.where(asked, pool.labels, 0), dtype="Int64")
    gold[~asked] = pd.NA
    rows = pd.DataFrame({"text": pool.texts, "label": gold, **weak_columns(pool.snorkel_probs)})
    if stream is None or stream.empty:
        return rows
    return pd.concat([rows, stream.assign(label=pd.array([pd.NA] * len(stream), dtype="Int64"))[rows.columns]],
                     ignore_index=True)


def _check_sizes(data: SimulationData, strategies: Sequence[str], rounds: int, batch: int, seeds: int,
                 initial: int, setting: str) -> None:
    if setting not in SETTINGS:
        raise SimulationError(f"setting {setting!r} is unknown: expected one of {', '.join(SETTINGS)}")
    for name, value, least in (("rounds", rounds, 1), ("batch", batch, 1), ("seeds", seeds, 1),
                               ("initial", initial, 1 if setting == FROM_SCRATCH else 0)):
        if value < least:
            raise SimulationError(f"--{name} must be at least {least}, got {value}")
    if not strategies:
        raise SimulationError("no strategy to simulate")
    for strategy in strategies:
        if strategy not in STRATEGIES:
            raise SimulationError(f"strategy {strategy!r} is unknown: expected one of {', '.join(STRATEGIES)}")
    if "disagreement" in strategies and data.pool.snorkel_probs is None:
        raise SimulationError(f"the disagreement strategy needs Snorkel labels, which {data.source} does not have")
    needed = initial + rounds * batch
    if needed > len(data.pool):
        raise SimulationError(
            f"--initial {initial} + --rounds {rounds} x --batch {batch} = {needed} labels, more than the "
            f"{len(data.pool)} tweets in the pool ({data.source}); ask for fewer or use a bigger pool"
        )
    if len(data.test_labels) == 0:
        raise SimulationError(f"{data.source} gives no gold test labels")


def _fit(texts: np.ndarray, labels: np.ndarray, config: TrainConfig, weights: np.ndarray | None = None,
         dev=None):
    from ssp.model.train import train_classifier

    targets = labels.astype("float32")
    if dev is None or len(dev) == 0:
        # No rows to spare for a dev set: the labelled rows double as one, so the epoch kept is the one
        # that fits them best (simulation_config sets patience = epochs: training never stops early).
        return train_classifier(list(texts), targets, list(texts), targets, config, sample_weight=weights)
    return train_classifier(list(texts), targets, list(dev.texts), dev.targets, config, sample_weight=weights)


def _round_model(data: SimulationData, asked: np.ndarray, config: TrainConfig, setting: str):
    """The classifier of one round: on the asked rows' gold labels alone, or (workflow) as ``ssp train``
    trains on the stream's and the pool's rows, the asked ones with their gold labels."""
    from ssp.model.train import run_targets, sample_weights, snorkel_rows

    pool = data.pool
    if setting == FROM_SCRATCH:
        return _fit(pool.texts[asked], pool.labels[asked], config)
    labelled = run_targets(workflow_frame(pool, asked, data.stream), config)
    dev = snorkel_rows(data.stream_dev) if data.stream_dev is not None else None
    return _fit(labelled.texts, labelled.targets, config, sample_weights(labelled, config), dev)


def round_config(setting: str, data: SimulationData, train: TrainConfig | None = None,
                 epochs: int = SIM_EPOCHS) -> TrainConfig:
    """The classifier of a setting: ``ssp train``'s own (``train``, early stopping on the stream's dev
    rows) for a workflow with a stream, else ``train``'s model trained for ``epochs`` fixed epochs."""
    if setting == WORKFLOW and data.stream_dev is not None and len(data.stream_dev):
        return train if train is not None else TrainConfig()
    return simulation_config(train, epochs)


def simulate(data: SimulationData, strategies: Sequence[str] = DEFAULT_STRATEGIES, rounds: int = 10,
             batch: int = 20, seeds: int = 3, initial: int = 20, config: TrainConfig | None = None,
             on_round: RoundCallback | None = None, setting: str = FROM_SCRATCH) -> SimulationResult:
    """Run every strategy for ``rounds`` rounds of ``batch`` labels, for ``seeds`` seeds.

    ``from_scratch`` starts from ``initial`` random gold labels and trains on the gold labels
    alone; ``workflow`` starts from 0 gold labels, the model trained on the pool's and the
    stream's weak labels (:func:`workflow_frame`), and each round's gold labels override the
    pool's weak ones (``initial`` is not used). ``config`` defaults to :func:`round_config`'s.
    Seed ``s`` fixes the initial labels (shared by all strategies, so round 0 is one model), the
    random strategy's order and the classifier's initialisation. ``on_round`` is called after each
    trained model with (strategy, seed, round, F1); round 0 reports strategy ``"initial"``.
    """
    from ssp.model.train import evaluate, predict_proba

    strategies = tuple(dict.fromkeys(strategies))
    if setting == WORKFLOW:
        initial = 0
    if setting == WORKFLOW and data.pool.snorkel_probs is None:
        raise SimulationError(f"the workflow setting needs Snorkel's weak labels on the pool, which {data.source} "
                              "does not have (use --gold or --version)")
    _check_sizes(data, strategies, rounds, batch, seeds, initial, setting)
    config = config if config is not None else round_config(setting, data)
    pool, start = data.pool, time.monotonic()
    test_texts, test_labels = list(data.test_texts), data.test_labels
    needs_probs = any(s != CONTROL for s in strategies)
    points: list[CurvePoint] = []
    for seed in range(seeds):
        seed_config = dataclasses.replace(config, seed=config.seed + seed)
        first = np.zeros(len(pool), dtype=bool)
        first[np.random.default_rng(seed).choice(len(pool), size=initial, replace=False)] = True
        model = _round_model(data, first, seed_config, setting)
        initial_f1 = float(evaluate(model, test_texts, test_labels)["f1"])
        initial_probs = predict_proba(model, list(pool.texts)) if needs_probs else None
        if on_round:
            on_round("initial", seed, 0, initial_f1)
        for strategy in strategies:
            labelled = first.copy()
            probs = initial_probs
            points.append(CurvePoint(strategy, seed, 0, initial, initial_f1))
            for round_number in range(1, rounds + 1):
                candidates = np.flatnonzero(~labelled)
                ranked = order(strategy, None if probs is None or strategy == CONTROL else probs[candidates],
                               pool.snorkel_probs[candidates] if strategy == "disagreement" else None,
                               ids=pool.ids[candidates], seed=seed,
                               texts=pool.texts[candidates] if strategy in BATCH_STRATEGIES else None, batch=batch)
                labelled[candidates[ranked[:batch]]] = True
                model = _round_model(data, labelled, seed_config, setting)
                f1 = float(evaluate(model, test_texts, test_labels)["f1"])
                points.append(CurvePoint(strategy, seed, round_number, int(labelled.sum()), f1))
                if strategy != CONTROL and round_number < rounds:
                    probs = predict_proba(model, list(pool.texts))
                if on_round:
                    on_round(strategy, seed, round_number, f1)
                logger.info("%s %s seed %d round %d: %d labels, F1 %.4f", setting, strategy, seed, round_number,
                            labelled.sum(), f1)
    return SimulationResult(points, strategies, rounds, batch, seeds, initial, len(pool), len(test_labels),
                            time.monotonic() - start, setting)


def trainings(strategies: Sequence[str], rounds: int, seeds: int) -> int:
    """How many models :func:`simulate` trains: one initial model per seed, then one per strategy and round."""
    return seeds * (1 + len(tuple(dict.fromkeys(strategies))) * rounds)


def output_names(setting: str, both: bool) -> tuple[str, str]:
    """The CSV and PNG file names of one setting: the plain ones, or with the setting in them when both run.

    >>> output_names("workflow", both=True)
    ('learning_curves_workflow.csv', 'learning_curves_workflow.png')
    """
    if not both:
        return CSV_FILE, PNG_FILE
    return tuple(name.replace(".", f"_{setting}.", 1) for name in (CSV_FILE, PNG_FILE))  # type: ignore[return-value]


def write_csv(result: SimulationResult, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for p in result.points:
            writer.writerow((p.strategy, p.seed, p.round, p.labels, f"{p.f1:.6f}"))


def plot_learning_curves(result: SimulationResult, path: Path, title: str) -> None:
    """Mean F1 against labels per strategy, with a band of one standard deviation over seeds."""
    plt = pyplot()

    figures = result.figures()
    fig, ax = plt.subplots(figsize=(8, 5))
    for strategy in result.strategies:
        labels, means, stds = result.mean_curve(strategy)
        (line,) = ax.plot(labels, means, marker="o", markersize=3, label=strategy)
        ax.fill_between(labels, means - stds, means + stds, color=line.get_color(), alpha=0.2)
    if figures["random_final_f1"] is not None:
        ax.axhline(figures["random_final_f1"], color="grey", linestyle="--", linewidth=1,
                   label=f"random's final F1 ({figures['random_final_f1']:.3f})")
    if figures["uncertainty_labels_to_reach_random_final_f1"] is not None:
        ax.axvline(figures["uncertainty_labels_to_reach_random_final_f1"], color="grey", linestyle=":", linewidth=1,
                   label=f"{UNCERTAINTY} reaches it: {figures['uncertainty_labels_to_reach_random_final_f1']} labels "
                         f"({figures['uncertainty_labels_over_random']:.2f} x random's)")
    if result.setting == WORKFLOW:
        ax.axhline(WORKFLOW_GOAL_F1, color="green", linestyle="--", linewidth=1, label=f"goal F1 {WORKFLOW_GOAL_F1}")
    ax.set_xlabel("gold labels" + (" on top of the pool's weak labels" if result.setting == WORKFLOW else ""))
    ax.set_ylabel("F1 (AI) on the gold test set")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path, format="png", dpi=100)
