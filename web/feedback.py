"""Feedback on answers: ``POST /api/feedback`` records a verdict in the index folder (see qa/feedback.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException

from qa.feedback import FeedbackError, check_sentence, record
from web.auth import caller
from web.holder import Holder
from web.metrics import metrics_of
from web.schemas import ERRORS, ErrorOut, FeedbackIn, FeedbackOut

router = APIRouter(tags=["api"])


@router.post("/api/feedback", response_model=FeedbackOut, status_code=201,
             responses={**ERRORS, 422: {"model": ErrorOut, "description": "the request does not fit the schema, or "
                                        "`correct` is not a sentence of the index (the reason is one line)"}},
             summary="Say whether an answer was right; a wrong one with the sentence that answers, or none")
def api_feedback(req: FeedbackIn, request: Request, holder: Holder) -> FeedbackOut:
    eng = holder.require()
    correct = None
    if req.correct is not None:
        if req.verdict == "right":
            raise HTTPException(422, 'correct is for a "wrong" verdict: the sentence that answers instead')
        try:
            sentence = check_sentence(eng.index, req.correct.doc_id, req.correct.start, req.correct.end)
        except FeedbackError as e:
            raise HTTPException(422, f"correct: {e}") from None
        correct = {**req.correct.model_dump(), "sentence": sentence}
    generation = req.answer.generation if req.answer and req.answer.generation else eng.index.gen_dir.name
    key = caller(request)
    try:
        entry = record(holder.index_dir, {
            "question": req.question, "verdict": req.verdict, "correct": correct,
            "answer": req.answer.model_dump() if req.answer else None, "generation": generation,
            "key": key.name if key else None,
        })
    except OSError as e:
        raise HTTPException(503, f"the feedback was not recorded: {e.strerror}", headers={"Retry-After": "5"}) from None
    metrics_of(request).feedback.labels(req.verdict).inc()
    what = ("right" if req.verdict == "right" else
            "wrong; the documents don't answer it" if correct is None else "wrong, with the sentence that answers")
    return FeedbackOut(id=entry["id"], verdict=req.verdict, generation=generation,
                       message=f"recorded: {what} (qa feedback export --index {holder.index_dir} makes a gold file)")
