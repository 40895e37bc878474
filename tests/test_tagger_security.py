"""The tagger's security fixes of issue 10, each as real requests against the real app on a real PostgreSQL:
sign-out ends the session, wrong sign-ins are limited and logged, ``next`` with CR/LF, deeply nested JSON,
spreadsheet formulas in the CSV export, and no writes on a GET."""

from __future__ import annotations

import csv
import io
import logging

import pytest

from ssp.config import WebConfig
from ssp.web.tagger import create_app
from test_tagger import TOKEN, Annotator, create_dataset_table, labels, page_csrf, simple_tweets

pytestmark = pytest.mark.integration


@pytest.fixture
def app(stack, monkeypatch):
    monkeypatch.setenv("SSP_TAGGER_TOKEN", TOKEN)
    app = create_app(stack.database_url, WebConfig(page_size=50), testing=True)
    yield app
    app.extensions["ssp_tagger"]["data"].engine.dispose()


def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(stack, db, app):
    table = create_dataset_table(stack.database_url, simple_tweets(2))
    ada = Annotator(app)
    copied = ada.client.get_cookie("ssp_tagger_session").value
    assert ada.client.post("/logout", data={"csrf_token": ada.csrf}).status_code == 302

    thief = app.test_client()
    thief.set_cookie("ssp_tagger_session", copied)
    assert thief.get("/api/tables").status_code == 401
    stolen = thief.post("/api/label", json={"table": table, "id": "100", "label": 1},
                        headers={"X-CSRF-Token": ada.csrf})
    assert stolen.status_code == 401 and labels(db, table) == {}


def test_sessions_last_the_configured_hours(stack, monkeypatch):
    monkeypatch.setenv("SSP_TAGGER_TOKEN", TOKEN)
    app = create_app(stack.database_url, WebConfig(tagger_session_hours=1.0), testing=True)
    try:
        ada = Annotator(app)
        assert app.permanent_session_lifetime.total_seconds() == 3600
        store = app.extensions["ssp_tagger_sessions"]
        assert store.lifetime_seconds == 3600
        assert ada.client.get("/api/tables").status_code == 200
        now = store._clock()
        store._clock = lambda: now + 3601  # an hour later: the server ends the session whatever the cookie says
        assert ada.client.get("/api/tables").status_code == 401
    finally:
        app.extensions["ssp_tagger"]["data"].engine.dispose()
    assert WebConfig().tagger_session_hours == 12.0


def client_from(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _wrong_sign_in(client, name: str = "ada"):
    csrf = page_csrf(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"name": name, "token": "wrong-token-0123", "csrf_token": csrf})


def test_wrong_sign_ins_are_limited_per_address_and_per_name_and_logged(app, caplog):
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="ssp.web.tagger.auth"):
        answers = [_wrong_sign_in(client, f"user{i}").status_code for i in range(6)]
    assert answers == [401] * 5 + [429]
    assert len([r for r in caplog.records if "with a wrong token" in r.getMessage()]) == 5
    # limited: even the right token waits, and the answer says how long
    csrf = page_csrf(client.get("/login").get_data(as_text=True))
    limited = client.post("/login", data={"name": "ada", "token": TOKEN, "csrf_token": csrf})
    assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 60
    assert "too many wrong sign-ins" in limited.get_data(as_text=True)

    # per name too, from ever-changing addresses
    for i in range(5):
        assert _wrong_sign_in(client_from(app, f"10.0.0.{i}"), "bo").status_code == 401
    elsewhere = client_from(app, "10.0.1.1")
    assert _wrong_sign_in(elsewhere, "bo").status_code == 429
    # others sign in as before
    other = client_from(app, "10.0.2.1")
    csrf = page_csrf(other.get("/login").get_data(as_text=True))
    assert other.post("/login", data={"name": "cy", "token": TOKEN, "csrf_token": csrf}).status_code == 302


