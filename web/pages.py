"""The pages: the chat (``/``), a document (``/doc/…``), the documents (``/documents``) and the
API's own description (``/docs``). Plain forms everywhere, so every page works without JavaScript;
with it, ``static/chat.js`` asks through the API instead."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException

from index.documents import MAX_FILE_BYTES, SUPPORTED_SUFFIXES
from index.shards import uploaded_in
from qa.engine import MAX_QUESTION_CHARS, QuestionError
from qa.filters import MAX_FOLDER_CHARS, DocFilter, FilterError
from qa.followup import MAX_PREVIOUS_CHARS, Previous
from web.auth import caller, keys_required
from web.changes import applying, refuse_cross_site, upload
from web.errors import check_doc_id, find_doc
from web.holder import EngineHolder, Holder
from web.metrics import metrics_of
from web.schemas import MAX_PREVIOUS_ANSWER_CHARS, MAX_PREVIOUS_DOC_ID_CHARS
from web.views import answer_body, doc_segments, render_page, turn_before_next

EXAMPLES = (
    "when were direct AZAL flights announced",
    "Who led the Pakistan side?",
    "Who is Azerbaijan's ambassador to Pakistan?",
    "Where was the ECO summit held?",
    "Who won the 2022 FIFA World Cup?",
)

router = APIRouter(include_in_schema=False)


# The chat's filter fields (the same names with JavaScript or without): f_doc, f_folder, f_since, f_until.
FILTER_FIELDS = ("f_doc", "f_folder", "f_since", "f_until")


def chat(request: Request, holder: EngineHolder, question: str | None, previous: Previous | None = None,
         within: dict[str, str] | None = None) -> HTMLResponse:
    # {"question", "answer": the contract and its view, or "error": one line}; chat.js keeps it in its history.
    exchange: dict[str, Any] | None = None
    within = within or {}
    if question is not None:
        exchange = {"question": question}
        eng = holder.get()
        if eng is None:
            exchange["error"] = f"{holder.error} Build it with: {holder.build_hint()}"
        else:
            try:
                doc_filter = DocFilter.make([within["f_doc"]] if within.get("f_doc") else None,
                                            within.get("f_folder") or None, within.get("f_since") or None,
                                            within.get("f_until") or None)
                ans = eng.ask(question, previous=previous, filter=doc_filter)
                metrics_of(request).answer(ans)
                exchange["answer"] = answer_body(ans)
            except (QuestionError, FilterError) as e:
                exchange["error"] = str(e)[:1].upper() + str(e)[1:] + "."
    # The document picker lists the ids (up to 500); with keys, only to a caller that has one.
    eng = holder.get()
    shown = eng is not None and len(eng.index.docs) <= 500 and (not keys_required(request) or caller(request))
    docs = sorted(eng.index.docs) if eng is not None and shown else []
    return render_page(request, "chat.html", examples=EXAMPLES, exchange=exchange, after=turn_before_next(exchange),
                       accept=",".join(SUPPORTED_SUFFIXES), within=within, doc_ids=docs)


@router.get("/", response_class=HTMLResponse)
def index_page(
    request: Request,
    holder: Holder,
    q: str | None = Query(None, max_length=MAX_QUESTION_CHARS * 2),
    after: str | None = Query(None, max_length=MAX_PREVIOUS_CHARS),
    after_doc: str | None = Query(None, max_length=MAX_PREVIOUS_DOC_ID_CHARS),
    after_answer: str | None = Query(None, max_length=MAX_PREVIOUS_ANSWER_CHARS),
    f_doc: str | None = Query(None, max_length=MAX_FOLDER_CHARS),
    f_folder: str | None = Query(None, max_length=MAX_FOLDER_CHARS),
    f_since: str | None = Query(None, max_length=20),
    f_until: str | None = Query(None, max_length=20),
) -> HTMLResponse:
    previous = Previous(after, after_doc or None, after_answer or None) if after else None
    within = {k: v for k, v in zip(FILTER_FIELDS, (f_doc, f_folder, f_since, f_until), strict=True) if v}
    return chat(request, holder, q, previous, within)


@router.post("/")
def index_post(
    question: str = Form("", max_length=MAX_QUESTION_CHARS * 2),
    after: str = Form("", max_length=MAX_PREVIOUS_CHARS),
    after_doc: str = Form("", max_length=MAX_PREVIOUS_DOC_ID_CHARS),
    after_answer: str = Form("", max_length=MAX_PREVIOUS_ANSWER_CHARS),
    f_doc: str = Form("", max_length=MAX_FOLDER_CHARS),
    f_folder: str = Form("", max_length=MAX_FOLDER_CHARS),
    f_since: str = Form("", max_length=20),
    f_until: str = Form("", max_length=20),
) -> Response:
    # The form without JavaScript (with JS, chat.js uses the API). Post/redirect/get: the answer
    # page has an address, so a reload shows the answer again instead of asking to resend a form.
    # The hidden `after*` fields carry the turn on the page, so a follow-up works here too.
    params = {"q": question}
    if after:
        params |= {k: v for k, v in (("after", after), ("after_doc", after_doc), ("after_answer", after_answer)) if v}
    params |= {k: v for k, v in zip(FILTER_FIELDS, (f_doc, f_folder, f_since, f_until), strict=True) if v}
    return RedirectResponse("/?" + urlencode(params), status_code=303)


@router.get("/doc/{doc_id:path}", response_class=HTMLResponse)
def doc_page(
    request: Request,
    holder: Holder,
    doc_id: str,
    start: int | None = Query(None, ge=0),
    end: int | None = Query(None, ge=0),
    astart: int | None = Query(None, ge=0),
    aend: int | None = Query(None, ge=0),
    pick: bool = Query(False),
) -> HTMLResponse:
    eng = holder.get()
    if eng is None:
        raise HTTPException(503, f"{holder.error} Build it with: {holder.build_hint()}")
    doc = find_doc(eng, doc_id)
    if pick:  # feedback: the user picks the sentence that answers (static/doc.js sends it)
        idx = eng.index
        offsets = [(int(idx.sent_start[s]), int(idx.sent_end[s])) for s in idx.doc_sentences[doc.doc_id]]
        return render_page(request, "doc.html", doc=doc, segments=[], picks=pick_segments(doc.text, offsets),
                           n_sentences=len(offsets), notice=None, has_cite=False, has_answer=False,
                           has_furniture=False, api_href=f"/api/documents/{quote(doc.doc_id, safe='/')}")
    n = len(doc.text)
    spans: list[tuple[int, int, str]] = []
    notice = None
    if start is not None and end is not None:
        if start < end <= n:
            spans.append((start, end, "cite"))
        else:
            notice = f"The passage {start}–{end} is not inside this document ({n} characters)."
    if astart is not None and aend is not None and astart < aend <= n:
        spans.append((astart, aend, "answer"))
    if spans and not any(cls == "cite" for _, _, cls in spans):
        spans.append((spans[0][0], spans[0][1], "cite"))
    has_cite = any(cls == "cite" for _, _, cls in spans)
    has_answer = any(cls == "answer" for _, _, cls in spans)
    spans += [(a, b, "furniture") for a, b in doc.furniture if 0 <= a < b <= n]
    return render_page(
        request,
        "doc.html",
        doc=doc,
        segments=doc_segments(doc.text, spans),
        n_sentences=len(eng.index.doc_sentences[doc.doc_id]),
        notice=notice,
        has_cite=has_cite,
        has_answer=has_answer,
        has_furniture=bool(doc.furniture),
        api_href=f"/api/documents/{quote(doc.doc_id, safe='/')}",
        picks=None,
    )


def pick_segments(text: str, offsets: list[tuple[int, int]]) -> list[tuple[str, tuple[int, int] | None]]:
    """``text`` cut into its sentences ((piece, (start, end))) and what lies between ((piece, None))."""
    out: list[tuple[str, tuple[int, int] | None]] = []
    at = 0
    for a, b in offsets:
        if a > at:
            out.append((text[at:a], None))
        out.append((text[a:b], (a, b)))
        at = b
    if at < len(text):
        out.append((text[at:], None))
    return out


# The documents page: the list, an upload form and a delete button per document. Plain forms
# (post, then redirect back with what happened), so it works without JavaScript.
DONE = {"added": "Added", "replaced": "Replaced", "unchanged": "Already indexed, unchanged:", "deleted": "Deleted"}


def documents_view(request: Request, holder: EngineHolder, status: int = 200, error: str | None = None,
                   done: str | None = None, doc: str | None = None) -> HTMLResponse:
    eng = holder.get()
    uploaded = uploaded_in(holder.index_dir) if eng else set()
    rows = []
    if eng is not None:
        for d in eng.index.docs.values():
            rows.append({"doc_id": d.doc_id, "title": d.title, "date": d.date_iso,
                         "sentences": len(eng.index.doc_sentences[d.doc_id]), "uploaded": d.doc_id in uploaded,
                         "href": f"/doc/{quote(d.doc_id, safe='/')}"})
    flash = f"{DONE[done]} {doc}." if done in DONE and doc else None
    return render_page(request, "documents.html", status=status, rows=rows, error=error, flash=flash, done=done,
                       accept=",".join(SUPPORTED_SUFFIXES), max_mb=MAX_FILE_BYTES // 2**20)


@router.get("/documents", response_class=HTMLResponse)
def documents_page(request: Request, holder: Holder, done: str | None = Query(None, max_length=20),
                   doc: str | None = Query(None, max_length=400)) -> HTMLResponse:
    return documents_view(request, holder, done=done, doc=doc)


@router.post("/documents")
async def documents_upload(request: Request, holder: Holder) -> Response:
    refuse_cross_site(request)
    try:
        form = await request.form(max_files=1, max_fields=4)
    except HTTPException:
        raise
    except Exception:  # noqa: BLE001 - a malformed multipart body is the sender's fault
        return documents_view(request, holder, 400, "The upload could not be read; choose a file and try again.")
    try:
        file = form.get("file")
        if not isinstance(file, StarletteUploadFile) or not file.filename:
            return documents_view(request, holder, 400, "Choose a file to upload first.")
        try:
            change, _ = await run_in_threadpool(upload, holder, file)
        except HTTPException as e:
            return documents_view(request, holder, e.status_code, str(e.detail))
    finally:
        await form.close()
    return RedirectResponse("/documents?" + urlencode({"done": change.action, "doc": change.doc_id}), status_code=303)


@router.post("/documents/delete")
def documents_delete(request: Request, holder: Holder, doc_id: str = Form("", max_length=2000)) -> Response:
    refuse_cross_site(request)
    try:
        check_doc_id(doc_id)
        holder.require()
        change = applying(lambda: holder.delete(doc_id))
    except HTTPException as e:
        return documents_view(request, holder, e.status_code, str(e.detail))
    return RedirectResponse("/documents?" + urlencode({"done": "deleted", "doc": change.doc_id}), status_code=303)


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    return render_page(request, "api_docs.html", ops=describe_openapi(request.app.openapi()))


@router.get("/favicon.ico")
def favicon() -> RedirectResponse:
    return RedirectResponse("/static/favicon.svg", status_code=308)


def describe_openapi(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The OpenAPI operations flattened for the local /docs page (no Swagger UI, which needs a CDN)."""
    schemas = spec.get("components", {}).get("schemas", {})

    def deref(s: dict[str, Any]) -> dict[str, Any]:
        ref = s.get("$ref")
        return schemas.get(ref.rsplit("/", 1)[-1], {}) if ref else s

    def ref_name(s: dict[str, Any]) -> str:
        if "$ref" in s:
            return s["$ref"].rsplit("/", 1)[-1]
        if s.get("type") == "array":
            return f"list of {ref_name(s.get('items', {}))}"
        return s.get("type", "object")

    def add_fields(fields: list[dict[str, Any]], model: dict[str, Any], prefix: str) -> None:
        """One row per field; an object field's own fields follow it as `name.field` rows."""
        required = set(model.get("required", []))
        for name, prop in model.get("properties", {}).items():
            kinds = prop.get("anyOf", [prop])
            limits = {k: p[k] for k in ("minLength", "maxLength", "minimum", "maximum") for p in kinds if k in p}
            if "default" in prop and prop["default"] is not None:
                limits["default"] = prop["default"]
            fields.append({"name": prefix + name, "required": name in required,
                           "type": " or ".join("object" if "$ref" in p else p.get("type", "?") for p in kinds),
                           "description": prop.get("description", ""),
                           "limits": ", ".join(f"{k} {v}" for k, v in limits.items())})
            for p in kinds:
                if "$ref" in p:
                    add_fields(fields, deref(p), f"{prefix}{name}.")

    ops = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            fields: list[dict[str, Any]] = []
            if body:
                add_fields(fields, deref(body), "")
            responses = []
            for code, r in op.get("responses", {}).items():
                schema = r.get("content", {}).get("application/json", {}).get("schema", {})
                responses.append({"code": code, "description": r.get("description", ""),
                                  "model": ref_name(schema) if schema else ""})
            example = None
            if body:
                example = json.dumps(deref(body).get("examples", [{}])[0])
            ops.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                        "params": [p["name"] for p in op.get("parameters", [])], "fields": fields,
                        "responses": responses, "example": example})
    return ops
