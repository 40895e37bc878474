"""The dashboard in a real headless Chromium: the live page picks up new AI tweets without a reload,
and a tweet whose text is a script shows as text and runs nothing."""

from __future__ import annotations

import pytest

from browser import chromium_page, running_app, save_screenshot
from ssp.config import WebConfig
from ssp.web.dashboard import create_app
from test_dashboard import fresh_version, insert_tweets

pytestmark = pytest.mark.integration

SCRIPT_TEXT = "<script>alert(1)</script>"


def feed_ids(page) -> list[str]:
    return page.eval_on_selector_all("#live-feed tbody tr", "rows => rows.map(r => r.dataset.id)")


def test_live_page_shows_new_ai_tweets_without_reload_and_escapes_them(stack, tmp_path, capsys):
    version = fresh_version()
    insert_tweets(stack.database_url, version, [
        {"id": 1001, "text": "Transformers keep getting bigger", "user": "ada", "ai_prob": 0.91,
         "urls": ["https://example.org/llm", "javascript:alert(2)"]},
        {"id": 1002, "text": "A new benchmark for reinforcement learning", "user": "alan", "ai_prob": 0.77,
         "urls": ["https://example.org/rl"]},
        {"id": 1003, "text": "lunch was good", "user": "bob", "ai_prob": 0.08},
    ])
    app = create_app(stack.database_url, version, WebConfig(page_size=20), testing=True)
    try:
        with running_app(app) as base_url, chromium_page() as browser:
            page = browser.page
            page.goto(base_url + "live")
            assert feed_ids(page) == ["1002", "1001"]
            # the chart is drawn by live.js from /api/stats/per-minute: two AI tweets this minute
            page.wait_for_function(
                "() => [...document.querySelectorAll('#per-minute-chart rect.bar')]"
                ".reduce((sum, bar) => sum + Number(bar.dataset.count), 0) === 2"
            )
            # a marker on window survives only if the page is never reloaded
            page.evaluate("window.__noReload = 'still here'")

            insert_tweets(stack.database_url, version, [
                {"id": 2001, "text": SCRIPT_TEXT, "user": "mallory", "ai_prob": 0.88,
                 "urls": ["https://news.example.com/attack"]},
                {"id": 2002, "text": "Diffusion models explained", "user": "grace", "ai_prob": 0.95,
                 "urls": ["https://example.org/diffusion"]},
                {"id": 2003, "text": "not AI, never shown here", "ai_prob": 0.2},
            ])
            page.wait_for_selector('#live-feed tr[data-id="2002"]', timeout=15_000)
            assert feed_ids(page) == ["2002", "2001", "1002", "1001"]
            assert page.evaluate("window.__noReload") == "still here"

            script_row = page.locator('#live-feed tr[data-id="2001"] td.text')
            assert script_row.text_content() == SCRIPT_TEXT
            assert script_row.inner_html() == "&lt;script&gt;alert(1)&lt;/script&gt;"
            assert page.locator("#live-feed script").count() == 0

            links = page.locator("#live-feed td.links a")
            hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
            assert hrefs == ["https://example.org/diffusion", "https://news.example.com/attack",
                             "https://example.org/rl", "https://example.org/llm"]
            for i in range(links.count()):
                assert links.nth(i).get_attribute("target") == "_blank"
                assert "noopener" in links.nth(i).get_attribute("rel").split()
            assert page.locator("#live-feed .unsafe-link").all_text_contents() == ["javascript:alert(2)"]

            page.wait_for_function(
                "() => [...document.querySelectorAll('#per-minute-chart rect.bar')]"
                ".reduce((sum, bar) => sum + Number(bar.dataset.count), 0) === 4"
            )
            page.wait_for_function("() => document.querySelector('#top-domains').textContent.includes('news.example.com')")
            assert page.locator("#top-domains li a").first.text_content() == "example.org"
            save_screenshot(page, tmp_path / "dashboard-live.png", capsys)

            # the server-rendered list shows the same tweet as text too
            page.goto(base_url)
            assert page.locator('tr[data-id="2001"] td.text').text_content() == SCRIPT_TEXT
            save_screenshot(page, tmp_path / "dashboard-ai-tweets.png", capsys)

            assert browser.dialogs == [], "a script in tweet text ran"
            assert browser.console_errors == []
    finally:
        app.extensions["ssp_dashboard"].engine.dispose()
