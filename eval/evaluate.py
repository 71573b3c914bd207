"""Ask gold questions through the engine and score every answer: the glue between the engine and
the pure metrics.

Each question is asked once per method (citeqa and the two baselines) on the same loaded index,
interleaved question by question so a slow moment of the machine hurts all methods alike.
Scoring works on the answer contract's dictionary (``Answer.to_dict()``), so it judges exactly
what a user of ``qa ask --json`` or the web API receives.

"Correct" for one question, used by the threshold sweep, calibration and the failure list:
- answerable: not abstained and SQuAD token F1 >= ``CORRECT_F1`` (0.5) against a gold answer;
- unanswerable: abstained.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from eval import metrics as m
from eval.gold import GoldItem

METHODS = ("citeqa", "bm25", "dense")
READERS = ("neural", "linear")  # also methods: citeqa read by that reader, side by side with "citeqa"
CORRECT_F1 = 0.5

#: The score a method's threshold sweep ranks answers by. citeqa reports a confidence meant for
#: exactly that; the baselines report a constant 1.0, so their sweep uses the top citation's
#: retrieval score (the only signal they have), which is what a user of them would threshold.
SWEEP_SIGNAL = {"citeqa": "confidence", "neural": "confidence", "linear": "confidence", "bm25": "top_score",
                "dense": "top_score"}


class AnswersQuestions(Protocol):
    """What the evaluator needs of the engine: ``ask`` returning an object with ``to_dict()``."""

    def ask(self, question: str, k: int = 5, *, id: str | None = None, method: str = "citeqa") -> Any: ...


@dataclass(frozen=True)
class Scored:
    """One method's answer to one gold question, with every per-question measurement."""

    answer: str | None
    abstained: bool
    confidence: float
    top_score: float
    citations: tuple[dict[str, Any], ...]
    latency_s: float
    em: float
    f1: float
    hit: bool
    doc_rank: int | None
    evidence_at_1: bool
    evidence_at_3: bool
    evidence_recall_at_3: float
    faithful: int
    cited: int
    correct: bool  # see the module docstring
    correct_if_answered: bool  # the sweep's notion: would this answer be right if it were given

    def signal(self, method: str) -> float:
        return self.confidence if SWEEP_SIGNAL.get(method, "confidence") == "confidence" else self.top_score

    def to_dict(self, max_citations: int | None = None) -> dict[str, Any]:
        cits = self.citations if max_citations is None else self.citations[:max_citations]
        return {
            "answer": self.answer,
            "abstained": self.abstained,
            "confidence": self.confidence,
            "top_score": self.top_score,
            "latency_ms": round(self.latency_s * 1000, 2),
            "em": self.em,
            "f1": round(self.f1, 4),
            "hit": self.hit,
            "doc_rank": self.doc_rank,
            "evidence_at_1": self.evidence_at_1,
            "evidence_at_3": self.evidence_at_3,
            "evidence_recall_at_3": self.evidence_recall_at_3,
            "citations_faithful": self.faithful,
            "citations": [
                {key: c.get(key) for key in ("doc_id", "sentence", "start", "end", "score", "answer_start", "answer_end")}
                for c in cits
            ],
            "correct": self.correct,
        }


@dataclass
class Record:
    """A gold question and each method's scored answer; ``where`` names the index it was asked of."""

    item: GoldItem
    results: dict[str, Scored] = field(default_factory=dict)
    where: str = "main"


def score(item: GoldItem, answer: Mapping[str, Any], doc_texts: Mapping[str, str], latency_s: float) -> Scored:
    """Score one answer dictionary (the answer contract) against its gold record."""
    pred = answer.get("answer")
    abstained = bool(answer.get("abstained"))
    if abstained:
        pred = None
    cits = tuple(dict(c) for c in answer.get("citations") or ())
    docs = [c.get("doc_id", "") for c in cits]
    sents = [c.get("sentence", "") for c in cits]
    ok, total = m.citation_fidelity(cits, doc_texts)
    f1 = m.f1_score(pred, item.answers)
    right_if_given = item.answerable and pred is not None and f1 >= CORRECT_F1
    correct = right_if_given if item.answerable else abstained
    return Scored(
        answer=pred,
        abstained=abstained,
        confidence=float(answer.get("confidence") or 0.0),
        top_score=float(cits[0].get("score") or 0.0) if cits else -math.inf,
        citations=cits,
        latency_s=latency_s,
        em=m.exact_match(pred, item.answers),
        f1=f1,
        hit=m.answer_hit(pred, item.answers),
        doc_rank=m.doc_rank(docs, item.doc_ids) if item.answerable else None,
        evidence_at_1=m.evidence_at_k(sents, item.evidence, 1),
        evidence_at_3=m.evidence_at_k(sents, item.evidence, 3),
        evidence_recall_at_3=m.evidence_recall_at_k(sents, item.evidence, 3),
        faithful=ok,
        cited=total,
        correct=correct,
        correct_if_answered=right_if_given,
    )


