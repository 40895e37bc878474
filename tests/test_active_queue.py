"""The active-learning queue in SQL against a real PostgreSQL: its order is ``strategies.order``'s, its pages
follow each other by keyset, indexes serve it, and ``refresh_scores`` scores a table with a real model server."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import psycopg2
import pytest

from ssp.active import queue, strategies
from ssp.config import ActiveLearningConfig, ServeConfig, WebConfig
from ssp.storage.tables import MODEL_SCORES_TABLE
from test_tagger import TOKEN, Annotator, create_dataset_table

pytestmark = pytest.mark.integration


def write_scores(conn, table: str, scores: dict[int, float], version: int = 1) -> None:
    """Model scores as refresh_scores would leave them (rows of model_scores), for tests that fix the probabilities."""
    queue.ensure_model_scores(conn)
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM {MODEL_SCORES_TABLE} WHERE table_name = %s", (table,))
        for tweet_id, prob in scores.items():
            cur.execute(f"INSERT INTO {MODEL_SCORES_TABLE} (table_name, tweet_id, model_version, ai_prob) "
                        "VALUES (%s, %s, %s, %s)", (table, tweet_id, version, prob))
    conn.commit()


def whole_queue(conn, table: str, strategy: str, limit: int, search: str | None = None) -> list[int]:
    """Every queue page in turn, following the cursors; fails if a page repeats a tweet."""
    ids, cursor = [], None
    for _ in range(1000):
        rows, cursor = queue.queue_page(conn, table, strategy, limit, cursor, search=search)
        ids += [row["id"] for row in rows]
        if cursor is None:
            break
    assert len(ids) == len(set(ids)), "a tweet came twice"
    return ids


def stored(conn, table: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, model P(AI), Snorkel P(AI)) of the unlabelled rows as PostgreSQL holds them, NaN for NULL.

    Both columns are REALs, which reach Python as their shortest decimal (0.2, not 0.20000000298...):
    through float32 they become the very values the SQL compares.
    """
    with conn.cursor() as cur:
        cur.execute(f"SELECT t.id, ms.ai_prob, t.slabel_prob FROM {table} t LEFT JOIN {MODEL_SCORES_TABLE} ms "
                    "ON ms.table_name = %s AND ms.tweet_id = t.id WHERE t.label IS NULL ORDER BY t.id", (table,))
        rows = cur.fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    model = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float32).astype(np.float64)
    snorkel = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float32).astype(np.float64)
    return ids, model, snorkel


@pytest.fixture
def conn(stack):
    connection = psycopg2.connect(stack.database_url)
    yield connection
    connection.close()


def random_tweets(n: int, seed: int, labelled_every: int = 0) -> list[dict]:
    rng = random.Random(seed)
    tweets = []
    for i in range(n):
        prob = rng.choice([None, 0.5, 0.25, 0.75, round(rng.random(), 3), round(rng.random(), 3)])
        tweets.append({"id": 1_000 + 37 * i, "text": f"tweet {i} " + rng.choice(["about LLMs", "about lunch"]),
                       "slabel": None if prob is None else int(prob >= 0.5), "slabel_prob": prob,
                       "label": (i % 2) if labelled_every and i % labelled_every == 0 else None})
    return tweets


def test_random_score_in_sql_is_bit_for_bit_the_python_one(conn):
    queue.ensure_model_scores(conn)
    ids = np.array([0, 1, 2, 7, 42, -1, -(2**63), 2**63 - 1, 1234567890123456789, 1600000000000000001],
                   dtype=np.int64)
    with conn.cursor() as cur:
        for seed in (0, 1, 12345, -5, 2**62):
            cur.execute(f"SELECT {queue.RANDOM_SCORE_FUNCTION}(%s, x) FROM unnest(%s::bigint[]) WITH ORDINALITY "
                        "AS u(x, n) ORDER BY n", (seed, ids.tolist()))
            in_sql = np.array([row[0] for row in cur.fetchall()])
            assert np.array_equal(in_sql, strategies.random_scores(ids, seed)), seed


