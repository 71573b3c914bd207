"""The web room: a chat page over the engine and the same answers as a JSON API.

``create_app(index_dir)`` loads the index and model once; every route reads that one engine.
Engine calls are CPU-bound, so the routes that call it are plain ``def``: FastAPI runs them in
its thread pool, and the engine only reads shared arrays (numpy, FAISS, torch inference), which
is safe from several threads at once.

Example::

    >>> from fastapi.testclient import TestClient          # doctest: +SKIP
    >>> client = TestClient(create_app(".citeqa"))           # doctest: +SKIP
    >>> client.post("/api/ask", json={"question": "when were direct AZAL flights announced"}).json()["answer"]
    'November 9, 2023'
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException

from index import live
from index.build import BuildError, IndexBusyError
from index.documents import MAX_FILE_BYTES, SUPPORTED_SUFFIXES, Document, DocumentError, load_bytes
from index.encoder import load_encoder
from index.loaded import LoadedIndex
from index.store import IndexError_, NoIndexError, current_generation
from index.uploads import BadNameError, leftovers, pending_changes, upload_doc_id, uploaded_ids
from qa.engine import MAX_K, MAX_QUESTION_CHARS, Engine, QuestionError
from qa.followup import MAX_PREVIOUS_CHARS, Previous
from web.batching import BatchingEncoder

HERE = Path(__file__).resolve().parent
INDEX_ENV = "CITEQA_INDEX"  # how `serve --workers N` hands the index folder to each worker process
# "0" encodes each request's question on its own (to measure what batching buys: python -m eval.load --no-batch).
BATCH_ENV = "CITEQA_BATCH_QUESTIONS"

EXAMPLES = (
    "when were direct AZAL flights announced",
    "Who led the Pakistan side?",
    "Who is Azerbaijan's ambassador to Pakistan?",
    "Where was the ECO summit held?",
    "Who won the 2022 FIFA World Cup?",
)

# Confidence cues: the engine abstains below 0.5, so "low" is an answer the user should check.
CONFIDENCE_LEVELS = ((0.85, "high"), (0.65, "medium"), (0.0, "low"))

# Pages allow nothing from elsewhere: no CDN, no inline script (so an injected <script> cannot run).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # Nothing leaks to other sites; our own forms keep their origin (with "no-referrer" a browser
    # posts a form with `Origin: null`, which the upload and delete forms would have to trust).
    "Referrer-Policy": "same-origin",
}


# Limits of the turn before a follow-up. The question is one the API took; the answer phrase may
# be a whole sentence (when no shorter phrase answers), so it gets more room. Longer is refused (422).
MAX_PREVIOUS_DOC_ID_CHARS = 1000
MAX_PREVIOUS_ANSWER_CHARS = 2000


# --- API schema ---------------------------------------------------------------------------------
class PreviousTurn(BaseModel):
    """The turn before a follow-up ("and who led Azerbaijan's side?", "when was that?")."""

    model_config = ConfigDict(strict=True)

    question: str = Field(min_length=1, max_length=MAX_PREVIOUS_CHARS, description="the question asked just before")
    doc_id: str | None = Field(None, max_length=MAX_PREVIOUS_DOC_ID_CHARS,
                               description="the document its answer cited first (an unknown id is ignored)")
    answer: str | None = Field(None, max_length=MAX_PREVIOUS_ANSWER_CHARS,
                               description="its answer phrase, which the follow-up will not give again")

    def to_previous(self) -> Previous:
        return Previous(self.question, self.doc_id, self.answer)


QUESTION_PATTERN = r"[^\s\x1c-\x1f]"


class AskRequest(BaseModel):
    """A question; ``k`` is the number of citations to return."""

    model_config = ConfigDict(
        strict=True,
        json_schema_extra={"examples": [
            {"question": "when were direct AZAL flights announced", "k": 5},
            {"question": "who welcomed that?", "previous": {"question": "when were direct AZAL flights announced",
                                                            "doc_id": "003_fdf2c5db0e68fe77.txt",
                                                            "answer": "November 9, 2023"}},
        ]},
    )

    # The pattern states "not blank" in the schema: a character that is neither whitespace nor one
    # of the separators \x1c-\x1f, which Python's str.strip() also removes.
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, pattern=QUESTION_PATTERN,
                          description="the question, in plain words")
    # Not strict: JSON Schema counts 5.0 as an integer. Strings and booleans are still refused.
    k: int = Field(5, ge=1, le=MAX_K, strict=False, description=f"number of citations, 1 to {MAX_K}")
    id: str | None = Field(None, max_length=200, description="echoed back in the answer")
    previous: PreviousTurn | None = Field(
        None, description="the turn before, when this question follows up on it; the answer then carries "
        "`resolved_question`, how the follow-up was read")

    @field_validator("k", mode="before")
    @classmethod
    def _k_is_a_number(cls, v: Any) -> Any:
        if isinstance(v, bool | str):
            raise ValueError("Input should be a valid integer")
        return v


class CitationOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    doc_id: str
    title: str
    sentence: str = Field(description="document.text[start:end]")
    start: int
    end: int
    score: float
    answer_start: int | None = Field(None, description="start of the answer phrase inside `sentence`")
    answer_end: int | None = None
    date: str | None = Field(None, description="the document's ISO date, when its text states one")
    page: int | None = Field(None, description="1-based page of the sentence, for documents with pages (PDF)")


class AnswerPart(BaseModel):
    text: str
    citation: int = Field(description="index into `citations` of the sentence that holds this part")
    answer_start: int = Field(description="start of this part inside that citation's `sentence`")
    answer_end: int


class AnswerOut(BaseModel):
    """The answer contract of GUIDE.md (the same object as `qa ask --json`)."""

    model_config = ConfigDict(extra="allow")

    id: str | None
    question: str
    answer: str | None = Field(description="a quote from the top citation (or its document's date); null when abstaining")
    abstained: bool
    confidence: float
    citations: list[CitationOut] = Field(description="best first; the nearest passages even when abstaining")
    answer_source: str | None = Field(None, description='"sentence" or "document_date"')
    answer_note: str | None = Field(None, description="a note on where the answer comes from (the document's date)")
    answers: list[AnswerPart] | None = Field(
        None, description="both parts of an answer to a question asking for two things (\"who led each side\"); "
        "`answer` is the first")
    resolved_question: str | None = Field(None, description="how a follow-up was read, with the turn before")
    support: float | None = None


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    date: str | None
    sentences: int
    chars: int


class DocumentOut(DocumentSummary):
    text: str
    content_hash: str
    format: str = Field(description="text, html, pdf or docx")
    date_start: int | None = Field(description="offsets of the document's date in `text`")
    date_end: int | None
    sentence_offsets: list[tuple[int, int]] = Field(description="[start, end] of every sentence in `text`")
    furniture: list[tuple[int, int]] = Field(
        description="[start, end] of each block of page furniture in `text` (menus, headline lists, running "
        "heads): shown, never answerable")
    page_starts: list[int] = Field(description="offset in `text` where each page starts (PDF); empty otherwise")


class ChangeOut(BaseModel):
    """What an upload or a deletion did; the next request already sees it."""

    doc_id: str
    action: Literal["added", "replaced", "unchanged", "deleted"] = Field(
        description="an upload whose name is already indexed replaces that document (`replaced`); the same "
        "bytes again change nothing (`unchanged`)")
    message: str = Field(description="one line for a person")
    title: str | None = Field(description="the document's title (null after a deletion)")
    date: str | None
    sentences: int = Field(description="answerable sentences of the document (0 after a deletion)")
    documents: int = Field(description="documents in the index now")
    seconds: float = Field(description="time taken to apply the change")


class Health(BaseModel):
    status: str = Field(description='"ok", or "no_index" (the page says how to build one)')
    index_loaded: bool
    index_dir: str
    documents: int
    sentences: int
    model: str | None
    generation: str | None = Field(None, description="the index generation being served (changes with every update)")
    detail: str | None = None


class ErrorOut(BaseModel):
    detail: str = Field(description="one line saying what was wrong")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "malformed request (bad JSON, invalid document id)"},
    415: {"model": ErrorOut, "description": "the body is not sent as application/json"},
    422: {"model": ErrorOut, "description": "the request does not fit the schema (the reason is one line)"},
    503: {"model": ErrorOut, "description": "no index loaded yet; the reason says how to build one"},
}
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "no file, or a file name that cannot be a document id"},
    403: {"model": ErrorOut, "description": "a request from another web site (cross-site uploads are refused)"},
    413: {"model": ErrorOut, "description": f"the file is larger than {MAX_FILE_BYTES // 2**20} MB"},
    415: {"model": ErrorOut, "description": f"not a supported file type ({', '.join(SUPPORTED_SUFFIXES)})"},
    422: {"model": ErrorOut, "description": "the file cannot be indexed (empty, binary, a scanned PDF, …): the reason"},
    503: {"model": ErrorOut, "description": "no index loaded, or another change is being applied (see Retry-After)"},
}
DELETE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: ERRORS[400],
    403: UPLOAD_ERRORS[403],
    404: {"model": ErrorOut, "description": "no such document"},
    409: {"model": ErrorOut, "description": "the last document of the index cannot be deleted"},
    503: UPLOAD_ERRORS[503],
}
# Multipart framing around the file's bytes (boundaries, part headers): generous.
UPLOAD_OVERHEAD = 64 * 1024
RETRY_AFTER = "5"
UPLOAD_FIELD = (f"the document ({', '.join(SUPPORTED_SUFFIXES)}; up to {MAX_FILE_BYTES // 2**20} MB); "
                "its file name becomes the doc_id")


# --- the engine holder ---------------------------------------------------------------------------
class IndexBusy(Exception):
    """Another writer holds the index; the message says to retry."""


class EngineHolder:
    """The one engine of this process, or why there is none; swapped whole when the index changes.

    A request reads ``holder.require()`` once and uses that engine to the end, so it never sees
    half an index: a new generation (published by an upload here, or by ``qa index`` in another
    process) is loaded beside the old one and then swapped in with one assignment. A watcher
    thread reads CURRENT every ``WATCH_SECONDS``; uploads and deletions swap before they answer.
    """

    RETRY_SECONDS = 2.0
    WATCH_SECONDS = 1.0

    def __init__(self, index_dir: Path, engine: Engine | None = None, *, batch_questions: bool = True,
                 watch: bool = True) -> None:
        self.index_dir = index_dir
        self.batch_questions = batch_questions
        self.engine = self._serving(engine) if engine is not None else None
        self.error: str | None = None
        self.watch_error: str | None = None  # why the last change on disk could not be loaded
        self._lock = threading.Lock()
        self._swap = threading.RLock()  # one load-and-swap at a time
        self._write = threading.Lock()  # one upload or deletion at a time in this process
        self._tried_at = 0.0
        if engine is None:
            self._open()
        self._reconcile()
        if watch:
            threading.Thread(target=_watch, args=(weakref.ref(self), self.WATCH_SECONDS),
                             name="citeqa-index-watch", daemon=True).start()

    def _serving(self, engine: Engine) -> Engine:
        """The engine as this server runs it: concurrent requests' questions encoded in one batch
        (a new Engine over the same loaded index, so a caller's engine is left as it was)."""
        if not self.batch_questions or isinstance(engine.encoder, BatchingEncoder):
            return engine
        return Engine(engine.index, BatchingEncoder(engine.encoder), reader=engine.reader.name)

    def _open(self) -> None:
        self._tried_at = time.monotonic()
        try:
            self.engine = self._serving(Engine.open(self.index_dir))
            self.error = None
        except NoIndexError:
            self.error = f"There is no index at {self.index_dir} yet."
        except IndexError_ as e:
            self.error = str(e)

    def get(self) -> Engine | None:
        # A user who builds the index while the server runs should not have to restart it.
        if self.engine is None and time.monotonic() - self._tried_at > self.RETRY_SECONDS:
            with self._lock:
                if self.engine is None and current_generation(self.index_dir) is not None:
                    self._open()
                self._tried_at = time.monotonic()
        return self.engine

    def build_hint(self) -> str:
        return f"qa index corpus --index {self.index_dir}"

    def require(self) -> Engine:
        engine = self.get()
        if engine is None:
            raise HTTPException(503, f"{self.error} Build it with: {self.build_hint()}")
        return engine

    # --- following the index on disk --------------------------------------------------------------
    def refresh(self) -> bool:
        """Load the live generation if it is not the one being served, then swap; True if swapped.

        Cheap when nothing changed (one small file read). A generation that cannot be loaded (a
        build deleted it meanwhile, or it is damaged) leaves the served engine as it is.
        """
        with self._swap:
            eng = self.engine
            if eng is None:
                if current_generation(self.index_dir) is None:
                    return False
                with self._lock:
                    self._open()
                return self.engine is not None
            gen = current_generation(self.index_dir)
            if gen is None or gen == eng.index.gen_dir:
                return False
            try:
                index = LoadedIndex.open(self.index_dir)
            except IndexError_ as e:
                self.watch_error = str(e)
                return False
            if index.gen_dir == eng.index.gen_dir:
                return False
            if index.encoder_name == eng.encoder.name:
                new = Engine(index, eng.encoder, reader=eng.reader.name)  # the loaded models serve it too
            else:  # rebuilt with another encoder: load that one (rare; `qa index --encoder … --rebuild`)
                new = self._serving(Engine(index, load_encoder(index.encoder_name), reader=eng.reader.name))
            self.engine = new  # one assignment: requests hold the engine they started with
            self.watch_error = None
            return True

    def _reconcile(self) -> None:
        """Publish what a killed server saved but did not publish (see index/uploads.py)."""
        eng = self.engine
        if eng is None:
            return
        try:
            if not pending_changes(eng.index) and not leftovers(self.index_dir):
                return
            # Briefly: a `qa index` running now holds the lock, and finishes the job itself.
            report = live.apply_pending(self.index_dir, eng.encoder, hint=eng.index, log=_log, wait=1.0)
        except (BuildError, IndexError_, DocumentError, OSError) as e:
            _log(f"could not apply the uploads and deletions saved in {self.index_dir}: {e}")
            return
        if report is not None:
            _log(f"applied uploads and deletions saved before a restart: {len(report.added)} added, "
                 f"{len(report.changed)} replaced, {len(report.removed)} removed")
            self.refresh()

    # --- changing the index -------------------------------------------------------------------
    @contextmanager
    def _writing(self) -> Iterator[None]:
        if not self._write.acquire(timeout=live.WAIT_SECONDS):
            raise IndexBusy("another upload or deletion is still being applied; try again in a few seconds")
        try:
            yield
        finally:
            self._write.release()

    def add(self, doc: Document, data: bytes) -> live.Change:
        """Add or replace ``doc``; the next request sees it."""
        eng = self.require()
        with self._writing():
            eng = self.engine or eng
            try:
                change = live.add_document(self.index_dir, doc, data, eng.encoder, hint=eng.index)
            except IndexBusyError as e:
                raise IndexBusy(str(e)) from None
            self.refresh()
        return change

    def delete(self, doc_id: str) -> live.Change:
        eng = self.require()
        with self._writing():
            eng = self.engine or eng
            try:
                change = live.delete_document(self.index_dir, doc_id, eng.encoder, hint=eng.index)
            except IndexBusyError as e:
                raise IndexBusy(str(e)) from None
            self.refresh()
        return change


def _watch(ref: weakref.ReferenceType[EngineHolder], every: float) -> None:
    """Follow CURRENT while the holder lives (a daemon thread: it ends with the server)."""
    while True:
        time.sleep(every)
        holder = ref()
        if holder is None:
            return
        try:
            holder.refresh()
        except Exception as e:  # noqa: BLE001 - the watcher must outlive any one bad generation
            holder.watch_error = f"{type(e).__name__}: {e}"
        del holder


def _log(msg: str) -> None:
    print(f"qa: {msg}", file=sys.stderr, flush=True)


class UploadLimit:
    """Refuse an upload body over ``limit`` bytes before reading it (by its Content-Length), or as soon
    as a body without one passes the limit: a 200 MB file is never read to be refused. The 413 is an
    HTTPException raised from ``receive``, which FastAPI hands to the app's handler (one-line JSON)."""

    def __init__(self, app: Any, paths: tuple[str, ...], limit: int) -> None:
        self.app, self.paths, self.limit = app, paths, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        too_big = declared.isdigit() and int(declared) > self.limit
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            if too_big:
                raise HTTPException(413, too_large("the upload"))
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, too_large("the upload"))
            return message

        await self.app(scope, limited, send)


