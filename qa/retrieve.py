"""Hybrid retrieval: BM25 over passages and dense FAISS search, fused by reciprocal rank.

BM25 finds the acronyms and names a small dense model blurs ("AZAL", "FWO", "OIC"); the dense
side finds paraphrases. Reciprocal rank fusion needs no score calibration between the two.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from index.loaded import LoadedIndex
from qa.analyze import content_terms

RRF_K = 60


@dataclass(frozen=True)
class Hit:
    passage_id: int
    score: float  # fused RRF score
    dense: float  # cosine similarity of question and passage
    bm25: float


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.argpartition(-scores, k - 1)[:k]
    return idx[np.argsort(-scores[idx], kind="stable")]


class Bm25:
    """BM25 (bm25s) over our own analyzed terms, so queries and texts stem the same way."""

    def __init__(self, texts: list[str]) -> None:
        import bm25s

        self.tokens = [content_terms(t) for t in texts]
        self._bm25 = bm25s.BM25()
        # bm25s cannot index an empty collection or empty documents; pad with a no-op token.
        self._bm25.index([toks or ["\x00"] for toks in self.tokens] or [["\x00"]], show_progress=False)
        self.n = len(texts)
        df = Counter(t for toks in self.tokens for t in set(toks))
        self.idf = {t: math.log(1 + (self.n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        self.max_idf = math.log(1 + (self.n + 0.5) / 0.5) if self.n else 1.0

    def scores(self, terms: list[str]) -> np.ndarray:
        if not terms or self.n == 0:
            return np.zeros(self.n, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)[: self.n]

    def scores_for(self, terms: list[str], docs) -> np.ndarray:
        """BM25 scores of the given rows only."""
        docs = np.asarray(docs, np.int64)
        if len(docs) == 0:
            return np.zeros(0, np.float32)
        return self.scores(terms)[docs]

    def term_idf(self, term: str) -> float:
        # Unseen terms are the rarest of all: a question term the corpus never uses is strong
        # evidence that the corpus does not answer it.
        return self.idf.get(term, self.max_idf)


class Retriever:
    def __init__(self, index: LoadedIndex) -> None:
        self.index = index
        self.passage_bm25 = Bm25(index.pass_text)
        self.sentence_bm25 = Bm25(index.sent_text)

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
        bm = self.passage_bm25.scores(terms)
        b_ids = _top(bm, depth)
        b_ids = b_ids[bm[b_ids] > 0]
        fused: dict[int, float] = {}
        for rank, pid in enumerate(d_ids):
            fused[int(pid)] = fused.get(int(pid), 0.0) + 1.0 / (RRF_K + rank + 1)
        for rank, pid in enumerate(b_ids):
            fused[int(pid)] = fused.get(int(pid), 0.0) + 1.0 / (RRF_K + rank + 1)
        dense_of = {int(p): float(s) for p, s in zip(d_ids, d_scores, strict=True)}
        best = sorted(fused.items(), key=lambda kv: -kv[1])[:k]
        out = []
        for pid, s in best:
            dense = dense_of.get(pid)
            if dense is None:
                dense = float(self.index.pass_vecs[pid] @ qvec)
            out.append(Hit(pid, s, dense, float(bm[pid])))
        return out
