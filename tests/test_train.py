"""``ssp train``: the text classifier trained from real dataset tables, its metrics and its versioned export.

The dataset tables live in the real PostgreSQL of the ``stack`` fixture. Their tweets come
from the synthetic source; Snorkel's ``slabel_prob`` is stood in for by the generator's truth
with 10% of the labels flipped (and some rows left unlabelled, as when no labelling function
votes), plus gold labels on part of the rows.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ssp.config import TrainConfig
from ssp.metrics import choose_threshold, precision_recall_points
from ssp.model.cli import train as train_command
from ssp.model.export import (
    MODEL_CARD_FILE,
    TEMP_PREFIX,
    export_model,
    publish_version,
    read_model_card,
)
from ssp.model.train import (
    MIN_GOLD_DEV_ROWS,
    TrainingDataError,
    choose_dev_threshold,
    evaluate,
    fit_classifier,
    load_training_data,
    predict_proba,
    roc_auc,
    run_training,
    train_classifier,
    training_targets,
)
from ssp.sources.synthetic import SyntheticTweets
from ssp.tweets import parse_tweet

# Measured on the 2-core development machine with this test's data (2,000 training tweets, 15% gold,
# 10% of Snorkel's stand-in labels wrong, early stopping on dev's gold rows): F1 on the 1,000 held-out
# tweets between 0.985 and 1.000 for training streams of seeds 1, 4, 7, 10 and 13. Held-out tweets
# share the generator's templates, so they are easy; 0.95 leaves room for borderline texts without
# letting a broken model through (one that ignores the text scores F1 0.54 at best, by saying AI always).
HELD_OUT_F1_BOUND = 0.95
# The stand-in Snorkel labels below abstain at random, on AI rows too, so rows without a vote are not
# the near-certain negatives they are on a real stream, and 10% of them are flipped with a random
# confidence: these tests train on voted rows only, on the labels' probabilities, and without the
# keyword-list features (the lists know the easy mix's words; what is tested here is what the model
# learns from its labels).
FAST_CONFIG = TrainConfig(epochs=20, seed=7, no_vote_weight=0.0, snorkel_targets="soft", lexicon_features=False)
# These tests check that the classifier learns what its labels say, on the generator's original, easy
# mix of tweets (none of the kinds added since to make it realistic: hard negatives, news, spam, the
# vocabulary lists' terms, AI in everyday life beside the same frames without it); how it does on
# realistic posts is asserted on the labelled dev files (test_quality.py, test_demo.py).
EASY_MIX = {"ai_share": 0.33, "trap_share": 0.04, "implicit_ai_share": 0.01, "hard_negative_share": 0.0,
            "news_share": 0.0, "spam_share": 0.0, "field_terms_share": 0.0, "everyday_life_share": 0.0,
            "non_english_share": 0.12, "duplicate_share": 0.03}


def synthetic_texts(seed: int, n: int) -> tuple[list[str], np.ndarray]:
    tweets = list(SyntheticTweets(seed, **EASY_MIX).generate(n))
    return [parse_tweet(t.payload).text for t in tweets], np.array([int(t.is_ai) for t in tweets])


def dataset_rows(seed: int, n: int, gold_share: float, abstain_share: float = 0.1, flip_share: float = 0.1,
                 snorkel: bool = True) -> list[dict]:
    """Rows for a dataset table: noisy Snorkel stand-in labels everywhere, gold labels on ``gold_share``."""
    rng = np.random.default_rng(seed)
    rows = []
    for synthetic in SyntheticTweets(seed, **EASY_MIX).generate(n):
        tweet = parse_tweet(synthetic.payload)
        truth = int(synthetic.is_ai)
        weak = 1 - truth if rng.random() < flip_share else truth
        confidence = float(rng.uniform(0.7, 0.99))
        abstain = not snorkel or rng.random() < abstain_share
        gold = rng.random() < gold_share
        rows.append({
            "id": tweet.id, "created_at": tweet.created_at, "text": tweet.text, "lang": tweet.lang,
            "user_screen_name": tweet.user_screen_name, "urls": list(tweet.urls), "hashtags": list(tweet.hashtags),
            "is_retweet": tweet.is_retweet, "norm_text": " ".join(tweet.text.lower().split()),
            "slabel": -1 if abstain else weak,
            "slabel_prob": None if abstain else (confidence if weak == 1 else 1 - confidence),
            "label": truth if gold else None,
            "labelled_by": "test" if gold else None,
        })
    return rows


def write_dataset(database_url: str, version: int, splits: dict[str, list[dict]]) -> None:
    from ssp.storage.postgres import ensure_tables, make_engine
    from ssp.storage.tables import dataset_table, split_table_name

    engine = make_engine(database_url)
    try:
        for split, rows in splits.items():
            table = dataset_table(split_table_name(split, version))
            ensure_tables(engine, table)
            if rows:
                with engine.begin() as conn:
                    conn.execute(table.insert(), rows)
    finally:
        engine.dispose()


def fresh_version() -> int:
    """A dataset version no other test uses, so tables never collide."""
    return 10**6 + uuid.uuid4().int % 10**9


def expected_counts(rows: list[dict]) -> dict[str, int]:
    gold = sum(r["label"] is not None for r in rows)
    snorkel = sum(r["label"] is None and r["slabel_prob"] is not None and r["slabel"] != -1 for r in rows)
    return {"gold": gold, "snorkel": snorkel}


def signature_fn(path: Path):
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda texts: signature(text=tf.constant(list(texts), tf.string))["ai_prob"].numpy()


# ---------------------------------------------------------------- pure parts: no database, no training
def test_evaluate_computes_metrics_worked_out_by_hand():
    probabilities = {"a": 0.9, "b": 0.4, "c": 0.6, "d": 0.1, "e": 0.7}
    metrics = evaluate(lambda texts: [probabilities[t] for t in texts], list("abcde"), [1, 1, 0, 0, 1])
    # predicted 1 0 1 0 1 against 1 1 0 0 1: tp 2, fn 1, fp 1, tn 1
    assert metrics["confusion"] == [[1, 1], [1, 2]]
    assert metrics["n"] == 5 and metrics["accuracy"] == pytest.approx(0.6)
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)
    # of the 6 (AI, other) pairs, only (b=0.4, c=0.6) is ordered wrongly
    assert metrics["roc_auc"] == pytest.approx(5 / 6)


def test_best_f1_threshold_sits_between_scores_and_prefers_the_higher_on_a_tie():
    gold = [0, 0, 0, 1, 0, 1, 1, 1]
    scores = [0.05, 0.1, 0.2, 0.3, 0.55, 0.6, 0.8, 0.9]
    point, met = choose_threshold(gold, scores, "best_f1")
    # calling 0.3 and up AI: tp 4, fp 1, F1 8/9; the threshold lies halfway to the next lower score
    assert met and point.threshold == pytest.approx(0.25) and point.f1 == pytest.approx(8 / 9)
    assert (point.precision, point.recall, point.predicted_ai, point.n) == (0.8, 1.0, 5, 8)
    # two thresholds tie on F1 2/3 (0.8: 1 AI called of 2; 0.3: both AI called, and 2 others): the higher wins
    point, _ = choose_threshold([1, 0, 0, 1, 0], [0.9, 0.7, 0.6, 0.5, 0.1], "best_f1")
    assert point.threshold == pytest.approx(0.8) and point.f1 == pytest.approx(2 / 3)
    assert [round(p.threshold, 3) for p in precision_recall_points([1, 0, 1], [0.5, 0.5, 0.2])] == [0.35, 0.2]


def test_precision_target_takes_the_lowest_threshold_reaching_it():
    gold = [0, 0, 1, 0, 1, 1, 0, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    point, met = choose_threshold(gold, scores, "precision", target_precision=0.75)
    # from 0.5 up: 4 AI of 5 called (0.8); from 0.3 up: 5 of 7 (0.71) misses the target
    assert met and point.threshold == pytest.approx(0.45) and point.precision == pytest.approx(0.8)
    point, met = choose_threshold(gold, scores, "precision", target_precision=1.0)
    assert met and point.threshold == pytest.approx(0.75) and point.recall == pytest.approx(2 / 5)
    point, met = choose_threshold([0, 1], [0.9, 0.1], "precision", target_precision=0.9)
    assert not met and point.precision == 0.5
    with pytest.raises(ValueError, match="threshold rule 'accuracy' is unknown"):
        choose_threshold([0, 1], [0.1, 0.9], "accuracy")
    assert roc_auc([0, 1], [0.2, 0.7]) == 1.0  # still importable from ssp.model.train


def _dev_frame(n_gold: int, n_snorkel: int, gold_classes=(0, 1)) -> pd.DataFrame:
    texts = [f"gold {i}" for i in range(n_gold)] + [f"weak {i}" for i in range(n_snorkel)]
    labels = [gold_classes[i % len(gold_classes)] for i in range(n_gold)] + [None] * n_snorkel
    slabels = [None] * n_gold + [i % 2 for i in range(n_snorkel)]
    return pd.DataFrame({"text": texts, "label": pd.array(labels, "Int64"), "slabel": pd.array(slabels, "Int64"),
                         "slabel_prob": [None] * n_gold + [0.9 if i % 2 else 0.1 for i in range(n_snorkel)]})


def test_dev_threshold_falls_back_from_gold_to_snorkel_to_the_default():
    def perfect(frame):
        truth = dict(zip(frame["text"], frame["label"].fillna(frame["slabel"]).astype(int), strict=True))
        # AI rows 0.6-0.7, others 0.2-0.3: best F1 between 0.3 and 0.6
        return lambda texts: np.array([(0.6 if truth[t] else 0.2) + 0.1 * (hash(t) % 2) for t in texts])

    config = TrainConfig()
    frame = _dev_frame(MIN_GOLD_DEV_ROWS, 30)
    choice = choose_dev_threshold(perfect(frame), frame, config)
    assert choice.source == "gold_dev" and 0.3 < choice.threshold < 0.6 and choice.dev["f1"] == 1.0
    assert choice.dev["n"] == MIN_GOLD_DEV_ROWS and choice.note is None
    for frame in (_dev_frame(MIN_GOLD_DEV_ROWS - 1, 30), _dev_frame(50, 30, gold_classes=(0,))):
        choice = choose_dev_threshold(perfect(frame), frame, config)
        assert (choice.source, choice.threshold) == ("default", 0.5)  # Snorkel's dev rows only when asked
        choice = choose_dev_threshold(perfect(frame), frame, TrainConfig(threshold_on_snorkel_dev=True))
        assert choice.source == "snorkel_dev" and choice.dev["n"] == 30 and 0.3 < choice.threshold < 0.6
    frame = _dev_frame(5, 5)
    choice = choose_dev_threshold(perfect(frame), frame, config)
    assert (choice.source, choice.threshold, choice.dev) == ("default", 0.5, None) and "too few" in choice.note
    fields = choice.card_fields()
    assert set(fields) == {"threshold", "threshold_rule", "threshold_source", "threshold_dev_metrics"}


def test_rows_without_a_vote_become_weak_negatives_only_when_asked():
    rows = dataset_rows(8, 200, gold_share=0.2, abstain_share=0.3)
    frame = pd.DataFrame(rows)
    for column in ("slabel", "label"):
        frame[column] = frame[column].astype("Int64")
    frame["slabel_prob"] = frame["slabel_prob"].astype("float64")
    no_vote = sum(r["label"] is None and r["slabel"] == -1 for r in rows)
    assert no_vote > 0
    left_out, kept = training_targets(frame), training_targets(frame, no_vote_target=0.1)
    assert len(kept) == len(left_out) + no_vote and kept.count("no_vote") == no_vote
    assert np.allclose(kept.targets[kept.sources == "no_vote"], 0.1)


def test_bad_training_input_is_named():
    config = TrainConfig(epochs=1)
    with pytest.raises(ValueError, match=r"targets must be probabilities in \[0, 1\]; row 1 is 1.5"):
        train_classifier(["a", "b"], [0.0, 1.5], ["a"], [1.0], config)
    with pytest.raises(ValueError, match="training data: 2 texts but 3 targets"):
        train_classifier(["a", "b"], [0.0, 1.0, 1.0], ["a"], [1.0], config)
    with pytest.raises(ValueError, match="architecture 'transformer' is unknown"):
        train_classifier(["a"], [1.0], ["a"], [1.0], dataclasses.replace(config, architecture="transformer"))
    with pytest.raises(ValueError, match="gold labels must be 0 or 1"):
        evaluate(lambda texts: [0.5] * len(texts), ["a", "b"], [1, 2])


def test_concurrent_publishers_get_distinct_versions(tmp_path):
    base = tmp_path / "clf"
    (base / "2").mkdir(parents=True)
    (base / "2" / "saved_model.pb").write_text("earlier model")
    (base / "latest").mkdir()  # not an integer: ignored
    n_writers = 8
    barrier = threading.Barrier(n_writers)
    results: dict[int, tuple[int, Path]] = {}
    errors: list[Exception] = []

    def publish(i: int) -> None:
        staged = base / f"{TEMP_PREFIX}{i}"
        staged.mkdir()
        (staged / "writer.txt").write_text(str(i))
        barrier.wait()  # all writers see the same highest version before renaming
        try:
            results[i] = publish_version(staged, base, {"writer": i})
        except Exception as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(n_writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(version for version, _ in results.values()) == list(range(3, 3 + n_writers))
    for writer, (version, path) in results.items():
        assert path == base / str(version)
        assert (path / "writer.txt").read_text() == str(writer)
        assert read_model_card(path) == {"writer": writer, "model_version": version}
    assert (base / "2" / "saved_model.pb").read_text() == "earlier model"
    assert sorted(p.name for p in base.iterdir() if not p.name.isdigit()) == ["latest"]


# ---------------------------------------------------------------- a Keras model trained in memory
@pytest.fixture(scope="module")
def small_model():
    texts, truth = synthetic_texts(11, 600)
    dev_texts, dev_truth = synthetic_texts(12, 150)
    model, history = fit_classifier(texts, truth.astype("float32"), dev_texts, dev_truth, FAST_CONFIG)
    return model, history


def test_export_twice_gives_versions_one_and_two(small_model, tmp_path):
    model, _ = small_model
    base = tmp_path / "models" / "naive_text_clf"
    (base / "notes").mkdir(parents=True)
    (base / "v7").mkdir()
    card = {"data": {"version": 3}, "metrics": {"f1": 0.5}}
    first = export_model(model, base, card)
    second = export_model(model, base, card)
    assert (first[0], second[0]) == (1, 2)
    assert first[1] == base / "1" and second[1] == base / "2"
    for version, path in (first, second):
        assert {p.name for p in path.iterdir()} >= {"saved_model.pb", "variables", "assets", MODEL_CARD_FILE}
        assert (path / "variables").is_dir() and (path / "assets").is_dir()
        written = json.loads((path / MODEL_CARD_FILE).read_text())
        assert written == {**card, "model_version": version}
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "notes", "v7"]  # no temp folder left


def test_loaded_savedmodel_matches_the_keras_model(small_model, tmp_path):
    import tensorflow as tf

    model, _ = small_model
    _, path = export_model(model, tmp_path / "clf", {})
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    assert list(inputs) == ["text"]
    assert inputs["text"].dtype == tf.string and inputs["text"].shape.as_list() == [None]
    assert list(signature.structured_outputs) == ["ai_prob"]
    assert signature.structured_outputs["ai_prob"].dtype == tf.float32
    assert signature.structured_outputs["ai_prob"].shape.as_list() == [None]

    texts, _ = synthetic_texts(13, 200)
    texts += ["", "🔥🔥🔥", "a" * 5000]
    served = signature(text=tf.constant(texts))["ai_prob"].numpy()
    assert served.shape == (len(texts),)
    assert np.isfinite(served).all(), texts[int(np.argmin(np.isfinite(served)))]  # "" has no tokens at all
    assert 0.0 <= served.min() and served.max() <= 1.0
    np.testing.assert_allclose(served, predict_proba(model, texts), rtol=0, atol=1e-6)


def test_training_is_repeatable_with_the_same_seed(small_model):
    model, history = small_model
    texts, truth = synthetic_texts(11, 600)
    dev_texts, dev_truth = synthetic_texts(12, 150)
    again, again_history = fit_classifier(texts, truth.astype("float32"), dev_texts, dev_truth, FAST_CONFIG)
    probe, _ = synthetic_texts(14, 100)
    assert again_history.epochs_run == history.epochs_run
    np.testing.assert_allclose(predict_proba(again, probe), predict_proba(model, probe), atol=1e-4)


def test_bilstm_variant_learns_and_exports(tmp_path):
    texts, truth = synthetic_texts(21, 600)
    dev_texts, dev_truth = synthetic_texts(22, 150)
    config = dataclasses.replace(FAST_CONFIG, architecture="bilstm", epochs=4, embedding_dim=32)
    model = train_classifier(texts, truth.astype("float32"), dev_texts, dev_truth, config)
    _, path = export_model(model, tmp_path / "clf", {"architecture": "bilstm"})
    held_texts, held_truth = synthetic_texts(23, 300)
    serve = signature_fn(path)
    assert np.isfinite(serve(["", "!!!", "new paper on arXiv"])).all()
    metrics = evaluate(serve, held_texts, held_truth)
    # measured: ROC-AUC 0.9993-1.0 after 4 epochs on 600 tweets (seeds 21, 31, 41)
    assert metrics["roc_auc"] > 0.95, metrics


def test_ngram_model_scores_unseen_variants_of_a_learnt_word_as_that_word(tmp_path):
    """Trained where "pytorch" is an AI word, "pytorchs" and "PyTorch2" (never seen) lean AI through
    their character n-grams, while unseen unrelated words do not; the word-only model cannot tell."""
    ai_words = ["pytorch", "tensorflow", "transformers", "embeddings", "gradients", "backprop"]
    other_words = ["football", "lasagna", "gardening", "weather", "concert", "holiday"]
    frames = ["just tried {} this morning", "anyone else into {} lately", "my thoughts on {} today",
              "{} is all i talk about now", "reading about {} on the train", "new post about {}"]
    rng = np.random.default_rng(3)
    texts, truth = [], []
    for _ in range(20):
        for frame in frames:
            for word, label in [(w, 1) for w in ai_words] + [(w, 0) for w in other_words]:
                texts.append(frame.format(word) + (" " + rng.choice(other_words + ai_words) if rng.random() < .1 else ""))
                truth.append(label)
    truth = np.array(truth, "float32")
    unseen_ai, unseen_other = ["pytorchs", "PyTorch2", "tensorflows"], ["bicycles", "pancakes2", "#Tennis"]

    def probes(words):
        return [frame.format(word) for frame in frames for word in words]

    for architecture in ("ngram_pool", "embedding_pool"):
        # without the keyword-list features, which know "PyTorch" whatever the architecture
        config = dataclasses.replace(FAST_CONFIG, architecture=architecture, epochs=5, lexicon_features=False)
        model = train_classifier(texts, truth, texts[::7], truth[::7], config)
        if architecture == "ngram_pool":
            _, path = export_model(model, tmp_path / "clf", {"architecture": architecture})
            score = signature_fn(path)  # the SavedModel alone, as served
        else:
            score = lambda batch, model=model: predict_proba(model, batch)  # noqa: E731
        ai, other = np.asarray(score(probes(unseen_ai))), np.asarray(score(probes(unseen_other)))
        assert np.isfinite(ai).all() and np.isfinite(other).all()
        if architecture == "ngram_pool":
            # every variant, in every frame, scores above every unrelated unseen word in the same frame
            ai, other = ai.reshape(len(frames), -1), other.reshape(len(frames), -1)
            assert (ai.min(axis=1) > other.max(axis=1)).all(), (ai, other)
        else:
            # all unseen words are the same unknown token to the word-only model
            same_frame = np.hstack([ai.reshape(len(frames), -1), other.reshape(len(frames), -1)])
            assert np.ptp(same_frame, axis=1).max() < 1e-6


# ---------------------------------------------------------------- from the dataset tables
@pytest.fixture(scope="module")
def labelled_dataset(stack):
    """A dataset version with train (2,000 tweets, 15% gold), dev (300, a third gold) and test (300, all gold)."""
    version = fresh_version()
    splits = {
        "train": dataset_rows(1, 2000, gold_share=0.15),
        "dev": dataset_rows(2, 300, gold_share=0.34),
        "test": dataset_rows(3, 300, gold_share=1.0),
    }
    write_dataset(stack.database_url, version, splits)
    return version, splits


@pytest.fixture(scope="module")
def trained(stack, labelled_dataset, tmp_path_factory):
    version, splits = labelled_dataset
    config = dataclasses.replace(FAST_CONFIG, version=version, model_dir=str(tmp_path_factory.mktemp("models")))
    epochs: list[int] = []
    summary = run_training(stack.database_url, config, on_epoch=lambda epoch, logs: epochs.append(epoch))
    return config, summary, epochs


@pytest.mark.integration
def test_load_training_data_reads_the_three_splits(stack, labelled_dataset):
    version, splits = labelled_dataset
    data = load_training_data(stack.database_url, version)
    assert data.tables == {s: f"{s}_dataset_{version}" for s in ("train", "dev", "test")}
    assert [len(data.train), len(data.dev), len(data.test)] == [len(splits[s]) for s in ("train", "dev", "test")]
    assert int(data.test["label"].notna().sum()) == sum(r["label"] is not None for r in splits["test"])


@pytest.mark.integration
def test_training_reaches_f1_on_held_out_synthetic_tweets(trained):
    config, summary, epochs = trained
    held_texts, held_truth = synthetic_texts(9999, 1000)
    metrics = evaluate(signature_fn(summary.path), held_texts, held_truth)
    assert metrics["f1"] >= HELD_OUT_F1_BOUND, metrics
    assert summary.metrics_source == "gold" and summary.metrics["f1"] >= HELD_OUT_F1_BOUND, summary.metrics
    # early stopping on dev: the progress callback saw every epoch that ran
    assert epochs == list(range(1, summary.epochs_run + 1)) and summary.epochs_run <= config.epochs
    assert summary.seconds < 60, f"training 2,000 tweets took {summary.seconds:.1f} s"


@pytest.mark.integration
def test_model_card_records_data_labels_parameters_and_metrics(trained, labelled_dataset):
    config, summary, _ = trained
    version, splits = labelled_dataset
    assert summary.model_version == 1 and summary.path == Path(config.model_dir) / "naive_text_clf" / "1"
    assert {p.name for p in summary.path.iterdir()} >= {"saved_model.pb", "variables", "assets", MODEL_CARD_FILE}
    card = read_model_card(summary.path)
    counts = expected_counts(splits["train"])
    assert card["model_version"] == 1 and card["model_name"] == "naive_text_clf"
    assert card["data"]["version"] == version
    assert card["data"]["label_sources"] == counts
    assert (summary.gold_train_rows, summary.snorkel_train_rows) == (counts["gold"], counts["snorkel"])
    assert card["data"]["dev"]["rows"] == sum(r["label"] is not None for r in splits["dev"])
    assert "gold" in card["data"]["dev"]["source"]
    assert card["parameters"] == json.loads(json.dumps(dataclasses.asdict(config)))
    assert card["metrics"] == summary.metrics
    assert card["metrics"]["n"] == sum(r["label"] is not None for r in splits["test"])
    assert card["metrics"]["label_source"] == "gold" and card["notes"] == []
    # the decision threshold, chosen on dev's gold rows, with its dev figures; test metrics use it
    assert card["threshold_source"] == "gold_dev" and card["threshold_rule"] == "best_f1"
    assert 0.0 < card["threshold"] < 1.0 and card["metrics"]["threshold"] == card["threshold"] == summary.threshold
    assert card["threshold_dev_metrics"]["n"] == card["data"]["dev"]["rows"]
    assert card["threshold_dev_metrics"]["f1"] >= HELD_OUT_F1_BOUND
    assert card["signature"]["inputs"] == {"text": {"dtype": "string", "shape": [None]}}
    (tn, fp), (fn, tp) = card["metrics"]["confusion"]
    assert tn + fp + fn + tp == card["metrics"]["n"]
    assert f"version 1 on {counts['gold'] + counts['snorkel']} tweets" in summary.line()


@pytest.mark.integration
def test_missing_tables_are_named(stack):
    version = fresh_version()
    with pytest.raises(TrainingDataError, match=f"train_dataset_{version}, dev_dataset_{version}, "
                                                f"test_dataset_{version} do not exist"):
        load_training_data(stack.database_url, version)
    write_dataset(stack.database_url, version, {"train": [], "dev": []})
    with pytest.raises(TrainingDataError, match=f"table test_dataset_{version} does not exist"):
        load_training_data(stack.database_url, version)


@pytest.mark.integration
def test_no_labelled_rows_is_an_error_naming_the_table(stack):
    version = fresh_version()
    unlabelled = dataset_rows(5, 50, gold_share=0.0, snorkel=False)
    write_dataset(stack.database_url, version, {"train": unlabelled, "dev": [], "test": []})
    with pytest.raises(TrainingDataError, match=f"table train_dataset_{version} has no labelled rows"):
        load_training_data(stack.database_url, version)


@pytest.mark.integration
def test_labels_outside_their_range_are_named(stack):
    version = fresh_version()
    rows = dataset_rows(6, 30, gold_share=0.5)
    rows[3]["label"] = 2
    write_dataset(stack.database_url, version, {"train": rows, "dev": [], "test": []})
    with pytest.raises(TrainingDataError, match=f"table train_dataset_{version}: column label must be 0, 1 or NULL, "
                                                f"but 1 row\\(s\\) are not \\(ids {rows[3]['id']}\\)"):
        load_training_data(stack.database_url, version)


def test_cli_help():
    result = CliRunner().invoke(train_command, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "--version" in result.output and "--architecture" in result.output


@pytest.mark.integration
def test_cli_names_a_missing_dataset(stack, tmp_path):
    version = fresh_version()
    result = CliRunner().invoke(train_command, ["--version", str(version), "--model-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"train_dataset_{version}" in result.output and "Traceback" not in result.output


@pytest.mark.integration
def test_cli_trains_without_gold_test_labels(stack, tmp_path):
    version = fresh_version()
    splits = {
        "train": dataset_rows(31, 600, gold_share=0.1),
        "dev": dataset_rows(32, 100, gold_share=0.05),  # too few gold rows: Snorkel's dev labels stop training
        "test": dataset_rows(33, 100, gold_share=0.0),
    }
    write_dataset(stack.database_url, version, splits)
    args = ["--version", str(version), "--model-dir", str(tmp_path), "--epochs", "5"]
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "metrics on" in result.output and "Snorkel test labels (no gold test labels)" in result.output
    assert lines[-1].startswith("trained naive_text_clf version 1 on ")
    assert "no gold test labels: F1" in lines[-1] and str(tmp_path / "naive_text_clf" / "1") in lines[-1]
    card = read_model_card(tmp_path / "naive_text_clf" / "1")
    assert card["metrics"]["label_source"] == "snorkel"
    assert card["metrics"]["n"] == sum(r["slabel"] in (0, 1) for r in splits["test"])
    assert "no gold test labels" in " ".join(card["notes"])
    assert card["data"]["dev"]["source"].startswith("Snorkel labels of dev_dataset_")
    assert card["threshold_source"] == "default" and card["threshold"] == 0.5  # no gold dev rows
    assert card["parameters"]["epochs"] == 5 and card["training"]["epochs_run"] <= 5
