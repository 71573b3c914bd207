"""The chat in a real browser: `qa serve` as a subprocess, Debian's Chromium driven by Playwright.

What a user does: asks, sees "searching", reads the cited answer, opens the citation and finds the
quoted sentence highlighted in its document; asks something the documents don't cover and is told
so. Also: the conversation survives a reload, example questions work, a question that is markup
stays text, a phone-width screen needs no sideways scrolling, and the form works without JavaScript.

The screenshot of an answered chat is saved to tests/artifacts/chat-answered.png.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.makers import CHROMIUM, TIMEOUT_MS, Watch, ask, last_answer, open_page

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
AZAL = "when were direct AZAL flights announced"
FIFA = "Who won the 2022 FIFA World Cup?"
XSS = "<script>alert(1)</script>"
FOLLOW_UP = "who welcomed that?"  # the AZAL document: "PM Kakar welcomed the announcement of direct flight operations …"
TWO_PARTS = "Who led each side at the political consultations?"  # both names in one sentence of 000_…

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not at /usr/bin/chromium "
                       "(`make test` installs it; by hand: apt-get install chromium)"),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (make install)")
expect = sync_api.expect
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture()
def desktop(browser):
    ctx, page, watch = open_page(browser)
    yield page, watch
    ctx.close()


def no_sideways_scroll(page) -> None:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"the page is {width}px wide in a {inner}px window"


# --- the user's path --------------------------------------------------------------------------
def test_ask_check_the_citation_then_an_abstention(desktop, live_server: str, capsys) -> None:
    page, watch = desktop
    held = []  # hold the first API call so the "searching" state can be seen, then let it through
    page.route("**/api/ask", lambda route: held.append(route))
    page.goto(live_server)
    expect(page.locator("#welcome")).to_be_visible()
    ask(page, AZAL)

    pending = page.locator(".msg.bot.pending")
    expect(pending).to_be_visible()
    expect(pending).to_contain_text("Searching")
    expect(page.locator("#send")).to_be_disabled()
    expect(page.locator(".exchange .msg.user").last).to_have_text(AZAL)
    for _ in range(TIMEOUT_MS // 20):  # the route handler runs when Playwright next hears from the browser
        if held:
            break
        page.wait_for_timeout(20)
    assert len(held) == 1, "the chat did not call POST /api/ask"
    held[0].continue_()
    page.unroute("**/api/ask")

    answer = last_answer(page)
    expect(answer).to_have_class(re.compile(r"\banswered\b"))
    expect(pending).to_have_count(0)
    expect(answer.locator(".answer-phrase")).to_contain_text("2023")
    expect(answer.locator(".conf")).to_contain_text("confidence")
    first = answer.locator(".cite-item").first
    expect(first.locator(".num")).to_have_text("[1]")
    expect(first.locator(".doc-id")).to_have_text(re.compile(r"^003_"))
    expect(first.locator("time")).to_have_text("9 Nov 2023")
    cited = first.locator("blockquote.sentence").inner_text()
    assert "AZAL" in cited

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "chat-answered.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    with capsys.disabled():
        print(f"\nscreenshot of the answered chat: {shot}")

    # One click from the citation to its source, the quoted sentence highlighted and in view.
    first.locator("a.num").click()
    expect(page).to_have_url(re.compile(r"/doc/003_[0-9a-f]+\.txt\?start=\d+&end=\d+.*#cite$"))
    mark = page.locator("mark#cite")
    expect(mark).to_be_visible()
    expect(mark).to_have_class(re.compile(r"\bcite\b"))
    expect(mark).to_be_in_viewport()
    assert " ".join(page.locator("#text mark.cite").all_inner_texts()).split() == cited.split()

    # Back in the chat the conversation is still there; an out-of-corpus question is refused.
    page.go_back()
    expect(page.locator(".exchange")).to_have_count(1)
    ask(page, FIFA)
    expect(page.locator(".exchange")).to_have_count(2)
    refusal = last_answer(page)
    expect(refusal).to_have_class(re.compile(r"\babstained\b"))
    expect(refusal.locator(".verdict")).to_have_text("The documents don't say.")
    expect(refusal.locator(".sources.nearest .sources-label")).to_contain_text("not an answer")
    expect(refusal.locator(".answer-phrase")).to_have_count(0)
    watch.assert_clean()


def test_the_conversation_survives_a_reload(desktop, live_server: str) -> None:
    page, watch = desktop
    page.goto(live_server)
    ask(page, AZAL)
    expect(last_answer(page).locator(".answer-phrase")).to_contain_text("2023")
    ask(page, FIFA)
    expect(page.locator(".msg.bot.abstained")).to_have_count(1)

    page.reload()
    expect(page.locator(".exchange")).to_have_count(2)
    expect(page.locator(".exchange .msg.user")).to_have_text([AZAL, FIFA])
    expect(page.locator(".exchange").first.locator(".answer-phrase")).to_contain_text("2023")
    expect(page.locator("#welcome")).to_be_hidden()

    page.locator("#clear").click()  # "New chat" forgets it
    expect(page.locator(".exchange")).to_have_count(0)
    expect(page.locator("#welcome")).to_be_visible()
    page.reload()
    expect(page.locator(".exchange")).to_have_count(0)
    watch.assert_clean()


def asks_sent(page) -> list[dict]:
    """The bodies of the chat's POST /api/ask calls, in order (filled as the page sends them)."""
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(r.post_data_json)
            if r.method == "POST" and r.url.endswith("/api/ask") else None)
    return sent


