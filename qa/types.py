"""The answer contract: what `qa ask --json`, `--jsonl` and `POST /api/ask` return.

Field names and meanings are fixed by GUIDE.md; extra fields may be added, none removed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
class Answer:
    """An extractive answer: `answer` is a quote from the top citation (or its document's date)."""

    question: str
    answer: str | None
    abstained: bool
    confidence: float
    citations: tuple[Citation, ...]
    id: str | None = None
    # Where the answer phrase came from: "sentence" (inside citations[0].sentence) or
    # "document_date" (the cited document's date, located by `answer_source_span`).
    answer_source: str | None = None
    answer_doc_id: str | None = None
    answer_doc_start: int | None = None
    answer_doc_end: int | None = None
    expected_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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
        out.update(self.extra)
        return out
