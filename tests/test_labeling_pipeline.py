"""Weak labelling end to end on a real PostgreSQL (and Spark): prepare, label, evaluate."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ssp.config import DatasetConfig, LabelConfig
from ssp.labeling.metrics import binary_metrics, lf_summary
from ssp.labeling.pipeline import (
    LabelingError,
    apply_pandas,
    apply_spark,
    evaluate_weak_labels,
    read_table,
    run_labeling,
    split_tables,
    weak_labels,
)
from ssp.sources.synthetic import SyntheticTweets
from ssp.storage.postgres import insert_raw_tweets
from ssp.text import load_ai_keywords, matches_ai_keywords

pytestmark = pytest.mark.integration


def test_lf_summary_matches_figures_worked_out_by_hand():
    # rows: data points; columns: lf_a, lf_b, lf_c
    L = np.array([
        [1, -1, 0],
        [1, 1, -1],
        [-1, -1, -1],
        [0, -1, 0],
        [1, -1, -1],
    ])
    Y = np.array([1, 1, 0, 0, 0])
    summary = lf_summary(L, ["lf_a", "lf_b", "lf_c"], Y)
    # lf_a votes on rows 0,1,3,4: coverage 4/5; overlaps rows 0,1,3 (another LF voted): 3/5;
    # conflicts row 0 (lf_c says 0) only: 1/5; correct rows 0,1,3 -> 3, incorrect row 4 -> 1
    assert summary.loc["lf_a", "Polarity"] == [0, 1]
    assert summary.loc["lf_a", "Coverage"] == pytest.approx(0.8)
    assert summary.loc["lf_a", "Overlaps"] == pytest.approx(0.6)
    assert summary.loc["lf_a", "Conflicts"] == pytest.approx(0.2)
    assert (summary.loc["lf_a", "Correct"], summary.loc["lf_a", "Incorrect"]) == (3, 1)
    assert summary.loc["lf_a", "Emp. Acc."] == pytest.approx(0.75)
    # lf_b votes on row 1 only, agreeing with lf_a: overlap, no conflict, correct
    assert summary.loc["lf_b", "Polarity"] == [1]
    assert summary.loc["lf_b", ["Coverage", "Overlaps", "Conflicts"]].tolist() == pytest.approx([0.2, 0.2, 0.0])
    assert summary.loc["lf_b", "Emp. Acc."] == pytest.approx(1.0)
    # lf_c votes 0 on rows 0 and 3: both overlap, row 0 conflicts; row 0 wrong (gold 1), row 3 right
    assert summary.loc["lf_c", ["Coverage", "Overlaps", "Conflicts"]].tolist() == pytest.approx([0.4, 0.4, 0.2])
    assert (summary.loc["lf_c", "Correct"], summary.loc["lf_c", "Incorrect"]) == (1, 1)


def test_lf_summary_agrees_with_snorkel():
    from snorkel.labeling import LFAnalysis

    rng = np.random.default_rng(3)
    L = rng.choice([-1, 0, 1], size=(300, 5), p=[0.6, 0.2, 0.2])
    Y = rng.integers(0, 2, 300)
    names = [f"lf{i}" for i in range(5)]
    ours = lf_summary(L, names, Y)
    from snorkel.labeling import LabelingFunction

    lfs = [LabelingFunction(name, f=lambda x: -1) for name in names]
    theirs = LFAnalysis(L, lfs).lf_summary(Y)
    for column in ("Coverage", "Overlaps", "Conflicts", "Emp. Acc."):
        assert ours[column].to_numpy() == pytest.approx(theirs[column].to_numpy().astype(float)), column
    assert ours["Correct"].tolist() == theirs["Correct"].tolist()
    assert ours["Polarity"].tolist() == theirs["Polarity"].tolist()


class _AlwaysAI:
    """A stand-in label model: P(AI) = 0.9 wherever asked."""

    def predict_proba(self, L):
        return np.tile([0.1, 0.9], (L.shape[0], 1))


def test_rows_without_votes_get_no_weak_label():
    L = np.array([[1, -1], [-1, -1], [0, 0]])
    labels, probs = weak_labels(_AlwaysAI(), L)
    assert labels.tolist() == [1, -1, 1]
    assert probs[0] == pytest.approx(0.9) and np.isnan(probs[1])


# ---------------------------------------------------------------- end to end


N_TWEETS = 8000
SIZES = {"test_size": 600, "dev_size": 400, "snorkel_train_size": 1500, "min_train_fraction": 0.0}


@pytest.fixture(scope="module")
def labelled_version(stack, tmp_path_factory):
    """A dataset version prepared from synthetic tweets, with the generator's truth as gold labels on
    dev and test (standing in for the tagger); yields (version, truth by tweet id, output dir)."""
    import psycopg2
    import psycopg2.extras

    from ssp.dataset.prepare import prepare_dataset

    version = random.randint(10_000, 99_999)
    tweets = list(SyntheticTweets(seed=11).generate(N_TWEETS))
    truth = {t.tweet_id: int(t.is_ai) for t in tweets}
    insert_raw_tweets(stack.database_url, f"raw_tweet_dataset_{version}", [t.payload for t in tweets])
    prepare_dataset(stack.database_url, DatasetConfig(version=version, **SIZES), show_progress=False)
    conn = psycopg2.connect(stack.database_url)
    with conn, conn.cursor() as cur:
        for split in ("dev", "test"):
            table = split_tables(version)[split]
            cur.execute(f"SELECT id FROM {table}")
            gold = [(truth[row[0]], row[0]) for row in cur.fetchall()]
            psycopg2.extras.execute_batch(
                cur, f"UPDATE {table} SET label = %s, labelled_by = 'generator', labelled_at = now() WHERE id = %s",
                gold,
            )
    conn.close()
    out = tmp_path_factory.mktemp("labels")
    yield version, truth, out


def _config(version, out) -> LabelConfig:
    return LabelConfig(version=version, output_dir=str(out), epochs=300)


def test_weak_labels_beat_a_single_keyword_rule(stack, labelled_version):
    version, truth, out = labelled_version
    result = run_labeling(stack.database_url, _config(version, out), engine="pandas", show_progress=False)
    assert result.rows["test"] == 600 and result.rows["dev"] == 400 and result.rows["snorkel_train"] == 1500
    assert result.gold_rows == 1000
    assert set(result.comparison) == {"label_model", "majority_vote"}

    evaluation = evaluate_weak_labels(stack.database_url, _config(version, out))
    assert evaluation.gold_rows == 1000 and set(evaluation.splits) == {"dev", "test"}
    import psycopg2

    conn = psycopg2.connect(stack.database_url)
    test_rows = read_table(conn, split_tables(version)["test"])
    conn.close()
    # the baseline: the original project's rule, "AI if the text matches an AI keyword" (the whole list)
    keywords = load_ai_keywords()
    keyword_rule = np.array([int(matches_ai_keywords(text, keywords)) for text in test_rows["text"]])
    gold = test_rows["label"].to_numpy().astype(int)
    baseline = binary_metrics(gold, keyword_rule)
    weak = evaluation.splits["test"]
    assert weak["n"] == 600
    # the truth the gold labels came from is the generator's, tweet by tweet
    assert gold.tolist() == [truth[i] for i in test_rows["id"]]
    assert weak["f1"] > baseline["f1"], (weak, baseline)
    # abstentions count as "not AI" in F1 and as wrong in accuracy; where the weak labels decide, they are
    # right more often than the keyword rule is anywhere
    assert weak["accuracy_voted"] > baseline["accuracy"], (weak, baseline)
    assert weak["abstained"] < 0.25 * weak["n"]
    # per-LF empirical accuracy on the gold rows is reported for every function
    assert list(evaluation.lf_accuracy.index) == result.lf_names
    assert (out / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_weak_labels_are_written_to_tables_and_parquet(stack, labelled_version):
    import psycopg2

    version, _, out = labelled_version
    result = run_labeling(stack.database_url, _config(version, out), engine="pandas", show_progress=False)
    conn = psycopg2.connect(stack.database_url)
    for split, table in split_tables(version).items():
        with conn.cursor() as cur:
            cur.execute(f"SELECT id, slabel, slabel_prob FROM {table} ORDER BY id")
            db_rows = pd.DataFrame(cur.fetchall(), columns=["id", "slabel", "slabel_prob"])
        assert db_rows["slabel"].notna().all(), split  # every row got a weak label or -1
        voted = db_rows["slabel"] != -1
        assert int(voted.sum()) == result.labelled[split]
        # P(AI) agrees with the label wherever the model decided
        decided = db_rows[voted]
        assert ((decided["slabel_prob"] > 0.5) == (decided["slabel"] == 1)).all(), split
        parquet = pd.read_parquet(out / f"{split}.parquet")
        assert parquet["id"].tolist() == db_rows["id"].tolist()
        assert parquet["slabel"].tolist() == db_rows["slabel"].tolist()
        assert np.allclose(parquet["slabel_prob"].to_numpy(dtype=float), db_rows["slabel_prob"].to_numpy(dtype=float),
                           equal_nan=True)
    conn.close()
    csv = pd.read_csv(out / "lf_summary.csv", index_col="lf")
    assert list(csv.index) == result.lf_names
    assert {"Polarity", "Coverage", "Overlaps", "Conflicts", "Correct", "Incorrect", "Emp. Acc."} <= set(csv.columns)
    assert (out / "lf_summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.labelled["snorkel_train"] > 0.5 * result.rows["snorkel_train"]


def test_spark_and_pandas_engines_give_the_same_label_matrix(stack, spark, labelled_version):
    import psycopg2

    from ssp.labeling.functions import make_lfs

    version, _, _ = labelled_version
    lfs = make_lfs()
    tables = split_tables(version)
    conn = psycopg2.connect(stack.database_url)
    frames = {split: read_table(conn, table) for split, table in tables.items()}
    by_pandas = apply_pandas(lfs, frames)
    by_spark, ids = apply_spark(spark, stack.database_url, None, conn, tables, slices_per_table=3)
    conn.close()
    for split in tables:
        assert ids[split].tolist() == frames[split]["id"].tolist(), split
        assert by_spark[split].shape == by_pandas[split].shape
        assert np.array_equal(by_spark[split], by_pandas[split]), split
    assert (by_pandas["train"] != -1).any()


def test_a_failed_write_leaves_the_previous_weak_labels(stack, labelled_version, monkeypatch):
    import psycopg2

    import ssp.labeling.pipeline as pipeline

    version, _, out = labelled_version
    tables = split_tables(version)

    def snapshot():
        conn = psycopg2.connect(stack.database_url)
        with conn.cursor() as cur:
            state = {}
            for table in tables.values():
                cur.execute(f"SELECT id, slabel, slabel_prob FROM {table} ORDER BY id")
                state[table] = cur.fetchall()
        conn.close()
        return state

    conn = psycopg2.connect(stack.database_url)
    with conn, conn.cursor() as cur:
        for table in tables.values():
            cur.execute(f"UPDATE {table} SET slabel = 0, slabel_prob = 0.25")
    conn.close()
    before = snapshot()
    real_write = pipeline.write_weak_labels

    def write_then_crash(conn, tables, frames, results):
        real_write(conn, tables, frames, results)  # every table updated inside the transaction...
        raise RuntimeError("crash before commit")  # ...then the process dies before COMMIT

    monkeypatch.setattr(pipeline, "write_weak_labels", write_then_crash)
    with pytest.raises(RuntimeError, match="crash before commit"):
        run_labeling(stack.database_url, _config(version, out), engine="pandas", show_progress=False)
    assert snapshot() == before


def test_missing_dataset_and_missing_gold_are_clear(stack, tmp_path):
    import psycopg2

    from ssp.storage.postgres import ensure_tables, make_engine
    from ssp.storage.tables import dataset_table

    version = random.randint(100_000, 999_999)
    with pytest.raises(LabelingError, match=rf"dataset version {version} is not prepared.*ssp dataset prepare"):
        run_labeling(stack.database_url, LabelConfig(version=version, output_dir=str(tmp_path)), show_progress=False)

    engine = make_engine(stack.database_url)
    ensure_tables(engine, *(dataset_table(t) for t in split_tables(version).values()))
    engine.dispose()
    conn = psycopg2.connect(stack.database_url)
    with conn, conn.cursor() as cur:
        for table in split_tables(version).values():
            cur.execute(
                f"INSERT INTO {table} (id, created_at, text, urls, hashtags, is_retweet, norm_text, slabel, slabel_prob)"
                " VALUES (%s, now(), 'deep learning is fun', '{}', '{}', false, 'deep learning is fun', 1, 0.9)",
                (abs(hash(table)) % 10**12,),
            )
    conn.close()
    evaluation = evaluate_weak_labels(stack.database_url, LabelConfig(version=version, output_dir=str(tmp_path)))
    assert evaluation.gold_rows == 0
    assert "no gold labels yet" in evaluation.line() and "ssp tagger" in evaluation.line()


def test_label_cli(stack, labelled_version):
    from ssp.cli import main

    version, _, out = labelled_version
    runner = CliRunner()
    assert "snorkel_train" in runner.invoke(main, ["label", "--help"]).output
    assert "gold" in runner.invoke(main, ["label", "evaluate", "--help"]).output
    binding = f"LabelConfig.output_dir = '{out}'"
    result = runner.invoke(main, ["--gin-param", binding, "label", "--version", str(version), "--engine", "pandas"])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"labelled version {version} with ") and "label model" in last and "majority vote" in last
    result = runner.invoke(main, ["--gin-param", binding, "label", "evaluate", "--version", str(version)])
    assert result.exit_code == 0, result.output
    assert f"weak labels of version {version} vs gold: dev (400 gold)" in result.output
    result = runner.invoke(main, ["label", "--version", "987654321"])
    assert result.exit_code == 1 and "is not prepared" in result.output


def test_label_model_fits_in_a_process_that_has_loaded_tensorflow():
    """The test run (and the demo) load TensorFlow and torch into one process; torch's triton must stay out."""
    import subprocess
    import sys

    code = (
        "import tensorflow, numpy as np\n"
        "from ssp.config import LabelConfig\n"
        "from ssp.labeling.pipeline import fit_label_model\n"
        "L = np.random.default_rng(0).choice([-1, 0, 1], size=(100, 3))\n"
        "fit_label_model(L, LabelConfig(epochs=5))\n"
        "print('fitted')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("fitted")
