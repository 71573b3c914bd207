"""Properties of the HTML and Markdown loaders, for any input: a file is either loaded or refused
with a DocumentError; a loaded one's offsets (sentences, passages, date, furniture) point at its
stored text; HTML text is extracted, never invented; Markdown text is the file, unchanged."""

from __future__ import annotations

import html
import re
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.build import prepare_document
from index.documents import Document, DocumentError, find_dates, load_bytes

# Text as pages carry it: any printable character, some markup-significant ones on purpose.
CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff") | st.sampled_from(
    list("<>&\"' \n\t.!?…:;-—")
)
WORDS = st.sampled_from(["&amp;", "&lt;", "&nbsp;", "&#8212;", "Baku", "pipeline", "The minister", "said", "on", "13 April 2023", "Dr.", "U.S.",
                         "“quoted”", "18:29 25.04.2024", "Home", "café", "2023-11-09", "é", "a.m."])
TEXT = st.lists(WORDS | st.text(CHARS, max_size=12), max_size=12).map(" ".join)

BLOCK_TAGS = ["p", "div", "h1", "h2", "li", "td", "blockquote", "pre", "nav", "footer", "aside", "header", "article",
              "main", "section"]
INLINE_TAGS = ["span", "a", "b", "em", "i", "strong"]


def _element(children: st.SearchStrategy[list[str]]) -> st.SearchStrategy[str]:
    def wrap(tag: str, kids: list[str]) -> str:
        return f"<{tag}>" + "".join(kids) + f"</{tag}>"

    return st.builds(wrap, st.sampled_from(BLOCK_TAGS + INLINE_TAGS), children)


# Escaped text, and raw text with a stray "&" (a raw "<" followed by a letter opens a tag: that is
# the "anything at all" pages' business below).
LEAF = TEXT.map(html.escape) | TEXT.map(lambda t: t.replace("<", "&lt;"))
NODES = st.recursive(LEAF, lambda kids: _element(st.lists(kids, max_size=4)), max_leaves=25)


@st.composite
def pages(draw: st.DrawFn) -> tuple[str, bool]:
    """(page, well_formed): a page, a bare fragment, or any text at all (not well formed)."""
    title = draw(TEXT)
    meta = draw(st.sampled_from(["", '<meta property="article:published_time" content="2022-07-01T08:00:00Z">',
                                 '<meta name="date" content="not a date">', '<meta charset="utf-8">']))
    body = "".join(draw(st.lists(NODES, max_size=8)))
    noise = draw(st.sampled_from(["", "<script>var a = '<p>x</p>';</script>", "<style>p{}</style>", "<!-- c -->",
                                  "<br>", "</p></div>", "<table><tr><td>1</td><td>2</td></tr></table>"]))
    shape = draw(st.integers(0, 2))
    if shape == 0:
        head = f"<title>{html.escape(title)}</title>{meta}"
        return f"<!DOCTYPE html><html><head>{head}</head><body>{body}{noise}</body></html>", True
    if shape == 1:
        return body + noise, True  # a bare fragment
    return draw(st.text(CHARS, max_size=300)), False


def check_document(doc: Document) -> None:
    text = doc.text
    assert text.strip()
    assert "\n" not in doc.title
    prep = prepare_document(doc)
    prev = 0
    for s, e in prep.sents:
        sent = text[s:e]
        assert sent and sent == sent.strip()
        assert s >= prev
        prev = e
    for first, last, s, e in prep.passages:
        assert 0 <= first <= last < len(prep.sents)
        assert (s, e) == (prep.sents[first][0], prep.sents[last][1])
    if doc.date is not None and doc.date.start is not None:
        assert [d.iso for d in find_dates(text, doc.date.start, doc.date.end)] == [doc.date.iso]
    last_end = -1
    for a, b in doc.furniture:
        assert last_end < a < b <= len(text) or (a == 0 < b and last_end == -1)
        last_end = b
    assert list(doc.page_starts) == sorted(doc.page_starts)


def _words(s: str) -> list[str]:
    return re.findall(r"\w+", unicodedata.normalize("NFC", s))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages(), st.sampled_from(["utf-8", "utf-16", "cp1252"]))
def test_html_loader_offsets_and_no_invented_text(page_and_kind: tuple[str, bool], encoding: str) -> None:
    page, well_formed = page_and_kind
    try:
        page.encode(encoding)
    except UnicodeEncodeError:
        encoding = "utf-8"
    if encoding == "cp1252":  # a legacy page says so (undeclared, a short one is anyone's guess)
        page = '<meta charset="windows-1252">' + page
    data = page.encode(encoding)
    try:
        doc = load_bytes(data, "page.html")
    except DocumentError as e:
        assert str(e) and "\n" not in str(e)
        return
    check_document(doc)
    if not well_formed:
        return
    # Every word of the stored text comes from the page. Where the extractor drops an element it
    # can join the words on either side ("Baku" + "000" → "Baku000"), so a word may also be the end
    # of one page word, any whole page words, then the start of another.
    raw = data.decode(encoding, "replace")
    tokens = set(_words(html.unescape(re.sub(r"<[^>]*>", " ", raw)))) | set(_words(html.unescape(raw)))
    tokens |= set(_words(html.unescape(html.unescape(raw))))
    for w in _words(doc.text):
        assert _from_page(w, tokens), w


def _from_page(w: str, tokens: set[str]) -> bool:
    if any(w in t for t in tokens):
        return True
    suffixes = {t[i:] for t in tokens for i in range(len(t))}
    prefixes = {t[:i] for t in tokens for i in range(1, len(t) + 1)}
    # reach[i]: w[:i] is a suffix of a page word followed by whole page words.
    reach = [False] * (len(w) + 1)
    for i in range(1, len(w) + 1):
        reach[i] = w[:i] in suffixes or any(reach[j] and w[j:i] in tokens for j in range(1, i))
    return any(reach[j] and w[j:] in prefixes for j in range(1, len(w)))


MD_LINES = st.sampled_from([
    "# Pipeline reaches Gwadar", "## Background", "Quetta, 2 May 2022 (APP): the pipeline reached Gwadar.",
    "- oil", "* gas", "1. first", "> a quote. Another sentence!", "```", "code = 1", "**bold** and _italic_ text.",
    "[a link](http://example.com/x.html) in a sentence.", "", "   ", "---", "18:29 25.04.2024", "Home",
    "— Name (@handle) November 9, 2023", "Dr. Khan met U.S. officials at 5 p.m. today. Then he left.",
]) | st.text(CHARS, max_size=80)


@settings(max_examples=300, deadline=None)
@given(st.lists(MD_LINES, max_size=30), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_markdown_loader_keeps_the_file_and_its_offsets(lines: list[str], eol: str, bom: bool) -> None:
    text = eol.join(lines)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    try:
        doc = load_bytes(data, "notes/page.md")
    except DocumentError as e:
        assert str(e) and "\n" not in str(e)
        assert not text.strip() or any(unicodedata.category(c) == "Cc" for c in text)
        return
    assert doc.text == text  # stored unchanged: a citation can be checked against the file
    check_document(doc)
    assert doc.title == "" or doc.title in text


def test_the_no_invention_check_can_fail() -> None:
    tokens = {"Baku", "000", "minister"}
    assert _from_page("Baku000", tokens) and _from_page("ku00", tokens) and _from_page("aku000minis", tokens)
    assert not _from_page("Home", tokens) and not _from_page("BakuHome", tokens)
