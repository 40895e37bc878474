"""``ssp evaluate``: the report's figures on hand-made arrays, weak labels and a real model server on
labelled files, and bad files rejected with the line named."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from ssp.cli import main
from ssp.evaluation.report import calibration_bins, evaluate_scores, expected_calibration_error, figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BACKGROUND = "300"  # synthetic tweets for the label model: enough to fit, fast

HAND_WRITTEN = (
    "id\tlabel\tkind\ttext\n"
    "h1\t1\tai_keyword\tNew #LLM paper on arXiv: transformers for deep learning on tabular data https://t.co/x\n"
    "h2\t1\tai_keyword\tFine-tuning a machine learning model with PyTorch on two GPUs, loss finally down\n"
    "h3\t1\tai_implicit\tloss went to NaN at epoch 37 after 9 hours. going to lie down on the floor\n"
    "h4\t0\ttrap\tAi Weiwei's new show opens in Berlin tonight\n"
    "h5\t0\tordinary\tGreat match tonight, what a goal in the last minute!\n"
    "h6\t0\tordinary\tMaking pancakes for breakfast with the kids\n"
    "h7\t-1\tambiguous\tthe robots are coming for our jobs\n"
)


def _evaluate(args, tmp_path):
    result = CliRunner().invoke(main, ["evaluate", *args, "--out", str(tmp_path / "out")])
    return result, tmp_path / "out"


def _is_png(path) -> bool:
    return path.exists() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000


# ---------------------------------------------------------------- report: exact figures
def test_figures_count_the_confusion_of_the_ai_class():
    f = figures([1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 1, 0, 0, 0])
    assert (f.tp, f.fp, f.tn, f.fn) == (2, 1, 3, 1)
    assert f.precision == pytest.approx(2 / 3) and f.recall == pytest.approx(2 / 3)
    assert f.f1 == pytest.approx(2 / 3) and f.fpr == pytest.approx(1 / 4) and f.accuracy == pytest.approx(5 / 7)
    none_called = figures([1, 0], [0, 0])
    assert none_called.precision is None and none_called.recall == 0.0 and none_called.f1 == 0.0


def test_evaluate_scores_leaves_ambiguous_out_and_breaks_down_per_kind():
    gold = [1, 1, 1, 0, 0, 0, -1]
    scores = [0.95, 0.6, 0.2, 0.7, 0.3, 0.1, 0.9]
    kinds = ["ai", "ai", "ai", "trap", "trap", "ordinary", "ambiguous"]
    report = evaluate_scores(gold, scores, threshold=0.5, ids=list("abcdefg"), kinds=kinds, texts=list("ABCDEFG"),
                             top=5, scorer="model x", gold_file="/tmp/g.tsv")
    o = report.overall
    assert (o.n, o.tp, o.fp, o.tn, o.fn, report.skipped) == (6, 2, 1, 2, 1, 1)
    assert {k.kind: (k.n, k.called_ai) for k in report.per_kind} == {"ai": (3, 2), "ordinary": (1, 0), "trap": (2, 1)}
    trap = report.kind("trap").as_dict()
    assert trap["share_called_ai"] == 0.5 and trap["fpr"] == 0.5 and trap["precision"] is None and trap["f1"] is None
    assert report.kind("ai").as_dict()["recall"] == pytest.approx(2 / 3)
    assert [(e.id, e.score, e.kind) for e in report.false_positives] == [("d", 0.7, "trap")]
    assert [(e.id, e.text) for e in report.false_negatives] == [("c", "C")]
    # ranked: .95(1) .7(0) .6(1) .3(0) .2(1) .1(0): AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5
    assert report.average_precision == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert [(p.precision, p.recall) for p in report.pr_curve][:3] == [(1.0, 1 / 3), (0.5, 1 / 3),
                                                                     (pytest.approx(2 / 3), pytest.approx(2 / 3))]
    document = report.to_json()
    assert json.loads(json.dumps(document)) == document
    assert document["overall"]["confusion"] == {"tp": 2, "fp": 1, "tn": 2, "fn": 1}
    assert report.line().startswith("model x on g: 6 posts (1 ambiguous left out), F1 0.667")


def test_worst_errors_are_ranked_by_score_and_carry_voters():
    gold, scores = [0, 0, 0, 1, 1, 1], [0.6, 0.9, 0.7, 0.4, 0.1, 0.3]
    voters = [["a=1"], ["b=1"], ["a=1", "c=1"], ["d=0"], [], ["e=0"]]
    report = evaluate_scores(gold, scores, threshold=0.5, ids=list("uvwxyz"), voters=voters, top=2)
    assert [(e.id, e.voters) for e in report.false_positives] == [("v", ["b=1"]), ("w", ["a=1", "c=1"])]
    assert [(e.id, e.voters) for e in report.false_negatives] == [("y", []), ("z", ["e=0"])]
    predicted = evaluate_scores(gold, scores, [0, 1, 0, 1, 0, 0], threshold=None)
    assert (predicted.overall.tp, predicted.overall.fp) == (1, 1) and predicted.threshold is None


def test_reliability_bins_and_calibration_error():
    gold, scores = [0, 0, 1, 1, 1], [0.05, 0.15, 0.55, 0.95, 1.0]
    bins = calibration_bins(gold, scores, bins=2)
    assert [(b.lower, b.upper, b.count) for b in bins] == [(0.0, 0.5, 2), (0.5, 1.0, 3)]
    assert bins[0].mean_score == pytest.approx(0.1) and bins[0].observed_ai == 0.0
    assert bins[1].mean_score == pytest.approx(2.5 / 3) and bins[1].observed_ai == 1.0
    assert expected_calibration_error(bins) == pytest.approx((2 * 0.1 + 3 * (1 - 2.5 / 3)) / 5)
    empty = calibration_bins([], [], bins=4)
    assert [b.count for b in empty] == [0] * 4 and expected_calibration_error(empty) is None


def test_evaluate_scores_refuses_mismatched_or_undefined_input():
    with pytest.raises(ValueError, match="3 gold labels but 2 scores"):
        evaluate_scores([1, 0, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        evaluate_scores([1, 0], [math.nan, 0.2])
    with pytest.raises(ValueError, match="1, 0 or -1"):
        evaluate_scores([2, 0], [0.5, 0.2])


# ---------------------------------------------------------------- ssp evaluate --labels
def _check_saved(out, scored_rows: int) -> dict:
    document = json.loads((out / "evaluation.json").read_text())
    assert _is_png(out / "pr_curve.png") and _is_png(out / "reliability.png")
    overall = document["overall"]
    assert overall["n"] == scored_rows
    c = overall["confusion"]
    assert c["tp"] + c["fp"] + c["tn"] + c["fn"] == scored_rows
    if c["tp"] + c["fp"]:
        assert overall["precision"] == pytest.approx(c["tp"] / (c["tp"] + c["fp"]))
    assert overall["recall"] == pytest.approx(c["tp"] / (c["tp"] + c["fn"]))
    assert overall["fpr"] == pytest.approx(c["fp"] / (c["fp"] + c["tn"]))
    assert sum(b["count"] for b in document["reliability"]) == scored_rows
    return document


def test_evaluate_weak_labels_on_a_hand_written_file(tmp_path):
    path = tmp_path / "hand.tsv"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    result, out = _evaluate(["--gold", str(path), "--labels", "--background", BACKGROUND], tmp_path)
    assert result.exit_code == 0, result.output
    document = _check_saved(out, 6)
    assert document["scorer"] == "weak labels" and document["skipped_ambiguous"] == 1
    assert {k["kind"] for k in document["per_kind"]} == {"ai_keyword", "ai_implicit", "trap", "ordinary"}
    assert document["label_model"]["background_tweets"] == int(BACKGROUND)
    assert result.stdout.strip().splitlines()[-1].startswith("weak labels on hand: 6 posts (1 ambiguous left out)")
    # the obvious AI posts are found and the plain ones are not called AI
    assert document["overall"]["confusion"]["tp"] >= 2
    ordinary = next(k for k in document["per_kind"] if k["kind"] == "ordinary")
    assert ordinary["called_ai"] == 0 and ordinary["share_called_ai"] == 0.0 and ordinary["f1"] is None


def test_evaluate_weak_labels_on_written_dev(written_dev_path, tmp_path):
    result, out = _evaluate(["--gold", str(written_dev_path), "--labels", "--background", BACKGROUND,
                             "--top", "5", "--json"], tmp_path)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document == json.loads((out / "evaluation.json").read_text())
    _check_saved(out, document["overall"]["n"])
    kinds = {k["kind"]: k for k in document["per_kind"]}
    assert {"ai_keyword", "ai_implicit", "trap", "ordinary"} <= set(kinds)
    assert kinds["trap"]["positives"] == 0 and kinds["trap"]["share_called_ai"] is not None
    assert kinds["ai_keyword"]["negatives"] == 0 and kinds["ai_keyword"]["recall"] is not None
    assert document["skipped_ambiguous"] > 0 and "ambiguous" not in kinds
    errors = document["false_positives"] + document["false_negatives"]
    assert errors and len(document["false_positives"]) <= 5 and len(document["false_negatives"]) <= 5
    for error in errors:
        assert isinstance(error["voters"], list) and error["text"] and error["kind"]
    for error in document["false_positives"]:  # called AI: some function voted AI
        assert any(v.endswith("=1") for v in error["voters"]), error
    scores = [e["score"] for e in document["false_negatives"]]
    assert scores == sorted(scores)


def test_evaluate_weak_labels_on_real_tweets(real_gold_path, tmp_path):
    result, out = _evaluate(["--gold", str(real_gold_path), "--labels", "--background", BACKGROUND], tmp_path)
    assert result.exit_code == 0, result.output
    document = _check_saved(out, 198)
    assert document["overall"]["positives"] == 2 and document["skipped_ambiguous"] == 2


# ---------------------------------------------------------------- ssp evaluate --model-url, a real server
MODEL_NAME = "evaluate_toy"
CARD_THRESHOLD = 0.4


def export_keyword_model(base_path, version: int = 1, card_threshold: float | None = CARD_THRESHOLD):
    """A SavedModel whose ai_prob is 0.45 for a text naming model/data/AI/learning plus 0.5 x its share of
    the 200 first bytes, else that share alone: exact, spread out, with some errors on purpose."""
    import tensorflow as tf

    class KeywordModel(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, text):
            hit = tf.strings.regex_full_match(tf.strings.lower(text), ".*(model|data|ai|learning).*")
            length = tf.minimum(tf.cast(tf.strings.length(text), tf.float32) / 200.0, 1.0)
            return {"ai_prob": tf.where(hit, 0.45, 0.0) + 0.5 * length}

    path = base_path / str(version)
    tf.saved_model.save(KeywordModel(), str(path), signatures={"serving_default": KeywordModel().serve})
    card = {"model_name": MODEL_NAME, "version": version}
    if card_threshold is not None:
        card["threshold"] = card_threshold
    (path / "model_card.json").write_text(json.dumps(card))
    return path


@pytest.fixture(scope="module")
def model_server(tmp_path_factory):
    """ssp's model server (the tests' ModelServerProcess) over the keyword model, on a free port; the
    model lives where `ssp evaluate` looks for the served version's card (<state dir>/models/<name>)."""
    from serving_models import ModelServerProcess
    from ssp.serving.client import PredictClient

    state = tmp_path_factory.mktemp("evaluate-state")
    base = state / "models" / MODEL_NAME
    export_keyword_model(base)
    server = ModelServerProcess(base, state / "logs", model_name=MODEL_NAME)
    try:
        PredictClient(server.url, MODEL_NAME).wait_until_available(60)
        yield server, state
    finally:
        assert server.stop() == 0, server.log()


