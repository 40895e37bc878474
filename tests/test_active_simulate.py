"""``ssp al simulate``: the learning-curve experiment, at small sizes, on synthetic tweets and on dataset tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ssp.active.cli import al
from ssp.active.simulate import (
    CurvePoint,
    Pool,
    SimulationData,
    SimulationError,
    SimulationResult,
    labels_to_reach,
    simulate,
    synthetic_data,
)
from test_train import dataset_rows, fresh_version, write_dataset


def read_curves(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["strategy", "seed", "round", "labels", "f1"]
        return [{"strategy": r["strategy"], "seed": int(r["seed"]), "round": int(r["round"]),
                 "labels": int(r["labels"]), "f1": float(r["f1"])} for r in reader]


def mean_f1(rows: list[dict], strategy: str) -> tuple[list[int], list[float]]:
    rounds = sorted({r["round"] for r in rows if r["strategy"] == strategy})
    labels = [next(r["labels"] for r in rows if r["strategy"] == strategy and r["round"] == n) for n in rounds]
    means = [float(np.mean([r["f1"] for r in rows if r["strategy"] == strategy and r["round"] == n])) for n in rounds]
    return labels, means


def points(curves: dict[str, list[list[float]]], initial: int = 10, batch: int = 10) -> list[CurvePoint]:
    """Curve points from per-strategy lists of per-seed F1 values by round."""
    return [CurvePoint(strategy, seed, n, initial + n * batch, f1)
            for strategy, seeds in curves.items() for seed, values in enumerate(seeds) for n, f1 in enumerate(values)]


def result(curves: dict[str, list[list[float]]]) -> SimulationResult:
    rounds = len(next(iter(curves.values()))[0]) - 1
    return SimulationResult(points(curves), tuple(curves), rounds=rounds, batch=10,
                            seeds=len(next(iter(curves.values()))), initial=10, pool_size=100, test_size=50,
                            seconds=1.0)


# ---------------------------------------------------------------- the figures, from hand-made curves
def test_ratio_is_labels_uncertainty_needs_for_randoms_final_mean_f1():
    figures = result({
        "least_confidence": [[0.2, 0.7, 0.9, 0.95, 0.96], [0.4, 0.7, 0.8, 0.95, 0.98]],  # means .3 .7 .85 .95 .97
        "random": [[0.2, 0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.7, 0.8, 0.9]],  # final mean 0.85
    }).figures()
    assert figures["random_final_f1"] == pytest.approx(0.85) and figures["random_final_labels"] == 50
    assert figures["uncertainty_labels_to_reach_random_final_f1"] == 30  # round 2, mean 0.85
    assert figures["uncertainty_labels_over_random"] == pytest.approx(30 / 50) and figures["goal_met"] is False
    assert figures["final_f1"] == {"least_confidence": pytest.approx(0.97), "random": pytest.approx(0.85)}
    assert figures["final_f1_std"]["random"] == pytest.approx(0.05) and figures["note"] is None
    assert (figures["rounds"], figures["seeds"], figures["final_labels"]) == (4, 2, 50)


def test_goal_met_and_never_reached():
    met = result({"least_confidence": [[0.5, 0.9, 0.9, 0.9, 0.9]], "random": [[0.5, 0.6, 0.7, 0.8, 0.9]]}).figures()
    assert met["uncertainty_labels_over_random"] == pytest.approx(20 / 50) and met["goal_met"] is True
    never = result({"least_confidence": [[0.5, 0.6, 0.6, 0.7, 0.7]], "random": [[0.5, 0.6, 0.7, 0.8, 0.9]]}).figures()
    assert never["uncertainty_labels_over_random"] is None and never["goal_met"] is False
    assert "never reached random's final mean F1 0.9000 within 50 labels" in never["note"]
    alone = result({"least_confidence": [[0.5, 0.6]]}).figures()
    assert alone["uncertainty_labels_over_random"] is None and "needs both" in alone["note"]
    assert labels_to_reach([5, 10], [0.3, 0.9], 0.1 + 0.2) == 5  # float noise in a mean does not miss a tie


def test_impossible_sizes_are_named():
    data = SimulationData(Pool(np.arange(30), np.array(["t"] * 30, dtype=object), np.zeros(30, dtype="int64")),
                          np.array(["x"], dtype=object), np.array([1]), "a test pool")
    with pytest.raises(SimulationError, match=r"--initial 10 \+ --rounds 3 x --batch 10 = 40 labels, more than the "
                                              r"30 tweets in the pool \(a test pool\)"):
        simulate(data, rounds=3, batch=10, seeds=1, initial=10)
    with pytest.raises(SimulationError, match="--batch must be at least 1, got 0"):
        simulate(data, rounds=1, batch=0, seeds=1, initial=10)
    with pytest.raises(SimulationError, match="disagreement strategy needs Snorkel labels, which a test pool"):
        simulate(data, strategies=("disagreement", "random"), rounds=1, batch=5, seeds=1, initial=5)
    with pytest.raises(SimulationError, match="at least 20 tweets"):
        synthetic_data(5)


def test_both_pool_sources_at_once_is_refused():
    outcome = CliRunner().invoke(al, ["simulate", "--version", "1", "--synthetic", "100"])
    assert outcome.exit_code == 2 and "give --version or --synthetic, not both" in outcome.output


# ---------------------------------------------------------------- the experiment, for real, small
def test_simulate_on_synthetic_tweets_writes_curves_plot_and_figures(tmp_path):
    out = tmp_path / "al"
    outcome = CliRunner().invoke(al, ["simulate", "--synthetic", "400", "--rounds", "2", "--batch", "10",
                                      "--seeds", "2", "--initial", "10", "--epochs", "8", "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.output.strip().splitlines()
    figures = json.loads(lines[-1])
    assert lines[-2].startswith("simulated 2 strategies x 2 seeds x 2 rounds on ")

    rows = read_curves(out / "learning_curves.csv")
    assert len(rows) == 2 * 2 * 3  # strategies x seeds x (initial + rounds)
    for strategy in ("least_confidence", "random"):
        for seed in (0, 1):
            curve = [r for r in rows if r["strategy"] == strategy and r["seed"] == seed]
            assert [(r["round"], r["labels"]) for r in curve] == [(0, 10), (1, 20), (2, 30)]
    assert all(0.0 <= r["f1"] <= 1.0 for r in rows)
    for seed in (0, 1):  # both strategies start from the same initial labels, hence the same model
        assert len({r["f1"] for r in rows if r["seed"] == seed and r["round"] == 0}) == 1
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the JSON figures are what the CSV says
    random_labels, random_means = mean_f1(rows, "random")
    labels, means = mean_f1(rows, "least_confidence")
    assert figures["final_f1"]["random"] == pytest.approx(random_means[-1], abs=1e-4)
    assert figures["final_f1"]["least_confidence"] == pytest.approx(means[-1], abs=1e-4)
    needed = labels_to_reach(labels, means, random_means[-1])
    if needed is None:
        assert figures["uncertainty_labels_over_random"] is None and "never reached" in figures["note"]
    else:
        assert figures["uncertainty_labels_over_random"] == pytest.approx(needed / random_labels[-1], abs=1e-4)
        assert figures["goal_met"] == (needed / random_labels[-1] <= 0.5)
    assert figures["random_final_labels"] == 30 and figures["initial"] == 10 and figures["seeds"] == 2
    assert figures["pool"] + figures["test"] == figures["unique"] <= 400 and figures["test"] > 50
    assert figures["source"] == "synthetic (seed 42)" and figures["csv"] == str(out / "learning_curves.csv")
    assert figures["seconds"] > 0


@pytest.mark.integration
def test_simulate_on_a_dataset_versions_gold_labels(stack, tmp_path):
    version = fresh_version()
    train = dataset_rows(41, 300, gold_share=0.5)
    write_dataset(stack.database_url, version, {"train": train, "dev": [], "test": dataset_rows(42, 120, gold_share=1.0)})
    out = tmp_path / "al"
    outcome = CliRunner().invoke(al, ["simulate", "--version", str(version), "--rounds", "1", "--batch", "10",
                                      "--seeds", "1", "--initial", "10", "--epochs", "5", "--out", str(out),
                                      "--strategy", "disagreement", "--strategy", "least_confidence",
                                      "--strategy", "random"])
    assert outcome.exit_code == 0, outcome.output
    figures = json.loads(outcome.output.strip().splitlines()[-1])
    assert figures["pool"] == sum(r["label"] is not None for r in train) and figures["test"] == 120
    assert figures["source"] == f"dataset version {version}" and figures["pool_table"] == f"train_dataset_{version}"
    rows = read_curves(out / "learning_curves.csv")
    assert sorted({r["strategy"] for r in rows}) == ["disagreement", "least_confidence", "random"]
    assert [r["labels"] for r in rows if r["strategy"] == "disagreement"] == [10, 20]

    no_gold_test = fresh_version()
    write_dataset(stack.database_url, no_gold_test, {"train": train, "dev": [], "test": dataset_rows(43, 50, 0.0)})
    outcome = CliRunner().invoke(al, ["simulate", "--version", str(no_gold_test), "--out", str(out)])
    assert outcome.exit_code == 1
    assert f"table test_dataset_{no_gold_test} has no gold labels" in outcome.output
