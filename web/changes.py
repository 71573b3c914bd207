"""Changing the documents while serving: the checks and replies the API and the documents page share.

An upload is checked (its name, type and size), read by the loaders, then applied through the
holder (``EngineHolder.add``); every refusal is an ``HTTPException`` naming the file and the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Request, UploadFile
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException

from index import live
from index.build import BuildError
from index.documents import MAX_FILE_BYTES, SUPPORTED_SUFFIXES, DocumentError, load_bytes
from index.store import UnusableIndexError
from index.uploads import BadNameError, upload_doc_id
from web.errors import check_doc_id, too_large
from web.holder import EngineHolder, IndexBusy
from web.schemas import ChangeOut

RETRY_AFTER = "5"


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


def upload(holder: EngineHolder, file: UploadFile | StarletteUploadFile) -> tuple[live.Change, ChangeOut]:
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
    return change, change_out(holder, change)


def applying(fn: Callable[[], live.Change]) -> live.Change:
    """Run one change; what went wrong as the HTTP status a client can act on."""
    try:
        return fn()
    except live.UnknownDocumentError as e:
        raise HTTPException(404, str(e)) from None
    except live.LiveUpdateError as e:
        raise HTTPException(409, str(e)) from None
    except IndexBusy as e:
        raise HTTPException(503, str(e), headers={"Retry-After": RETRY_AFTER}) from None
    except (BuildError, UnusableIndexError, OSError) as e:
        # A full disk or a damaged index: the live index is untouched; say what happened.
        raise HTTPException(503, f"the change was not applied: {e}".splitlines()[0],
                            headers={"Retry-After": RETRY_AFTER}) from None


def change_out(holder: EngineHolder, change: live.Change) -> ChangeOut:
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
