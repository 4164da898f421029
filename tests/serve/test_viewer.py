"""The feed viewer page in real headless Chromium (Debian's `chromium`, driven by Playwright):
load a user's feed, press "liked" on a card, and check that the event was logged and the
reloaded feed no longer shows the item. Skips where /usr/bin/chromium is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelrec.serve import create_app
from reelrec.serve.eventlog import EventLog
from tests.serve.conftest import live_server, make_settings

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium package")


def test_viewer_loads_feed_and_posts_feedback(model_dir: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    settings = make_settings(model_dir, tmp_path)
    app = create_app(settings)
    user = 424242
    with live_server(app) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(base + "/")
            assert page.title() == "reelrec feed viewer"
            page.fill("#user-id", str(user))
            page.fill("#n", "8")
            page.click("#load")
            page.wait_for_function("document.querySelectorAll('#feed .card').length === 8")
            status = page.text_content("#status") or ""
            assert f"user {user}: 8 items" in status and "model v" in status
            first = page.locator("#feed .card").first
            item_id = int(first.get_attribute("data-item-id") or "-1")
            assert first.locator(".retriever").text_content()
            assert "s" in (first.locator(".duration").text_content() or "")

            first.locator("button.liked").click()
            page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('liked: item')"
                " && document.getElementById('status').textContent.includes('items, model')"
            )
            shown = [int(x) for x in page.locator("#feed .card").evaluate_all(
                "cards => cards.map(c => c.dataset.itemId)")]  # fmt: skip
            assert item_id not in shown and len(shown) == 8
        finally:
            browser.close()
    batch = EventLog(settings.events_db, readonly=True).read(0, 10)
    assert batch.events.column("item_id").to_pylist() == [item_id]
    assert batch.events.column("user_id").to_pylist() == [user]
    assert batch.events.column("is_like").to_pylist() == [1]


def test_viewer_shows_error_for_bad_input(model_dir: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    app = create_app(make_settings(model_dir, tmp_path))
    with live_server(app) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(base + "/")
            page.fill("#n", "500")
            page.evaluate("document.getElementById('controls').noValidate = true")
            page.click("#load")
            page.wait_for_selector("#status.error")
            assert "1..200" in (page.text_content("#status") or "")
        finally:
            browser.close()