@pytest.mark.parametrize("strategy", strategies.QUEUE_STRATEGIES)
def test_queue_order_in_sql_is_strategies_order(stack, conn, strategy):
    tweets = random_tweets(60, seed=3, labelled_every=7)
    table = create_dataset_table(stack.database_url, tweets)
    rng = random.Random(4)
    # every tweet scored; a few exact ties (0.5, and p / 1 - p pairs) to check the tie-break by id
    scores = {t["id"]: rng.choice([0.5, 0.2, 0.8, rng.random(), rng.random(), rng.random()]) for t in tweets}
    write_scores(conn, table, scores)
    ids, model, snorkel = stored(conn, table)
    assert not np.isnan(model).any() and np.isnan(snorkel).any()
    expected = ids[strategies.order(strategy, model, snorkel, ids=ids, seed=queue.QUEUE_SEED)].tolist()

    assert whole_queue(conn, table, strategy, limit=7) == expected
    assert whole_queue(conn, table, strategy, limit=500) == expected
    labelled = {t["id"] for t in tweets if t["label"] is not None}
    assert labelled and not labelled & set(expected)


def test_unscored_tweets_fall_back_to_snorkel(stack, conn):
    tweets = random_tweets(40, seed=5)
    table = create_dataset_table(stack.database_url, tweets)
    ids, _, snorkel = stored(conn, table)
    # no model yet: Snorkel's P(AI) ranks the queue (NULL = 0.5, no opinion), for every model-based strategy
    as_model = np.where(np.isnan(snorkel), 0.5, snorkel)
    by_snorkel = ids[strategies.order("least_confidence", as_model, ids=ids)].tolist()
    for strategy in ("least_confidence", "entropy", "disagreement"):
        assert whole_queue(conn, table, strategy, limit=6) == by_snorkel, strategy

    # half scored: least confidence ranks each tweet by the model's P(AI) where it has one, else Snorkel's
    rng = random.Random(6)
    scored = {int(i): rng.random() for i in ids[::2]}
    write_scores(conn, table, scored)
    ids, model, snorkel = stored(conn, table)
    has_model = ~np.isnan(model)
    mixed = np.where(has_model, model, np.where(np.isnan(snorkel), 0.5, snorkel))
    assert whole_queue(conn, table, "least_confidence", limit=6) == \
        ids[strategies.order("least_confidence", mixed, ids=ids)].tolist()
    # disagreement needs the model: the scored tweets by disagreement first, then the rest by Snorkel's uncertainty
    first = ids[has_model][strategies.order("disagreement", model[has_model], snorkel[has_model],
                                            ids=ids[has_model])]
    then = ids[~has_model][strategies.order("least_confidence", mixed[~has_model], ids=ids[~has_model])]
    assert whole_queue(conn, table, "disagreement", limit=6) == [*first.tolist(), *then.tolist()]


def test_search_keeps_the_order_and_takes_wildcards_literally(stack, conn):
    tweets = [{"id": i, "text": text, "slabel_prob": prob} for i, text, prob in [
        (1, "New LLM paper", 0.9), (2, "llm benchmarks at 50% off", 0.55), (3, "lunch", 0.5),
        (4, "An LLM_agent demo", 0.6), (5, "50 percent", 0.45)]]
    table = create_dataset_table(stack.database_url, tweets)
    assert whole_queue(conn, table, "least_confidence", 2, search="llm") == [2, 4, 1]
    assert whole_queue(conn, table, "least_confidence", 2, search="50%") == [2]
    assert whole_queue(conn, table, "least_confidence", 2, search="m_a") == [4]
    assert whole_queue(conn, table, "least_confidence", 2, search="nothing like this") == []


def test_cursor_tokens_are_checked():
    for token in ("", "0~nan~1", "2~0.5~1", "0~0.5", "0~0.5~1; drop table x", "0~inf~3", "0~1e999~3"):
        with pytest.raises(queue.QueueError):
            queue.QueueCursor.parse(token)
    assert queue.QueueCursor.parse("1~-0.25~99") == queue.QueueCursor(1, -0.25, 99)
    with pytest.raises(queue.QueueError, match="strategy 'smart' is unknown"):
        queue.queue_page(None, "train_dataset_1", "smart", 10)
    with pytest.raises(queue.QueueError, match="picks whole batches .* only ssp al simulate does"):
        queue.queue_page(None, "train_dataset_1", "diverse_uncertainty", 10)


def explain(conn, sql: str, params: list) -> str:
    with conn.cursor() as cur:
        cur.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cur.fetchall())


