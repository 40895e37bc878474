"""The tagger against a real PostgreSQL: sign-in and CSRF, labels and their history, undo, filters, search,
progress, agreement, export/import, escaping and bad input."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import insert

from ssp.config import ActiveLearningConfig, WebConfig
from ssp.storage.postgres import ensure_tables, make_engine
from ssp.storage.tables import LABEL_HISTORY_TABLE, dataset_table, split_table_name
from ssp.web.tagger import TaggerConfigError, cohen_kappa, create_app, parse_table_name
from ssp.web.tagger_cli import tagger

pytestmark = pytest.mark.integration

TOKEN = "test-tagger-token-0123"
T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)


def fresh_version() -> int:
    """A dataset version no other test uses."""
    return 100_000_000 + uuid.uuid4().int % 800_000_000


def create_dataset_table(database_url: str, tweets: list[dict], split: str = "train", version: int | None = None) -> str:
    """A dataset table as ``ssp dataset prepare`` and ``ssp label`` leave it; returns its name.

    Each tweet needs ``id`` and ``text``; ``slabel``, ``slabel_prob``, ``label``, ``labelled_by``, ``user`` and
    ``created_at`` are optional (``slabel`` defaults to Snorkel's vote implied by ``slabel_prob``).
    """
    name = split_table_name(split, fresh_version() if version is None else version)
    table = dataset_table(name)
    engine = make_engine(database_url)
    try:
        ensure_tables(engine, table)
        rows = []
        for t in tweets:
            prob = t.get("slabel_prob")
            slabel = t.get("slabel", -1 if prob is None else int(prob >= 0.5))
            rows.append({"id": t["id"], "created_at": t.get("created_at", T0), "text": t["text"], "lang": "en",
                         "user_screen_name": t.get("user", "someone"), "urls": t.get("urls", []), "hashtags": [],
                         "is_retweet": False, "norm_text": t["text"].lower(), "dup_count": 1, "slabel": slabel,
                         "slabel_prob": prob, "label": t.get("label"),
                         "labelled_by": t.get("labelled_by", "gold" if t.get("label") is not None else None),
                         "labelled_at": T0 if t.get("label") is not None else None})
        if rows:
            with engine.begin() as conn:
                conn.execute(insert(table), rows)
    finally:
        engine.dispose()
    return name


def page_csrf(body: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', body)
    assert match, "no CSRF token on the page"
    return match[1]


def sign_in(client, name: str = "ada", token: str = TOKEN) -> str:
    """Sign in through the form as a browser would; returns the session's CSRF token for later writes."""
    login_page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"name": name, "token": token, "csrf_token": page_csrf(login_page),
                                           "next": "/"})
    assert response.status_code == 302, response.get_data(as_text=True)
    return page_csrf(client.get("/").get_data(as_text=True))


