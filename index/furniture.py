"""Page furniture in extracted text: blocks that belong to the web page or the printed page, not the article.

A saved news page often ends with a "latest news" list (headline, headline again, timestamp, …),
starts with a menu ("Home / World / Sport / …"), and a PDF repeats its running header and footer
on every page. None of it is article text: a question about Kenyan floods must not be answered
from a headline in the sidebar of an interview about Pakistan. ``find_furniture`` returns the
character spans of such blocks; the build keeps them out of the answerable text (no sentence,
no vector, no BM25 entry) while the stored document text, and every offset into it, stays whole.

The rules are deliberately narrow, because dropping a real line of the article is worse than
keeping a stray headline:

- a *news list*: a run of short title-like lines (no sentence punctuation at the end) holding at
  least ``MIN_TIMESTAMPS`` timestamp lines that carry a date ("18:29 25.04.2024", "2 hours ago",
  "Apr 25, 2024") — a time alone ("09:30 Opening") is an agenda, which is article text;
- a *menu*: at least ``MIN_MENU_LINES`` consecutive lines (no blank line between) of one or two
  words each, without digits, list markers or sentence punctuation ("Home", "World", "Contact us");
- a line identical to a line inside one of those blocks (the same headline shown again above the
  list, as "related");
- running *page headers and footers* (``page_starts`` given): a short line that opens or closes
  at least half the pages (and at least three), with page numbers ignored when comparing.

A headline at the top, a dateline ("Interviews 14:54 27.05.2023") or a byline is never on its own
enough: each rule needs a run of several such lines.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

FURNITURE_VERSION = "furniture-1"

MIN_TIMESTAMPS = 3
MIN_MENU_LINES = 5
MAX_TITLE_WORDS = 25
MAX_TITLE_CHARS = 200

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_TIME = r"\d{1,2}:\d{2}(?::\d{2})?(?:\s?[AaPp]\.?[Mm]\.?)?"
# Dates with a year: "25.04.2024", "2024-04-25", "25 April 2024", "April 25, 2024".
_YEAR_DATE = (
    r"(?:\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}-\d{2}-\d{2}|\d{1,2}\s+" + _MONTH + r",?\s+\d{4}|"
    + _MONTH + r"\s+\d{1,2},?\s+\d{4})"
)
_SHORT_DATE = r"(?:" + _MONTH + r"\s+\d{1,2}|\d{1,2}\s+" + _MONTH + r"|\d{1,2}[./]\d{1,2})"
_RELATIVE = r"(?:\d+\s+(?:sec|second|min|minute|hour|hr|day|week|month|year)s?\s+ago|yesterday|today)"
_SEP = r"\s*[,|·-]?\s*"
# A line that is nothing but a timestamp: a date with its year (a time may go with it), a short
# date with a time, or a relative time. A time alone is not one: "09:30 Opening" is an agenda.
_TIMESTAMP_LINE = re.compile(
    rf"^(?:(?:{_TIME}){_SEP}(?:{_YEAR_DATE}|{_SHORT_DATE})|(?:{_YEAR_DATE})(?:{_SEP}{_TIME})?"
    rf"|(?:{_SHORT_DATE}){_SEP}{_TIME}|(?:{_RELATIVE})(?:{_SEP}{_TIME})?|(?:{_TIME}){_SEP}(?:{_RELATIVE}))$",
    re.I,
)
_LIST_MARKER = re.compile(r"^(?:[-*•–—]|\d+[.)])\s")
_SENTENCE_END = re.compile(r"""[.!?…:;]["'”’)\]]*$""")
_PAGE_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class Line:
    start: int  # offsets of the stripped line in the text
    end: int
    kind: str  # "timestamp", "title", "sentence"
    words: int
    after_blank: bool  # a blank line (or the start of the text) comes right before it


def _lines(text: str) -> list[Line]:
    out: list[Line] = []
    prev_end = -1
    for m in re.finditer(r"[^\n]+", text):
        a, b = m.start(), m.end()
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a == b:
            continue
        s = text[a:b]
        words = len(s.split())
        if _TIMESTAMP_LINE.match(s):
            kind = "timestamp"
        elif words <= MAX_TITLE_WORDS and len(s) <= MAX_TITLE_CHARS and not _SENTENCE_END.search(s):
            kind = "title"
        else:
            kind = "sentence"
        after_blank = prev_end < 0 or text.count("\n", prev_end, a) > 1
        out.append(Line(a, b, kind, words, after_blank))
        prev_end = b
    return out


def _runs(lines: Sequence[Line], member) -> list[tuple[int, int]]:
    """Maximal runs [i, j) of consecutive lines for which ``member(line)`` holds."""
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        if not member(lines[i]):
            i += 1
            continue
        j = i
        while j < len(lines) and member(lines[j]):
            j += 1
        runs.append((i, j))
        i = j
    return runs


