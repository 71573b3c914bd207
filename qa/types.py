"""The answer contract: what `qa ask --json`, `--jsonl` and `POST /api/ask` return.

Field names and meanings are fixed by the README's "The answer contract"; fields may be added,
none removed or renamed. Every field is declared here (the web room's response model declares
the same ones, ``web/schemas.py``), so a field cannot appear by convention only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

AnswerSource = Literal["sentence", "document_date"]


@dataclass(frozen=True)
class Citation:
    """One cited sentence: ``document.text[start:end] == sentence`` always."""

    doc_id: str
    title: str
    sentence: str
    start: int
    end: int
    score: float
    answer_start: int | None = None  # offsets of the answer phrase inside `sentence`
    answer_end: int | None = None
    date: str | None = None  # the document's ISO date, when the text states one
    passage_id: int | None = None
    page: int | None = None  # 1-based page of the sentence, for documents that have pages (PDF)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AnswerPart:
    """One part of an answer to a question asking for two things ("who led each side"):
    ``text == citations[citation].sentence[answer_start:answer_end]``."""

    text: str
    citation: int
    answer_start: int
    answer_end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """An extractive answer: `answer` is a quote from the top citation (or its document's date).

    The optional fields after ``expected_type`` are left out of :meth:`to_dict` when None (they
    are there only for the answers that have them: a follow-up's ``resolved_question``, a
    document-date answer's ``answer_note``, a two-part answer's ``answers``).
    """

    question: str
    answer: str | None
    abstained: bool
    confidence: float
    citations: tuple[Citation, ...]
    id: str | None = None
    # Where the answer phrase came from: "sentence" (inside citations[0].sentence) or
    # "document_date" (the cited document's date, at answer_doc_start:answer_doc_end of answer_doc_id).
    answer_source: AnswerSource | None = None
    answer_doc_id: str | None = None
    answer_doc_start: int | None = None
    answer_doc_end: int | None = None
    expected_type: str | None = None
    resolved_question: str | None = None  # how a follow-up was read, with the turn before
    reader: str | None = None  # the reader that decided ("neural", "linear"); None for the baselines
    support: float | None = None  # the reader's support for its top sentence
    answer_note: str | None = None  # where the answer comes from, when it is not the sentence itself
    answers: tuple[AnswerPart, ...] | None = None  # both parts of a two-part answer; `answer` is the first
    latency_ms: float | None = None  # time the engine took (the one field that differs between runs)
    filter: dict[str, Any] | None = None  # the filter the question was asked within ({"folder": …, "date_from": …})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "confidence": round(float(self.confidence), 4),
            "citations": [c.to_dict() for c in self.citations],
            "answer_source": self.answer_source,
            "answer_doc_id": self.answer_doc_id,
            "answer_doc_start": self.answer_doc_start,
            "answer_doc_end": self.answer_doc_end,
            "expected_type": self.expected_type,
        }
        optional: dict[str, Any] = {
            "resolved_question": self.resolved_question,
            "reader": self.reader,
            "support": self.support,
            "answer_note": self.answer_note,
            "answers": None if self.answers is None else [p.to_dict() for p in self.answers],
            "latency_ms": self.latency_ms,
            "filter": self.filter,
        }
        out.update((k, v) for k, v in optional.items() if v is not None)
        return out
