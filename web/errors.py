"""Errors: one line, JSON for the API and an HTML page for browsers; and the document-id rule.

Every refusal is an ``HTTPException`` whose detail is one line saying what was wrong;
``install(app)`` turns those and FastAPI's validation errors into the response.
"""

from __future__ import annotations

import json
import re

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from index.documents import MAX_FILE_BYTES
from index.loaded import DocRecord
from index.serving import RETRY_AFTER_SECONDS, ShardUnavailableError
from qa.engine import MAX_QUESTION_CHARS, Engine
from web.views import render_page


def too_large(name: str) -> str:
    return f"{name}: too large (over the {MAX_FILE_BYTES // 2**20} MB limit); split it"


# What a document id may be, as a regular expression, so the OpenAPI schema states the very rule
# the server applies (a schema that allowed any string made schemathesis send ids the server then
# refused with 400: a leading backslash, for one). An id is a path inside the corpus: not absolute
# (no leading / or \\, no drive letter), no ".." segment (either separator), no NUL, and no
# percent-encoded dot, slash, backslash, NUL or percent, so no decoding, once or twice, makes a
# traversal out of it. Lookups are dictionary gets and never touch the file system; the 400 tells
# a client clearly that such an id is not one.
DOC_ID_PATTERN = (
    r"^(?![A-Za-z]:)(?![/\\])(?![\s\S]*%(?:2[eEfF]|5[cC]|00|25))"
    r"(?!(?:[\s\S]*[/\\])?\.\.(?:[/\\]|$))[^\x00]+$"
)
_DOC_ID = re.compile(DOC_ID_PATTERN)
DOC_ID_SCHEMA = {"pattern": DOC_ID_PATTERN, "description": "the document's path inside the corpus, e.g. 003_fdf2c5db0e68fe77.txt"}


def check_doc_id(doc_id: str) -> None:
    """Refuse ids that try to leave the corpus (also when percent-encoded, once or twice)."""
    if not _DOC_ID.search(doc_id):
        raise HTTPException(400, f"invalid document id {doc_id[:80]!r}: ids are paths inside the corpus")


def one_line(exc: RequestValidationError) -> tuple[int, str]:
    """A validation error as (status, one-line reason)."""
    errs = exc.errors()
    if not errs:
        return 422, "invalid request"
    err = errs[0]
    if err.get("type") == "json_invalid":
        return 400, "malformed JSON body: " + str((err.get("ctx") or {}).get("error", "cannot parse it"))
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
    where = ".".join(loc)
    if err.get("type") == "missing" and not loc:
        return 422, 'request body is required: a JSON object such as {"question": "…"}'
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if loc == ["question"] and err.get("type") in ("string_too_short", "string_pattern_mismatch"):
        return 422, "the question is empty"
    if loc == ["question"] and err.get("type") == "string_too_long":
        n = len(err.get("input") or "")
        return 422, f"the question is {n} characters long; the limit is {MAX_QUESTION_CHARS}"
    if loc == ["filter"] and err.get("type") in ("model_type", "model_attributes_type", "dict_type"):
        return 422, 'filter must be a JSON object such as {"folder": "news", "date_from": "2023-06-01"}, or null'
    if loc and err.get("type") in ("model_type", "model_attributes_type", "dict_type"):
        return 422, f'{where} must be a JSON object such as {{"question": "…"}}, or null'
    if err.get("type") == "model_attributes_type" or (not loc and "dict" in msg):
        return 422, 'request body must be a JSON object such as {"question": "…"}'
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return 422, f"{where}: {msg}{more}" if where else f"{msg}{more}"


def wants_html(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith("/api/") or path in ("/healthz", "/openapi.json", "/metrics"))


def error_response(request: Request, status: int, detail: str) -> Response:
    if wants_html(request):
        return render_page(request, "error.html", status=status, status_code=status, detail=detail)
    return JSONResponse({"detail": detail}, status_code=status)


def install(app: FastAPI) -> None:
    """Answer every refusal and validation error of ``app`` in one line."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        status, detail = one_line(exc)
        ctype = request.headers.get("content-type", "")
        sent = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
        if request.url.path == "/api/documents" and request.method == "POST":
            # The one route that takes a multipart body: the only field it needs is `file`.
            status, detail = 422, ("send the document as multipart/form-data with the file in a field named `file` "
                                   "(curl -F file=@notes.txt …)")
        elif request.url.path.startswith("/api/") and request.method == "POST" and sent and "json" not in ctype:
            status, detail = 415, "send the body as JSON with the header content-type: application/json"
        return error_response(request, status, detail)

    @app.exception_handler(ShardUnavailableError)
    async def _shard(request: Request, exc: ShardUnavailableError) -> Response:
        # A shard of an index served on Ray did not answer: never an answer without it, never a 500.
        resp = error_response(request, 503, str(exc))
        resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return resp

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(jsonable_encoder(exc.detail))
        resp = error_response(request, exc.status_code, detail.splitlines()[0] if detail else "error")
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp


def find_doc(eng: Engine, doc_id: str) -> DocRecord:
    """The indexed document ``doc_id``: 400 for an id that is not one, 404 for an unknown one."""
    check_doc_id(doc_id)
    doc = eng.index.docs.get(doc_id)
    if doc is None:
        raise HTTPException(404, f"no document {doc_id[:80]!r} in this index; GET /api/documents lists them")
    return doc