def _served_figures(url: str, path, threshold: float):
    from ssp.evaluation.gold import read_gold
    from ssp.serving.client import PredictClient

    frame = read_gold(path).frame
    with PredictClient(url, MODEL_NAME) as client:
        scores = client.predict(frame["text"].tolist())
    return evaluate_scores(frame["label"], scores, threshold=threshold, ids=frame["id"].tolist(),
                           kinds=frame["kind"].tolist(), texts=frame["text"].tolist())


@pytest.mark.integration
def test_evaluate_a_served_model_matches_the_servers_own_predictions(model_server, written_dev_path, tmp_path,
                                                                     monkeypatch):
    server, state = model_server
    monkeypatch.setenv("SSP_STATE_DIR", str(state))
    result, out = _evaluate(["--gold", str(written_dev_path), "--model-url", server.url, "--model-name",
                             MODEL_NAME, "--top", "3"], tmp_path)
    assert result.exit_code == 0, result.output
    document = _check_saved(out, json.loads((out / "evaluation.json").read_text())["overall"]["n"])
    assert document["threshold"] == CARD_THRESHOLD  # the served version's model card
    assert document["model"]["version"] == 1 and "model card" in document["model"]["threshold_source"]
    expected = _served_figures(server.url, written_dev_path, CARD_THRESHOLD).to_json()
    for key in ("overall", "per_kind", "average_precision", "expected_calibration_error", "reliability", "pr_curve"):
        assert document[key] == expected[key], key
    assert [e["id"] for e in document["false_positives"]] == [e["id"] for e in expected["false_positives"][:3]]
    assert [e["id"] for e in document["false_negatives"]] == [e["id"] for e in expected["false_negatives"][:3]]
    assert all(e["voters"] is None for e in document["false_positives"] + document["false_negatives"])
    assert result.stdout.strip().splitlines()[-1].startswith(f"model {MODEL_NAME} v1 on written_dev: ")