def too_large(name: str) -> str:
    return f"{name}: too large (over the {MAX_FILE_BYTES // 2**20} MB limit); split it"


# --- view helpers (the chat's JavaScript mirrors these in static/chat.js) ----------------------
def confidence_level(conf: float) -> str:
    return next(name for floor, name in CONFIDENCE_LEVELS if conf >= floor)


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


ANSWER_JOIN = " · "  # between the parts of a two-part answer ("Foreign Secretary Sohail Mahmood · Ramiz Hasanov")


def answer_marks(ans: dict[str, Any]) -> dict[int, list[tuple[int, int]]]:
    """Where to highlight the answer: citation index → sorted, non-overlapping (start, end) in its
    sentence. A two-part answer marks each part in its own citation (both in one sentence when they
    share it); otherwise the first citation's answer span. Offsets that do not fit are skipped."""
    cits = ans.get("citations") or []
    if ans.get("abstained") or not cits:
        return {}

    def fits(i: Any, a: Any, b: Any) -> bool:
        return (all(isinstance(v, int) and not isinstance(v, bool) for v in (i, a, b))
                and 0 <= i < len(cits) and 0 <= a < b <= len(cits[i]["sentence"]))

    spans: list[tuple[int, int, int]] = []
    parts = ans.get("answers")
    if isinstance(parts, list) and len(parts) > 1:
        spans = [(p.get("citation"), p.get("answer_start"), p.get("answer_end")) for p in parts if isinstance(p, dict)]
        spans = [s for s in spans if fits(*s)]
    if not spans and fits(0, cits[0].get("answer_start"), cits[0].get("answer_end")):
        spans = [(0, cits[0]["answer_start"], cits[0]["answer_end"])]
    marks: dict[int, list[tuple[int, int]]] = {}
    for i, a, b in sorted(spans):
        kept = marks.setdefault(i, [])
        if not kept or a >= kept[-1][1]:
            kept.append((a, b))
    return marks