def ask_all(
    engine: AnswersQuestions,
    items: Sequence[GoldItem],
    doc_texts: Mapping[str, str],
    *,
    methods: Sequence[str] = METHODS,
    k: int = 5,
    where: str = "main",
    progress: bool = True,
    desc: str = "asking",
    on_record: Callable[[Record], None] | None = None,
    engine_for: Callable[[GoldItem], AnswersQuestions] | None = None,
) -> list[Record]:
    """Ask every question with every method; one warm-up question first so the first timed
    answer does not pay for lazy loading. ``engine_for(item)`` may pick the engine per question
    (SQuAD: the cross-validation model that never saw the question's article)."""
    if items:
        for method in methods:
            engine.ask(items[0].question, k, method=method)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc=desc, unit="q", leave=True, mininterval=1.0)
    records: list[Record] = []
    try:
        for it in items:
            rec = Record(it, where=where)
            asked = engine if engine_for is None else engine_for(it)
            for method in methods:
                t0 = time.perf_counter()
                ans = asked.ask(it.question, k, id=it.id, method=method)
                dt = time.perf_counter() - t0
                rec.results[method] = score(it, ans.to_dict(), doc_texts, dt)
            records.append(rec)
            if on_record is not None:
                on_record(rec)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return records


def _rate(values: Sequence[bool | float]) -> float | None:
    return (sum(float(v) for v in values) / len(values)) if values else None


def summarize(records: Sequence[Record], method: str) -> dict[str, Any]:
    """Every figure of one method over a list of records (a pure function of the records)."""
    rs = [(r.item, r.results[method]) for r in records if method in r.results]
    ans = [s for it, s in rs if it.answerable]
    answered_ans = [s for s in ans if not s.abstained]
    sweep = m.threshold_sweep(
        [s.signal(method) for _, s in rs],
        [s.correct_if_answered for _, s in rs],
        [it.answerable for it, _ in rs],
    )
    best = m.best_threshold(sweep)
    faithful = sum(s.faithful for _, s in rs)
    cited = sum(s.cited for _, s in rs)
    return {
        "questions": len(rs),
        "answerable": len(ans),
        "unanswerable": len(rs) - len(ans),
        "doc_hit_at_1": _rate([s.doc_rank is not None and s.doc_rank <= 1 for s in ans]),
        "doc_hit_at_5": _rate([s.doc_rank is not None and s.doc_rank <= 5 for s in ans]),
        "mrr": _rate([0.0 if s.doc_rank is None else 1.0 / s.doc_rank for s in ans]),
        "evidence_at_1": _rate([s.evidence_at_1 for s in ans]),
        "evidence_at_3": _rate([s.evidence_at_3 for s in ans]),
        "evidence_recall_at_3": _rate([s.evidence_recall_at_3 for s in ans]),
        "exact_match": _rate([s.em for s in ans]),
        "f1": _rate([s.f1 for s in ans]),
        "answer_hit": _rate([s.hit for s in ans]),
        "f1_when_answered": _rate([s.f1 for s in answered_ans]),
        "accuracy": _rate([s.correct for _, s in rs]),
        **m.abstention_rates([s.abstained for _, s in rs], [it.answerable for it, _ in rs]),
        # Calibration asks "is the proposed answer right", so an abstention is never a hit here.
        "ece": m.expected_calibration_error([s.confidence for _, s in rs], [s.correct_if_answered for _, s in rs]),
        # How well the confidence separates answerable from unanswerable questions, and how many
        # unanswerable ones a threshold allowing 10% false abstentions would catch.
        "confidence_auc": m.auc([s.confidence for it, s in rs if it.answerable],
                                [s.confidence for it, s in rs if not it.answerable]),
        "at_10pct_false_abstentions": m.abstained_at_false_rate(
            [s.confidence for _, s in rs], [it.answerable for it, _ in rs], 0.10),
        "sweep_signal": SWEEP_SIGNAL.get(method, "confidence"),
        "sweep": [p.to_dict() for p in sweep],
        "best_threshold": best.to_dict() if best else None,
        "citations_faithful": faithful,
        "citations_total": cited,
        "citation_fidelity": (faithful / cited) if cited else None,
        **m.latency_summary([s.latency_s for _, s in rs]),
    }
