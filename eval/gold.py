"""Gold question sets: one JSON object per line, loaded into frozen records and checked.

A line::

    {"id": "d001-01", "question": "When did …?", "answers": ["13 April 2023", "2023-04-13"],
     "doc_ids": ["001_072c7506d9b82cf7.txt"], "evidence": ["Islamabad, 13 April 2023 (TDI): …"],
     "answerable": true}

``evidence`` holds whole sentences copied verbatim from the documents (as our splitter cuts
them), so a cited sentence can be compared with them. Unanswerable questions have empty
``answers``, ``doc_ids`` and ``evidence``. The SQuAD benchmark produces the same records, so
one scorer serves both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.documents import detect_document_date

GOLD_DIR = Path(__file__).resolve().parent / "gold"
DEMO_GOLD = GOLD_DIR / "demo.jsonl"


class GoldError(ValueError):
    """A gold file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class GoldItem:
    id: str
    question: str
    answers: tuple[str, ...]
    doc_ids: tuple[str, ...]
    evidence: tuple[str, ...]
    answerable: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answers": list(self.answers),
            "doc_ids": list(self.doc_ids),
            "evidence": list(self.evidence),
            "answerable": self.answerable,
        }


def _str_list(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    val = obj.get(key, [])
    if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
        raise GoldError(f"{where}: {key!r} must be a list of strings")
    return tuple(val)


def parse_item(obj: Any, where: str) -> GoldItem:
    """One gold record from a decoded JSON object; ``where`` ("file:line") goes into errors."""
    if not isinstance(obj, dict):
        raise GoldError(f"{where}: expected a JSON object")
    for key in ("id", "question"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise GoldError(f"{where}: {key!r} must be a non-empty string")
    answers = _str_list(obj, "answers", where)
    doc_ids = _str_list(obj, "doc_ids", where)
    evidence = _str_list(obj, "evidence", where)
    answerable = obj.get("answerable", bool(answers))
    if not isinstance(answerable, bool):
        raise GoldError(f"{where}: 'answerable' must be true or false")
    if answerable and not answers:
        raise GoldError(f"{where}: an answerable question needs at least one answer")
    if not answerable and (answers or doc_ids or evidence):
        raise GoldError(f"{where}: an unanswerable question must have empty answers, doc_ids and evidence")
    return GoldItem(obj["id"], obj["question"].strip(), answers, doc_ids, evidence, answerable)


def load_gold(path: Path | str) -> list[GoldItem]:
    """Read a JSONL gold file; blank lines are skipped, ids must be unique."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise GoldError(f"cannot read gold file {path}: {e.strerror}") from None
    items: list[GoldItem] = []
    seen: set[str] = set()
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise GoldError(f"{where}: not valid JSON ({e.msg})") from None
        item = parse_item(obj, where)
        if item.id in seen:
            raise GoldError(f"{where}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise GoldError(f"gold file {path} holds no questions")
    return items


def validate_gold(items: Iterable[GoldItem], doc_texts: Mapping[str, str]) -> list[str]:
    """Problems that would make scores meaningless, one message each (empty list: all good).

    - every gold document exists;
    - every evidence sentence occurs verbatim in one of the question's gold documents;
    - every answer occurs in an evidence sentence, or, for questions about when a document was
      written, in a gold document's text or as that document's ISO date ("2023-04-13").
    """
    problems: list[str] = []
    for it in items:
        texts = []
        for d in it.doc_ids:
            if d not in doc_texts:
                problems.append(f"{it.id}: gold document {d!r} is not in the corpus")
            else:
                texts.append(doc_texts[d])
        for ev in it.evidence:
            if not any(ev in t for t in texts):
                problems.append(f"{it.id}: evidence not found verbatim in its documents: {ev[:80]!r}")
        iso_dates = {dd.iso for t in texts if (dd := detect_document_date(t)) is not None}
        for a in it.answers:
            if any(a in ev for ev in it.evidence):
                continue
            if any(a in t for t in texts) or a in iso_dates:
                continue
            problems.append(f"{it.id}: answer {a!r} occurs neither in the evidence nor in its documents")
        if it.answerable and not it.evidence:
            problems.append(f"{it.id}: answerable but no evidence sentence")
    return problems