@pytest.fixture
def make_app(stack, monkeypatch):
    """``make_app(page_size=50, **create_app_kwargs)``: a tagger app on the test database (token TOKEN)."""
    monkeypatch.setenv("SSP_TAGGER_TOKEN", TOKEN)
    apps = []

    def make(page_size: int = 50, **kwargs):
        app = create_app(stack.database_url, WebConfig(page_size=page_size), testing=True, **kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["ssp_tagger"]["data"].engine.dispose()


class Annotator:
    """A signed-in test client that sends JSON writes with its CSRF token."""

    def __init__(self, app, name: str = "ada") -> None:
        self.client = app.test_client()
        self.csrf = sign_in(self.client, name)

    def post(self, path: str, body: dict):
        return self.client.post(path, json=body, headers={"X-CSRF-Token": self.csrf})

    def label(self, table: str, tweet_id: int, label: int) -> dict:
        response = self.post("/api/label", {"table": table, "id": str(tweet_id), "label": label})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def get(self, path: str) -> dict:
        response = self.client.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()


def labels(db, table: str) -> dict[int, tuple]:
    with db.cursor() as cur:
        cur.execute(f"SELECT id, label, labelled_by FROM {table} WHERE label IS NOT NULL ORDER BY id")
        return {row[0]: (row[1], row[2]) for row in cur.fetchall()}


def history(db, table: str) -> list[tuple]:
    with db.cursor() as cur:
        cur.execute(f"SELECT tweet_id, label, action, annotator FROM {LABEL_HISTORY_TABLE} WHERE table_name = %s "
                    "ORDER BY history_id", (table,))
        return cur.fetchall()


def ids(body: dict) -> list[int]:
    return [int(item["id"]) for item in body["items"]]


def simple_tweets(n: int) -> list[dict]:
    return [{"id": 100 + i, "text": f"tweet {i}", "slabel_prob": round(0.05 + 0.9 * i / max(n - 1, 1), 3)}
            for i in range(n)]


# ---------------------------------------------------------------- sign-in, sessions, CSRF
def test_pages_and_api_need_a_signed_in_annotator(stack, make_app):
    table = create_dataset_table(stack.database_url, simple_tweets(3))
    client = make_app().test_client()
    page = client.get(f"/tag?table={table}")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=")
    for path in ("/api/tables", f"/api/rows?table={table}", f"/api/export?table={table}"):
        response = client.get(path)
        assert response.status_code == 401 and "sign in first" in response.get_json()["error"], path

    login = client.get("/login").get_data(as_text=True)
    csrf = page_csrf(login)
    wrong = client.post("/login", data={"name": "ada", "token": TOKEN + "x", "csrf_token": csrf})
    assert wrong.status_code == 401 and "wrong token" in wrong.get_data(as_text=True)
    no_csrf = client.post("/login", data={"name": "ada", "token": TOKEN})
    assert no_csrf.status_code == 403
    bad_name = client.post("/login", data={"name": "<b>ada</b>", "token": TOKEN, "csrf_token": csrf})
    assert bad_name.status_code == 400 and "name holds" in html.unescape(bad_name.get_data(as_text=True))
    assert client.get("/api/tables").status_code == 401  # none of those signed in

    # signing in goes back where the annotator was heading, never to another site
    ok = client.post("/login", data={"name": "ada", "token": TOKEN, "csrf_token": csrf,
                                     "next": f"/tag?table={table}"})
    assert ok.status_code == 302 and ok.headers["Location"] == f"/tag?table={table}"
    assert client.get(f"/tag?table={table}").status_code == 200
    other = make_app().test_client()
    evil = other.post("/login", data={"name": "bo", "token": TOKEN, "csrf_token": page_csrf(
        other.get("/login").get_data(as_text=True)), "next": "//evil.example/x"})
    assert evil.status_code == 302 and evil.headers["Location"] == "/"

    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and cookie.startswith("ssp_tagger_session=")


def test_writes_without_session_or_csrf_are_refused(stack, db, make_app):
    table = create_dataset_table(stack.database_url, simple_tweets(3))
    app = make_app()
    body = {"table": table, "id": "100", "label": 1}

    anonymous = app.test_client()
    response = anonymous.post("/api/label", json=body)
    assert response.status_code == 401 and "sign in first" in response.get_json()["error"]

    ada = Annotator(app)
    no_token = ada.client.post("/api/label", json=body)
    assert no_token.status_code == 403 and "CSRF" in no_token.get_json()["error"]
    wrong_token = ada.client.post("/api/label", json=body, headers={"X-CSRF-Token": "0" * 43})
    assert wrong_token.status_code == 403
    # another session's token is no good either
    bo = Annotator(app, "bo")
    assert ada.client.post("/api/label", json=body, headers={"X-CSRF-Token": bo.csrf}).status_code == 403
    for path in ("/api/skip", "/api/undo", "/api/rescore"):
        assert ada.client.post(path, json=body).status_code == 403, path
    upload = {"table": table, "file": (io.BytesIO(b"id,label\n100,1\n"), "labels.csv")}
    assert ada.client.post("/import", data=upload).status_code == 403
    assert anonymous.post("/import", data={"table": table}).status_code == 401
    assert ada.client.post("/logout").status_code == 403
    assert labels(db, table) == {} and history(db, table) == []

    assert ada.post("/api/label", body).status_code == 200
    assert labels(db, table) == {100: (1, "ada")}
    # sign-out ends the session: its token no longer writes
    assert ada.client.post("/logout", data={"csrf_token": ada.csrf}).status_code == 302
    assert ada.post("/api/label", body).status_code == 401


def test_token_is_required_outside_tests(stack, monkeypatch):
    monkeypatch.delenv("SSP_TAGGER_TOKEN", raising=False)
    with pytest.raises(TaggerConfigError, match="SSP_TAGGER_TOKEN is not set"):
        create_app(stack.database_url)
    monkeypatch.setenv("SSP_TAGGER_TOKEN", "short")
    with pytest.raises(TaggerConfigError, match="at least 8"):
        create_app(stack.database_url)
    monkeypatch.setenv("SSP_TAGGER_TOKEN", TOKEN)
    with pytest.raises(TaggerConfigError, match="strategy 'smart' is unknown"):
        create_app(stack.database_url, al_config=ActiveLearningConfig(strategy="smart"))
    with pytest.raises(TaggerConfigError, match="'diverse_uncertainty' picks whole batches"):
        create_app(stack.database_url, al_config=ActiveLearningConfig(strategy="diverse_uncertainty"))
    app = create_app(stack.database_url)
    try:
        assert app.debug is False and app.testing is False
    finally:
        app.extensions["ssp_tagger"]["data"].engine.dispose()


# ---------------------------------------------------------------- labels, history, undo
def test_labels_go_to_the_table_and_the_history_in_one_go(stack, db, make_app):
    tweets = simple_tweets(4)
    tweets[3].update(label=0, labelled_by="earlier")  # a gold label from before the tagger
    table = create_dataset_table(stack.database_url, tweets)
    app = make_app()
    ada, bo = Annotator(app, "ada"), Annotator(app, "bo")

    first = ada.label(table, 100, 1)
    assert first["tweet"]["label"] == 1 and first["tweet"]["labelled_by"] == "ada"
    # Snorkel says not AI (0.05) for 100 and AI (0.95) for 103: both gold labels disagree with it
    assert first["progress"] == {"table": table, "total": 4, "labelled": 2, "unlabelled": 2, "ai": 1, "not_ai": 1,
                                 "disagree_with_snorkel": 2}
    assert ada.post("/api/skip", {"table": table, "id": "101"}).status_code == 200
    second = bo.label(table, 100, 0)  # bo changes ada's label: both stay in the history
    relabel = ada.label(table, 103, 1)
    assert labels(db, table) == {100: (0, "bo"), 103: (1, "ada")}
    assert history(db, table) == [(100, 1, "label", "ada"), (101, None, "skip", "ada"), (100, 0, "label", "bo"),
                                  (103, 0, "import", "earlier"), (103, 1, "label", "ada")]

    # ada cannot undo her label on 100 any more: bo's came after it
    stale = ada.post("/api/undo", {"table": table, "id": "100", "history_id": first["history_id"]})
    assert stale.status_code == 409 and "labelled again since (by bo" in stale.get_json()["error"]
    undone = bo.post("/api/undo", {"table": table, "id": "100", "history_id": second["history_id"]}).get_json()
    assert undone["restored"] == 1 and undone["tweet"]["labelled_by"] == "ada"
    assert labels(db, table)[100] == (1, "ada")
    # undoing ada's relabel of 103 restores the label it had before the tagger
    back = ada.post("/api/undo", {"table": table, "id": "103", "history_id": relabel["history_id"]}).get_json()
    assert back["restored"] == 0 and labels(db, table)[103] == (0, "earlier")
    again = ada.post("/api/undo", {"table": table, "id": "103", "history_id": relabel["history_id"]})
    assert again.status_code == 409
    # and ada's own label on 100, now on top again, can be undone to unlabelled
    last = ada.post("/api/undo", {"table": table, "id": "100", "history_id": first["history_id"]}).get_json()
    assert last["restored"] is None and last["tweet"]["label"] is None and 100 not in labels(db, table)
    assert [h[2] for h in history(db, table)][-3:] == ["undo", "undo", "undo"]

    missing = ada.post("/api/label", {"table": table, "id": "999", "label": 1})
    assert missing.status_code == 404 and f"tweet 999 is not in table {table}" in missing.get_json()["error"]


BAD_WRITES = [
    ({"id": "100", "label": 1}, "table"),
    ({"table": "users", "id": "100", "label": 1}, "table"),
    ({"table": "T", "id": "1e3", "label": 1}, "id"),
    ({"table": "T", "id": "100", "label": 2}, "label"),
    ({"table": "T", "id": "100", "label": True}, "label"),
    ({"table": "T", "id": "100", "label": 1, "extra": 1}, "extra"),
]


@pytest.mark.parametrize(("body", "field"), BAD_WRITES, ids=[f for _, f in BAD_WRITES])
def test_bad_writes_get_400_naming_the_field(stack, db, make_app, body, field):
    table = create_dataset_table(stack.database_url, simple_tweets(2))
    ada = Annotator(make_app())
    body = {k: (table if v == "T" else v) for k, v in body.items()}
    response = ada.post("/api/label", body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["parameter"] == field and field in response.get_json()["error"]
    assert labels(db, table) == {}


# ---------------------------------------------------------------- reading: queue, filters, search, progress
def test_filters_search_and_paging(stack, make_app):
    tweets = [
        {"id": 1, "text": "LLMs write code now", "slabel_prob": 0.9},
        {"id": 2, "text": "football tonight", "slabel_prob": 0.1},
        {"id": 3, "text": "a new LLM benchmark", "slabel_prob": 0.55},
        {"id": 4, "text": "GPU prices 100% up", "slabel_prob": 0.45},
        {"id": 5, "text": "coffee", "slabel_prob": 0.3},
        {"id": 6, "text": "robots and LLM agents", "slabel_prob": None},
    ]
    table = create_dataset_table(stack.database_url, tweets)
    app = make_app(page_size=2)
    ada = Annotator(app)
    ada.label(table, 1, 1)   # agrees with Snorkel
    ada.label(table, 2, 1)   # disagrees
    ada.label(table, 5, 0)   # agrees

    # unlabelled: the queue, most uncertain first (no model yet: Snorkel's P(AI); NULL counts as 0.5)
    first = ada.get(f"/api/rows?table={table}")
    assert ids(first) == [6, 3] and first["filter"] == "unlabelled" and first["strategy"] == "least_confidence"
    assert ids(ada.get(f"/api/rows?table={table}&after={first['next']}")) == [4]
    assert ids(ada.get(f"/api/rows?table={table}&limit=10")) == [6, 3, 4]
    assert ids(ada.get(f"/api/rows?table={table}&filter=labelled")) == [1, 2]
    assert ids(ada.get(f"/api/rows?table={table}&filter=labelled&after=2")) == [5]
    assert ids(ada.get(f"/api/rows?table={table}&filter=disagree")) == [2]
    assert ids(ada.get(f"/api/rows?table={table}&filter=all&limit=10")) == [1, 2, 3, 4, 5, 6]
    assert ids(ada.get(f"/api/rows?table={table}&filter=all&q=llm&limit=10")) == [1, 3, 6]
    assert ids(ada.get(f"/api/rows?table={table}&q=LLM")) == [6, 3]
    assert ids(ada.get(f"/api/rows?table={table}&q=100%25")) == [4]
    assert ids(ada.get(f"/api/rows?table={table}&q=x%25y")) == []

    status = ada.get(f"/api/status?table={table}")
    assert status["progress"] == {"table": table, "total": 6, "labelled": 3, "unlabelled": 3, "ai": 2, "not_ai": 1,
                                  "disagree_with_snorkel": 1}
    assert status["model_version"] is None and status["retrain"]["enabled"] is False

    page = ada.client.get(f"/tag?table={table}&q=llm").get_data(as_text=True)
    assert re.findall(r'<tr class="tweet[^"]*" data-id="(\d+)"', page) == ["6", "3"]
    assert 'value="llm"' in page and "3</span> / <span id=\"progress-total\">6" in page
    version = parse_table_name(table)[1]
    listed = [v for v in ada.get("/api/tables")["versions"] if v["version"] == version]
    assert [[t["name"] for t in v["tables"]] for v in listed] == [[table]]
    assert table in ada.client.get("/").get_data(as_text=True)


def test_untrusted_text_is_escaped(stack, make_app):
    script = "<script>alert(1)</script>"
    table = create_dataset_table(stack.database_url, [
        {"id": 7, "text": script, "user": '"><img src=x onerror=alert(2)>', "slabel_prob": 0.5}])
    ada = Annotator(make_app())
    for path in (f"/tag?table={table}", f"/tag?table={table}&filter=all&q={script}"):
        body = ada.client.get(path).get_data(as_text=True)
        assert html.escape(script) in body, path
        assert script not in body and "<img src=x" not in body, path
        assert not re.search(r"<script(?![^>]*\bsrc=)", body), path
    assert ada.get(f"/api/rows?table={table}")["items"][0]["text"] == script
    page = ada.client.get(f"/tag?table={table}")
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]


BAD_READS = [
    ("/api/rows", "table"),
    ("/api/rows?table=users", "table"),
    ("/api/rows?table=train_dataset_1%3Bdrop", "table"),
    ("/api/rows?table=train_dataset_07", "table"),
    ("/api/rows?table=T&strategy=smart", "strategy"),
    ("/api/rows?table=T&filter=mine", "filter"),
    ("/api/rows?table=T&after=0~nan~1", "after"),
    ("/api/rows?table=T&filter=all&after=abc", "after"),
    ("/api/rows?table=T&limit=501", "limit"),
    ("/api/rows?table=T&q=" + "x" * 201, "q"),
    ("/api/rows?table=T&pgae=2", "pgae"),
    ("/api/export?table=T&format=xlsx", "format"),
]


@pytest.mark.parametrize(("path", "parameter"), BAD_READS, ids=[p for p, _ in BAD_READS])
def test_bad_parameters_get_400_naming_them(stack, make_app, path, parameter):
    table = create_dataset_table(stack.database_url, simple_tweets(2))
    ada = Annotator(make_app())
    response = ada.client.get(path.replace("table=T", f"table={table}"))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["parameter"] == parameter and parameter in response.get_json()["error"]


def test_a_missing_table_says_what_to_run(stack, make_app):
    ada = Annotator(make_app())
    response = ada.client.get("/api/rows?table=dev_dataset_987654321")
    assert response.status_code == 404
    assert response.get_json()["error"] == ("table dev_dataset_987654321 does not exist: run "
                                            "`ssp dataset prepare --version 987654321`")


# ---------------------------------------------------------------- agreement
def test_cohen_kappa_by_hand():
    # 10 tweets: both AI on 4, both not AI on 3, A AI / B not on 2, A not / B AI on 1.
    # observed 0.7; A says AI 6/10, B 5/10; chance 0.6 x 0.5 + 0.4 x 0.5 = 0.5; kappa (0.7 - 0.5) / 0.5 = 0.4
    pairs = [(1, 1)] * 4 + [(0, 0)] * 3 + [(1, 0)] * 2 + [(0, 1)]
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([(1, 1), (1, 1)]) is None  # chance agreement 1: undefined
    assert cohen_kappa([]) is None
    assert cohen_kappa([(1, 0), (0, 1)]) == pytest.approx(-1.0)


def test_agreement_of_two_annotators_on_the_same_tweets(stack, make_app):
    table = create_dataset_table(stack.database_url, simple_tweets(12))
    app = make_app()
    ada, bo, cy = Annotator(app, "ada"), Annotator(app, "bo"), Annotator(app, "cy")
    pairs = [(1, 1)] * 4 + [(0, 0)] * 3 + [(1, 0)] * 2 + [(0, 1)]
    for i, (a, b) in enumerate(pairs):
        ada.label(table, 100 + i, 1 - a)  # ada's first thought, changed below: only her latest label counts
        ada.label(table, 100 + i, a)
        bo.label(table, 100 + i, b)
    undone = bo.label(table, 110, 1)  # bo labels a tweet nobody else did, then takes it back
    bo.post("/api/undo", {"table": table, "id": "110", "history_id": undone["history_id"]})
    for annotator in (ada, bo, cy):  # three annotators on tweet 111: not in any pair
        annotator.label(table, 111, 1)

    result = ada.get(f"/api/agreement?table={table}")
    assert result["pairs"] == [{"annotators": ["ada", "bo"], "tweets": 10, "agreement": 0.7, "kappa": 0.4}]
    assert result["annotators"] == [{"annotator": "ada", "labels": 11}, {"annotator": "bo", "labels": 11},
                                    {"annotator": "cy", "labels": 1}]
    assert result["tweets_by_more_than_two"] == 1
    page = ada.client.get(f"/stats?table={table}").get_data(as_text=True)
    assert "ada &amp; bo" in page and "0.400" in page and "70.0 %" in page


# ---------------------------------------------------------------- export and import
def test_export_and_import_round_trip(stack, db, make_app):
    tweets = simple_tweets(6)
    tweets[2]["text"] = 'quotes " and, commas\nand a newline'
    source = create_dataset_table(stack.database_url, tweets)
    target = create_dataset_table(stack.database_url, simple_tweets(6))
    app = make_app()
    ada = Annotator(app)
    for tweet_id, label in ((100, 1), (102, 0), (105, 1)):
        ada.label(source, tweet_id, label)
    expected = {100: 1, 102: 0, 105: 1}

    exported = ada.client.get(f"/api/export?table={source}&format=csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert f'filename="{source}_labels.csv"' in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert {int(r["id"]): int(r["label"]) for r in rows} == expected
    assert rows[1]["text"] == tweets[2]["text"] and {r["labelled_by"] for r in rows} == {"ada"}

    lines = ada.client.get(f"/api/export?table={source}&format=jsonl").get_data(as_text=True).splitlines()
    records = [json.loads(line) for line in lines]
    assert {r["id"]: r["label"] for r in records} == expected and records[1]["text"] == tweets[2]["text"]
    assert datetime.fromisoformat(records[0]["labelled_at"]).tzinfo is not None

    parquet = ada.client.get(f"/api/export?table={source}&format=parquet")
    assert parquet.mimetype == "application/vnd.apache.parquet"
    frame = pq.read_table(io.BytesIO(parquet.get_data())).to_pandas()
    assert dict(zip(frame["id"], frame["label"], strict=True)) == expected
    assert frame["text"].tolist()[1] == tweets[2]["text"]

    # the CSV export imports as it is into another table with the same tweets
    bo = Annotator(app, "bo")
    response = bo.client.post(f"/api/import?table={target}", headers={"X-CSRF-Token": bo.csrf},
                              data={"file": (io.BytesIO(exported.get_data()), "labels.csv")})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"table": target, "imported": 3}
    assert labels(db, target) == {i: (label, "bo") for i, label in expected.items()}
    assert history(db, target) == [(i, label, "import", "bo") for i, label in expected.items()]
    assert bo.get(f"/api/status?table={target}")["progress"]["labelled"] == 3


def test_import_rejects_bad_rows_with_line_numbers_and_writes_nothing(stack, db, make_app):
    table = create_dataset_table(stack.database_url, simple_tweets(4))
    ada = Annotator(make_app())
    bad = b"label,id,note\n1,100,ok\nyes,101,\n0,999,unknown id\n1,100,again\n0,abc,\n1,102,fine\n"
    response = ada.client.post(f"/api/import?table={table}", headers={"X-CSRF-Token": ada.csrf},
                               data={"file": (io.BytesIO(bad), "labels.csv")})
    assert response.status_code == 400
    body = response.get_json()
    assert body["bad_rows"] == 4 and "nothing was imported" in body["error"]
    assert body["errors"] == [
        {"line": 3, "error": "label 'yes' must be 0 (not AI) or 1 (AI)"},
        {"line": 4, "error": f"tweet id 999 is not in table {table}"},
        {"line": 5, "error": "tweet id 100 is already on line 2"},
        {"line": 6, "error": "id 'abc' is not a tweet id (a positive integer)"},
    ]
    assert labels(db, table) == {} and history(db, table) == []

    no_header = ada.client.post(f"/api/import?table={table}", headers={"X-CSRF-Token": ada.csrf},
                                data={"file": (io.BytesIO(b"100,1\n"), "labels.csv")})
    assert no_header.status_code == 400 and "has no column id or label" in no_header.get_json()["error"]
    # the HTML form shows the same problems on the page
    page = ada.client.post("/import", data={"csrf_token": ada.csrf, "table": table,
                                            "file": (io.BytesIO(bad), "labels.csv")})
    assert page.status_code == 400
    text = html.unescape(page.get_data(as_text=True))
    assert "line 3: label 'yes' must be 0 (not AI) or 1 (AI)" in text and "line 4: tweet id 999" in text
    good = ada.client.post("/import", data={"csrf_token": ada.csrf, "table": table,
                                            "file": (io.BytesIO(b"id,label\n101,0\n103,1\n"), "labels.csv")})
    assert good.status_code == 200 and "Imported 2 label(s)." in good.get_data(as_text=True)
    assert labels(db, table) == {101: (0, "ada"), 103: (1, "ada")}


# ---------------------------------------------------------------- the command
def test_tagger_command_help_and_missing_token(monkeypatch):
    result = CliRunner().invoke(tagger, ["--help"])
    assert result.exit_code == 0 and "SSP_TAGGER_TOKEN" in result.output and "--model-url" in result.output
    monkeypatch.delenv("SSP_TAGGER_TOKEN", raising=False)
    result = CliRunner().invoke(tagger, ["--port", "0"])
    assert result.exit_code != 0 and "SSP_TAGGER_TOKEN is not set" in result.output


def test_tagger_command_serves_until_interrupted(stack, db):
    table = create_dataset_table(stack.database_url, simple_tweets(3))
    env = {**os.environ, "SSP_DATABASE_URL": stack.database_url, "SSP_TAGGER_TOKEN": TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", "from ssp.web.tagger_cli import tagger; tagger()", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"tagger on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + process.stderr.read()
        session = requests.Session()
        login = session.get(match[1] + "login", timeout=10).text
        session.post(match[1] + "login", data={"name": "ada", "token": TOKEN, "csrf_token": page_csrf(login)},
                     timeout=10, allow_redirects=False).raise_for_status()
        csrf = page_csrf(session.get(match[1], timeout=10).text)
        answer = session.post(match[1] + "api/label", json={"table": table, "id": "101", "label": 1},
                              headers={"X-CSRF-Token": csrf}, timeout=10)
        assert answer.status_code == 200, answer.text
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert re.search(r"tagger stopped after \d+ s: 1 label\(s\) written", out)
    assert labels(db, table) == {101: (1, "ada")}


def test_history_keeps_time_order(stack, db, make_app):
    table = create_dataset_table(stack.database_url, simple_tweets(2))
    ada = Annotator(make_app())
    ada.label(table, 100, 1)
    ada.label(table, 100, 0)
    with db.cursor() as cur:
        cur.execute(f"SELECT labelled_at FROM {LABEL_HISTORY_TABLE} WHERE table_name = %s ORDER BY history_id",
                    (table,))
        times = [row[0] for row in cur.fetchall()]
        cur.execute(f"SELECT labelled_at FROM {table} WHERE id = 100")
        labelled_at = cur.fetchone()[0]
    assert times[0] < times[1] and labelled_at == times[1]
    assert abs(datetime.now(UTC) - labelled_at) < timedelta(minutes=5)


def test_unreachable_database_is_a_clear_503(monkeypatch):
    from ssp.infra.process import free_port

    monkeypatch.setenv("SSP_TAGGER_TOKEN", TOKEN)
    app = create_app(f"postgresql://nobody@127.0.0.1:{free_port()}/nothing", testing=True)
    try:
        client = app.test_client()
        sign_in_page = client.get("/login").get_data(as_text=True)
        client.post("/login", data={"name": "ada", "token": TOKEN, "csrf_token": page_csrf(sign_in_page)})
        response = client.get("/api/rows?table=train_dataset_1")
        assert response.status_code == 503 and response.get_json()["error"].startswith("cannot reach the database")
    finally:
        app.extensions["ssp_tagger"]["data"].engine.dispose()



def test_create_app_reads_the_environment_when_given_nothing_as_flask_run_does(stack, monkeypatch):
    """``flask --app ssp.web.tagger run``: Flask calls ``create_app()``; the database and the token come from
    the environment."""
    from flask.cli import ScriptInfo

    monkeypatch.setenv("SSP_DATABASE_URL", stack.database_url)
    monkeypatch.setenv("SSP_TAGGER_TOKEN", TOKEN)
    app = ScriptInfo(app_import_path="ssp.web.tagger").load_app()
    try:
        assert app.config["SSP_DATABASE_URL"] == stack.database_url and app.config["SSP_TAGGER_TOKEN"] == TOKEN
        assert app.debug is False and app.testing is False
        assert {"auth", "tagger"} <= set(app.blueprints)  # signing in is a blueprint of its own
        assert app.test_client().get("/").status_code == 302  # to the sign-in page
    finally:
        app.extensions["ssp_tagger"]["data"].engine.dispose()


def test_every_endpoint_the_templates_build_exists(monkeypatch):
    """The templates name endpoints by string (``url_for('auth.logout')``): each one must be one the apps route."""
    from pathlib import Path

    import ssp.web
    from ssp.infra.process import free_port
    from ssp.web.dashboard import create_app as create_dashboard

    monkeypatch.setenv("SSP_TAGGER_TOKEN", TOKEN)
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    apps = {"tagger": create_app(url, testing=True), "dashboard": create_dashboard(url, 1, testing=True)}
    templates = Path(ssp.web.__file__).parent / "templates"
    try:
        for folder, app in apps.items():
            endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
            for path in [*(templates / folder).glob("*.html"), *templates.glob("*.html")]:
                for name in re.findall(r"url_for\('([\w.]+)'", path.read_text(encoding="utf-8")):
                    assert name in endpoints, f"{path.name} builds {name!r}, which {folder} does not route"
    finally:
        apps["tagger"].extensions["ssp_tagger"]["data"].engine.dispose()
        apps["dashboard"].extensions["ssp_dashboard"].engine.dispose()