def test_a_next_with_cr_or_lf_goes_to_the_index(app):
    for target in ("/tag?x=1\r\nSet-Cookie: evil=1", "/\nx", "/\tx", "/\x7fx"):
        client = app.test_client()
        csrf = page_csrf(client.get("/login").get_data(as_text=True))
        ok = client.post("/login", data={"name": "ada", "token": TOKEN, "csrf_token": csrf, "next": target})
        assert ok.status_code == 302 and ok.headers["Location"] == "/", repr(target)
        assert "evil" not in str(ok.headers)
        assert client.get("/login", query_string={"next": target}).status_code == 200


def test_deeply_nested_json_is_a_400(stack, db, app):
    table = create_dataset_table(stack.database_url, simple_tweets(2))
    ada = Annotator(app)
    deep = '{"table": ' + "[" * 100_000 + "]" * 100_000 + "}"
    for body in (deep, '{"table": "t", "id": ' + "[" * 20 + "1" + "]" * 20 + ', "label": 1}'):
        response = ada.client.post("/api/label", data=body, content_type="application/json",
                                   headers={"X-CSRF-Token": ada.csrf})
        assert response.status_code == 400, response.get_data(as_text=True)[:200]
        assert response.get_json()["parameter"] == "body"
    assert ada.post("/api/label", {"table": table, "id": "100", "label": 1}).status_code == 200


def test_csv_export_neutralises_spreadsheet_formulas(stack, app):
    texts = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+2", "-3+4", "@SUM(A1)", "\tTAB", "\rCR", "plain"]
    tweets = [{"id": 100 + i, "text": text, "label": 1, "user": "=cmd"} for i, text in enumerate(texts)]
    table = create_dataset_table(stack.database_url, tweets)
    ada = Annotator(app)
    exported = ada.client.get(f"/api/export?table={table}&format=csv").get_data(as_text=True)
    # a bare CR is not quoted by Python 3.11's csv writer (lineterminator "\n"): check that one in the raw text
    assert "'\rCR" in exported and ",\rCR" not in exported
    rows = [r for r in csv.DictReader(io.StringIO(exported.replace("'\rCR", "'CR"), newline=""))]
    assert [r["text"] for r in rows] == ["'" + t for t in texts[:-2]] + ["'CR", "plain"]
    assert {r["user_screen_name"] for r in rows} == {"'=cmd"}
    assert {r["slabel"] for r in rows} == {"-1"}  # numbers stay numbers
    # JSON lines keep the text as it is
    jsonl = ada.client.get(f"/api/export?table={table}&format=jsonl").get_data(as_text=True)
    assert '"text": "=HYPERLINK' in jsonl


def _indexes(db, table: str) -> set[str]:
    with db.cursor() as cur:
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,))
        return {row[0] for row in cur.fetchall()}


def test_a_get_never_writes_indexes_are_built_at_start_up_or_by_a_post(stack, db, app):
    ada = Annotator(app)
    later = create_dataset_table(stack.database_url, simple_tweets(3))  # appears after the app started
    for path in (f"/tag?table={later}", f"/api/rows?table={later}", f"/stats?table={later}",
                 f"/api/status?table={later}"):
        assert ada.client.get(path).status_code == 200, path
    assert _indexes(db, later) == {f"{later}_pkey"}
    status = ada.get(f"/api/status?table={later}")
    assert any("appeared after the tagger started" in w for w in status["warnings"])
    # the first write prepares it
    ada.label(later, 101, 1)
    assert f"{later}_queue_unc_idx" in _indexes(db, later)
    # and a table there at start-up is prepared by the start
    monkeyed = create_dataset_table(stack.database_url, simple_tweets(2))
    second = create_app(stack.database_url, WebConfig(), testing=True)
    try:
        assert f"{monkeyed}_queue_unc_idx" in _indexes(db, monkeyed)
    finally:
        second.extensions["ssp_tagger"]["data"].engine.dispose()