def settled(page):
    """The last answer, once it is no longer pending."""
    answer = last_answer(page)
    expect(answer).not_to_have_class(re.compile(r"\bpending\b"))
    return answer


def test_a_follow_up_carries_the_turn_before(desktop, live_server: str) -> None:
    page, watch = desktop
    sent = asks_sent(page)
    page.goto(live_server)
    ask(page, AZAL)
    first = last_answer(page)
    expect(first.locator(".answer-phrase")).to_contain_text("2023")
    phrase = first.locator(".answer-phrase").inner_text()
    ask(page, FOLLOW_UP)
    expect(page.locator(".exchange")).to_have_count(2)
    follow = page.locator(".exchange").last
    # The user sees how the follow-up was read: with the question before it.
    expect(follow.locator(".read-as")).to_have_text(f"(read as: {AZAL} {FOLLOW_UP})")
    answer = settled(page)
    expect(answer).to_have_class(re.compile(r"\banswered\b"))
    cited = answer.locator(".cite-item").first
    expect(cited.locator(".doc-id")).to_have_text(re.compile(r"^003_"))
    said = answer.locator(".answer-phrase").inner_text()
    assert said and said != phrase and said in cited.locator("blockquote.sentence").inner_text()
    assert sent[0] == {"question": AZAL}
    assert sent[1]["question"] == FOLLOW_UP
    prev = sent[1]["previous"]
    assert prev["question"] == AZAL and prev["doc_id"].startswith("003_") and prev["answer"] == phrase

    page.reload()  # the reading is kept with the conversation
    expect(page.locator(".exchange")).to_have_count(2)
    expect(page.locator(".exchange").last.locator(".read-as")).to_have_text(f"(read as: {AZAL} {FOLLOW_UP})")
    expect(page.locator(".exchange").first.locator(".read-as")).to_have_count(0)

    # After an abstention, or in a new chat, there is no turn to follow up on.
    ask(page, FIFA)
    expect(settled(page)).to_have_class(re.compile(r"\babstained\b"))
    ask(page, FOLLOW_UP)
    settled(page)
    page.locator("#clear").click()
    ask(page, FOLLOW_UP)
    settled(page)
    assert [len(sent), "previous" in sent[-3], "previous" in sent[-2], "previous" in sent[-1]] == [5, True, False, False]
    expect(page.locator(".read-as")).to_have_count(0)
    watch.assert_clean()