def answer_phrase(ans: dict[str, Any]) -> str | None:
    """The answer as shown: both parts of a two-part answer, else the answer phrase."""
    parts = ans.get("answers")
    if (not ans.get("abstained") and isinstance(parts, list) and len(parts) > 1
            and all(isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"] for p in parts)):
        return ANSWER_JOIN.join(p["text"] for p in parts)
    return ans.get("answer")


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


def answer_view(ans: dict[str, Any]) -> dict[str, Any]:
    """What a template needs to show one answer: highlighted sentence parts and citation links."""
    marks = answer_marks(ans)
    cits = []
    for i, c in enumerate(ans["citations"]):
        mine = marks.get(i, [])
        if mine:  # the document view highlights one answer span: this citation's first
            href = doc_href(c["doc_id"], c["start"], c["end"], c["start"] + mine[0][0], c["start"] + mine[0][1])
        else:
            href = doc_href(c["doc_id"], c["start"], c["end"])
        if i == 0 and ans.get("answer_source") == "document_date" and ans.get("answer_doc_id") == c["doc_id"]:
            href = doc_href(c["doc_id"], c["start"], c["end"], ans["answer_doc_start"], ans["answer_doc_end"])
        cits.append({**c, "n": i + 1, "parts": marked_parts(c["sentence"], mine), "href": href,
                     "pretty_date": pretty_date(c.get("date"))})
    date_href = None
    if ans.get("answer_source") == "document_date" and ans.get("answer_doc_id") is not None:
        date_href = doc_href(ans["answer_doc_id"], ans["answer_doc_start"], ans["answer_doc_end"])
    return {**ans, "cits": cits, "level": confidence_level(ans["confidence"]), "date_href": date_href,
            "phrase": answer_phrase(ans)}


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
    msg = str(err.get("msg", "invalid value"))
    if loc == ["question"] and err.get("type") in ("string_too_short", "string_pattern_mismatch"):
        return 422, "the question is empty"
    if loc == ["question"] and err.get("type") == "string_too_long":
        n = len(err.get("input") or "")
        return 422, f"the question is {n} characters long; the limit is {MAX_QUESTION_CHARS}"
    if loc and err.get("type") in ("model_type", "model_attributes_type", "dict_type"):
        return 422, f'{where} must be a JSON object such as {{"question": "…"}}, or null'
    if err.get("type") == "model_attributes_type" or (not loc and "dict" in msg):
        return 422, 'request body must be a JSON object such as {"question": "…"}'
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return 422, f"{where}: {msg}{more}" if where else f"{msg}{more}"


def wants_html(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith("/api/") or path in ("/healthz", "/openapi.json"))


# --- the app ------------------------------------------------------------------------------------
def create_app(index_dir: Path | str | None = None, *, engine: Engine | None = None,
               batch_questions: bool | None = None) -> FastAPI:
    """The chat and API over the index at ``index_dir`` (or a ready ``engine`` for it).

    A missing index does not stop the app: pages say how to build one, the API answers 503.
    ``batch_questions`` (default: on, unless ``CITEQA_BATCH_QUESTIONS=0``) encodes the questions of
    concurrent requests together (see web/batching.py).
    """
    if index_dir is None:
        index_dir = os.environ.get(INDEX_ENV, ".citeqa")
    index_dir = Path(index_dir)
    if batch_questions is None:
        batch_questions = os.environ.get(BATCH_ENV, "1") != "0"
    holder = EngineHolder(index_dir, engine, batch_questions=batch_questions)

    app = FastAPI(
        title="citeqa",
        version="0.1.0",
        summary="Cited extractive question answering over a folder of documents.",
        description="Every answer is a quote from the indexed documents, with the sentences that support it; "
        "when the documents do not answer, `abstained` is true and the citations are the nearest passages.",
        docs_url=None,  # FastAPI's Swagger UI loads from a CDN; /docs is our own page (see api_docs)
        redoc_url=None,
    )
    app.state.holder = holder
    app.add_middleware(UploadLimit, paths=("/api/documents", "/documents"), limit=MAX_FILE_BYTES + UPLOAD_OVERHEAD)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals |= {"max_chars": MAX_QUESTION_CHARS, "pretty_date": pretty_date, "answer_view": answer_view}
    env.filters["tojson_safe"] = lambda v: jinja2.utils.htmlsafe_json_dumps(v)

    def page(name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        eng = holder.get()
        base = {
            "index_dir": str(index_dir),
            "index_error": None if eng else holder.error,
            "build_hint": holder.build_hint(),
            "n_docs": len(eng.index.docs) if eng else 0,
        }
        html = env.get_template(name).render(**base, **ctx)
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

    # --- errors: one line, JSON for the API and an HTML page for browsers ----------------------
    def error_response(request: Request, status: int, detail: str) -> Response:
        if wants_html(request):
            return page("error.html", status=status, status_code=status, detail=detail)
        return JSONResponse({"detail": detail}, status_code=status)

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

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(jsonable_encoder(exc.detail))
        resp = error_response(request, exc.status_code, detail.splitlines()[0] if detail else "error")
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    # --- API ----------------------------------------------------------------------------------
    @app.post("/api/ask", response_model=AnswerOut, responses=ERRORS, tags=["api"],
              summary="Answer a question with cited sentences")
    def api_ask(req: AskRequest) -> JSONResponse:
        eng = holder.require()
        try:
            ans = eng.ask(req.question, k=req.k, id=req.id,
                          previous=req.previous.to_previous() if req.previous else None)
        except QuestionError as e:
            raise HTTPException(422, str(e)) from None
        return JSONResponse(ans.to_dict())

    @app.get("/api/documents", response_model=list[DocumentSummary], responses={503: ERRORS[503]}, tags=["api"],
             summary="List the indexed documents")
    def api_documents() -> list[dict[str, Any]]:
        eng = holder.require()
        sents = eng.index.doc_sentences
        return [
            {"doc_id": d.doc_id, "title": d.title, "date": d.date_iso, "sentences": len(sents[d.doc_id]),
             "chars": len(d.text)}
            for d in eng.index.docs.values()
        ]

    @app.get("/api/documents/{doc_id:path}", response_model=DocumentOut,
             responses={400: ERRORS[400], 404: {"model": ErrorOut, "description": "no such document"}, 503: ERRORS[503]},
             tags=["api"],
             summary="One document's text and metadata")
    def api_document(doc_id: str = PathParam(json_schema_extra=DOC_ID_SCHEMA)) -> dict[str, Any]:
        eng = holder.require()
        doc = find_doc(eng, doc_id)
        idx = eng.index
        sids = idx.doc_sentences[doc.doc_id]
        return {
            "doc_id": doc.doc_id, "title": doc.title, "date": doc.date_iso, "sentences": len(sids),
            "chars": len(doc.text), "text": doc.text, "content_hash": doc.content_hash,
            "format": doc.format, "date_start": doc.date_start, "date_end": doc.date_end,
            "sentence_offsets": [(int(idx.sent_start[s]), int(idx.sent_end[s])) for s in sids],
            "furniture": [list(f) for f in doc.furniture], "page_starts": list(doc.page_starts),
        }

    # --- changing the documents: uploads and deletions ------------------------------------------
    def refuse_cross_site(request: Request) -> None:
        # A page on another site may post a form or a multipart body here without asking first
        # (no CORS preflight for those); browsers say where a request comes from, so refuse it.
        # Sec-Fetch-Site is the browser's own verdict ("same-site" would be another port of this
        # host: refused too); without it, the Origin must be this host. curl and scripts send neither.
        site = request.headers.get("sec-fetch-site")
        origin = request.headers.get("origin")
        if (site is not None and site not in ("same-origin", "none")) or (
            site is None and origin is not None and urlsplit(origin).netloc != request.headers.get("host", "")
        ):
            raise HTTPException(403, "refused: the request comes from another web site; use this server's own "
                                     "pages, or send it without an Origin header (curl, scripts)")

    def upload(file: UploadFile) -> tuple[live.Change, ChangeOut]:
        """Check and index one uploaded file; every refusal is a 4xx naming the file and the reason."""
        try:
            doc_id = upload_doc_id(file.filename)
        except BadNameError as e:
            raise HTTPException(400, str(e)) from None
        check_doc_id(doc_id)  # an id the API could not then show or delete ("a%2fb.txt") is refused now
        if not doc_id.lower().endswith(SUPPORTED_SUFFIXES):
            raise HTTPException(415, f"{doc_id}: unsupported file type {Path(doc_id).suffix or '(none)'}; "
                                     f"supported: {', '.join(SUPPORTED_SUFFIXES)}")
        data = file.file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise HTTPException(413, too_large(doc_id))
        try:
            doc = load_bytes(data, doc_id)
        except DocumentError as e:
            raise HTTPException(422, f"{doc_id}: {e}") from None
        except Exception as e:  # noqa: BLE001 - a file no extractor expected is the file's fault, not a 500
            raise HTTPException(422, f"{doc_id}: cannot read it as {Path(doc_id).suffix} ({type(e).__name__})") from None
        change = applying(lambda: holder.add(doc, data))
        return change, change_out(change)

    def applying(fn: Callable[[], live.Change]) -> live.Change:
        try:
            return fn()
        except live.UnknownDocumentError as e:
            raise HTTPException(404, str(e)) from None
        except live.LiveUpdateError as e:
            raise HTTPException(409, str(e)) from None
        except IndexBusy as e:
            raise HTTPException(503, str(e), headers={"Retry-After": RETRY_AFTER}) from None
        except (BuildError, IndexError_, OSError) as e:
            # A full disk or a damaged index: the live index is untouched; say what happened.
            raise HTTPException(503, f"the change was not applied: {e}".splitlines()[0],
                                headers={"Retry-After": RETRY_AFTER}) from None

    def change_out(change: live.Change) -> ChangeOut:
        eng = holder.require()
        rec = eng.index.docs.get(change.doc_id)
        n = len(eng.index.doc_sentences.get(change.doc_id, ())) if rec else 0
        messages = {
            "added": f"added {change.doc_id} ({n} sentences); ask about it now",
            "replaced": f"replaced the existing document {change.doc_id} with the uploaded file ({n} sentences)",
            "unchanged": f"{change.doc_id} is already indexed with this content; nothing changed",
            "deleted": f"deleted {change.doc_id}; {len(eng.index.docs)} documents left",
        }
        return ChangeOut(doc_id=change.doc_id, action=change.action, message=messages[change.action],
                         title=rec.title if rec else None, date=rec.date_iso if rec else None, sentences=n,
                         documents=len(eng.index.docs), seconds=round(change.seconds, 3))

    @app.post("/api/documents", response_model=ChangeOut, status_code=201,
              responses={200: {"model": ChangeOut, "description": "an existing document was replaced (or unchanged)"},
                         409: {"model": ErrorOut, "description": "the index cannot take the change as it is"},
                         **UPLOAD_ERRORS},
              tags=["api"], summary="Add a document, or replace the one with the same name (multipart, field `file`)")
    def api_upload(request: Request, file: Annotated[UploadFile, File(description=UPLOAD_FIELD)]) -> JSONResponse:
        refuse_cross_site(request)
        change, out = upload(file)
        return JSONResponse(out.model_dump(), status_code=201 if change.action == "added" else 200)

    @app.delete("/api/documents/{doc_id:path}", response_model=ChangeOut, responses=DELETE_ERRORS, tags=["api"],
                summary="Delete a document from the index")
    def api_delete(request: Request, doc_id: str = PathParam(json_schema_extra=DOC_ID_SCHEMA)) -> JSONResponse:
        refuse_cross_site(request)
        check_doc_id(doc_id)
        holder.require()
        return JSONResponse(change_out(applying(lambda: holder.delete(doc_id))).model_dump())

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health, "description": "no index"}},
             tags=["api"], summary="Is an index loaded, how big, which model")
    def healthz() -> JSONResponse:
        eng = holder.get()
        body = Health(
            status="ok" if eng else "no_index",
            index_loaded=eng is not None,
            index_dir=str(index_dir),
            documents=len(eng.index.docs) if eng else 0,
            sentences=eng.index.n_sentences() if eng else 0,
            model=eng.index.encoder_name if eng else None,
            generation=eng.index.gen_dir.name if eng else None,
            detail=(f"{holder.error} Build it with: {holder.build_hint()}" if eng is None
                    else f"the index changed on disk but could not be loaded: {holder.watch_error}"
                    if holder.watch_error else None),
        )
        return JSONResponse(body.model_dump(), status_code=200 if eng else 503)

    # --- pages --------------------------------------------------------------------------------
    def find_doc(eng: Engine, doc_id: str):
        check_doc_id(doc_id)
        doc = eng.index.docs.get(doc_id)
        if doc is None:
            raise HTTPException(404, f"no document {doc_id[:80]!r} in this index; GET /api/documents lists them")
        return doc

    def chat(question: str | None, previous: Previous | None = None) -> HTMLResponse:
        # {"question", "answer": the contract, or "error": one line}; chat.js keeps it in its history.
        exchange: dict[str, Any] | None = None
        if question is not None:
            exchange = {"question": question}
            eng = holder.get()
            if eng is None:
                exchange["error"] = f"{holder.error} Build it with: {holder.build_hint()}"
            else:
                try:
                    exchange["answer"] = eng.ask(question, previous=previous).to_dict()
                except QuestionError as e:
                    exchange["error"] = str(e)[:1].upper() + str(e)[1:] + "."
        return page("chat.html", examples=EXAMPLES, exchange=exchange, after=turn_before_next(exchange),
                    accept=",".join(SUPPORTED_SUFFIXES))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index_page(
        q: str | None = Query(None, max_length=MAX_QUESTION_CHARS * 2),
        after: str | None = Query(None, max_length=MAX_PREVIOUS_CHARS),
        after_doc: str | None = Query(None, max_length=MAX_PREVIOUS_DOC_ID_CHARS),
        after_answer: str | None = Query(None, max_length=MAX_PREVIOUS_ANSWER_CHARS),
    ) -> HTMLResponse:
        previous = Previous(after, after_doc or None, after_answer or None) if after else None
        return chat(q, previous)

    @app.post("/", include_in_schema=False)
    def index_post(
        question: str = Form("", max_length=MAX_QUESTION_CHARS * 2),
        after: str = Form("", max_length=MAX_PREVIOUS_CHARS),
        after_doc: str = Form("", max_length=MAX_PREVIOUS_DOC_ID_CHARS),
        after_answer: str = Form("", max_length=MAX_PREVIOUS_ANSWER_CHARS),
    ) -> Response:
        # The form without JavaScript (with JS, chat.js uses the API). Post/redirect/get: the answer
        # page has an address, so a reload shows the answer again instead of asking to resend a form.
        # The hidden `after*` fields carry the turn on the page, so a follow-up works here too.
        params = {"q": question}
        if after:
            params |= {k: v for k, v in (("after", after), ("after_doc", after_doc), ("after_answer", after_answer)) if v}
        return RedirectResponse("/?" + urlencode(params), status_code=303)

    @app.get("/doc/{doc_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def doc_page(
        doc_id: str,
        start: int | None = Query(None, ge=0),
        end: int | None = Query(None, ge=0),
        astart: int | None = Query(None, ge=0),
        aend: int | None = Query(None, ge=0),
    ) -> HTMLResponse:
        eng = holder.get()
        if eng is None:
            raise HTTPException(503, f"{holder.error} Build it with: {holder.build_hint()}")
        doc = find_doc(eng, doc_id)
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
        return page(
            "doc.html",
            doc=doc,
            segments=doc_segments(doc.text, spans),
            n_sentences=len(eng.index.doc_sentences[doc.doc_id]),
            notice=notice,
            has_cite=has_cite,
            has_answer=has_answer,
            has_furniture=bool(doc.furniture),
            api_href=f"/api/documents/{quote(doc.doc_id, safe='/')}",
        )

    # The documents page: the list, an upload form and a delete button per document. Plain forms
    # (post, then redirect back with what happened), so it works without JavaScript.
    DONE = {"added": "Added", "replaced": "Replaced", "unchanged": "Already indexed, unchanged:", "deleted": "Deleted"}

    def documents_view(status: int = 200, error: str | None = None, done: str | None = None,
                       doc: str | None = None) -> HTMLResponse:
        eng = holder.get()
        uploaded = set(uploaded_ids(index_dir)) if eng else set()
        rows = []
        if eng is not None:
            for d in eng.index.docs.values():
                rows.append({"doc_id": d.doc_id, "title": d.title, "date": d.date_iso,
                             "sentences": len(eng.index.doc_sentences[d.doc_id]), "uploaded": d.doc_id in uploaded,
                             "href": f"/doc/{quote(d.doc_id, safe='/')}"})
        flash = f"{DONE[done]} {doc}." if done in DONE and doc else None
        return page("documents.html", status=status, rows=rows, error=error, flash=flash, done=done,
                    accept=",".join(SUPPORTED_SUFFIXES), max_mb=MAX_FILE_BYTES // 2**20)

    @app.get("/documents", response_class=HTMLResponse, include_in_schema=False)
    def documents_page(done: str | None = Query(None, max_length=20),
                       doc: str | None = Query(None, max_length=400)) -> HTMLResponse:
        return documents_view(done=done, doc=doc)

    @app.post("/documents", include_in_schema=False)
    async def documents_upload(request: Request) -> Response:
        refuse_cross_site(request)
        try:
            form = await request.form(max_files=1, max_fields=4)
        except HTTPException:
            raise
        except Exception:  # noqa: BLE001 - a malformed multipart body is the sender's fault
            return documents_view(400, "The upload could not be read; choose a file and try again.")
        try:
            file = form.get("file")
            if not isinstance(file, StarletteUploadFile) or not file.filename:
                return documents_view(400, "Choose a file to upload first.")
            try:
                change, _ = await run_in_threadpool(upload, file)
            except HTTPException as e:
                return documents_view(e.status_code, str(e.detail))
        finally:
            await form.close()
        return RedirectResponse("/documents?" + urlencode({"done": change.action, "doc": change.doc_id}), status_code=303)

    @app.post("/documents/delete", include_in_schema=False)
    def documents_delete(request: Request, doc_id: str = Form("", max_length=2000)) -> Response:
        refuse_cross_site(request)
        try:
            check_doc_id(doc_id)
            holder.require()
            change = applying(lambda: holder.delete(doc_id))
        except HTTPException as e:
            return documents_view(e.status_code, str(e.detail))
        return RedirectResponse("/documents?" + urlencode({"done": "deleted", "doc": change.doc_id}), status_code=303)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return page("api_docs.html", ops=describe_openapi(app.openapi()))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> RedirectResponse:
        return RedirectResponse("/static/favicon.svg", status_code=308)

    return app


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


# --- running it ---------------------------------------------------------------------------------
def _worker_app() -> FastAPI:
    """The app factory each uvicorn worker process calls (``--workers N``)."""
    return create_app(os.environ[INDEX_ENV])


def serve(index_dir: Path | str, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> int:
    """Serve the chat and API until interrupted; returns the exit code."""
    import uvicorn

    index_dir = Path(index_dir)
    if workers < 1:
        print("qa: --workers must be at least 1", file=sys.stderr)
        return 2
    os.environ[INDEX_ENV] = str(index_dir)
    _limit_torch_threads(workers)
    if current_generation(index_dir) is None:
        print(f"qa: warning: no index at {index_dir} — the page will say so; build one with: "
              f"qa index corpus --index {index_dir}", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    opts: dict[str, Any] = {"host": host, "port": port, "log_level": "warning", "access_log": False}
    try:
        # One worker loads the index here, before listening; N workers each load their own copy.
        target: Any = create_app(index_dir) if workers == 1 else "web.app:_worker_app"
        print(f"qa: serving the chat on http://{shown}:{port}/ (API docs at /docs; Ctrl+C stops)", file=sys.stderr)
        if workers == 1:
            uvicorn.run(target, **opts)
        else:
            uvicorn.run(target, factory=True, workers=workers, **opts)
    except SystemExit as e:  # uvicorn exits when it cannot bind the port
        return int(e.code) if isinstance(e.code, int) else 1
    except OSError as e:
        print(f"qa: cannot serve on {host}:{port}: {e}", file=sys.stderr)
        return 1
    return 0


def _limit_torch_threads(workers: int) -> None:
    """Requests run side by side in threads (and workers): one torch thread each avoids oversubscribing."""
    cores = os.cpu_count() or 1
    # Read by torch when (and only when) an fp32 index makes the encoder import it: importing
    # torch here would cost the int8 server ~200 MB and a second of start-up for nothing.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // workers) if workers > 1 else 1))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(max(1, cores // workers) if workers > 1 else 1)
