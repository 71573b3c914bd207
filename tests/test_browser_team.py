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


# --- keys -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed_server(demo_index, tmp_path_factory):
    import shutil

    from eval.server import start_server, stop_server
    from tests.conftest import run_qa

    root = tmp_path_factory.mktemp("keyed-browser")
    shutil.copytree(demo_index, root / "index")
    keys = root / "team.keys"
    made = {}
    for name, scope in (("reader", "read"), ("editor", "write")):
        r = run_qa("keys", "add", "--keys", str(keys), "--name", name, "--scope", scope)
        assert r.returncode == 0, r.stderr
        made[scope] = r.stdout.splitlines()[-1]
    server = start_server(root / "index", log=root / "serve.log", extra=["--keys", str(keys)])
    try:
        yield server.url, made, root / "index"
    finally:
        stop_server(server)


def test_the_chat_asks_for_a_key_once_per_browser_session(browser, keyed_server) -> None:
    url, made, _ = keyed_server
    ctx, page, watch = open_page(browser)
    try:
        page.goto(url)
        form = page.locator("#key-form")
        expect(form).to_be_visible()
        page.locator("#key-input").fill("cqk_not-a-key")
        page.locator("#key-submit").click()
        expect(page.locator("#key-error")).to_have_text("That key is not valid; check it and try again.")
        page.locator("#key-input").fill(made["read"])
        page.locator("#key-submit").click()
        expect(form).to_be_hidden()
        expect(page.locator("#signed-in")).to_have_text("reader (read)")
        expect(page.locator("#upload")).to_be_hidden()  # a read key cannot upload: no + button
        assert page.evaluate("sessionStorage.getItem('citeqa.key')") == made["read"]
        assert page.evaluate("document.cookie") == ""  # the pages' cookie is HttpOnly

        ask(page, AZAL)
        answer = last_answer(page)
        expect(answer).to_have_class(re.compile(r"\banswered\b"))
        expect(answer.locator(".answer-phrase")).to_contain_text("2023")
        # A citation opens its document: the page takes the session cookie set with the key.
        answer.locator(".cite-link").first.click()
        expect(page.locator("mark.cite").first).to_be_visible()
        page.go_back()
        # Same session: not asked again.
        page.reload()
        expect(page.locator("#signed-in")).to_have_text("reader (read)")
        expect(page.locator("#key-form")).to_be_hidden()
        watch.errors = [e for e in watch.errors if "401" not in e]  # the wrong key's refused call
        watch.assert_clean()
    finally:
        page.evaluate("localStorage.clear()")
        ctx.close()
    # A new browser session asks again.
    ctx, page, _ = open_page(browser)
    try:
        page.goto(url)
        expect(page.locator("#key-form")).to_be_visible()
        page.locator("#key-input").fill(made["write"])
        page.locator("#key-input").press("Enter")
        expect(page.locator("#signed-in")).to_have_text("editor (write)")
        expect(page.locator("#upload")).to_be_visible()
    finally:
        ctx.close()


# --- feedback ---------------------------------------------------------------------------------------
def _sign_in_as_reader(page, url: str, made: dict) -> None:
    page.goto(url)
    page.locator("#key-input").fill(made["read"])
    page.locator("#key-input").press("Enter")
    expect(page.locator("#signed-in")).to_have_text("reader (read)")


def test_a_wrong_click_is_recorded_exported_and_scored(browser, keyed_server, tmp_path) -> None:
    import json

    from tests.conftest import run_qa

    url, made, index = keyed_server
    ctx, page, watch = open_page(browser)
    try:
        _sign_in_as_reader(page, url, made)
        page.evaluate("localStorage.clear()")
        ask(page, AZAL)
        exchange = page.locator(".exchange").last
        expect(exchange.locator(".msg.bot")).to_have_class(re.compile(r"\banswered\b"))
        second = exchange.locator(".cite-item").nth(1).locator(".sentence").inner_text()
        exchange.locator(".feedback-wrong").click()
        chooser = exchange.locator(".feedback-choose")
        expect(chooser.locator("legend")).to_have_text("Which sentence answers it?")
        expect(chooser.locator(".feedback-none")).to_contain_text("The documents don't answer it")
        chooser.locator(".feedback-option").nth(1).click()
        chooser.locator(".feedback-send").click()
        expect(exchange.locator(".feedback-done")).to_have_text("Thanks — marked wrong, with the sentence that answers.")
        page.reload()  # the verdict is kept with the conversation
        expect(page.locator(".exchange").last.locator(".feedback-done")).to_have_text(
            "Thanks — marked wrong, with the sentence that answers.")
        watch.assert_clean()
    finally:
        page.evaluate("localStorage.clear()")
        ctx.close()

    gold = tmp_path / "gold.jsonl"
    r = run_qa("feedback", "export", "--index", str(index), "--out", str(gold))
    assert r.returncode == 0, r.stderr
    items = [json.loads(x) for x in gold.read_text().splitlines()]
    mine = [i for i in items if i["question"] == AZAL]
    assert len(mine) == 1 and mine[0]["evidence"] == [second] and mine[0]["answerable"]
    r = run_qa("eval", "--gold", str(gold), "--index", str(index), "--out", str(tmp_path / "rep"),
               "--methods", "citeqa", "--no-plots", "--no-progress")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text())["gold"]
    assert report["warnings"] == [] and report["methods"]["citeqa"]["questions"] == len(items)


