"""Feedback on answers, kept with the index, and turned into a gold question set.

``INDEX_DIR/feedback.jsonl`` holds one verdict per line, appended and fsynced (never rewritten)::

    {"id": "fb-20261203T081500-3f9a1c", "at": "2026-12-03T08:15:00Z", "question": "…",
     "verdict": "wrong", "correct": {"doc_id": "a.txt", "start": 120, "end": 201, "sentence": "…"},
     "answer": {"answer": "…", "abstained": false, "citations": [{"doc_id", "start", "end", "sentence"}]},
     "generation": "gen-000012", "key": "alice"}

``correct`` is the sentence that does answer (its document offsets), or null: the documents do
not answer the question. ``export_gold`` writes the verdicts as a gold file in the format of
``eval/gold/*.jsonl`` (``qa feedback export --index DIR``), which ``qa eval --gold`` reads:

- "right" on an answer: its answer phrase, with the sentence it was quoted from as the evidence;
- "right" on an abstention, or "wrong" with ``correct`` null: an unanswerable question;
- "wrong" with ``correct``: that sentence is the evidence, and (no phrase being marked) the whole
  sentence is the answer, so the question is scored by its evidence first (evidence@1, @3).

The last verdict on a question wins.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from index.loaded import LoadedIndex

FEEDBACK = "feedback.jsonl"
Verdict = Literal["right", "wrong"]
_append_lock = threading.Lock()


class FeedbackError(ValueError):
    """Feedback that cannot be recorded as sent (a sentence that is not one); the message says why."""


def feedback_path(index_dir: Path) -> Path:
    return index_dir / FEEDBACK


def check_sentence(index: LoadedIndex, doc_id: str, start: int, end: int) -> str:
    """The text of the sentence of ``doc_id`` at ``start:end``; FeedbackError when there is none."""
    if doc_id not in index.docs:
        raise FeedbackError(f"no document {doc_id[:80]!r} in this index")
    for sid in index.doc_sentences[doc_id]:
        if int(index.sent_start[sid]) == start and int(index.sent_end[sid]) == end:
            return index.docs[doc_id].text[start:end]
    raise FeedbackError(f"{start}:{end} is not a sentence of {doc_id[:80]!r}; send the offsets of a cited sentence "
                        "(its start and end)")


def record(index_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Append ``entry`` (given an id and a time) to the feedback file and fsync it; returns the entry."""
    now = time.gmtime()
    entry = {"id": f"fb-{time.strftime('%Y%m%dT%H%M%S', now)}-{secrets.token_hex(3)}",
             "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", now), **entry}
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    path = feedback_path(index_dir)
    with _append_lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write of the whole line to an O_APPEND file: lines never interleave
            os.fsync(fd)
        finally:
            os.close(fd)
    return entry


def read_feedback(index_dir: Path) -> list[dict[str, Any]]:
    """Every recorded verdict, oldest first (a torn last line of a killed writer is skipped)."""
    try:
        lines = feedback_path(index_dir).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("question"), str) and obj.get("verdict") in ("right", "wrong"):
            out.append(obj)
    return out


@dataclass(frozen=True)
class Export:
    items: list[dict[str, Any]]  # gold records (eval/gold.py's format)
    skipped: list[str]  # why a verdict could not become one


def to_gold(entries: Iterable[dict[str, Any]], index: LoadedIndex) -> Export:
    """Gold records from verdicts (the last one on a question wins), checked against ``index``."""
    latest: dict[str, dict[str, Any]] = {}
    for e in entries:
        latest[" ".join(e["question"].split()).lower()] = e
    items, skipped = [], []
    for e in latest.values():
        ans: dict[str, Any] = e["answer"] if isinstance(e.get("answer"), dict) else {}
        cits = ans.get("citations") if isinstance(ans.get("citations"), list) else []
        item: dict[str, Any] = {"id": e["id"], "question": e["question"], "answers": [], "doc_ids": [],
                                "evidence": [], "answerable": False}
        correct: dict[str, Any] = e["correct"] if isinstance(e.get("correct"), dict) else {}
        if e["verdict"] == "right" and not ans.get("abstained", True):
            if not ans.get("answer") or not cits or not isinstance(cits[0], dict):
                skipped.append(f"{e['id']}: marked right, but the answer it judged was not sent with it")
                continue
            top = cits[0]
            item |= {"answers": [ans["answer"]], "doc_ids": [top.get("doc_id")], "evidence": [top.get("sentence")],
                     "answerable": True}
        elif e["verdict"] == "wrong" and correct:
            try:
                sentence = check_sentence(index, str(correct.get("doc_id")), int(correct.get("start", -1)),
                                          int(correct.get("end", -1)))
            except (FeedbackError, TypeError, ValueError) as err:
                skipped.append(f"{e['id']}: {err} (the document changed since)")
                continue
            item |= {"answers": [sentence], "doc_ids": [correct["doc_id"]], "evidence": [sentence], "answerable": True}
        items.append(item)
    return Export(items, skipped)
