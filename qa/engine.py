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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from index.encoder import ENCODERS, Encoder, load_encoder
from index.loaded import LoadedIndex
from index.shards import open_index
from index.store import IncompatibleIndexError
from index.terms import STOPWORDS, content_terms
from index.tokens import TOKEN_DIM, project
from qa.analyze import analyze
from qa.answer import AnswerStep
from qa.cite import Citer
from qa.features import QuestionVectors
from qa.filters import DocFilter
from qa.followup import Previous, resolve
from qa.model import AnswerModel, load_model
from qa.reading import DEFAULT_READER, Reader, make_reader
from qa.retrieve import Retriever, Scope, _top
from qa.types import Answer

MAX_QUESTION_CHARS = 1000
_PIECE = re.compile(r"[A-Za-z0-9]")


def _content_piece(piece: str) -> bool:
    """A question word piece worth aligning: not punctuation, not a stopword ("##al" counts)."""
    word = piece[2:] if piece.startswith("##") else piece
    return bool(_PIECE.search(word)) and (piece.startswith("##") or word.lower() not in STOPWORDS)

MAX_K = 50
METHODS = ("citeqa", "neural", "linear", "bm25", "dense")  # "citeqa": the engine's reader


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
    def __init__(
        self, index: LoadedIndex, encoder: Encoder, model: AnswerModel | None = None, reader: str = DEFAULT_READER
    ) -> None:
        _small_matrix_blas()
        if encoder.name != index.encoder_name:
            raise ValueError(f"index was built with encoder {index.encoder_name!r}, not {encoder.name!r}")
        self.index = index
        self.encoder = encoder
        self.retriever = Retriever.over(index)
        self.answerer = AnswerStep(index, self.retriever, model or load_model(), index.token_store())
        self.reader: Reader = make_reader(reader, self.answerer)
        self.citer = Citer(index, self.answerer)
        self._readers: dict[str, Reader] = {self.reader.name: self.reader}
        self.loaded_at = time.time()

    @classmethod
    def open(cls, index_dir: Path | str, reader: str = DEFAULT_READER,
             opener: Callable[[Path], LoadedIndex] = open_index) -> Engine:
        """Load the index at ``index_dir`` (every shard of a sharded one) and the encoder that built it;
        ``opener`` opens the index (e.g. one whose shards are searched on a cluster: index/serving.py)."""
        index = opener(Path(index_dir))
        if index.encoder_name not in ENCODERS:
            raise IncompatibleIndexError(
                f"index at {index_dir} was built with encoder {index.encoder_name!r}, which this citeqa does not "
                f"have ({', '.join(ENCODERS)}) — rebuild it: qa index CORPUS --index {index_dir} --rebuild"
            )
        return cls(index, load_encoder(index.encoder_name), reader=reader)

    def encode_question(self, question: str) -> np.ndarray:
        return self.encoder.encode([question])[0]

    def question_vectors(self, question: str) -> QuestionVectors:
        """The question's pooled vector and its content word pieces' token vectors (one encoder pass)."""
        return encode_questions(self.encoder, [question])[0]

    # --- asking ---------------------------------------------------------------------------
    def ask(
        self, question: str, k: int = 5, *, id: str | None = None, method: str = "citeqa",
        previous: Previous | None = None, filter: DocFilter | None = None,
    ) -> Answer:
        """Answer ``question`` with up to ``k`` citations, best first. ``previous`` is the turn
        before, for a follow-up such as "and who led Azerbaijan's side?" (see qa/followup.py);
        ``filter`` names the documents that may answer (see qa/filters.py)."""
        question = validate(question, k)
        if method not in METHODS:
            raise QuestionError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        if filter is not None and method in ("bm25", "dense"):
            raise QuestionError(f"the {method} baseline does not take a filter")
        t0 = time.perf_counter()
        if filter is not None:
            ans = self._ask_within(question, k, id, previous, filter,
                                   self.reader if method == "citeqa" else self.reader_named(method))
        elif method == "bm25":
            ans = self._baseline_bm25(question, k, id)
        elif method == "dense":
            ans = self._baseline_dense(question, k, id)
        else:
            reader = self.reader if method == "citeqa" else self.reader_named(method)
            ans = self._ask(question, k, id, previous, reader)
        return replace(ans, latency_ms=round((time.perf_counter() - t0) * 1000, 2))

    def reader_named(self, name: str) -> Reader:
        """The reader ``name`` over this engine's index (made once, kept)."""
        if name not in self._readers:
            self._readers[name] = make_reader(name, self.answerer)
        return self._readers[name]

    def _ask_within(self, question: str, k: int, id: str | None, previous: Previous | None, filter: DocFilter,
                    reader: Reader) -> Answer:
        """The answer from the documents ``filter`` matches only; an abstention saying so when there are none."""
        matching = filter.matching(self.index)
        if not matching:
            why = filter.describe()
            if filter.date_from and filter.date_to and filter.date_from > filter.date_to:
                why += " (date_from is after date_to)"
            return Answer(question, None, True, 0.0, (), id=id, expected_type=analyze(question).expected,
                          answer_note=f"no document matches the filter: {why}; nothing was searched",
                          filter=filter.to_dict())
        ans = self._ask(question, k, id, previous, reader, Scope.of(self.index, matching))
        if ans.abstained and ans.answer_note is None:
            n = len(matching)
            ans = replace(ans, answer_note=f"only the {n} document{'s' if n != 1 else ''} matching the filter "
                                           f"({filter.describe()}) were searched")
        return replace(ans, filter=filter.to_dict())

    def _ask(
        self, question: str, k: int, id: str | None, previous: Previous | None = None, reader: Reader | None = None,
        scope: Scope | None = None,
    ) -> Answer:
        reader = reader or self.reader
        q = analyze(question)
        if self.index.n_sentences() == 0:
            return Answer(question, None, True, 0.0, (), id=id, expected_type=q.expected)
        step = self.answerer
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
        qv = self.question_vectors(resolved.search_text)
        decision = reader.read(q, qv, step.gather(q, qv, also=also, scope=scope), avoid=avoid)
        if not decision.ranked:
            return Answer(question, None, True, 0.0, (), id=id, expected_type=q.expected)
        return self.citer.answer(
            question, q, decision, k, id, reader=reader.name,
            resolved_question=resolved.search_text if resolved.is_follow_up else None,
        )

    def _baseline(self, question: str, sids: list[int], scores: list[float], id: str | None) -> Answer:
        cits = tuple(self.citer.citation(s, sc) for s, sc in zip(sids, scores, strict=True))
        top = cits[0].sentence if cits else None
        return Answer(question, top, top is None, 1.0 if top else 0.0, cits, id=id, answer_source="sentence")

    def _baseline_bm25(self, question: str, k: int, id: str | None) -> Answer:
        scores = self.retriever.sentence_bm25.scores(content_terms(question))
        top = _top(scores, k)
        return self._baseline(question, top.tolist(), scores[top].tolist(), id)

    def _baseline_dense(self, question: str, k: int, id: str | None) -> Answer:
        ids, scores = self.retriever.dense_sentences(self.encode_question(question), k)
        return self._baseline(question, ids.tolist(), scores.tolist(), id)
