"""The question-answering engine: load an index once, then answer questions with citations.

Example::

    >>> from qa.engine import Engine
    >>> engine = Engine.open(".citeqa")                        # doctest: +SKIP
    >>> engine.ask("when were direct AZAL flights announced").answer  # doctest: +SKIP
    'November 9, 2023'
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from index.encoder import ENCODERS, Encoder, load_encoder
from index.loaded import LoadedIndex
from index.store import IncompatibleIndexError
from index.terms import STOPWORDS, content_terms
from index.tokens import TOKEN_DIM, project
from qa.analyze import analyze
from qa.answer import AnswerStep
from qa.features import QuestionVectors
from qa.followup import Previous, resolve
from qa.model import AnswerModel, load_model
from qa.retrieve import Retriever, _top
from qa.types import Answer, Citation

MAX_QUESTION_CHARS = 1000
_PIECE = re.compile(r"[A-Za-z0-9]")


_SEVERAL = re.compile(r"\b(?:two|both|each|three)\b", re.I)


def wants_several(question: str) -> bool:
    """Does the question ask for more than one thing ("which two …", "both", "each side")?"""
    return bool(_SEVERAL.search(question))


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _content_piece(piece: str) -> bool:
    """A question word piece worth aligning: not punctuation, not a stopword ("##al" counts)."""
    word = piece[2:] if piece.startswith("##") else piece
    return bool(_PIECE.search(word)) and (piece.startswith("##") or word.lower() not in STOPWORDS)

MAX_K = 50
METHODS = ("citeqa", "bm25", "dense")


class QuestionError(ValueError):
    """A question the engine cannot take (empty, too long, bad k); the message says why."""


def encode_questions(encoder: Encoder, questions: list[str], batch_size: int = 64) -> list[QuestionVectors]:
    """Pooled vectors and content-token vectors of questions, in one encoder pass."""
    pooled, toks, pieces = encoder.encode_tokens(questions, batch_size=batch_size)
    out = []
    for i in range(len(questions)):
        keep = [j for j, p in enumerate(pieces[i]) if _content_piece(p)]
        tok = project(toks[i][keep]) if keep else np.zeros((0, TOKEN_DIM), np.float32)
        out.append(QuestionVectors(pooled[i], tok))
    return out


def validate(question: str, k: int) -> str:
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise QuestionError(f"k must be an integer from 1 to {MAX_K}")
    return question.strip()


@functools.cache
def _small_matrix_blas() -> None:
    """One BLAS thread in this process. A question's matrix products are tiny (a few question
    tokens against a document's); a second BLAS thread only adds hand-offs, and on a busy machine
    (a server answering on both cores) it waits for a core: measured 1.0 ms against 1.9 ms per
    question for the token alignment, and far worse under load."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


