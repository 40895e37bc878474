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

from ssp.active.strategies import STRATEGIES, order
from ssp.config import TrainConfig

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

RoundCallback = Callable[[str, int, int, float], None]


class SimulationError(ValueError):
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


def synthetic_data(n: int, seed: int = SYNTHETIC_SEED, test_share: float = SYNTHETIC_TEST_SHARE) -> SimulationData:
    """``n`` synthetic tweets, deduplicated as ``ssp dataset prepare`` does, split into a test set and a pool.

    Duplicates are dropped before the split so the test set shares no text with the pool.
    """
    from ssp.dataset.prepare import normalize_text
    from ssp.sources.synthetic import SyntheticTweets
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
        figures.update(rounds=self.rounds, batch=self.batch, seeds=self.seeds, initial=self.initial,
                       pool=self.pool_size, test=self.test_size, seconds=round(self.seconds, 1))
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


def _check_sizes(data: SimulationData, strategies: Sequence[str], rounds: int, batch: int, seeds: int,
                 initial: int) -> None:
    for name, value, least in (("rounds", rounds, 1), ("batch", batch, 1), ("seeds", seeds, 1),
                               ("initial", initial, 1)):
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


def _fit(texts: np.ndarray, labels: np.ndarray, config: TrainConfig):
    from ssp.model.train import train_classifier

    targets = labels.astype("float32")
    # No rows to spare for a dev set: the labelled rows double as one, so the epoch kept is the one that
    # fits them best (patience = epochs, so training never stops early).
    return train_classifier(list(texts), targets, list(texts), targets, config)


def simulate(data: SimulationData, strategies: Sequence[str] = DEFAULT_STRATEGIES, rounds: int = 10,
             batch: int = 20, seeds: int = 3, initial: int = 20, config: TrainConfig | None = None,
             on_round: RoundCallback | None = None) -> SimulationResult:
    """Run every strategy for ``rounds`` rounds of ``batch`` labels from ``initial`` random ones, for ``seeds`` seeds.

    Seed ``s`` fixes the initial labels (shared by all strategies, so round 0 is one model),
    the random strategy's order and the classifier's initialisation. ``on_round`` is called
    after each trained model with (strategy, seed, round, F1); round 0 reports strategy ``"initial"``.
    """
    from ssp.model.train import evaluate, predict_proba

    strategies = tuple(dict.fromkeys(strategies))
    _check_sizes(data, strategies, rounds, batch, seeds, initial)
    config = config if config is not None else simulation_config()
    pool, start = data.pool, time.monotonic()
    test_texts, test_labels = list(data.test_texts), data.test_labels
    points: list[CurvePoint] = []
    for seed in range(seeds):
        seed_config = dataclasses.replace(config, seed=config.seed + seed)
        first = np.random.default_rng(seed).choice(len(pool), size=initial, replace=False)
        model = _fit(pool.texts[first], pool.labels[first], seed_config)
        initial_f1 = float(evaluate(model, test_texts, test_labels)["f1"])
        needs_probs = any(s != CONTROL for s in strategies)
        initial_probs = predict_proba(model, list(pool.texts)) if needs_probs else None
        if on_round:
            on_round("initial", seed, 0, initial_f1)
        for strategy in strategies:
            labelled = np.zeros(len(pool), dtype=bool)
            labelled[first] = True
            probs = initial_probs
            points.append(CurvePoint(strategy, seed, 0, initial, initial_f1))
            for round_number in range(1, rounds + 1):
                candidates = np.flatnonzero(~labelled)
                ranked = order(strategy, None if probs is None or strategy == CONTROL else probs[candidates],
                               pool.snorkel_probs[candidates] if strategy == "disagreement" else None,
                               ids=pool.ids[candidates], seed=seed)
                labelled[candidates[ranked[:batch]]] = True
                model = _fit(pool.texts[labelled], pool.labels[labelled], seed_config)
                f1 = float(evaluate(model, test_texts, test_labels)["f1"])
                points.append(CurvePoint(strategy, seed, round_number, int(labelled.sum()), f1))
                if strategy != CONTROL and round_number < rounds:
                    probs = predict_proba(model, list(pool.texts))
                if on_round:
                    on_round(strategy, seed, round_number, f1)
                logger.info("%s seed %d round %d: %d labels, F1 %.4f", strategy, seed, round_number,
                            labelled.sum(), f1)
    return SimulationResult(points, strategies, rounds, batch, seeds, initial, len(pool), len(test_labels),
                            time.monotonic() - start)


def trainings(strategies: Sequence[str], rounds: int, seeds: int) -> int:
    """How many models :func:`simulate` trains: one initial model per seed, then one per strategy and round."""
    return seeds * (1 + len(tuple(dict.fromkeys(strategies))) * rounds)


def write_csv(result: SimulationResult, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for p in result.points:
            writer.writerow((p.strategy, p.seed, p.round, p.labels, f"{p.f1:.6f}"))


def plot_learning_curves(result: SimulationResult, path: Path, title: str) -> None:
    """Mean F1 against labels per strategy, with a band of one standard deviation over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    ax.set_xlabel("gold labels")
    ax.set_ylabel("F1 (AI) on the gold test set")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