def _news_lists(lines: Sequence[Line], text: str) -> list[tuple[int, int]]:
    blocks = []
    for i, j in _runs(lines, lambda ln: ln.kind != "sentence"):
        ts = [k for k in range(i, j) if lines[k].kind == "timestamp"]
        if len(ts) < MIN_TIMESTAMPS:
            continue
        # Items are "headline(s) + timestamp": the block starts with the headlines of the first
        # item (as many lines as a typical item has) and ends with the last timestamp.
        gaps = sorted(b - a for a, b in zip(ts, ts[1:], strict=False))
        item = gaps[len(gaps) // 2]
        first = max(i, ts[0] - (item - 1))
        last = ts[-1] + 1
        # A short section heading ("News line", "Latest news") right above the list belongs to it.
        if first > i and lines[first - 1].words <= 3:
            first -= 1
        # A list that ends the document takes its last few lines with it ("More", "All news", or
        # the headline of a timestamp-first last item).
        if j - last < item and not text[lines[j - 1].end :].strip():
            last = j
        blocks.append((first, last))
    return blocks


def _menus(lines: Sequence[Line], text: str) -> list[tuple[int, int]]:
    """Runs of one- or two-word lines without digits or list markers, with no blank line between."""
    out = []
    for i, j in _runs(lines, lambda ln: ln.kind == "title" and ln.words <= 2):
        k = i
        while k < j:
            m = k + 1
            while m < j and not lines[m].after_blank:
                m += 1
            items = [text[ln.start : ln.end] for ln in lines[k:m]]
            if m - k >= MIN_MENU_LINES and not any(_LIST_MARKER.match(t) or re.search(r"\d", t) for t in items):
                out.append((k, m))
            k = m
    return out


def _norm(s: str) -> str:
    return _PAGE_NUMBER.sub("#", " ".join(s.split())).lower()


def _running_heads(text: str, lines: Sequence[Line], page_starts: Sequence[int]) -> list[int]:
    """Indexes of lines that open or close many pages with the same words (page numbers aside)."""
    if len(page_starts) < 3:
        return []
    bounds = list(page_starts) + [len(text) + 1]
    pages: list[list[int]] = [[] for _ in page_starts]
    p = 0
    for k, ln in enumerate(lines):
        while ln.start >= bounds[p + 1]:
            p += 1
        pages[p].append(k)
    edge_lines: dict[str, set[int]] = {}
    for p, ks in enumerate(pages):
        for k in ks[:2] + ks[-2:]:
            if lines[k].words <= 12:
                edge_lines.setdefault(_norm(text[lines[k].start : lines[k].end]), set()).add(p)
    need = max(3, (len(page_starts) + 1) // 2)
    common = {key for key, ps in edge_lines.items() if len(ps) >= need}
    out = []
    for ks in pages:
        for k in set(ks[:2] + ks[-2:]):
            if _norm(text[lines[k].start : lines[k].end]) in common:
                out.append(k)
    return out


def find_furniture(text: str, page_starts: Sequence[int] = ()) -> list[tuple[int, int]]:
    """Sorted, disjoint (start, end) spans of ``text`` that are page furniture, not article text."""
    lines = _lines(text)
    marked = [False] * len(lines)
    for i, j in _news_lists(lines, text) + _menus(lines, text):
        for k in range(i, j):
            marked[k] = True
    # The same headline shown again elsewhere (e.g. as "related" just above the list).
    listed = Counter(text[ln.start : ln.end] for ln, m in zip(lines, marked, strict=True) if m and ln.kind == "title")
    for k, ln in enumerate(lines):
        if not marked[k] and ln.kind == "title" and ln.words >= 3 and text[ln.start : ln.end] in listed:
            marked[k] = True
    for k in _running_heads(text, lines, page_starts):
        marked[k] = True
    spans: list[tuple[int, int]] = []
    for ln, m in zip(lines, marked, strict=True):
        if not m:
            continue
        # Consecutive furniture lines (only whitespace between them) make one span.
        if spans and not text[spans[-1][1] : ln.start].strip():
            spans[-1] = (spans[-1][0], ln.end)
        else:
            spans.append((ln.start, ln.end))
    return spans


def inside(spans: Sequence[tuple[int, int]], start: int, end: int) -> bool:
    """True when [start, end) overlaps one of the (sorted, disjoint) ``spans``."""
    i = bisect.bisect_right(spans, (start, float("inf"))) - 1
    return any(0 <= k < len(spans) and spans[k][0] < end and start < spans[k][1] for k in (i, i + 1))