def test_indexes_serve_the_queue(stack, conn):
    n = 20_000
    rng = random.Random(8)
    tweets = [{"id": 10**12 + i, "text": f"t{i}", "slabel_prob": rng.random()} for i in range(n)]
    table = create_dataset_table(stack.database_url, tweets)
    assert queue.ensure_queue_objects(conn, table) == []
    assert queue.ensure_queue_objects(conn, table) == []  # idempotent
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"ANALYZE {table}")
    conn.autocommit = False

    def plans(strategy: str, coverage: queue.ScoreCoverage) -> str:
        """EXPLAIN of the first page and of the page after it."""
        rows, cursor = queue.queue_page(conn, table, strategy, 50, coverage=coverage)
        assert len(rows) == 50 and cursor is not None
        return "\n".join(explain(conn, *queue.queue_query(table, strategy, 50, coverage, after))
                         for after in (None, cursor))

    unscored = queue.score_coverage(conn, table)
    assert unscored == queue.ScoreCoverage(scored=False, unscored=True, version=None)
    plan = plans("least_confidence", unscored)
    assert f"Index Scan using {table}_queue_unc_idx" in plan and "Sort" not in plan, plan
    plan = plans("random", unscored)
    assert f"Index Scan using {table}_queue_rnd_idx" in plan and "Sort" not in plan, plan

    write_scores(conn, table, {t["id"]: rng.random() for t in tweets})
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"ANALYZE {MODEL_SCORES_TABLE}")
    conn.autocommit = False
    scored = queue.score_coverage(conn, table)
    assert scored == queue.ScoreCoverage(scored=True, unscored=False, version=1)
    plan = plans("least_confidence", scored)
    assert f"Index Scan using {MODEL_SCORES_TABLE}_unc_idx" in plan and "Sort" not in plan, plan


# ---------------------------------------------------------------- scoring with a real model server
def export_length_model(base_path: Path, version: int) -> None:
    """A SavedModel with the serving contract (text -> ai_prob): P(AI) = min(1, byte length / (32 x version))."""
    import tensorflow as tf

    class LengthModel(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            length = tf.cast(tf.strings.length(text), tf.float32)
            return {"ai_prob": tf.minimum(1.0, length / (32.0 * version))}

    model = LengthModel()
    tf.saved_model.save(model, str(base_path / str(version)), signatures={"serving_default": model.serve})


MODEL_NAME = ServeConfig().model_name


def wait_for_version(client, version: int, server) -> None:
    deadline = time.monotonic() + 60
    while client.available_version() != version:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.2)


def length_prob(text: str, version: int) -> float:
    return min(1.0, len(text.encode()) / (32.0 * version))


@pytest.fixture(scope="module")
def model_server(tmp_path_factory):
    """``ssp serve`` over a model base path holding version 1 of the length model; yields (server, base_path)."""
    from serving_models import ModelServerProcess

    base = tmp_path_factory.mktemp("queue-models") / MODEL_NAME
    export_length_model(base, 1)
    # named as ServeConfig names the model by default, so that the tagger's client finds it too
    server = ModelServerProcess(base, base.parent / "logs", model_name=MODEL_NAME, poll_wait_seconds=0.3)
    try:
        yield server, base
    finally:
        server.stop()


def test_refresh_scores_scores_every_tweet_with_one_model_version(stack, conn, model_server):
    from ssp.serving.client import PredictClient

    server, base = model_server
    texts = ["x" * n for n in (3, 16, 30, 33, 40, 64, 70, 90)]
    tweets = [{"id": 500 + i, "text": text, "slabel_prob": 0.5} for i, text in enumerate(texts)]
    table = create_dataset_table(stack.database_url, tweets)
    write_scores(conn, table, {999_999: 0.5}, version=0)  # a score of a tweet no longer in the table
    client = PredictClient(server.url, MODEL_NAME)
    try:
        seen = []
        assert queue.refresh_scores(stack.database_url, table, client, chunk_rows=3, on_progress=seen.append) == (8, 1)
        assert seen == [3, 3, 2]
        with conn.cursor() as cur:
            cur.execute(f"SELECT tweet_id, model_version, ai_prob FROM {MODEL_SCORES_TABLE} WHERE table_name = %s "
                        "ORDER BY tweet_id", (table,))
            rows = cur.fetchall()
        conn.rollback()
        assert [r[0] for r in rows] == [t["id"] for t in tweets]
        assert {r[1] for r in rows} == {1}
        assert [r[2] for r in rows] == pytest.approx([length_prob(t, 1) for t in texts], abs=1e-6)
        assert [r[2] for r in rows] == [float(p) for p in client.predict(texts, version=1)]
        # version 1 is unsure at 16 bytes: 16 (p 0.5), 3 (p 0.09), 30 (p 0.94), then the p = 1 ones by id
        assert whole_queue(conn, table, "least_confidence", 3) == [501, 500, 502, 503, 504, 505, 506, 507]

        # a new version is exported; once the server has loaded it, a refresh moves the queue to it
        export_length_model(base, 2)
        wait_for_version(client, 2, server)
        assert queue.refresh_scores(stack.database_url, table, client) == (8, 2)
        assert queue.score_version(conn, table) == 2
        conn.rollback()
        # version 2 is unsure at 32 bytes: 33 (p 0.52), 30 (0.47), 40 (0.63), 16 (0.25), 3 (0.05), then p = 1
        assert whole_queue(conn, table, "least_confidence", 3) == [503, 502, 504, 501, 500, 505, 506, 507]
    finally:
        client.close()


