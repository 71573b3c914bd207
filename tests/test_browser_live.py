"""Adding and deleting documents in a real browser: `qa serve` over a copy of the demo index (it
changes), Debian's Chromium driven by Playwright, as in tests/test_browser.py.

The user's path: the chat's + button, pick a .md file, ask what only it says and get the cited
answer; the Documents page, delete it, ask again and be told the documents don't say. Also: a
file the server refuses says why in the chat; the Documents page works without JavaScript; the
document view greys out page furniture."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

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

NOTES = (
    "# Lighthouse log\n\n"
    "Skerryvore, 4 June 2024: The lighthouse keeper of Skerryvore, Ewan MacLeod, logged a force nine gale. "
    "The lamp stayed lit all night.\n"
)
QUESTION = "Who is the lighthouse keeper of Skerryvore?"


@pytest.fixture(scope="module")
def writable_server(demo_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from eval.server import start_server, stop_server

    root = tmp_path_factory.mktemp("live-browser")
    shutil.copytree(demo_index, root / "index")
    server = start_server(root / "index", log=root / "serve.log")
    try:
        yield server.url
    finally:
        stop_server(server)


def test_upload_ask_delete_ask_again(browser, writable_server: str) -> None:
    ctx, page, watch = open_page(browser)
    try:
        page.goto(writable_server)
        ask(page, QUESTION)
        expect(last_answer(page)).to_have_class(re.compile(r"\babstained\b"))  # not yet

        button = page.locator("#upload")
        expect(button).to_be_visible()
        with page.expect_file_chooser() as chooser:
            button.click()
        chooser.value.set_files({"name": "lighthouse.md", "mimeType": "text/markdown", "buffer": NOTES.encode()})
        status = page.locator("#upload-status")
        expect(status).to_contain_text("Added lighthouse.md")
        expect(status).to_have_class(re.compile(r"\bok\b"))

        ask(page, QUESTION)
        answer = last_answer(page)
        expect(answer).to_have_class(re.compile(r"\banswered\b"))
        expect(answer.locator(".answer-phrase")).to_have_text("Ewan MacLeod")
        first = answer.locator(".cite-item").first
        expect(first.locator(".doc-id")).to_have_text("lighthouse.md")
        expect(first.locator(".cite-link")).to_have_text("Lighthouse log")
        expect(first.locator("blockquote.sentence")).to_contain_text("Ewan MacLeod")
        first.locator("a.num").click()  # its citation opens the uploaded document
        expect(page.locator("mark#cite")).to_contain_text("lighthouse keeper of Skerryvore")
        page.go_back()

        page.locator("#documents-link").click()
        expect(page).to_have_url(re.compile(r"/documents$"))
        row = page.locator("tr", has=page.locator(".doc-id", has_text="lighthouse.md"))
        expect(row.locator(".badge")).to_have_text("uploaded")
        row.locator("button.delete").click()
        expect(page.locator("#flash")).to_have_text("Deleted lighthouse.md.")
        expect(page.locator(".doc-list .doc-id", has_text="lighthouse.md")).to_have_count(0)
        expect(page.locator(".doc-list tbody tr")).to_have_count(5)

        page.locator("#back").click()
        ask(page, QUESTION)
        refusal = last_answer(page)
        expect(refusal).to_have_class(re.compile(r"\babstained\b"))
        expect(refusal.locator(".verdict")).to_have_text("The documents don't say.")
        expect(refusal.locator(".doc-id", has_text="lighthouse.md")).to_have_count(0)
        watch.assert_clean()
    finally:
        ctx.close()


def test_a_refused_file_says_why_in_the_chat(browser, writable_server: str) -> None:
    ctx, page, watch = open_page(browser)
    try:
        page.goto(writable_server)
        with page.expect_file_chooser() as chooser:
            page.locator("#upload").click()
        chooser.value.set_files({"name": "photo.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n"})
        status = page.locator("#upload-status")
        expect(status).to_contain_text("Could not add photo.png: photo.png: unsupported file type .png")
        expect(status).to_have_class(re.compile(r"\berror\b"))
        with page.expect_file_chooser() as chooser:
            page.locator("#upload").click()
        chooser.value.set_files({"name": "empty.txt", "mimeType": "text/plain", "buffer": b""})
        expect(status).to_contain_text("empty file")
        # Chromium logs every 4xx response on the console; nothing else may go wrong.
        watch.errors = [e for e in watch.errors if not re.search(r"Failed to load resource.*status of 4\d\d", e)]
        watch.assert_clean()
    finally:
        ctx.close()


def test_the_documents_page_works_without_javascript(browser, writable_server: str) -> None:
    ctx, page, _ = open_page(browser, java_script_enabled=False)
    try:
        page.goto(writable_server)
        expect(page.locator("#upload")).to_be_hidden()  # the + button needs JavaScript; the page says where to go
        page.locator("#documents-link").click()
        page.locator("#upload-input").set_input_files(
            {"name": "ferry.txt", "mimeType": "text/plain",
             "buffer": b"Lundy ferry\n\nThe ferry to Lundy leaves Bideford at nine, captained by Ruth Penhallow.\n"})
        page.locator("#upload-submit").click()
        expect(page.locator("#flash")).to_have_text("Added ferry.txt.")
        expect(page.locator(".doc-list .doc-id", has_text="ferry.txt")).to_have_count(1)
        page.locator("#upload-input").set_input_files({"name": "bad.exe", "mimeType": "application/octet-stream",
                                                       "buffer": b"MZ"})
        page.locator("#upload-submit").click()
        expect(page.locator("#upload-error")).to_contain_text("unsupported file type .exe")
        row = page.locator("tr", has=page.locator(".doc-id", has_text="ferry.txt"))
        row.locator("button.delete").click()
        expect(page.locator("#flash")).to_have_text("Deleted ferry.txt.")
    finally:
        ctx.close()


def test_the_document_view_greys_out_page_furniture(browser, writable_server: str) -> None:
    ctx, page, watch = open_page(browser)
    try:
        page.goto(f"{writable_server}/doc/002_81bb45f291cb2277.txt")
        furniture = page.locator("#text span.furniture")
        expect(furniture.first).to_be_visible()
        assert furniture.count() >= 1
        grey = furniture.first.evaluate("e => getComputedStyle(e).opacity")
        assert float(grey) < 1.0
        expect(page.locator(".legend .furniture")).to_have_text("greyed")
        watch.assert_clean()
    finally:
        ctx.close()

