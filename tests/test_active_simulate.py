"""``ssp al simulate``: the learning-curve experiment, at small sizes, on synthetic tweets, a labelled file
(from scratch and in the tagger's workflow) and on dataset tables."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ssp.active.cli import al
from ssp.active.simulate import (
    CurvePoint,
    Pool,
    SimulationData,
    SimulationError,
    SimulationResult,
    gold_data,
    labels_to_reach,
    round_config,
    simulate,
    simulation_config,
    synthetic_data,
    workflow_frame,
)
from ssp.evaluation.gold import read_gold
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


def result(curves: dict[str, list[list[float]]], initial: int = 10, setting: str = "from_scratch") -> SimulationResult:
    rounds = len(next(iter(curves.values()))[0]) - 1
    return SimulationResult(points(curves, initial), tuple(curves), rounds=rounds, batch=10,
                            seeds=len(next(iter(curves.values()))), initial=initial, pool_size=100, test_size=50,
                            seconds=1.0, setting=setting)


@pytest.fixture(scope="module")
def gold_path(request) -> Path:
    """The written dev set (431 posts, 18 languages): conftest's fixture once it is there, else the shared file."""
    try:
        return Path(request.getfixturevalue("written_dev_path"))
    except pytest.FixtureLookupError:
        from conftest import fixtures_dir

        path = fixtures_dir() / "labelled" / "written_dev.tsv"
        if not path.exists():
            pytest.fail(f"fixture file {path} is missing")
        return path


@pytest.fixture(scope="module")
def gold_pool(gold_path) -> SimulationData:
    """The written dev set split 80/20, with Snorkel's weak labels on the pool."""
    return gold_data(gold_path)


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


def test_every_strategy_gets_its_labels_over_random():
    figures = result({
        "least_confidence": [[0.5, 0.6, 0.7, 0.8, 0.8]],
        "stochastic_uncertainty": [[0.5, 0.9, 0.9, 0.9, 0.9]],
        "disagreement": [[0.5, 0.5, 0.5, 0.5, 0.5]],
        "random": [[0.5, 0.6, 0.7, 0.8, 0.9]],
    }).figures()
    assert figures["labels_over_random"] == {"least_confidence": None, "stochastic_uncertainty": pytest.approx(20 / 50),
                                             "disagreement": None}
    assert figures["uncertainty_labels_over_random"] is None  # the headline stays least confidence's
    assert "labels_over_random" not in result({"least_confidence": [[0.5, 0.6]]}).figures()


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
    outcome = CliRunner().invoke(al, ["simulate", "--gold", "x.tsv", "--synthetic", "100"])
    assert outcome.exit_code == 2 and "give --gold or --version or --synthetic, one pool only" in outcome.output
    outcome = CliRunner().invoke(al, ["simulate", "--synthetic", "100", "--setting", "workflow"])
    assert outcome.exit_code == 1 and "workflow setting needs Snorkel's weak labels" in outcome.output


def test_workflow_figures_report_weak_only_and_about_200_gold_labels():
    curves = {"least_confidence": [[0.6] + [0.7] * 19 + [0.85] + [0.9] * 5], "random": [[0.6] + [0.65] * 25]}
    figures = result(curves, initial=0, setting="workflow").figures()
    assert figures["setting"] == "workflow" and figures["weak_only_f1"] == pytest.approx(0.6)
    assert figures["gold_labels_at"] == 200 and figures["final_labels"] == 250  # 25 rounds of 10 from 0
    assert figures["f1_at_gold_labels"] == {"least_confidence": pytest.approx(0.85), "random": pytest.approx(0.65)}
    assert figures["workflow_goal_met"] is True and figures["uncertainty_labels_over_random"] == pytest.approx(10 / 250)
    short = result({"least_confidence": [[0.6, 0.7, 0.75]]}, initial=0, setting="workflow").figures()
    assert short["gold_labels_at"] == 20 and short["workflow_goal_met"] is False  # the measured size nearest 200
    assert "weak_only_f1" not in result(curves).figures()


