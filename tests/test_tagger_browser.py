"""The tagger in a real headless Chromium: sign in, label five tweets with the keyboard, undo one, reload;
the four labels are in PostgreSQL and in the history, and a tweet whose text is a script runs nothing."""

from __future__ import annotations

import pytest

from browser import chromium_page, running_app, save_screenshot
from ssp.config import WebConfig
from ssp.web.tagger import create_app
from test_tagger import TOKEN, create_dataset_table, history, labels

pytestmark = pytest.mark.integration

SCRIPT_TEXT = "<script>alert(1)</script>"


def queue_ids(page) -> list[str]:
    return page.eval_on_selector_all("#rows tbody tr", "rows => rows.map(r => r.dataset.id)")


def wait_until_saved(page, labelled: int) -> None:
    """Until every typed decision has its answer and the progress shows ``labelled`` labels."""
    page.wait_for_function(
        "n => document.getElementById('tagger').dataset.pending === '0'"
        " && document.getElementById('progress-labelled').textContent === String(n)", arg=labelled)


def test_label_five_with_the_keyboard_undo_one_and_reload(stack, db, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SSP_TAGGER_TOKEN", TOKEN)
    # Snorkel's P(AI) sets the queue order (no model yet): the most uncertain first
    probs = [0.5, 0.45, 0.6, 0.35, 0.7, 0.2, 0.9, 0.05]
    tweets = [{"id": 9000 + i, "text": f"tweet number {i}", "slabel_prob": p, "user": f"user{i}"}
              for i, p in enumerate(probs)]
    tweets[1]["text"] = SCRIPT_TEXT
    table = create_dataset_table(stack.database_url, tweets)
    expected_order = ["9000", "9001", "9002", "9003", "9004", "9005", "9006", "9007"]

    app = create_app(stack.database_url, WebConfig(page_size=6), testing=True)
    try:
        with running_app(app) as base_url, chromium_page() as browser:
            page = browser.page
            page.goto(f"{base_url}tag?table={table}")
            assert page.url.startswith(f"{base_url}login?next=")  # not signed in yet
            page.fill("input[name=name]", "ada")
            page.fill("input[name=token]", TOKEN)
            page.click("form.login button[type=submit]")
            page.wait_for_selector("#tagger[data-ready=true]")
            assert page.url == f"{base_url}tag?table={table}"
            assert page.locator("#annotator").text_content() == "ada"
            assert queue_ids(page) == expected_order[:6]
            assert page.locator("#rows tr.current").get_attribute("data-id") == "9000"

            # the script in tweet 9001 is text on the page, and nothing ran
            cell = page.locator('#rows tr[data-id="9001"] td.text')
            assert cell.text_content() == SCRIPT_TEXT
            assert cell.inner_html() == "&lt;script&gt;alert(1)&lt;/script&gt;"

            for key in ("a", "x", "a", "x", "a"):
                page.keyboard.press(key)
            wait_until_saved(page, 5)
            assert page.locator("#rows tr.current").get_attribute("data-id") == "9005"
            badges = page.eval_on_selector_all("#rows tr.labelled td.gold .badge", "b => b.map(x => x.textContent)")
            assert badges == ["AI", "not AI", "AI", "not AI", "AI"]

            page.keyboard.press("Backspace")  # takes back the fifth label, on tweet 9004
            wait_until_saved(page, 4)
            assert page.locator("#rows tr.current").get_attribute("data-id") == "9004"
            assert page.locator('#rows tr[data-id="9004"]').get_attribute("class").split() == ["tweet", "current"]

            assert labels(db, table) == {9000: (1, "ada"), 9001: (0, "ada"), 9002: (1, "ada"), 9003: (0, "ada")}
            assert history(db, table) == [(9000, 1, "label", "ada"), (9001, 0, "label", "ada"),
                                          (9002, 1, "label", "ada"), (9003, 0, "label", "ada"),
                                          (9004, 1, "label", "ada"), (9004, None, "undo", "ada")]

            page.reload()
            page.wait_for_selector("#tagger[data-ready=true]")
            # the queue now starts at the undone tweet; the labelled ones have left it
            assert queue_ids(page) == ["9004", "9005", "9006", "9007"]
            assert page.locator("#progress-labelled").text_content() == "4"
            assert page.locator("#progress-ai").text_content() == "2"
            save_screenshot(page, tmp_path / "tagger-queue.png", capsys)

            page.goto(f"{base_url}tag?table={table}&filter=labelled")
            assert queue_ids(page) == ["9000", "9001", "9002", "9003"]
            assert page.locator('#rows tr[data-id="9001"] td.text').text_content() == SCRIPT_TEXT
            save_screenshot(page, tmp_path / "tagger-labelled.png", capsys)

            assert browser.dialogs == [], "a script in tweet text ran"
            assert browser.console_errors == []
    finally:
        app.extensions["ssp_tagger"]["data"].engine.dispose()

    assert labels(db, table) == {9000: (1, "ada"), 9001: (0, "ada"), 9002: (1, "ada"), 9003: (0, "ada")}
