"""The extractive answer step: rank candidate sentences, pick the answer phrase, decide to abstain.

For one question:

1. ``gather``: candidate sentences — those of the passages the hybrid retriever ranks highest,
   plus the best sentences by dense similarity and by BM25 alone;
2. ``sentence`` model: every candidate is scored from its features (``qa.features``); a
   softmax over the candidates;
3. ``span`` + ``rerank`` models: the best few sentences are parsed into candidate phrases
   (parses are stored at index time), each phrase scored for how well it answers; the sentences
   are re-ranked knowing how good their best phrase is;
4. the answer is the best phrase of the top sentence — always a quote of it. For a "when"
   question whose sentence holds no date, the answer is the cited document's own date, as the
   document writes it, with its location;
5. ``confidence``: a calibrated probability that this answer is right; ``support``: a calibrated
   probability that the documents answer the question at all — below the model's threshold,
   citeqa abstains and the citations are the nearest sentences.

The weights come from ``qa/models/answer-model.json`` (see ``qa.model`` and ``eval/train.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from index.loaded import LoadedIndex
from qa.analyze import TYPE_LABELS, Question
from qa.features import (
    QuestionVectors,
    SentenceFacts,
    SpanCandidate,
    sentence_features,
    span_features,
)
from qa.model import AnswerModel
from qa.retrieve import Retriever, Scope

PASSAGES = 8  # hybrid passages whose sentences are candidates
DENSE_SENTENCES = 20
BM25_SENTENCES = 20
FAR = 99  # passage rank given to candidates that came from the sentence-level searches

CONFIDENCE_FEATURES = (
    "rerank_top", "rerank_prob", "rerank_margin", "sentence_prob", "overlap", "context_overlap", "doc_coverage",
    "max_missing_idf", "dense", "align", "align_low", "align_doc_low", "span_prob", "span_top", "type_ok",
    "has_expected", "log_terms", "best_doc_coverage", "best_context_overlap", "best_align_low", "best_align_doc_low",
    "missing_everywhere", "stage1_top", "numbers_missing", "has_numbers",
)  # fmt: skip

_ORDINALS = {w: str(i) for i, w in enumerate(
    "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
    "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth".split())}
_CARDINALS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty".split())}
_NUMBER_WORD = re.compile(r"\b(\d+)(?:st|nd|rd|th)?\b|\b([a-z]+)\b", re.I)


def numbers_in(text: str) -> set[str]:
    """The numbers a text names, as digits: "16th", "sixteenth" and "16" are all "16"."""
    out = set()
    for m in _NUMBER_WORD.finditer(text):
        if m.group(1):
            out.add(m.group(1).lstrip("0") or "0")
        else:
            w = m.group(2).lower()
            if w in _ORDINALS and w != "first":  # "among the first countries" is no count either
                out.add(_ORDINALS[w])
            elif w in _CARDINALS and w != "one":  # "one of the …" is rarely a count
                out.add(_CARDINALS[w])
    return out

_ABSOLUTE_DATE = re.compile(r"\d|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b", re.I)
# Times a report gives relative to when it was written ("today", "on Thursday", "last week").
_AT_WRITING = re.compile(
    r"\b(?:today|tonight|yesterday|tomorrow|this (?:morning|afternoon|evening|week)|last (?:night|week)"
    r"|(?:mon|tues|wednes|thurs|fri|satur|sun)day)\b", re.I)  # fmt: skip
_WEEKDAY_QUESTION = re.compile(r"\bday of the week\b", re.I)
# A question about what will happen ("When will the shuttle arrive?", "When is the vote to be
# held?"): a document's date is when it was written, which dates what it reports, never what is to come.
_FUTURE_QUESTION = re.compile(r"\b(?:will|shall|'ll)\b|\b(?:is|are)\b.*\bto be\b|\b(?:is|are)\b.*\b(?:due|scheduled|set|expected|going) to\b", re.I)
LEAD_SENTENCES = 3  # a news report says when its event happened in its first sentences


@dataclass(frozen=True)
class Candidates:
    """A question's candidate sentences with their features (model-independent)."""

    sids: np.ndarray
    passage_rank: np.ndarray
    numeric: np.ndarray  # [n, len(SENTENCE_FEATURES)]
    cats: list[list[str]]