# ---------------------------------------------------------------- a labelled file as the pool
def test_gold_data_splits_stratified_disjoint_and_without_ambiguous_rows(gold_path):
    frame = read_gold(gold_path).frame
    data = gold_data(gold_path, test_share=0.2, seed=3, weak=False)
    scored = frame[frame["label"] != -1]
    assert len(data.pool) + len(data.test_labels) == len(scored) and (frame["label"] == -1).sum() > 0
    assert data.details["ambiguous_dropped"] == int((frame["label"] == -1).sum())
    assert set(data.pool.labels) | set(data.test_labels) == {0, 1} and data.pool.snorkel_probs is None
    pool_rows, test_rows = set(data.pool.ids.tolist()), set(range(len(scored))) - set(data.pool.ids.tolist())
    assert len(pool_rows) == len(data.pool) and len(test_rows) == len(data.test_labels)
    positions = scored.reset_index(drop=True)
    assert sorted(positions.loc[sorted(test_rows), "text"]) == sorted(data.test_texts)  # the rows not in the pool
    assert list(positions.loc[data.pool.ids, "text"]) == list(data.pool.texts)
    for kind, count in scored["kind"].value_counts().items():  # every kind keeps its share in the test set
        assert data.details["test_by_kind"][kind] == round(0.2 * count)
        assert data.details["pool_by_kind"][kind] + data.details["test_by_kind"][kind] == count
    assert data.details["test_ai"] == int(data.test_labels.sum()) and data.details["pool_ai"] == int(data.pool.labels.sum())
    again = gold_data(gold_path, test_share=0.2, seed=3, weak=False)
    assert list(again.pool.ids) == list(data.pool.ids) and gold_data(gold_path, 0.2, 4, weak=False).pool.ids.tolist() != \
        data.pool.ids.tolist()
    with pytest.raises(SimulationError, match="test share must be between 0 and 1"):
        gold_data(gold_path, test_share=1.0, weak=False)