def test_a_wrong_answer_corrected_in_the_document_view(browser, keyed_server) -> None:
    import json

    url, made, index = keyed_server
    ctx, page, watch = open_page(browser)
    try:
        _sign_in_as_reader(page, url, made)
        page.evaluate("localStorage.clear()")
        question = "who welcomed the announcement of direct flights?"
        ask(page, question)
        exchange = page.locator(".exchange").last
        expect(exchange.locator(".msg.bot")).to_have_class(re.compile(r"\b(answered|abstained)\b"))
        exchange.locator(".feedback-wrong").click()
        link = exchange.locator(".feedback-pick").first
        doc_id = exchange.locator(".cite-item").first.locator(".doc-id").inner_text()
        link.click()
        banner = page.locator("#pick-banner")
        expect(banner).to_have_text(f"Which sentence answers “{question}”? Click it.")
        target = page.locator(".pick").nth(3)
        start, end = int(target.get_attribute("data-start")), int(target.get_attribute("data-end"))
        sentence = target.inner_text()
        target.click()
        expect(banner).to_contain_text("Thanks — recorded: this sentence answers it.")
        page.locator("#pick-back").click()
        expect(page.locator(".exchange").last.locator(".feedback-done")).to_have_text(
            "Thanks — marked wrong, with the sentence that answers.")
        watch.assert_clean()
    finally:
        page.evaluate("localStorage.clear()")
        ctx.close()
    lines = [json.loads(x) for x in (index / "feedback.jsonl").read_text().splitlines()]
    mine = [x for x in lines if x["question"] == question]
    assert mine and mine[-1]["correct"] == {"doc_id": doc_id, "start": start, "end": end, "sentence": sentence}
    assert mine[-1]["key"] == "reader" and mine[-1]["answer"]["citations"]


# --- a watched folder ----------------------------------------------------------------------------
def test_a_file_copied_into_the_watched_folder_is_answered_in_the_chat(browser, demo_index, tmp_path) -> None:
    import shutil
    import time

    from eval.server import start_server, stop_server
    from tests.conftest import CORPUS

    shutil.copytree(demo_index, tmp_path / "index")
    shutil.copytree(CORPUS, tmp_path / "corpus")
    server = start_server(tmp_path / "index", log=tmp_path / "serve.log", extra=["--watch", str(tmp_path / "corpus")])
    ctx, page, watch = open_page(browser)
    question = "Who manages the Skerryvore lighthouse?"
    try:
        page.goto(server.url)
        page.evaluate("localStorage.clear()")
        (tmp_path / "corpus" / "lighthouse.md").write_text(
            "# Lighthouse log\n\nSkerryvore, 4 June 2024: The Skerryvore lighthouse is managed by Ewan MacLeod.\n")
        t0 = time.monotonic()
        answer = None
        asked = 0

        def ask_once():
            nonlocal asked
            asked += 1
            ask(page, question)
            expect(page.locator(".exchange")).to_have_count(asked)
            done = last_answer(page)
            expect(done).to_have_class(re.compile(r"\b(answered|abstained)\b"))
            return done

        while time.monotonic() - t0 < 10:  # asked again, as a user would, until the file is in
            answer = ask_once()
            if "Ewan MacLeod" in (answer.locator(".answer-phrase").all_text_contents() or [""])[0]:
                break
            time.sleep(0.5)
        assert answer is not None
        expect(answer.locator(".answer-phrase")).to_contain_text("Ewan MacLeod")
        expect(answer.locator(".doc-id").first).to_have_text("lighthouse.md")

        (tmp_path / "corpus" / "lighthouse.md").unlink()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            answer = ask_once()
            if "lighthouse.md" not in answer.locator(".doc-id").all_text_contents():
                break
            time.sleep(0.5)
        assert "lighthouse.md" not in answer.locator(".doc-id").all_text_contents()
        watch.assert_clean()
    finally:
        page.evaluate("localStorage.clear()")
        ctx.close()
        stop_server(server)