@dataclass(frozen=True)
class Phrases:
    """One sentence's candidate phrases with their features (model-independent)."""

    sid: int
    spans: list[SpanCandidate]
    numeric: np.ndarray
    cats: list[list[str]]


@dataclass(frozen=True)
class Decision:
    """What the answer step decided for one question."""

    ranked: list[tuple[int, float]]  # (sentence id, score), best first
    span: SpanCandidate | None  # the answer phrase inside ranked[0]'s sentence
    confidence: float
    abstain: bool
    features: np.ndarray  # the confidence features (kept for evaluation and training)
    # Other phrases worth offering as a second part of the answer: (sentence id, phrase, weight),
    # best first — the runner-up phrases of the top sentence and the best of the next sentences.
    alternatives: tuple[tuple[int, SpanCandidate, float], ...] = ()
    support: float = 0.0  # probability that the documents hold an answer at all


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _softmax(x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return x
    e = np.exp(x - x.max())
    return e / e.sum()


def _lse(x: np.ndarray) -> float:
    m = float(x.max())
    return m + math.log(float(np.exp(x - m).sum()))


class AnswerStep:
    def __init__(self, index: LoadedIndex, retriever: Retriever, model: AnswerModel | None, token_store=None) -> None:
        self.index = index
        self.retriever = retriever
        self.model = model
        self.tokens = token_store
        self.facts = SentenceFacts(index, retriever)

    # --- 1. candidates ---------------------------------------------------------------------
    def gather(self, q: Question, qv: QuestionVectors, exclude=None, also: Sequence[int] = (),
               scope: Scope | None = None) -> Candidates:
        """Candidate sentences and their features. ``exclude(doc_id)`` drops documents (training);
        ``also`` adds sentences (a follow-up keeps its previous document in view); ``scope`` (a
        filter's documents) is searched on its own, so every candidate comes from inside it."""
        idx = self.index
        terms = list(q.terms)
        cand: dict[int, int] = {}
        if exclude is None and scope is None:  # shards searched elsewhere: all four searches at once
            self.retriever.begin(qv.vec, terms, 30, DENSE_SENTENCES, BM25_SENTENCES)
        # Training asks with a document set left out: search deeper, then drop what is excluded.
        hits = self.retriever.hybrid(qv.vec, terms, k=PASSAGES, depth=30, scope=scope) if exclude is None else (
            self.retriever.hybrid(qv.vec, terms, k=60, depth=240)
        )
        kept = 0
        for h in hits:
            if exclude is not None and exclude(idx.pass_doc[h.passage_id]):
                continue
            for sid in range(int(idx.pass_first[h.passage_id]), int(idx.pass_last[h.passage_id]) + 1):
                cand.setdefault(sid, kept)
            kept += 1
            if kept >= PASSAGES:
                break
        d_ids, _ = self.retriever.dense_sentences(qv.vec, DENSE_SENTENCES if exclude is None else 400, scope)
        n = 0
        for sid in d_ids.tolist():
            if exclude is not None and exclude(idx.sent_doc[sid]):
                continue
            cand.setdefault(sid, FAR)
            n += 1
            if n >= DENSE_SENTENCES:
                break
        b_ids, b_scores = self.retriever.bm25_sentences(terms, BM25_SENTENCES if exclude is None else 400, scope)
        n = 0
        for sid, sc in zip(b_ids.tolist(), b_scores.tolist(), strict=True):
            if sc <= 0 or (exclude is not None and exclude(idx.sent_doc[sid])):
                continue
            cand.setdefault(sid, FAR)
            n += 1
            if n >= BM25_SENTENCES:
                break
        self.retriever.end()
        for sid in also:
            if scope is None or scope.sentences[int(sid)]:
                cand.setdefault(int(sid), FAR)
        sids = np.fromiter(cand.keys(), np.int64, count=len(cand))
        prank = np.fromiter(cand.values(), np.float64, count=len(cand))
        numeric, cats = sentence_features(self.facts, q, qv, sids, prank, self.tokens)
        return Candidates(sids, prank, numeric, cats)

    # --- 3. phrases --------------------------------------------------------------------------
    def phrases(self, q: Question, sid: int) -> Phrases:
        base = self.facts.span_base(sid)
        numeric, cats = span_features(q, base.text, base.parse, base.cands, self.retriever.passage_bm25.term_idf, base)
        return Phrases(sid, base.cands, numeric, cats)

    @staticmethod
    def rerank_features(s1: np.ndarray, span_scores: list[np.ndarray]) -> np.ndarray:
        """Re-ranking features of the top sentences: their first-stage score and best phrases."""
        k = len(s1)
        top = np.array([float(s.max()) if len(s) else -10.0 for s in span_scores])
        lse = np.array([_lse(s) if len(s) else -10.0 for s in span_scores])
        return np.stack([s1 - s1.max(), top, lse, top - top.max(), 1.0 / (1.0 + np.arange(k))], 1)

    # --- 2-5. deciding -----------------------------------------------------------------------
    def decide(
        self, q: Question, qv: QuestionVectors, cand: Candidates, model: AnswerModel | None = None, *,
        phrases_of=None, with_confidence: bool = True, avoid: str | None = None,
    ) -> Decision:
        """Rank, pick the phrase, score the confidence. ``phrases_of(sid)`` may serve cached phrases
        (training); ``with_confidence=False`` skips the confidence model (training fits it);
        ``avoid`` is a phrase not to give as the answer (a follow-up's previous answer)."""
        model = model or self.model
        assert model is not None
        phrases_of = phrases_of or (lambda sid: self.phrases(q, sid))
        if len(cand.sids) == 0:
            return Decision([], None, 0.0, True, np.zeros(len(CONFIDENCE_FEATURES)))
        s1 = model.sentence.score(cand.numeric, cand.cats)
        order = np.argsort(-s1, kind="stable")
        depth = min(model.rerank_depth, len(order))
        top = order[:depth]
        self.index.prepare_parses([int(cand.sids[j]) for j in top])  # parses made in one batch where needed
        phrases = [phrases_of(int(cand.sids[j])) for j in top]
        span_scores = [model.span.score(p.numeric, p.cats) if p.spans else np.zeros(0) for p in phrases]
        if avoid:
            gone = _norm(avoid)
            for p, sc in zip(phrases, span_scores, strict=True):
                text = self.index.sent_text[p.sid]
                for k, c in enumerate(p.spans):
                    if _norm(text[c.start : c.end]) == gone:
                        sc[k] = -1e9
        f2 = self.rerank_features(s1[top], span_scores)
        s2 = model.rerank.score(f2)
        order2 = np.argsort(-s2, kind="stable")
        best = int(order2[0])
        ph = phrases[best]
        sp = span_scores[best]
        span = ph.spans[int(np.argmax(sp))] if len(sp) else None
        # Ranked citations: the re-ranked top, then the rest by first-stage score. Re-ranked scores
        # are shifted to sit above the rest so the order is also the order of the scores.
        ranked: list[tuple[int, float]] = []
        p2 = _softmax(s2)
        for i in order2:
            ranked.append((int(cand.sids[top[i]]), float(p2[i])))
        for j in order[depth:]:
            ranked.append((int(cand.sids[j]), 0.0))
        feats = self.confidence_features(q, cand, s1, order, s2, order2, top, sp)
        alternatives = self._alternatives(phrases, span_scores, p2, order2)
        if not with_confidence:
            return Decision(ranked, span, 0.0, False, feats, alternatives)
        cats = self.confidence_categories(q, cand, top[best])
        conf = model.probability(feats, cats)
        support = model.supported(feats, cats)
        return Decision(ranked, span, conf, support < model.threshold, feats, alternatives, support)

    @staticmethod
    def _alternatives(phrases: list[Phrases], span_scores: list[np.ndarray], p2: np.ndarray, order2: np.ndarray):
        out: list[tuple[int, SpanCandidate, float]] = []
        for rank, i in enumerate(order2.tolist()):
            sc = span_scores[i]
            if not len(sc):
                continue
            probs = _softmax(sc)
            # The top sentence offers its runner-up phrases; the others their best one.
            for k in np.argsort(-sc)[1:4] if rank == 0 else np.argsort(-sc)[:1]:
                out.append((phrases[i].sid, phrases[i].spans[int(k)], float(p2[i] * probs[int(k)])))
        out.sort(key=lambda x: -x[2])
        return tuple(out)

    def confidence_features(
        self, q, cand: Candidates, s1, order, s2, order2, top, span_scores: np.ndarray
    ) -> np.ndarray:
        from qa.features import SENTENCE_FEATURES as SF

        col = {name: i for i, name in enumerate(SF)}
        j = int(top[int(order2[0])])
        row = cand.numeric[j]
        p1 = _softmax(s1)
        p2 = _softmax(s2)
        margin = float(s2[order2[0]] - s2[order2[1]]) if len(s2) > 1 else 5.0
        sp = _softmax(span_scores) if len(span_scores) else np.zeros(1)
        doc_cov = cand.numeric[:, col["overlap"]] + cand.numeric[:, col["doc_not_sentence"]]
        # A question term that no candidate's document holds is evidence that nothing answers it.
        missing = self._missing_everywhere(q, cand)
        qnums = numbers_in(q.text)
        sid = int(cand.sids[j])
        doc = self.facts.doc_of(sid)
        first, last = self.facts.doc_range(doc)
        around = " ".join(self.index.sent_text[s] for s in range(max(first, sid - 1), min(last, sid + 1) + 1))
        nums_missing = len(qnums - numbers_in(around)) / len(qnums) if qnums else 0.0
        return np.array(
            [
                float(s2[order2[0]]), float(p2[order2[0]]), margin, float(p1[j]),
                row[col["overlap"]], row[col["context_overlap"]], float(doc_cov[j]), row[col["max_missing_idf"]],
                row[col["dense"]], row[col["align"]], row[col["align_low"]], row[col["align_doc_low"]],
                float(sp.max()), float(span_scores.max()) if len(span_scores) else -10.0,
                row[col["type_ok"]], row[col["has_expected"]], math.log1p(len(q.terms)), float(doc_cov.max()),
                float(cand.numeric[:, col["context_overlap"]].max()), float(cand.numeric[:, col["align_low"]].max()),
                float(cand.numeric[:, col["align_doc_low"]].max()), missing, float(s1.max()),
                nums_missing, 1.0 if qnums else 0.0,
            ],
            np.float64,
        )  # fmt: skip

    def _missing_everywhere(self, q: Question, cand: Candidates) -> float:
        """idf (÷10) of the rarest question term found in none of the candidates' documents."""
        if not q.terms:
            return 0.0
        docs = {self.facts.doc_of(int(s)) for s in cand.sids[:60]}
        seen: set[str] = set()
        for d in docs:
            seen |= self.facts.doc_terms(d)
        idf = self.retriever.passage_bm25.term_idf
        missing = [idf(t) for t in q.terms if t not in seen]
        return max(missing) / 10.0 if missing else 0.0

    def confidence_categories(self, q: Question, cand: Candidates, j: int) -> list[str]:
        from qa.features import SENTENCE_FEATURES as SF

        type_ok = int(cand.numeric[j, SF.index("type_ok")])
        return [f"q:{q.qclass}", f"q:{q.qclass}|type:{type_ok}"]

    # --- the answer phrase -----------------------------------------------------------------
    def document_date_fallback(self, q: Question, sid: int, span: SpanCandidate | None):
        """For a "when" question whose sentence holds no date: the document's own date, or None.

        Only for a document that reports its events at its own date: one whose cited sentence or
        first sentences give a time relative to the writing ("today", "on Thursday"), as a news
        report does. An interview or an essay dated the day it was published speaks of things
        that happened at other times, and its date answers none of them. Nor a question about what
        will happen ("When will the shuttle arrive?"): the date of writing is not a future event's."""
        if q.expected != "date" or _WEEKDAY_QUESTION.search(q.text) or _FUTURE_QUESTION.search(q.text):
            return None  # (a question for the day of the week wants the weekday the sentence gives)
        text = self.index.sent_text[sid]
        labels = TYPE_LABELS["date"]
        for s, e, label, _value in self.index.mentions[sid]:
            if label in labels and _ABSOLUTE_DATE.search(text[s:e]):
                return None
        doc = self.index.docs[self.index.sent_doc[sid]]
        if not (doc.date_iso and doc.date_start is not None and doc.date_end is not None):
            return None
        lead = self.index.doc_sentences[doc.doc_id][:LEAD_SENTENCES]
        if any(_AT_WRITING.search(self.index.sent_text[int(i)]) for i in (sid, *lead)):
            return doc
        return None
