"""Hybrid retrieval: BM25 over passages and dense FAISS search, fused by reciprocal rank.

BM25 finds the acronyms and names a small dense model blurs ("AZAL", "FWO", "OIC"); the dense
side finds paraphrases. Reciprocal rank fusion needs no score calibration between the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from index.bm25 import Bm25Index
from index.loaded import LoadedIndex

RRF_K = 60


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


class Retriever:
    def __init__(self, index: LoadedIndex) -> None:
        self.index = index
        self.passage_bm25: Bm25Index = index.passage_terms
        self.sentence_bm25: Bm25Index = index.sentence_terms

    def dense_passages(self, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.index.n_passages() == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores, ids = self.index.pass_faiss.search(qvec.reshape(1, -1), min(k, self.index.n_passages()))
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def dense_sentences(self, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.index.n_sentences() == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores, ids = self.index.sent_faiss.search(qvec.reshape(1, -1), min(k, self.index.n_sentences()))
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def hybrid(self, qvec: np.ndarray, terms: list[str], k: int = 8, depth: int = 30) -> list[Hit]:
        """Top ``k`` passages by RRF of the dense and BM25 rankings (each ``depth`` deep)."""
        d_ids, d_scores = self.dense_passages(qvec, depth)
        b_ids, b_scores = self.passage_bm25.top(terms, depth)
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
                dense = float(self.index.pass_vecs[pid] @ qvec)
            out.append(Hit(pid, s, dense, bm_of[pid]))
        return out
