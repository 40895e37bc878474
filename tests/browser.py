"""Browser-test helpers: run a Flask app on a free port and drive Debian's headless Chromium with Playwright.

Playwright's own browser download is not used (``playwright install`` fetches from a CDN this
project cannot reach): the tests launch the system Chromium, Debian's package ``chromium``
(``/usr/bin/chromium``, or ``$SSP_CHROMIUM``). A missing browser or Playwright fails the test with
the package to install instead of skipping it.

Used as::

    with running_app(app) as base_url, chromium_page() as browser:
        browser.page.goto(base_url + "live")
        ...
        assert browser.dialogs == [] and browser.console_errors == []
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ssp.web.common import make_wsgi_server, server_url

CHROMIUM_PACKAGE = "chromium"
PLAYWRIGHT_PIN = "playwright==1.65.2"


def chromium_executable() -> str:
    """The system Chromium, or a test failure naming the package that provides it."""
    path = Path(os.environ.get("SSP_CHROMIUM") or "/usr/bin/chromium")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"headless Chromium not found at {path}: install Debian's package `{CHROMIUM_PACKAGE}` "
                    f"(apt-get install -y {CHROMIUM_PACKAGE}) or point SSP_CHROMIUM at a Chromium binary")
    return str(path)


@contextmanager
def running_app(app) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread, as ``ssp dashboard`` would; yields its base URL."""
    server = make_wsgi_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, name="test-web-app", daemon=True)
    thread.start()
    try:
        yield server_url("127.0.0.1", server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass
class BrowserPage:
    """A page plus what it reported: JavaScript dialogs (alert/confirm) and console errors (CSP violations too)."""

    page: object
    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator[BrowserPage]:
    """A fresh headless Chromium page that records dialogs (dismissing them) and console errors."""
    executable = chromium_executable()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"Playwright for Python is missing: pip install '{PLAYWRIGHT_PIN}' (no `playwright install`: "
                    f"the tests use Debian's `{CHROMIUM_PACKAGE}`)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.set_default_timeout(15_000)
            result = BrowserPage(page)

            def on_dialog(dialog) -> None:
                result.dialogs.append(f"{dialog.type}: {dialog.message}")
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.on("console", lambda message: message.type == "error" and result.console_errors.append(message.text))
            page.on("pageerror", lambda error: result.console_errors.append(str(error)))
            yield result
        finally:
            browser.close()


def save_screenshot(page, path: Path, capsys: pytest.CaptureFixture | None = None) -> Path:
    """A full-page PNG at ``path``; its location is printed past pytest's capture so a person can look."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    line = f"\nscreenshot saved: {path}"
    if capsys is not None:
        with capsys.disabled():
            print(line)
    else:
        print(line)
    return path