class Engine:
    def __init__(self, index: LoadedIndex, encoder: Encoder, model: AnswerModel | None = None) -> None:
        _small_matrix_blas()
        if encoder.name != index.encoder_name:
            raise ValueError(f"index was built with encoder {index.encoder_name!r}, not {encoder.name!r}")
        self.index = index
        self.encoder = encoder
        self.retriever = Retriever(index)
        self.answerer = AnswerStep(index, self.retriever, model or load_model(), index.token_store())
        self.loaded_at = time.time()

    def with_model(self, model: AnswerModel) -> Engine:
        """The same loaded index and encoder answering with other weights (cross-validated evaluation)."""
        other = object.__new__(Engine)
        other.__dict__.update(self.__dict__)
        other.answerer = AnswerStep(self.index, self.retriever, model, self.answerer.tokens)
        other.answerer.facts = self.answerer.facts  # the per-sentence caches are model-independent
        return other

    @classmethod
    def open(cls, index_dir: Path | str) -> Engine:
        """Load the index at ``index_dir`` and the encoder that built it."""
        index = LoadedIndex.open(Path(index_dir))
        if index.encoder_name not in ENCODERS:
            raise IncompatibleIndexError(
                f"index at {index_dir} was built with encoder {index.encoder_name!r}, which this citeqa does not "
                f"have ({', '.join(ENCODERS)}) — rebuild it: qa index CORPUS --index {index_dir} --rebuild"
            )
        return cls(index, load_encoder(index.encoder_name))

    def encode_question(self, question: str) -> np.ndarray:
        return self.encoder.encode([question])[0]

    def question_vectors(self, question: str) -> QuestionVectors:
        """The question's pooled vector and its content word pieces' token vectors (one encoder pass)."""
        return encode_questions(self.encoder, [question])[0]

    # --- citations ------------------------------------------------------------------------
    def _citation(self, sid: int, score: float, span: tuple[int, int] | None = None) -> Citation:
        doc = self.index.docs[self.index.sent_doc[sid]]
        start, end = int(self.index.sent_start[sid]), int(self.index.sent_end[sid])
        return Citation(
            doc_id=doc.doc_id,
            title=doc.title,
            sentence=doc.text[start:end],
            start=start,
            end=end,
            score=round(float(score), 4),
            answer_start=span[0] if span else None,
            answer_end=span[1] if span else None,
            date=doc.date_iso,
            passage_id=int(self.index.sent_passage[sid]),
            page=self.index.sent_page[sid],
        )

    # --- asking ---------------------------------------------------------------------------
    def ask(
        self, question: str, k: int = 5, *, id: str | None = None, method: str = "citeqa",
        previous: Previous | None = None,
    ) -> Answer:
        """Answer ``question`` with up to ``k`` citations, best first. ``previous`` is the turn
        before, for a follow-up such as "and who led Azerbaijan's side?" (see qa/followup.py)."""
        question = validate(question, k)
        if method not in METHODS:
            raise QuestionError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        t0 = time.perf_counter()
        if method == "bm25":
            ans = self._baseline_bm25(question, k, id)
        elif method == "dense":
            ans = self._baseline_dense(question, k, id)
        else:
            ans = self._ask(question, k, id, previous)
        ans.extra["latency_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        return ans

    def _ask(self, question: str, k: int, id: str | None, previous: Previous | None = None) -> Answer:
        q = analyze(question)
        if self.index.n_sentences() == 0:
            return Answer(question, None, True, 0.0, (), id=id, expected_type=q.expected)
        step = self.answerer
        extra: dict[str, object] = {}
        resolved = resolve(question, previous)
        also: list[int] = []
        avoid = None
        if resolved.is_follow_up:
            # The kind of answer comes from the new question; what to look for, from both turns.
            q = replace(q, terms=tuple(dict.fromkeys(q.terms + analyze(resolved.search_text).terms)))
            prev_doc = previous.doc_id if previous else None
            if prev_doc in self.index.docs:
                also = list(self.index.doc_sentences[prev_doc])
            avoid = previous.answer if previous else None
            extra["resolved_question"] = resolved.search_text
        qv = self.question_vectors(resolved.search_text)
        decision = step.decide(q, qv, step.gather(q, qv, also=also), avoid=avoid)
        if not decision.ranked:
            return Answer(question, None, True, 0.0, (), id=id, expected_type=q.expected)
        best_sid, best_score = decision.ranked[0]
        extra["support"] = round(decision.support, 4)
        answer_text: str | None = None
        source = None
        doc_span: tuple[str, int, int] | None = None
        span: tuple[int, int] | None = None
        if not decision.abstain:
            doc = step.document_date_fallback(q, best_sid, decision.span)
            s0 = int(self.index.sent_start[best_sid])
            if doc is not None:
                answer_text = doc.text[doc.date_start : doc.date_end]
                source = "document_date"
                doc_span = (doc.doc_id, int(doc.date_start), int(doc.date_end))
                extra["answer_note"] = "the cited sentence gives no date; this is the date the document was written"
            elif decision.span is not None:
                sp = decision.span
                answer_text = self.index.sent_text[best_sid][sp.start : sp.end]
                source = "sentence"
                span = (sp.start, sp.end)
                doc_span = (self.index.sent_doc[best_sid], s0 + sp.start, s0 + sp.end)
            else:
                text = self.index.sent_text[best_sid]
                answer_text, source, span = text, "sentence", (0, len(text))
                doc_span = (self.index.sent_doc[best_sid], s0, s0 + len(text))
        citations = [self._citation(best_sid, best_score, span)]
        second = self._second_part(q, decision) if source == "sentence" and span is not None else None
        if second is not None:
            # A question that asks for two things ("which two …", "who led each side"): the second
            # phrase, from its own sentence (cited next) or from the same one.
            sid2, sp2 = second
            if sid2 == best_sid:
                parts = [(0, span), (0, (sp2.start, sp2.end))]
            else:
                citations.append(self._citation(sid2, dict(decision.ranked).get(sid2, 0.0), (sp2.start, sp2.end)))
                parts = [(0, span), (1, (sp2.start, sp2.end))]
            extra["answers"] = [
                {"text": citations[c].sentence[a:b], "citation": c, "answer_start": a, "answer_end": b} for c, (a, b) in parts
            ]
        cited = {(c.doc_id, c.start) for c in citations}
        for sid, score in decision.ranked[1:]:
            if len(citations) >= k:
                break
            c = self._citation(sid, score)
            if (c.doc_id, c.start) not in cited:
                cited.add((c.doc_id, c.start))
                citations.append(c)
        return Answer(
            question=question,
            answer=answer_text,
            abstained=decision.abstain,
            confidence=decision.confidence,
            citations=tuple(citations),
            id=id,
            answer_source=source,
            answer_doc_id=doc_span[0] if doc_span else None,
            answer_doc_start=doc_span[1] if doc_span else None,
            answer_doc_end=doc_span[2] if doc_span else None,
            expected_type=q.expected,
            extra=extra,
        )

    def _second_part(self, q, decision) -> tuple[int, object] | None:
        """The second phrase of a question asking for two (or each/both), or None."""
        if not wants_several(q.text) or decision.span is None:
            return None
        first_sid = decision.ranked[0][0]
        first = decision.span
        text = self.index.sent_text
        first_text = _norm(text[first_sid][first.start : first.end])
        kind = first.kind.split(":")[1] if first.kind.startswith("ent:") else None
        for sid, sp, weight in decision.alternatives:
            if sid == first_sid and not (sp.end <= first.start or sp.start >= first.end):
                continue  # overlaps the first phrase
            t = _norm(text[sid][sp.start : sp.end])
            if not t or t == first_text or t in first_text or first_text in t:
                continue
            if kind is not None and sp.kind != f"ent:{kind}":
                continue  # "which two prime ministers": both parts are the same kind of thing
            if weight < 0.02:
                return None
            return sid, sp
        return None

    def _baseline(self, question: str, sids: list[int], scores: list[float], id: str | None) -> Answer:
        cits = tuple(self._citation(s, sc) for s, sc in zip(sids, scores, strict=True))
        top = cits[0].sentence if cits else None
        return Answer(question, top, top is None, 1.0 if top else 0.0, cits, id=id, answer_source="sentence")

    def _baseline_bm25(self, question: str, k: int, id: str | None) -> Answer:
        scores = self.retriever.sentence_bm25.scores(content_terms(question))
        top = _top(scores, k)
        return self._baseline(question, top.tolist(), scores[top].tolist(), id)

    def _baseline_dense(self, question: str, k: int, id: str | None) -> Answer:
        ids, scores = self.retriever.dense_sentences(self.encode_question(question), k)
        return self._baseline(question, ids.tolist(), scores.tolist(), id)
