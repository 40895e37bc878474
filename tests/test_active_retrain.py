"""The retrain loop for real: gold labels in PostgreSQL -> a new exported version -> the model server serves it.

The dataset tables live in the ``stack`` fixture's PostgreSQL and are built as in
tests/test_train.py (synthetic tweets, noisy Snorkel stand-in labels). The server is the real
``ssp serve`` process polling the model folder (tests/serving_models.py). Gold labels are
written to the train table the way the tagger writes them, then counted with the trigger.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from helpers import wait_for
from serving_models import ModelServerProcess
from ssp.active.cli import al
from ssp.active.retrain import RetrainTrigger, retrain
from ssp.config import TrainConfig
from ssp.model.export import read_model_card
from ssp.model.train import TrainingDataError, TrainSummary
from ssp.serving.client import ModelServerError, PredictClient
from ssp.sources.synthetic import SyntheticTweets
from ssp.tweets import parse_tweet
from test_train import EASY_MIX, dataset_rows, fresh_version, signature_fn, write_dataset

MODEL_NAME = "naive_text_clf"  # TrainConfig's default, which `ssp al retrain` uses
PROBE = ["New paper on arXiv: Efficient Transformers for text classification #NLP",
         "What a goal from Saka! Arsenal up 2-0 at half time #football", "", "Rain again in London."]


def tag(database_url: str, version: int, ids: list[int], labels: dict[int, int]) -> None:
    """Write gold labels as the tagger does: label, labelled_by and labelled_at on the train split."""
    from sqlalchemy import func

    from ssp.storage.postgres import make_engine
    from ssp.storage.tables import dataset_table, split_table_name

    table = dataset_table(split_table_name("train", version))
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for tweet_id in ids:
                conn.execute(table.update().where(table.c.id == tweet_id)
                             .values(label=labels[tweet_id], labelled_by="test-annotator", labelled_at=func.now()))
    finally:
        engine.dispose()


def available_version(client: PredictClient) -> int | None:
    """The version the server answers with; None while it knows no version of the model (a 404, as TF Serving)."""
    try:
        return client.available_version()
    except ModelServerError as err:
        if err.status_code == 404:
            return None
        raise


@pytest.mark.integration
def test_new_labels_retrain_export_and_the_server_switches_version(stack, tmp_path):
    version = fresh_version()
    train = dataset_rows(31, 500, gold_share=0.0)  # Snorkel's noisy labels only, no gold yet
    write_dataset(stack.database_url, version, {
        "train": train, "dev": dataset_rows(32, 120, gold_share=1.0), "test": dataset_rows(33, 150, gold_share=1.0)})
    truth = {parse_tweet(t.payload).id: int(t.is_ai) for t in SyntheticTweets(31, **EASY_MIX).generate(500)}
    ids = [row["id"] for row in train]
    model_dir = tmp_path / "models"
    base = model_dir / MODEL_NAME
    config = TrainConfig(model_dir=str(model_dir), epochs=8, seed=7)
    server = ModelServerProcess(base, tmp_path / "logs", model_name=MODEL_NAME, poll_wait_seconds=0.2)
    client = PredictClient(server.url, MODEL_NAME, retries=0, timeout=30)
    try:
        assert available_version(client) is None  # nothing exported yet
        outcomes: list[TrainSummary | BaseException] = []
        trigger = RetrainTrigger(stack.database_url, version, every=3, config=config, on_done=outcomes.append)

        # three tweets tagged one by one; the third label starts the retrain, and only one runs at a time
        started = []
        for tweet_id in ids[:3]:
            tag(stack.database_url, version, [tweet_id], truth)
            started.append(trigger.record())
        assert started == [False, False, True]
        assert trigger.running and trigger.record(5) is False  # 5 more while it runs: counted, no second retrain
        trigger.wait(300)
        assert not trigger.running
        status = trigger.status()
        assert status["last_error"] is None, status
        assert status["last_version"] == 1 and status["labels_since_retrain"] == 5 and status["every"] == 3
        assert status["last_finished_at"] is not None
        assert len(outcomes) == 1 and isinstance(outcomes[0], TrainSummary)
        first = outcomes[0]
        assert first.model_version == 1 and first.path == base / "1"
        assert first.gold_train_rows == 3 and first.data_version == version

        assert wait_for(lambda: available_version(client) == 1, 60, "the server loading version 1")
        probs, served = client.predict_with_version(PROBE)
        assert served == 1
        np.testing.assert_allclose(probs, signature_fn(first.path)(PROBE), atol=1e-6)

        # many more gold labels, then a retrain through the function: version 2, trained on them
        tag(stack.database_url, version, ids[3:300], truth)
        second = retrain(stack.database_url, version, config)
        assert second.model_version == 2 and second.gold_train_rows == 300
        assert read_model_card(second.path)["data"]["label_sources"]["gold"] == 300
        assert wait_for(lambda: available_version(client) == 2, 60, "the server switching to version 2")
        probs, served = client.predict_with_version(PROBE)
        assert served == 2
        np.testing.assert_allclose(probs, signature_fn(second.path)(PROBE), atol=1e-6)
        assert probs[0] > 0.5 > probs[1], probs  # an AI tweet and a football tweet, told apart

        # and through the command, which prints the new version and ends with the summary line
        result = CliRunner().invoke(al, ["retrain", "--version", str(version), "--model-dir", str(model_dir)])
        assert result.exit_code == 0, result.output
        assert "new model version 3" in result.output and "F1 (AI)" in result.output
        assert result.output.strip().splitlines()[-1].startswith(f"trained {MODEL_NAME} version 3 on ")
        assert wait_for(lambda: available_version(client) == 3, 60, "the server switching to version 3")
        assert client.predict_with_version(PROBE)[1] == 3
    finally:
        client.close()
        code = server.stop()
    assert code == 0, server.log()


@pytest.mark.integration
def test_a_failed_retrain_is_reported_and_the_trigger_keeps_counting(stack, tmp_path):
    version = fresh_version()  # no tables for it
    outcomes: list = []
    trigger = RetrainTrigger(stack.database_url, version, every=2,
                             config=TrainConfig(model_dir=str(tmp_path)), on_done=outcomes.append)
    assert trigger.record(2) is True
    trigger.wait(60)
    assert len(outcomes) == 1 and isinstance(outcomes[0], TrainingDataError)
    status = trigger.status()
    assert status["last_version"] is None and f"train_dataset_{version}" in status["last_error"]
    assert status["last_error"].startswith("TrainingDataError: ")
    assert not Path(tmp_path, MODEL_NAME).exists() or not any(Path(tmp_path, MODEL_NAME).iterdir())
    # the labels were spent on the failed attempt; the next retrain comes after `every` more
    assert trigger.record() is False and trigger.status()["labels_since_retrain"] == 1
    assert trigger.record() is True
    trigger.wait(60)
    assert len(outcomes) == 2


def test_bad_trigger_arguments_are_named():
    with pytest.raises(ValueError, match="retrain every must be a whole number of labels, at least 1; got 0"):
        RetrainTrigger("postgresql://nowhere/db", 1, every=0)
    with pytest.raises(ValueError, match="version -1 is not a non-negative integer"):
        RetrainTrigger("postgresql://nowhere/db", -1, every=5)
    trigger = RetrainTrigger("postgresql://nowhere/db", 1, every=5)
    with pytest.raises(ValueError, match="number of new labels must be a whole number, 0 or more; got -1"):
        trigger.record(-1)
    assert trigger.status() == {"labels_since_retrain": 0, "every": 5, "running": False, "last_version": None,
                                "last_error": None, "last_finished_at": None}
