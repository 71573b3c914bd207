"""The HTML pages through HTTP: the chat without JavaScript, the document view, error pages,
escaping and what the pages may load (nothing from elsewhere)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from qa.view import confidence_level
from web.app import create_app
from web.views import HERE

AZAL = "when were direct AZAL flights announced"
AZAL_DOC = "003_fdf2c5db0e68fe77.txt"


@pytest.fixture(scope="module")
def client(demo_index: Path, engine) -> TestClient:
    return TestClient(create_app(demo_index, engine=engine))


def test_chat_page_has_the_form_examples_and_local_assets(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<form class="ask" id="ask" method="post" action="/"' in page
    assert 'name="question"' in page and 'maxlength="1000"' in page
    assert f'data-q="{AZAL}"' in page and f'href="/?q={quote(AZAL)}"' in page
    assert '<script src="/static/chat.js" defer></script>' in page
    assert "script-src 'self'" in r.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/", f"/doc/{AZAL_DOC}", "/docs", "/nope"])
def test_pages_load_nothing_from_elsewhere(client: TestClient, path: str) -> None:
    page = client.get(path).text
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attr.startswith(("/", "#")), f"{path} links {attr!r} off the server"
    for ref in re.findall(r'(?:src|href)="(/static/[^"?#]*)', page):
        assert client.get(ref).status_code == 200, ref


def test_static_files_fetch_nothing_from_elsewhere() -> None:
    for f in (HERE / "static").iterdir():
        text = f.read_text(errors="replace").replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not a fetch
        assert not re.search(r"https?://|@import|url\((?!['\"]?data:)", text), f"{f.name} reaches off the server"


def test_no_javascript_post_redirects_to_the_answer_page(client: TestClient) -> None:
    r = client.post("/", data={"question": AZAL}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/?q=when+were+direct+AZAL+flights+announced"
    page = client.get(r.headers["location"]).text
    assert f'<div class="msg user"><p>{AZAL}</p></div>' in page
    assert '<span class="answer-phrase">November 9, 2023</span>' in page
    # The cue names the level of the answer's calibrated confidence, whatever it is.
    conf = client.post("/api/ask", json={"question": AZAL}).json()["confidence"]
    assert f"{confidence_level(conf)} confidence" in page and "9 Nov 2023" in page
    link = re.search(r'<a class="num" href="([^"]+)"', page).group(1)
    assert link.startswith(f"/doc/{AZAL_DOC}?start=") and link.endswith("#cite")
    doc = client.get(html.unescape(link)).text
    assert '<mark class="cite" id="cite" tabindex="-1">PM Kakar welcomed the announcement' in doc


def test_no_javascript_abstention_reads_as_one(client: TestClient) -> None:
    page = client.get("/", params={"q": "Who won the 2022 FIFA World Cup?"}).text
    assert '<p class="verdict abstain">The documents don\'t say.</p>' in page
    assert "Nearest passages — not an answer" in page and "answer-phrase" not in page


@pytest.mark.parametrize("question", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>',
                                      "</script><script>alert(1)</script>"])
def test_questions_are_escaped(client: TestClient, question: str) -> None:
    page = client.get("/", params={"q": question}).text
    shown = re.search(r'<div class="msg user"><p>(.*?)</p></div>', page, re.S).group(1)
    assert "<" not in shown and html.unescape(shown) == question
    assert "<script>alert" not in page and "<img" not in page
    # The exchange handed to chat.js sits in a JSON script block that cannot be closed early.
    block = re.search(r'<script type="application/json" id="initial">(.*?)</script>', page, re.S).group(1)
    assert "<" not in block


def test_a_bad_question_is_handed_back_in_the_box(client: TestClient) -> None:
    long = "where " * 200
    page = client.get("/", params={"q": long}).text
    assert "the limit is 1000" in page
    assert re.search(r"<textarea[^>]*>where where ", page), "the question is lost"
    page = client.get("/", params={"q": "   "}).text
    assert "The question is empty." in page


def test_document_view_highlights_the_cited_sentence(client: TestClient, engine) -> None:
    text = engine.index.docs[AZAL_DOC].text
    start = text.index("PM Kakar welcomed")
    end = text.index("tourism.", start) + len("tourism.")
    a0 = text.index("direct flight", start)
    r = client.get(f"/doc/{AZAL_DOC}", params={"start": start, "end": end, "astart": a0, "aend": a0 + 13})
    assert r.status_code == 200
    page = r.text
    assert '<script src="/static/doc.js" defer></script>' in page
    assert f'<mark class="cite" id="cite" tabindex="-1">{html.escape(text[start:a0])}</mark>' in page
    assert '<mark class="cite answer">direct flight</mark>' in page
    article = re.search(r'<article class="doc-text" id="text">(.*?)</article>', page, re.S).group(1)
    assert html.unescape(re.sub(r"<[^>]+>", "", article)) == text  # the whole document, nothing added


def test_document_view_says_when_the_offsets_are_outside(client: TestClient) -> None:
    page = client.get(f"/doc/{AZAL_DOC}", params={"start": 10, "end": 10**6}).text
    assert "is not inside this document" in page and 'id="cite"' not in page


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/doc/nope.txt", 404, "no document"),
        (f"/doc/{AZAL_DOC}?start=abc&end=3", 422, "start"),
        (f"/doc/{AZAL_DOC}?start=-1&end=3", 422, "start"),
        ("/doc/..%2F..%2Fetc%2Fpasswd", 400, "invalid document id"),
        ("/doc/%252e%252e%252fetc%252fpasswd", 400, "invalid document id"),
        ("/no/such/page", 404, "Not Found"),
    ],
)
def test_error_pages_are_html_with_one_line(client: TestClient, path: str, status: int, needle: str) -> None:
    r = client.get(path)
    assert r.status_code == status and r.headers["content-type"].startswith("text/html")
    detail = html.unescape(re.search(r'<p class="note" id="error-detail">(.*?)</p>', r.text, re.S).group(1))
    assert needle in detail and "\n" not in detail


def test_pages_without_an_index_say_how_to_build_one(tmp_path: Path) -> None:
    c = TestClient(create_app(tmp_path / "missing"))
    page = c.get("/").text
    assert 'id="no-index"' in page and f"qa index corpus --index {tmp_path / 'missing'}" in page
    assert re.search(r"<textarea[^>]*disabled", page)
    r = c.get("/", params={"q": AZAL})
    assert r.status_code == 200 and "There is no index" in r.text
    assert c.get(f"/doc/{AZAL_DOC}").status_code == 503


def test_favicon_and_api_docs(client: TestClient) -> None:
    assert client.get("/favicon.ico", follow_redirects=False).headers["location"] == "/static/favicon.svg"
    docs = client.get("/docs").text
    assert "POST" in docs and "/api/ask" in docs and "1000" in docs


# --- two-part answers and follow-ups without JavaScript ---------------------------------------
TWO_SENTENCES = "Which two Pakistani prime ministers are reported meeting President Ilham Aliyev?"
ONE_SENTENCE = "Who led each side at the political consultations?"


def blockquotes(page: str) -> list[str]:
    return re.findall(r'<blockquote class="sentence">(.*?)</blockquote>', page, re.S)


@pytest.mark.parametrize("question", [TWO_SENTENCES, ONE_SENTENCE])
def test_a_two_part_answer_shows_both_parts_each_highlighted_in_its_sentence(client: TestClient, engine,
                                                                              question: str) -> None:
    ans = engine.ask(question).to_dict()
    parts = ans.get("answers") or []
    assert len(parts) == 2, f"the engine no longer answers {question!r} in two parts: {ans['answer']!r}"
    page = client.get("/", params={"q": question}).text
    shown = re.search(r'<span class="answer-phrase">(.*?)</span>', page).group(1)
    assert html.unescape(shown) == f"{parts[0]['text']} · {parts[1]['text']}"
    quotes = blockquotes(page)
    for i, c in enumerate(ans["citations"][:3]):
        mine = sorted((p["answer_start"], p["answer_end"]) for p in parts if p["citation"] == i)
        marked = [html.unescape(m) for m in re.findall(r'<mark class="answer">(.*?)</mark>', quotes[i])]
        assert marked == [c["sentence"][a:b] for a, b in mine], f"citation {i + 1}"
        assert html.unescape(re.sub(r"<[^>]+>", "", quotes[i])) == c["sentence"]  # nothing added or lost
    # Both parts are marked, once each: in two sentences, or both in one.
    assert sum(q.count('<mark class="answer">') for q in quotes) == 2
    if question == ONE_SENTENCE:
        assert {p["citation"] for p in parts} == {0} and quotes[0].count("<mark") == 2


def test_answer_marks_skip_what_does_not_fit() -> None:
    from dataclasses import replace

    from qa.types import Answer, AnswerPart, Citation
    from qa.view import answer_marks, answer_phrase, answer_view
    from web.views import marked_parts

    s = "Alpha met Beta in Gamma."
    cits = (Citation("a.txt", "A", s, 0, len(s), 0.9, answer_start=0, answer_end=5), Citation("b.txt", "B", "Delta.", 0, 6, 0.5))
    ans = Answer("who met", "Alpha", False, 0.7, cits,
                 answers=(AnswerPart("Beta", 0, 10, 14), AnswerPart("Alpha", 0, 0, 5),
                          AnswerPart("Alp", 0, 2, 8),  # overlaps: dropped
                          AnswerPart("x", 5, 0, 1),  # no such citation
                          AnswerPart("y", 1, 3, 99)))  # outside the sentence
    assert answer_marks(ans) == (((0, 5), (10, 14)), ())
    assert marked_parts(s, [(0, 5), (10, 14)]) == [("Alpha", True), (" met ", False), ("Beta", True), (" in Gamma.", False)]
    assert answer_phrase(replace(ans, answers=ans.answers[:2])) == "Beta · Alpha"
    assert answer_marks(replace(ans, answers=None)) == (((0, 5),), ())  # one part: the answer span
    assert answer_marks(replace(ans, answers=(AnswerPart("x", 5, 0, 1), AnswerPart("y", 1, 3, 99)))) == (((0, 5),), ())
    assert answer_marks(replace(ans, abstained=True)) == ((), ())
    assert marked_parts(s, []) == [(s, False)] and marked_parts("", []) == [("", False)]
    # The cue's thresholds, and the view as the API sends it.
    assert [confidence_level(c) for c in (0.85, 0.8499, 0.65, 0.6499, 0.0)] == ["high", "medium", "medium", "low", "low"]
    assert answer_view(replace(ans, answers=ans.answers[:2])).to_dict() == {
        "level": "medium", "phrase": "Beta · Alpha", "marks": [[[0, 5], [10, 14]], []]}


def test_a_follow_up_works_without_javascript(client: TestClient) -> None:
    page = client.get("/", params={"q": AZAL}).text
    hidden = dict(re.findall(r'<input type="hidden" name="(after\w*)" value="([^"]*)">', page))
    assert {k: html.unescape(v) for k, v in hidden.items()} == {
        "after": AZAL, "after_doc": AZAL_DOC, "after_answer": "November 9, 2023"}
    r = client.post("/", data={"question": "who welcomed that?", **hidden}, follow_redirects=False)
    assert r.status_code == 303 and "after=" in r.headers["location"]
    page = client.get(r.headers["location"]).text
    assert '<div class="msg user"><p>who welcomed that?</p></div>' in page
    read_as = re.search(r'<p class="read-as">\(read as: (.*?)\)</p>', page).group(1)
    assert html.unescape(read_as) == f"{AZAL} who welcomed that?"
    assert "Kakar" in re.search(r'<span class="answer-phrase">(.*?)</span>', page).group(1)
    # After an abstention there is no turn to follow up on.
    page = client.get("/", params={"q": "Who won the 2022 FIFA World Cup?"}).text
    assert 'type="hidden"' not in page and "read-as" not in page


def test_a_bad_previous_turn_in_the_address_is_an_error_page(client: TestClient) -> None:
    r = client.get("/", params={"q": "when was that?", "after": "x" * 1001})
    assert r.status_code == 422 and "after" in r.text
