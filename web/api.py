"""The JSON API: asking, the documents, uploads and deletions, health. Each route gets the
engine holder as a dependency (``Holder``) and reads ``holder.require()`` once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from qa.engine import QuestionError
from web.auth import caller, keys_required
from web.changes import applying, change_out, refuse_cross_site, upload
from web.errors import DOC_ID_SCHEMA, check_doc_id, find_doc
from web.holder import Holder
from web.metrics import metrics_of
from web.schemas import (
    DELETE_ERRORS,
    ERRORS,
    UPLOAD_ERRORS,
    UPLOAD_FIELD,
    AnswerOut,
    AskRequest,
    ChangeOut,
    DocumentOut,
    DocumentSummary,
    ErrorOut,
    Health,
    WatchOut,
)
from web.views import answer_body

router = APIRouter(tags=["api"])


# The optional fields of the contract are left out when an answer does not have them (as
# `qa ask --json` does), so the response is validated by the model and unset fields are not added.
@router.post("/api/ask", response_model=AnswerOut, response_model_exclude_unset=True, responses=ERRORS,
             summary="Answer a question with cited sentences")
def api_ask(req: AskRequest, request: Request, holder: Holder) -> dict[str, Any]:
    eng = holder.require()
    try:
        ans = eng.ask(req.question, k=req.k, id=req.id, previous=req.previous.to_previous() if req.previous else None,
                      filter=req.filter.to_filter() if req.filter else None)
    except QuestionError as e:
        raise HTTPException(422, str(e)) from None
    metrics_of(request).answer(ans)
    return {**answer_body(ans), "generation": eng.index.gen_dir.name}


@router.get("/api/documents", response_model=list[DocumentSummary], responses={503: ERRORS[503]},
            summary="List the indexed documents")
def api_documents(holder: Holder) -> list[dict[str, Any]]:
    eng = holder.require()
    sents = eng.index.doc_sentences
    return [
        {"doc_id": d.doc_id, "title": d.title, "date": d.date_iso, "sentences": len(sents[d.doc_id]),
         "chars": len(d.text)}
        for d in eng.index.docs.values()
    ]


@router.get("/api/documents/{doc_id:path}", response_model=DocumentOut,
            responses={400: ERRORS[400], 404: {"model": ErrorOut, "description": "no such document"}, 503: ERRORS[503]},
            summary="One document's text and metadata")
def api_document(holder: Holder, doc_id: str = PathParam(json_schema_extra=DOC_ID_SCHEMA)) -> dict[str, Any]:
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


@router.post("/api/documents", response_model=ChangeOut, status_code=201,
             responses={200: {"model": ChangeOut, "description": "an existing document was replaced (or unchanged)"},
                        409: {"model": ErrorOut, "description": "the index cannot take the change as it is"},
                        **UPLOAD_ERRORS},
             summary="Add a document, or replace the one with the same name (multipart, field `file`)")
def api_upload(request: Request, holder: Holder,
               file: Annotated[UploadFile, File(description=UPLOAD_FIELD)]) -> JSONResponse:
    refuse_cross_site(request)
    change, out = upload(holder, file)
    return JSONResponse(out.model_dump(), status_code=201 if change.action == "added" else 200)


@router.delete("/api/documents/{doc_id:path}", response_model=ChangeOut, responses=DELETE_ERRORS,
               summary="Delete a document from the index")
def api_delete(request: Request, holder: Holder,
               doc_id: str = PathParam(json_schema_extra=DOC_ID_SCHEMA)) -> JSONResponse:
    refuse_cross_site(request)
    check_doc_id(doc_id)
    holder.require()
    return JSONResponse(change_out(holder, applying(lambda: holder.delete(doc_id))).model_dump())


@router.get("/healthz", response_model=Health, responses={503: {"model": Health, "description": "no index"}},
            summary="Is an index loaded, how big, which model")
def healthz(request: Request, holder: Holder) -> JSONResponse:
    eng = holder.get()
    watching = request.app.state.watch
    # Open for liveness checks; with keys, the folder's file names only to a caller with a key.
    private = keys_required(request) and caller(request) is None
    body = Health(
        status="ok" if eng else "no_index",
        index_loaded=eng is not None,
        index_dir=str(holder.index_dir),
        documents=len(eng.index.docs) if eng else 0,
        sentences=eng.index.n_sentences() if eng else 0,
        model=eng.index.encoder_name if eng else None,
        generation=eng.index.gen_dir.name if eng else None,
        detail=(f"{holder.error} Build it with: {holder.build_hint()}" if eng is None
                else f"the index changed on disk but could not be loaded: {holder.watch_error}"
                if holder.watch_error else None),
        watch=None if watching is None else WatchOut(**{**watching.to_dict(), **(
            {"folder": "(send a key to see it)", "skipped": []} if private else {})}),
    )
    return JSONResponse(body.model_dump(), status_code=200 if eng else 503)