def test_a_two_part_answer_highlights_both_parts(desktop, live_server: str) -> None:
    page, watch = desktop
    page.goto(live_server)
    with page.expect_response("**/api/ask") as resp:
        ask(page, TWO_PARTS)
    ans = resp.value.json()
    parts = ans.get("answers") or []
    assert len(parts) == 2, f"the engine no longer answers {TWO_PARTS!r} in two parts: {ans['answer']!r}"
    answer = settled(page)
    expect(answer.locator(".answer-phrase")).to_have_text(f"{parts[0]['text']} · {parts[1]['text']}")
    items = answer.locator(".cite-item")
    for i, c in enumerate(ans["citations"][:3]):
        mine = sorted((p["answer_start"], p["answer_end"]) for p in parts if p["citation"] == i)
        expect(items.nth(i).locator("mark.answer")).to_have_text([c["sentence"][a:b] for a, b in mine])
        expect(items.nth(i).locator("blockquote.sentence")).to_have_text(c["sentence"])
    expect(answer.locator("mark.answer")).to_have_count(2)
    watch.assert_clean()


def test_an_example_question_is_answered_on_click(desktop, live_server: str) -> None:
    page, watch = desktop
    page.goto(live_server)
    page.locator("a.example", has_text=AZAL).click()
    expect(page.locator(".exchange .msg.user")).to_have_text([AZAL])
    expect(last_answer(page).locator(".cite-item").first.locator(".doc-id")).to_have_text(re.compile(r"^003_"))
    assert page.url.rstrip("/") == live_server  # answered in place, no page load
    watch.assert_clean()


def test_a_question_made_of_markup_is_shown_as_text(desktop, live_server: str) -> None:
    page, watch = desktop
    page.goto(live_server)
    ask(page, XSS)
    expect(page.locator(".exchange .msg.user")).to_have_text([XSS])
    expect(last_answer(page)).not_to_have_class(re.compile(r"\bpending\b"))
    # The address form of a question is rendered by the server: the same, from the other path.
    page.goto(f"{live_server}/?q=%3Cimg%20src%3Dx%20onerror%3Dalert(2)%3E")
    expect(page.locator(".exchange .msg.user")).to_have_text([XSS, "<img src=x onerror=alert(2)>"])
    expect(page.locator("#log img")).to_have_count(0)
    assert page.locator("#log script").count() == 0
    watch.assert_clean()  # no alert() ran


def test_phone_width_needs_no_sideways_scrolling(browser, live_server: str) -> None:
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                              device_scale_factor=2)
    ctx.set_default_timeout(TIMEOUT_MS)
    page = ctx.new_page()
    watch = Watch(page)
    try:
        page.goto(live_server)
        no_sideways_scroll(page)
        ask(page, AZAL)
        answer = last_answer(page)
        expect(answer.locator(".answer-phrase")).to_contain_text("2023")
        no_sideways_scroll(page)
        box = page.locator("#ask").bounding_box()
        assert box and box["y"] + box["height"] <= 844 and box["width"] <= 390, box  # the question box stays on screen
        answer.locator(".cite-item").first.locator("a.num").tap()
        expect(page.locator("mark#cite")).to_be_in_viewport()
        no_sideways_scroll(page)
        watch.assert_clean()
    finally:
        ctx.close()


def test_the_form_works_without_javascript(browser, live_server: str) -> None:
    ctx, page, watch = open_page(browser, java_script_enabled=False)
    try:
        page.goto(live_server)
        page.locator("#question").fill(AZAL)
        page.locator("#send").click()
        expect(page).to_have_url(re.compile(r"\?q=when\+were\+direct\+AZAL"))
        answer = page.locator(".msg.bot.answered")
        expect(answer.locator(".answer-phrase")).to_contain_text("2023")
        page.reload()  # a reload shows the answer again, with no "resend the form?" prompt
        expect(answer.locator(".answer-phrase")).to_contain_text("2023")
        answer.locator(".cite-item").first.locator("a.num").click()
        expect(page.locator("mark#cite")).to_be_in_viewport()

        page.goto(live_server)
        page.locator("#question").fill(FIFA)
        page.locator("#send").click()
        expect(page.locator(".msg.bot.abstained .verdict")).to_have_text("The documents don't say.")
        watch.assert_clean()
    finally:
        ctx.close()


def test_a_path_traversing_document_link_gets_an_error_page(desktop, live_server: str) -> None:
    page, _ = desktop
    resp = page.goto(f"{live_server}/doc/..%2F..%2Fetc%2Fpasswd")
    assert resp is not None and resp.status == 400
    expect(page.locator("#error-detail")).to_contain_text("invalid document id")
    expect(page.locator("body")).not_to_contain_text("root:")
