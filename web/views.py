"""View helpers: the pages' templates and what they need from an answer or a document.

How an answer is shown (its confidence level, phrase and highlight marks) is ``qa.view``'s, sent in
the API's ``view`` field; here it is only laid out for the templates. ``static/chat.js`` builds
the same markup from the same ``view``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from qa.engine import MAX_QUESTION_CHARS
from qa.types import Answer
from qa.view import answer_view
from web.schemas import MAX_PREVIOUS_ANSWER_CHARS, MAX_PREVIOUS_CHARS, MAX_PREVIOUS_DOC_ID_CHARS

HERE = Path(__file__).resolve().parent

# Pages allow nothing from elsewhere: no CDN, no inline script (so an injected <script> cannot run).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # Nothing leaks to other sites; our own forms keep their origin (with "no-referrer" a browser
    # posts a form with `Origin: null`, which the upload and delete forms would have to trust).
    "Referrer-Policy": "same-origin",
}


def pretty_date(iso: str | None) -> str | None:
    if not iso:
        return None
    try:
        d = date.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{d.day} {d.strftime('%b')} {d.year}"


def doc_href(doc_id: str, start: int, end: int, a_start: int | None = None, a_end: int | None = None) -> str:
    params: dict[str, int] = {"start": start, "end": end}
    if a_start is not None and a_end is not None:
        params |= {"astart": a_start, "aend": a_end}
    return f"/doc/{quote(doc_id, safe='/')}?{urlencode(params)}#cite"


def marked_parts(sentence: str, marks: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """``sentence`` cut at the marks: (text, is the answer) pieces, in order, nothing left out."""
    out: list[tuple[str, bool]] = []
    at = 0
    for a, b in marks:
        if a > at:
            out.append((sentence[at:a], False))
        out.append((sentence[a:b], True))
        at = b
    if at < len(sentence) or not out:
        out.append((sentence[at:], False))
    return out


def answer_body(ans: Answer) -> dict[str, Any]:
    """What ``POST /api/ask`` returns and the chat page keeps: the contract and how to show it."""
    return {**ans.to_dict(), "view": answer_view(ans).to_dict()}


def shown_answer(body: dict[str, Any]) -> dict[str, Any]:
    """What the answer template needs: ``body`` (see ``answer_body``) with each citation's sentence
    cut at its marks and its link into the document."""
    view = body["view"]
    cits = []
    for i, c in enumerate(body["citations"]):
        mine = [tuple(m) for m in view["marks"][i]]
        if mine:  # the document view highlights one answer span: this citation's first
            href = doc_href(c["doc_id"], c["start"], c["end"], c["start"] + mine[0][0], c["start"] + mine[0][1])
        else:
            href = doc_href(c["doc_id"], c["start"], c["end"])
        if i == 0 and body.get("answer_source") == "document_date" and body.get("answer_doc_id") == c["doc_id"]:
            href = doc_href(c["doc_id"], c["start"], c["end"], body["answer_doc_start"], body["answer_doc_end"])
        cits.append({**c, "n": i + 1, "parts": marked_parts(c["sentence"], mine), "href": href,
                     "pretty_date": pretty_date(c.get("date"))})
    date_href = None
    if body.get("answer_source") == "document_date" and body.get("answer_doc_id") is not None:
        date_href = doc_href(body["answer_doc_id"], body["answer_doc_start"], body["answer_doc_end"])
    return {**body, "cits": cits, "level": view["level"], "date_href": date_href, "phrase": view["phrase"]}


def turn_before_next(exchange: dict[str, Any] | None) -> dict[str, str] | None:
    """The turn a next question may follow up on (what chat.js sends as `previous`), for the form's
    hidden fields: none after an abstention or an error; an over-long doc id or answer is left out."""
    ans = (exchange or {}).get("answer")
    if not ans or ans["abstained"] or not ans["question"] or len(ans["question"]) > MAX_PREVIOUS_CHARS:
        return None
    turn = {"after": ans["question"]}
    doc_id = ans["citations"][0]["doc_id"] if ans["citations"] else None
    if doc_id and len(doc_id) <= MAX_PREVIOUS_DOC_ID_CHARS:
        turn["after_doc"] = doc_id
    if ans["answer"] and len(ans["answer"]) <= MAX_PREVIOUS_ANSWER_CHARS:
        turn["after_answer"] = ans["answer"]
    return turn


def doc_segments(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[str, str | None, bool]]:
    """Split ``text`` at the spans' edges: (piece, css class or None, opens the cited mark)."""
    cuts = {0, len(text)}
    for s, e, _ in spans:
        cuts |= {s, e}
    edges = sorted(cuts)
    out: list[tuple[str, str | None, bool]] = []
    first_cite = True
    for s, e in zip(edges, edges[1:], strict=False):
        classes = [cls for a, b, cls in spans if a <= s and e <= b]
        cls = " ".join(classes) or None
        is_anchor = "cite" in classes and first_cite
        if is_anchor:
            first_cite = False
        out.append((text[s:e], cls, is_anchor))
    return out


TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every template, whatever its extension
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.globals |= {"max_chars": MAX_QUESTION_CHARS, "pretty_date": pretty_date, "shown_answer": shown_answer}
TEMPLATES.filters["tojson_safe"] = lambda v: jinja2.utils.htmlsafe_json_dumps(v)


def render_page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """Template ``name`` with what every page shows (the index folder, or why there is no index)."""
    holder = request.app.state.holder
    eng = holder.get()
    base = {
        "index_dir": str(holder.index_dir),
        "index_error": None if eng else holder.error,
        "build_hint": holder.build_hint(),
        "n_docs": len(eng.index.docs) if eng else 0,
        "keys_required": getattr(request.app.state, "keys", None) is not None,
    }
    html = TEMPLATES.get_template(name).render(**base, **ctx)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
