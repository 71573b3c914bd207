"""Serving a team, in a real browser (issue 14): asking within a filter, as Debian's Chromium
driven by Playwright shows it; `qa serve` as a subprocess, as in tests/test_browser.py."""

from __future__ import annotations

import re

import pytest

from tests.makers import CHROMIUM, TIMEOUT_MS, ask, last_answer, open_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not at /usr/bin/chromium "
                       "(`make test` installs it; by hand: apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (make install)")
expect = sync_api.expect
expect.set_options(timeout=TIMEOUT_MS)

AZAL = "when were direct AZAL flights announced"
AZAL_DOC = "003_fdf2c5db0e68fe77.txt"


def test_the_filter_control_narrows_the_answer_and_each_answer_shows_it(browser, live_server: str) -> None:
    ctx, page, watch = open_page(browser)
    try:
        page.goto(live_server)
        page.evaluate("localStorage.clear()")
        page.locator("#within summary").click()
        page.locator("#f-until").fill("2023-11-08")
        expect(page.locator("#within-summary")).to_have_text("(filter on)")
        ask(page, AZAL)
        answer = last_answer(page)
        expect(answer).to_have_class(re.compile(r"\babstained\b"))
        expect(answer.locator(".within-note")).to_have_text("Within: dated up to 2023-11-08")
        expect(answer.locator(".answer-note")).to_contain_text("matching the filter")
        expect(answer.locator(".doc-id").first).not_to_have_text(AZAL_DOC)

        page.locator("#within-clear").click()
        expect(page.locator("#within-summary")).to_have_text("all documents")
        page.locator("#f-doc").fill(AZAL_DOC)
        ask(page, AZAL)
        expect(page.locator(".exchange")).to_have_count(2)
        answer = last_answer(page)
        expect(answer).to_have_class(re.compile(r"\banswered\b"))
        expect(answer.locator(".within-note")).to_have_text(f"Within: document {AZAL_DOC}")
        for doc in answer.locator(".doc-id").all_text_contents():
            assert doc == AZAL_DOC
        # The first answer keeps the filter it was asked with.
        expect(page.locator(".exchange").first.locator(".within-note")).to_have_text("Within: dated up to 2023-11-08")
        watch.assert_clean()
    finally:
        page.evaluate("localStorage.clear()")
        ctx.close()