def test_workflow_trains_as_ssp_train_does_gold_over_weak_for_asked_rows():
    from ssp.config import TrainConfig
    from ssp.model.train import run_targets, sample_weights

    pool = Pool(np.arange(6), np.array(list("abcdef"), dtype=object), np.array([1, 0, 1, 1, 0, 0]),
                np.array([0.9, 0.8, np.nan, 0.1, np.nan, 0.3]))
    stream = pd.DataFrame({"text": ["s1", "s2"], "slabel": pd.array([1, -1], "Int64"), "slabel_prob": [0.7, np.nan]})
    asked = np.array([False, True, True, True, False, False])
    config = TrainConfig(version=0)  # hard Snorkel targets, rows without a vote as not AI (weight 1)
    rows = run_targets(workflow_frame(pool, asked, stream), config)
    # rows 1-3 asked: gold, whatever Snorkel said (or did not); row 4: no vote, not asked: a weak negative
    assert rows.texts.tolist() == ["a", "b", "c", "d", "e", "f", "s1", "s2"]
    assert rows.targets.tolist() == [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert rows.sources.tolist() == ["snorkel", "gold", "gold", "gold", "no_vote", "snorkel", "snorkel", "no_vote"]
    weighted = dataclasses.replace(config, no_vote_weight=0.25)
    assert sample_weights(run_targets(workflow_frame(pool, asked, stream), weighted), weighted).tolist() == [
        1.0, 10.0, 10.0, 10.0, 0.25, 1.0, 1.0, 0.25]  # a gold label weighs TrainConfig.gold_weight weak ones
    soft = dataclasses.replace(config, snorkel_targets="soft", no_vote_weight=0.0)
    rows = run_targets(workflow_frame(pool, np.zeros(6, dtype=bool)), soft)  # round 0: weak labels only, no stream
    assert rows.texts.tolist() == ["a", "b", "d", "f"] and rows.targets.tolist() == pytest.approx([0.9, 0.8, 0.1, 0.3])


def test_workflow_on_written_posts_gains_from_gold_labels(gold_pool):
    assert gold_pool.pool.snorkel_probs is not None and 0 < gold_pool.details["weak_coverage"] <= 1
    # one round that asks for the whole pool: every weak label is overridden by the gold one. (A few dozen
    # uncertain rows are not enough to assert a gain: on this pool the curve dips before it rises.)
    size = len(gold_pool.pool)
    run = simulate(gold_pool, strategies=("least_confidence",), rounds=1, batch=size, seeds=1,
                   config=simulation_config(epochs=10), setting="workflow")
    curve = [(p.round, p.labels, p.f1) for p in run.points]
    assert [c[:2] for c in curve] == [(0, 0), (1, size)] and run.initial == 0
    assert curve[1][2] >= curve[0][2], curve  # gold labels on top of the weak ones do not make it worse
    assert run.figures()["weak_only_f1"] == pytest.approx(curve[0][2], abs=1e-4)


def test_workflow_with_the_stream_trains_as_ssp_train_and_gold_labels_count(gold_path):
    """The tagger's workflow with a stream (5,000 synthetic posts beside the written pool): ssp train's own
    config, and 200 gold labels (weight TrainConfig.gold_weight) on top of the weak ones. From scratch
    200 labels gave F1 0.46-0.73 on this data; with the stream's weak labels the model is at the served
    model's goal before and after (``ssp al simulate`` measures the full curves: README, Active learning)."""
    data = gold_data(gold_path, stream=5000)
    assert data.details["stream_unique"] == len(data.stream) + len(data.stream_dev) > 4000
    assert 0 < data.details["stream_weak_ai"] < data.details["stream_unique"] and data.details["stream_no_vote"] > 0
    config = round_config("workflow", data)
    assert config.patience < config.epochs and config.gold_weight > 1  # ssp train's own config
    run = simulate(data, strategies=("least_confidence",), rounds=1, batch=200, seeds=1, setting="workflow",
                   config=config)
    figures = run.figures()
    assert figures["gold_labels_at"] == 200 and [p.labels for p in run.points] == [0, 200]
    assert figures["weak_only_f1"] >= 0.75, figures
    assert figures["f1_at_gold_labels"]["least_confidence"] >= 0.75, figures


def test_simulate_with_gold_file_writes_both_settings(gold_path, tmp_path):
    out = tmp_path / "al"
    outcome = CliRunner().invoke(al, ["simulate", "--gold", str(gold_path), "--rounds", "1", "--batch", "10",
                                      "--seeds", "1", "--initial", "10", "--epochs", "3", "--stream", "0",
                                      "--out", str(out),
                                      "--strategy", "random"])  # one strategy, 4 models: the files are the point
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.output.strip().splitlines()
    figures = json.loads(lines[-1])
    assert lines[-2].startswith("simulated 1 strategies x 1 seeds x 1 rounds on ") and "workflow: final F1" in lines[-2]
    assert set(figures["settings"]) == {"from_scratch", "workflow"}
    assert figures["source"] == f"gold file {gold_path.name}" and figures["ambiguous_dropped"] > 0
    for setting, first_labels in (("from_scratch", 10), ("workflow", 0)):
        rows = read_curves(out / f"learning_curves_{setting}.csv")
        assert [(r["strategy"], r["labels"]) for r in rows] == [("random", first_labels), ("random", first_labels + 10)]
        assert (out / f"learning_curves_{setting}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert figures["settings"][setting]["setting"] == setting
        assert figures["settings"][setting]["csv"] == str(out / f"learning_curves_{setting}.csv")
    assert figures["settings"]["workflow"]["gold_labels_at"] == 10 and "weak_only_f1" in figures["settings"]["workflow"]
    sizes = figures["settings"]["workflow"]
    assert sizes["pool"] + sizes["test"] == figures["posts"] - figures["ambiguous_dropped"] and sizes["initial"] == 0


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