def test_refresh_scores_refuses_a_missing_table(stack, model_server):
    from ssp.serving.client import PredictClient

    server, _ = model_server
    with PredictClient(server.url, MODEL_NAME) as client, pytest.raises(queue.QueueError, match="does not exist"):
        queue.refresh_scores(stack.database_url, "train_dataset_987654321", client)


def test_the_tagger_ranks_its_queue_by_the_served_model_and_follows_new_versions(stack, conn, model_server,
                                                                                monkeypatch):
    from ssp.model.train import TrainSummary
    from ssp.serving.client import PredictClient
    from ssp.web.tagger import create_app

    server, base = model_server
    monkeypatch.setenv("SSP_TAGGER_TOKEN", TOKEN)
    texts = ["y" * n for n in (5, 20, 33, 47, 60, 75, 100, 130)]
    table = create_dataset_table(stack.database_url, [{"id": 700 + i, "text": t, "slabel_prob": 0.5}
                                                      for i, t in enumerate(texts)])
    app = create_app(stack.database_url, WebConfig(page_size=20), ActiveLearningConfig(retrain_every=1000),
                     testing=True, model_url=server.url)
    loop = app.extensions["ssp_tagger"]["loop"]
    client = PredictClient(server.url, MODEL_NAME)
    try:
        served = client.available_version()
        ada = Annotator(app)
        # opening the table scores it with the served version, in the background
        assert ada.get(f"/api/rows?table={table}")["items"]
        loop.wait(table, timeout=60)
        status = ada.get(f"/api/status?table={table}")
        assert status["model_version"] == served and status["rescore"]["version"] == served, status
        assert status["rescore"]["rows"] == 8 and status["rescore"]["error"] is None
        assert status["retrain"]["enabled"] is True and status["retrain"]["every"] == 1000
        ids, model, snorkel = stored(conn, table)
        conn.rollback()
        assert np.allclose(model, [length_prob(t, served) for t in texts], atol=1e-6)
        queue_now = [int(item["id"]) for item in ada.get(f"/api/rows?table={table}")["items"]]
        assert queue_now == ids[strategies.order("least_confidence", model, ids=ids)].tolist()
        assert ada.get(f"/api/rows?table={table}")["model_version"] == served

        # a retrain exported the next version: the tagger waits for the server to load it, then rescores
        new = served + 1
        export_length_model(base, new)
        summary = TrainSummary(data_version=0, model_name=MODEL_NAME, model_version=new, path=base / str(new),
                               train_rows=8, gold_train_rows=0, snorkel_train_rows=8, dev_rows=0, dev_source="none",
                               test_rows=0, metrics_source=None, metrics=None, epochs_run=1, best_epoch=1,
                               seconds=0.1)
        loop.retrained(parse_version(table), summary)
        loop.wait(table, timeout=90)
        status = ada.get(f"/api/status?table={table}")
        assert status["model_version"] == new and status["rescore"]["version"] == new, status
        ids, model, _ = stored(conn, table)
        conn.rollback()
        assert np.allclose(model, [length_prob(t, new) for t in texts], atol=1e-6)
        reordered = [int(item["id"]) for item in ada.get(f"/api/rows?table={table}")["items"]]
        assert reordered == ids[strategies.order("least_confidence", model, ids=ids)].tolist()
        assert reordered != queue_now

        # and an annotator can ask for a rescore
        answer = ada.post("/api/rescore", {"table": table})
        assert answer.status_code in (200, 202) and answer.get_json()["table"] == table
        loop.wait(table, timeout=60)
        assert ada.get(f"/api/status?table={table}")["rescore"]["error"] is None
    finally:
        client.close()
        app.extensions["ssp_tagger"]["data"].engine.dispose()


def parse_version(table: str) -> int:
    from ssp.web.tagger import parse_table_name

    return parse_table_name(table)[1]
