"""The extractive answer step: rank candidate sentences, pick the answer phrase, decide to abstain.

A sentence ranks high when it is close to the question in meaning (dense), shares the question's
rare terms (idf-weighted overlap, in the sentence and its neighbours), sits in a passage the
hybrid retriever ranked high, and holds a phrase of the type the question asks for. The answer is
always a quote: a span of the top sentence, or the cited document's own date.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from index.loaded import LoadedIndex
from qa.analyze import TYPE_LABELS, Question, content_terms
from qa.retrieve import Hit, Retriever

ABSTAIN_THRESHOLD = 0.5

_ABSOLUTE_DATE = re.compile(
    r"\d|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\b(century|decade)\b", re.I
)
_CLAUSE_CUES = {
    "why": re.compile(r"\b(because|since|due to|owing to|in order to|so that|aimed at|to)\b", re.I),
    "how": re.compile(r"\b(through|by|via|with|using)\b", re.I),
}


# Within an expected type, the labels that answer it best (a "who" answer is a person first).
_PREFERRED = {"person": frozenset({"PERSON"}), "place": frozenset({"GPE"}), "number": frozenset({"CARDINAL", "MONEY", "PERCENT", "QUANTITY"})}


@dataclass(frozen=True)
class ScoredSentence:
    sid: int
    score: float
    dense: float
    overlap: float
    context_overlap: float
    passage: float
    type_ok: float


@dataclass(frozen=True)
class Span:
    start: int  # inside the sentence
    end: int
    label: str


@dataclass(frozen=True)
class AnswerChoice:
    text: str | None
    source: str | None  # "sentence" | "document_date" | None
    sentence_span: Span | None
    doc_span: tuple[str, int, int] | None  # (doc_id, start, end) in document text


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class AnswerStep:
    def __init__(self, index: LoadedIndex, retriever: Retriever) -> None:
        self.index = index
        self.retriever = retriever
        self.sent_terms = [frozenset(t) for t in retriever.sentence_bm25.tokens]
        self._title_terms = {d: frozenset(content_terms(r.title)) for d, r in index.docs.items()}
        self._ctx_cache: dict[int, frozenset[str]] = {}
        self._mention_terms: dict[int, list[frozenset[str]]] = {}

    def mention_terms(self, sid: int) -> list[frozenset[str]]:
        """Content terms of each mention of sentence ``sid`` (cached: computed once per sentence)."""
        got = self._mention_terms.get(sid)
        if got is None:
            text = self.index.sent_text[sid]
            got = [frozenset(content_terms(text[s:e])) for s, e, *_ in self.index.mentions[sid]]
            self._mention_terms[sid] = got
        return got

    # --- features -------------------------------------------------------------------------
    def _overlap(self, q: Question, terms: frozenset[str]) -> float:
        if not q.terms:
            return 0.0
        idf = self.retriever.passage_bm25.term_idf
        total = sum(idf(t) for t in q.terms)
        got = sum(idf(t) for t in q.terms if t in terms)
        return got / total if total else 0.0

    def _context_terms(self, sid: int) -> frozenset[str]:
        got = self._ctx_cache.get(sid)
        if got is not None:
            return got
        doc = self.index.sent_doc[sid]
        terms = set(self.sent_terms[sid])
        for n in (sid - 1, sid + 1):
            if 0 <= n < len(self.sent_terms) and self.index.sent_doc[n] == doc:
                terms |= self.sent_terms[n]
        # The title says what the whole document is about.
        terms |= self._title_terms[doc]
        got = self._ctx_cache[sid] = frozenset(terms)
        return got

    def typed_candidates(self, q: Question, sid: int) -> list[Span]:
        if q.expected not in TYPE_LABELS:
            return []
        labels = TYPE_LABELS[q.expected]
        qterms = set(q.terms)
        out = []
        for (s, e, label, _v), mention_terms in zip(self.index.mentions[sid], self.mention_terms(sid), strict=True):
            if label not in labels:
                continue
            if mention_terms and mention_terms <= qterms:
                continue  # the question already names it: not an answer
            out.append(Span(s, e, label))
        return out

    def score_sentences(self, q: Question, qvec: np.ndarray, hits: list[Hit], extra: list[int]) -> list[ScoredSentence]:
        top_fused = hits[0].score if hits else 1.0
        pscore: dict[int, float] = {}
        for h in hits:
            first, last = int(self.index.pass_first[h.passage_id]), int(self.index.pass_last[h.passage_id])
            for sid in range(first, last + 1):
                pscore[sid] = max(pscore.get(sid, 0.0), h.score / top_fused)
        for sid in extra:
            pscore.setdefault(int(sid), 0.0)
        sids = np.fromiter(pscore.keys(), dtype=np.int64, count=len(pscore))
        if len(sids) == 0:
            return []
        dense = self.index.sent_vecs[sids] @ qvec
        out = []
        for sid, d in zip(sids.tolist(), dense.tolist(), strict=True):
            ov = self._overlap(q, self.sent_terms[sid])
            ctx = self._overlap(q, self._context_terms(sid))
            if q.expected in TYPE_LABELS:
                type_ok = 1.0 if self.typed_candidates(q, sid) else 0.0
                if not type_ok and q.expected == "date" and self.index.docs[self.index.sent_doc[sid]].date_iso:
                    type_ok = 0.5
            elif q.expected == "clause":
                cue = _CLAUSE_CUES.get(q.wh)
                type_ok = 1.0 if cue and cue.search(self.index.sent_text[sid]) else 0.0
            else:
                type_ok = 0.0
            score = 0.40 * d + 0.35 * ov + 0.10 * ctx + 0.08 * pscore[sid] + 0.12 * type_ok
            out.append(ScoredSentence(sid, score, d, ov, ctx, pscore[sid], type_ok))
        out.sort(key=lambda s: -s.score)
        return out

    # --- confidence -----------------------------------------------------------------------
    def confidence(self, q: Question, best: ScoredSentence) -> float:
        """Hand-set logistic over the strongest support signals, in [0, 1]."""
        support = 0.45 * best.dense + 0.35 * best.overlap + 0.20 * best.context_overlap
        if q.expected in TYPE_LABELS:
            support += 0.06 * best.type_ok - 0.04
        return _sigmoid(12.0 * (support - 0.45))

    # --- answer phrase --------------------------------------------------------------------
    def _term_positions(self, q: Question, text: str) -> list[tuple[int, float]]:
        """Where the question's terms occur in ``text``, each with its idf weight."""
        qterms = set(q.terms)
        idf = self.retriever.passage_bm25.term_idf
        out = []
        for m in re.finditer(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?", text):
            terms = content_terms(m.group(0))
            if terms and terms[0] in qterms:
                out.append((m.start(), idf(terms[0])))
        return out

    def _closest(
        self, spans: list[Span], anchors: list[tuple[int, float]], preferred: frozenset[str] = frozenset()
    ) -> Span:
        """The span nearest the question's rare terms; a preferred label counts as a little nearer."""

        def closeness(sp: Span) -> float:
            near = sum(w * math.exp(-min(abs(a - sp.start), abs(a - sp.end)) / 25.0) for a, w in anchors)
            total = sum(w for _, w in anchors) or 1.0
            return near / total + (0.15 if sp.label in preferred else 0.0) + 0.001 * (sp.end - sp.start)

        return max(spans, key=closeness)

    def choose_answer(self, q: Question, sid: int) -> AnswerChoice:
        text = self.index.sent_text[sid]
        doc_id = self.index.sent_doc[sid]
        s0 = int(self.index.sent_start[sid])
        anchors = self._term_positions(q, text)
        cands = self.typed_candidates(q, sid)
        if q.expected == "date":
            absolute = [c for c in cands if _ABSOLUTE_DATE.search(text[c.start : c.end])]
            doc = self.index.docs[doc_id]
            if absolute:
                sp = self._closest(absolute, anchors)
            elif doc.date_iso and doc.date_start is not None and doc.date_end is not None:
                return AnswerChoice(
                    doc.text[doc.date_start : doc.date_end], "document_date", None, (doc_id, doc.date_start, doc.date_end)
                )
            elif cands:
                sp = self._closest(cands, anchors)
            else:
                sp = None
        elif cands:
            sp = self._closest(cands, anchors, _PREFERRED.get(q.expected or "", frozenset()))
        else:
            sp = self._open_span(q, text, anchors)
            if sp is None and q.expected != "clause":
                opens = self.open_candidates(q, sid)
                sp = self._closest(opens, anchors) if opens else None
        if sp is None:
            return AnswerChoice(text, "sentence", Span(0, len(text), "SENTENCE"), (doc_id, s0, s0 + len(text)))
        return AnswerChoice(text[sp.start : sp.end], "sentence", sp, (doc_id, s0 + sp.start, s0 + sp.end))

    def _open_span(self, q: Question, text: str, anchors: list[int]) -> Span | None:
        """For why/how/what questions: a clause after a cue word, else the nearest new noun phrase."""
        if q.expected == "clause":
            cue = _CLAUSE_CUES.get(q.wh)
            m = cue.search(text) if cue else None
            if m:
                end = len(text.rstrip(".!?\"'”’ "))
                if end > m.start():
                    return Span(m.start(), end, "CLAUSE")
            return None
        return None

    def open_candidates(self, q: Question, sid: int) -> list[Span]:
        """Noun phrases and entities of the sentence that the question does not already name."""
        qterms = set(q.terms)
        out = []
        for (s, e, label, _v), terms in zip(self.index.mentions[sid], self.mention_terms(sid), strict=True):
            if not terms - qterms:
                continue
            out.append(Span(s, e, label))
        return out
