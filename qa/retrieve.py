"""Hybrid retrieval: BM25 over passages and dense FAISS search, fused by reciprocal rank.

BM25 finds the acronyms and names a small dense model blurs ("AZAL", "FWO", "OIC"); the dense
side finds paraphrases. Reciprocal rank fusion needs no score calibration between the two.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from index.bm25 import Bm25Index
from index.loaded import LoadedIndex
from index.vectors import VectorSearch

RRF_K = 60
# A scope of up to this many rows is searched exactly (one matrix product over its vectors);
# a larger one through the vector index, deeper, keeping what is inside it.
EXACT_SCOPE_ROWS = 50_000


@dataclass(frozen=True)
class Scope:
    """The documents a question may be answered from (a filter's), as row masks of the index."""

    doc_ids: frozenset[str]
    sentences: np.ndarray  # bool per sentence row
    passages: np.ndarray  # bool per passage row

    @classmethod
    def of(cls, index: LoadedIndex, doc_ids: Iterable[str]) -> Scope:
        ids = frozenset(d for d in doc_ids if d in index.docs)
        # by each document's row ranges, which a sharded index has too (its rows are the shards' in turn)
        sentences = np.zeros(index.n_sentences(), bool)
        passages = np.zeros(index.n_passages(), bool)
        for d in ids:
            rs, rp = index.doc_sentences[d], index.doc_passages[d]
            sentences[rs.start : rs.stop] = True
            passages[rp.start : rp.stop] = True
        return cls(ids, sentences, passages)


@dataclass(frozen=True)
class Hit:
    passage_id: int
    score: float  # fused RRF score
    dense: float  # cosine similarity of question and passage
    bm25: float


def reciprocal_rank_fusion(rankings: Iterable[Sequence[int] | np.ndarray], k: int = RRF_K) -> list[tuple[int, float]]:
    """(id, fused score) of every id in ``rankings`` (each best first), best first: an id's score is
    the sum over the rankings it is in of 1 / (k + its rank there), ranks counted from 1. Ties keep
    the order in which ids were first met (the first ranking's order, then the next's)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            fused[int(item)] = fused.get(int(item), 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.argpartition(-scores, k - 1)[:k]
    return idx[np.argsort(-scores[idx], kind="stable")]


def _nearest(vectors: VectorSearch, n: int, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Search a vector index of ``n`` rows; ids a search could not fill (-1) are dropped."""
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores, ids = vectors.search(qvec.reshape(1, -1), min(k, n))
    keep = ids[0] >= 0
    return ids[0][keep], scores[0][keep]


def _nearest_within(vectors: VectorSearch, mask: np.ndarray, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows inside ``mask`` nearest to ``qvec``: exact over a small scope, else the vector
    index searched deeper and deeper until ``k`` of its hits fall inside."""
    inside = np.flatnonzero(mask)
    if len(inside) == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if len(inside) <= EXACT_SCOPE_ROWS:
        scores = np.asarray(vectors.vectors(inside), dtype=np.float32) @ qvec.astype(np.float32)
        top = _top(scores, k)
        return inside[top], scores[top]
    n = len(mask)
    depth = min(n, k * max(4, 2 * n // len(inside)))
    while True:
        ids, scores = _nearest(vectors, n, qvec, depth)
        keep = mask[ids]
        if keep.sum() >= k or depth >= n:
            return ids[keep][:k], scores[keep][:k]
        depth = min(n, depth * 4)


def _bm25_within(bm25: Bm25Index, terms: Sequence[str], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``bm25.top`` over the rows inside ``mask`` only (every row without one)."""
    if mask is None:
        return bm25.top(terms, k)
    scores = bm25.scores(terms)
    scores[~mask] = 0.0
    inside = np.flatnonzero(scores > 0)
    order = np.lexsort((inside, -scores[inside]))[:k]
    return inside[order], scores[inside[order]]


class Retriever:
    """Dense and BM25 search over passages and sentences, given its searchers.

    The vector searchers are ``VectorSearch`` implementations (FAISS in this process by default);
    the answer step reads stored vectors through them too (``sentence_vectors``, ``passage_vectors``),
    never from raw arrays. ``Retriever.over(index)`` takes a loaded index's own searchers.
    """

    def __init__(self, passages: VectorSearch, sentences: VectorSearch, passage_bm25: Bm25Index,
                 sentence_bm25: Bm25Index) -> None:
        self.passages = passages
        self.sentences = sentences
        self.passage_bm25 = passage_bm25
        self.sentence_bm25 = sentence_bm25
        self._begun = threading.local()  # searches begun by ``begin``, per request thread

    def begin(self, qvec: np.ndarray, terms: Sequence[str], passages: int, dense_sentences: int,
              bm25_sentences: int) -> None:
        """Begin the four searches of one question now, where the searchers can begin them (shards
        searched elsewhere: ``start_search``/``start_top``, index/serving.py), so they run side by side;
        the calls that follow in this thread (``hybrid``, ``dense_sentences``, ``bm25_sentences``
        without a scope, same arguments) collect them. In-process searchers ignore it."""
        begun: dict[tuple, Callable[[], tuple[np.ndarray, np.ndarray]]] = {}
        q = np.asarray(qvec, np.float32).reshape(1, -1)
        for kind, searcher, k in (("v", self.passages, passages), ("v", self.sentences, dense_sentences)):
            start = getattr(searcher, "start_search", None)
            kk = min(k, searcher.ntotal)
            if start is not None and kk > 0:
                begun[(kind, id(searcher), kk, q.tobytes())] = start(q, kk)
        for bm, k in ((self.passage_bm25, passages), (self.sentence_bm25, bm25_sentences)):
            start = getattr(bm, "start_top", None)
            if start is not None:
                begun[("t", id(bm), k, tuple(terms))] = start(list(terms), k)
        self._begun.searches = begun

    def end(self) -> None:
        """Forget what ``begin`` started and nobody collected (a question that asked otherwise)."""
        self._begun.searches = {}

    def _collect(self, key: tuple) -> Callable[[], tuple[np.ndarray, np.ndarray]] | None:
        begun = getattr(self._begun, "searches", None)
        return begun.pop(key, None) if begun else None

    def _nearest(self, vectors: VectorSearch, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = vectors.ntotal
        got = self._collect(("v", id(vectors), min(k, n), np.asarray(qvec, np.float32).reshape(1, -1).tobytes()))
        if got is None:
            return _nearest(vectors, n, qvec, k)
        scores, ids = got()
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def _bm25(self, bm25: Bm25Index, terms: Sequence[str], k: int, mask: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray]:
        got = self._collect(("t", id(bm25), k, tuple(terms))) if mask is None else None
        return got() if got is not None else _bm25_within(bm25, terms, k, mask)

    @classmethod
    def over(cls, index: LoadedIndex) -> Retriever:
        return cls(index.passage_vectors, index.sentence_vectors, index.passage_bm25, index.sentence_bm25)

    def sentence_vectors(self, sids: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """The stored vectors of sentences ``sids`` (float32 rows)."""
        return self.sentences.vectors(sids)

    def passage_vectors(self, pids: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """The stored vectors of passages ``pids`` (float32 rows)."""
        return self.passages.vectors(pids)

    def dense_passages(self, qvec: np.ndarray, k: int, scope: Scope | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` passages nearest to ``qvec`` (inside ``scope``): (ids, scores), best first."""
        if scope is not None:
            return _nearest_within(self.passages, scope.passages, qvec, k)
        return self._nearest(self.passages, qvec, k)

    def dense_sentences(self, qvec: np.ndarray, k: int, scope: Scope | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` sentences nearest to ``qvec`` (inside ``scope``): (ids, scores), best first."""
        if scope is not None:
            return _nearest_within(self.sentences, scope.sentences, qvec, k)
        return self._nearest(self.sentences, qvec, k)

    def bm25_sentences(self, terms: Sequence[str], k: int, scope: Scope | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best sentences by BM25 (inside ``scope``), with a score above 0."""
        return self._bm25(self.sentence_bm25, terms, k, None if scope is None else scope.sentences)

    def hybrid(self, qvec: np.ndarray, terms: list[str], k: int = 8, depth: int = 30,
               scope: Scope | None = None) -> list[Hit]:
        """Top ``k`` passages (inside ``scope``) by RRF of the dense and BM25 rankings (each ``depth`` deep)."""
        d_ids, d_scores = self.dense_passages(qvec, depth, scope)
        b_ids, b_scores = self._bm25(self.passage_bm25, terms, depth, None if scope is None else scope.passages)
        dense_of = {int(p): float(s) for p, s in zip(d_ids.tolist(), d_scores.tolist(), strict=True)}
        bm_of = {int(p): float(s) for p, s in zip(b_ids.tolist(), b_scores.tolist(), strict=True)}
        best = reciprocal_rank_fusion((d_ids, b_ids))[:k]
        # The few fused passages that one side did not rank still get both scores.
        no_bm = [pid for pid, _ in best if pid not in bm_of]
        if no_bm:
            bm_of.update(zip(no_bm, self.passage_bm25.scores_for(terms, no_bm).tolist(), strict=True))
        out = []
        for pid, s in best:
            dense = dense_of.get(pid)
            if dense is None:
                dense = float(self.passage_vectors([pid])[0] @ qvec)
            out.append(Hit(pid, s, dense, bm_of[pid]))
        return out
