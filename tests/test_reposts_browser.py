"""The dashboard's Reposts page in a real headless Chromium: read-only without sign-in; signed in, approve one
candidate with the keyboard and skip one; the history shows both; a POST without the CSRF token is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from browser import chromium_page, running_app, save_screenshot
from ssp.config import RepostConfig, WebConfig
from ssp.web.dashboard import create_app
from test_dashboard import T0, fresh_version, insert_tweets

pytestmark = pytest.mark.integration

TOKEN = "reviewer-token-123"
SCRIPT_TEXT = "<script>alert(1)</script> LLM news"
NEWER = T0 + timedelta(minutes=5)


def test_review_with_the_keyboard_and_csrf(stack, unique_name, tmp_path, capsys) -> None:
    version = fresh_version()
    insert_tweets(stack.database_url, version, [
        {"id": 3001, "text": "Transformers explained", "user": "ada", "ai_prob": 0.97, "created_at": NEWER,
         "urls": ["https://example.org/transformers"]},
        {"id": 3002, "text": SCRIPT_TEXT, "user": "mallory", "ai_prob": 0.95, "urls": ["https://example.org/evil"]},
        {"id": 3003, "text": "AI with no link", "ai_prob": 0.99},
        {"id": 3004, "text": "shortened", "ai_prob": 0.99, "urls": ["https://bit.ly/abc"]},
        {"id": 3005, "text": "not sure it is AI", "ai_prob": 0.6, "urls": ["https://example.org/maybe"]},
    ])
    config = RepostConfig(platform="x", table=unique_name("reposts"), min_prob=0.9, blocked_domains=("bit.ly",))
    app = create_app({"SSP_DATABASE_URL": stack.database_url, "SSP_VERSION": version, "SSP_WEB": WebConfig(),
                      "SSP_REPOST": config, "SSP_TAGGER_TOKEN": TOKEN, "TESTING": True})
    try:
        with running_app(app) as base_url, chromium_page() as browser:
            page = browser.page
            page.goto(base_url + "reposts")
            ids = page.eval_on_selector_all("#candidates tr.candidate", "rows => rows.map(r => r.dataset.id)")
            assert ids == ["3001", "3002"]  # newest first; no link, blocked domain, under 0.9: not candidates
            assert page.locator("td.decide").count() == 0  # read-only before sign-in
            assert page.locator('tr[data-id="3002"] td.text').inner_html() == \
                "&lt;script&gt;alert(1)&lt;/script&gt; LLM news"
            assert page.locator('tr[data-id="3001"] a.post-link').get_attribute("href") == \
                "https://x.com/i/web/status/3001"

            page.click("#sign-in")
            page.fill("input[name=name]", "rita")
            page.fill("input[name=token]", TOKEN)
            page.click("form.login button[type=submit]")
            page.wait_for_url(base_url + "reposts")
            assert page.locator("#reviewer").text_content() == "rita"
            page.wait_for_selector("body[data-reposts-ready=true]")

            page.keyboard.press("a")  # approve the first candidate
            page.wait_for_selector('#history tr[data-target="3001"]')
            page.wait_for_selector("body[data-reposts-ready=true]")
            assert page.eval_on_selector_all("#candidates tr.candidate", "rows => rows.map(r => r.dataset.id)") == \
                ["3002"]
            page.keyboard.press("s")  # skip the next one
            page.wait_for_selector('#history tr[data-target="3002"]')
            assert page.locator("#no-candidates").count() == 1

            history = page.eval_on_selector_all(
                "#history tr", "rows => rows.slice(1).map(r => [r.dataset.target, r.querySelector('.status')"
                ".textContent, r.querySelector('.by').textContent])")
            assert history == [["3002", "skipped", "rita"], ["3001", "approved", "rita"]]
            assert page.locator('#history tr[data-target="3002"] td.text').text_content() == SCRIPT_TEXT
            save_screenshot(page, tmp_path / "dashboard-reposts.png", capsys)
            # with the token, a post that is no candidate (a blocked domain) is refused and nothing recorded
            token = page.get_attribute('meta[name="csrf-token"]', "content")
            answer = page.request.post(base_url + "reposts/decide",
                                       form={"tweet_id": "3004", "decision": "approve", "csrf_token": token})
            assert answer.ok and "post 3004 is no candidate now" in answer.text()

            # the browser's own session cookie, without the page's CSRF token: refused
            cookies = {c["name"]: c["value"] for c in page.context.cookies()}
            answer = requests.post(base_url + "reposts/decide", data={"tweet_id": "3005", "decision": "approve"},
                                   cookies=cookies, allow_redirects=False, timeout=10)
            assert answer.status_code == 403 and "CSRF" in answer.text
            # and without a sign-in at all
            answer = requests.post(base_url + "reposts/decide", data={"tweet_id": "3005", "decision": "approve"},
                                   allow_redirects=False, timeout=10)
            assert answer.status_code == 401
            assert browser.dialogs == [] and browser.console_errors == []
        body = app.test_client().get("/api/reposts").get_json()
        assert [h["status"] for h in body["history"]] == ["skipped", "approved"] and body["candidates"] == []
    finally:
        app.extensions["ssp_dashboard"].engine.dispose()