@pytest.mark.integration
def test_evaluate_a_served_model_with_a_given_threshold(model_server, tmp_path):
    server, _ = model_server
    path = tmp_path / "hand.tsv"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    result, out = _evaluate(["--gold", str(path), "--model-url", server.url, "--model-name", MODEL_NAME,
                             "--threshold", "0.7"], tmp_path)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "evaluation.json").read_text())
    expected = _served_figures(server.url, path, 0.7)
    assert document["threshold"] == 0.7 and document["model"]["threshold_source"] == "--threshold"
    assert document["overall"] == expected.overall.as_dict()
    assert np.isclose(document["average_precision"], expected.average_precision)


@pytest.mark.integration
def test_evaluate_names_an_unreachable_model_server(tmp_path):
    from ssp.infra.process import free_port

    path = tmp_path / "hand.tsv"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    url = f"http://127.0.0.1:{free_port()}"
    result, _ = _evaluate(["--gold", str(path), "--model-url", url], tmp_path)
    assert result.exit_code == 1 and url in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------- bad files
BAD_FILES = {
    "missing_label.tsv": ("id\ttext\na\thello\n", "line 2: label is missing"),
    "label_yes.tsv": ("id\tlabel\ttext\na\t1\tLLM paper\nb\tyes\thello\n", "line 3: label must be 1, 0 or -1"),
    "bad_json.jsonl": ('{"id": "a", "label": 1, "text": "LLM"}\n{"id": "b", "label": 0, "text": \n',
                       "line 2: not JSON"),
    "duplicate.csv": ("id,label,text\na,1,LLM paper\nb,0,football\na,0,again\n", "line 4: id a repeats line 2"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_are_rejected_naming_the_line(name, tmp_path):
    content, message = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    result, out = _evaluate(["--gold", str(path), "--labels"], tmp_path)
    assert result.exit_code == 1, result.output
    assert f"{path}: {message}" in result.output and "Traceback" not in result.output
    assert not (out / "evaluation.json").exists()


def test_evaluate_needs_exactly_one_scorer(tmp_path):
    path = tmp_path / "hand.tsv"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    for args in ([], ["--labels", "--model-url", "http://127.0.0.1:1"]):
        result, _ = _evaluate(["--gold", str(path), *args], tmp_path)
        assert result.exit_code == 2 and "give either --labels or --model-url" in result.output
