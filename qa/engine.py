"""The question-answering engine: load an index once, then answer questions with citations.

Example::

    >>> from qa.engine import Engine
    >>> engine = Engine.open(".citeqa")                        # doctest: +SKIP
    >>> engine.ask("when were direct AZAL flights announced").answer  # doctest: +SKIP
    'November 9, 2023'
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from index.encoder import ENCODERS, Encoder, load_encoder
from index.loaded import LoadedIndex
from index.store import IncompatibleIndexError
from qa.analyze import analyze, content_terms
from qa.answer import ABSTAIN_THRESHOLD, AnswerStep, ScoredSentence
from qa.retrieve import Retriever, _top
from qa.types import Answer, Citation

MAX_QUESTION_CHARS = 1000
MAX_K = 50
METHODS = ("citeqa", "bm25", "dense")


class QuestionError(ValueError):
    """A question the engine cannot take (empty, too long, bad k); the message says why."""


def validate(question: str, k: int) -> str:
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise QuestionError(f"k must be an integer from 1 to {MAX_K}")
    return question.strip()


class Engine:
    def __init__(self, index: LoadedIndex, encoder: Encoder) -> None:
        if encoder.name != index.encoder_name:
            raise ValueError(f"index was built with encoder {index.encoder_name!r}, not {encoder.name!r}")
        self.index = index
        self.encoder = encoder
        self.retriever = Retriever(index)
        self.answerer = AnswerStep(index, self.retriever)
        self.loaded_at = time.time()

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
    def ask(self, question: str, k: int = 5, *, id: str | None = None, method: str = "citeqa") -> Answer:
        """Answer ``question`` with up to ``k`` citations, best first."""
        question = validate(question, k)
        if method not in METHODS:
            raise QuestionError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        t0 = time.perf_counter()
        if method == "bm25":
            ans = self._baseline_bm25(question, k, id)
        elif method == "dense":
            ans = self._baseline_dense(question, k, id)
        else:
            ans = self._ask(question, k, id)
        ans.extra["latency_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        return ans

    def _ask(self, question: str, k: int, id: str | None) -> Answer:
        q = analyze(question)
        qvec = self.encode_question(question)
        if self.index.n_sentences() == 0:
            return Answer(question, None, True, 0.0, (), id=id, expected_type=q.expected)
        hits = self.retriever.hybrid(qvec, list(q.terms), k=8)
        extra_ids, _ = self.retriever.dense_sentences(qvec, 10)
        ranked: list[ScoredSentence] = self.answerer.score_sentences(q, qvec, hits, extra_ids.tolist())
        best = ranked[0]
        conf = self.answerer.confidence(q, best)
        abstain = conf < ABSTAIN_THRESHOLD
        citations: list[Citation] = []
        answer_text: str | None = None
        source = None
        doc_span = None
        if not abstain:
            choice = self.answerer.choose_answer(q, best.sid)
            answer_text, source = choice.text, choice.source
            doc_span = choice.doc_span
            span = (choice.sentence_span.start, choice.sentence_span.end) if choice.sentence_span else None
            citations.append(self._citation(best.sid, best.score, span))
        else:
            citations.append(self._citation(best.sid, best.score))
        seen = {best.sid}
        for s in ranked[1:]:
            if len(citations) >= k:
                break
            if s.sid in seen:
                continue
            seen.add(s.sid)
            citations.append(self._citation(s.sid, s.score))
        extra: dict[str, object] = {}
        if source == "document_date":
            extra["answer_note"] = "the cited sentence gives no date; this is the date the document was written"
        return Answer(
            question=question,
            answer=answer_text,
            abstained=abstain,
            confidence=conf,
            citations=tuple(citations),
            id=id,
            answer_source=source,
            answer_doc_id=doc_span[0] if doc_span else None,
            answer_doc_start=doc_span[1] if doc_span else None,
            answer_doc_end=doc_span[2] if doc_span else None,
            expected_type=q.expected,
            extra=extra,
        )

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
