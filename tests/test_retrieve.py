"""Hybrid retrieval: reciprocal rank fusion worked out by hand on small rankings, and the demo
index's hybrid hits are that fusion of its dense and BM25 rankings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.retrieve import RRF_K, Retriever, reciprocal_rank_fusion


def test_fused_scores_sum_one_over_k_plus_rank() -> None:
    got = reciprocal_rank_fusion([[1, 2, 3], [3, 1]])
    # 1: ranks 1 and 2; 3: ranks 3 and 1; 2: rank 2 of the first list only.
    assert [i for i, _ in got] == [1, 3, 2]
    assert got[0][1] == pytest.approx(123 / 3782)  # 1/61 + 1/62
    assert got[1][1] == pytest.approx(124 / 3843)  # 1/63 + 1/61
    assert got[2][1] == pytest.approx(1 / 62)


def test_the_default_k_is_60() -> None:
    assert RRF_K == 60
    assert reciprocal_rank_fusion([[9]]) == [(9, pytest.approx(1 / 61))]
    assert reciprocal_rank_fusion([[4, 9]], k=0) == [(4, 1.0), (9, 0.5)]


def test_an_item_in_one_list_only_scores_from_that_list() -> None:
    got = dict(reciprocal_rank_fusion([[10, 11], [12]]))
    assert got == {10: pytest.approx(1 / 61), 11: pytest.approx(1 / 62), 12: pytest.approx(1 / 61)}
    # An item both lists rank second beats one that a single list ranks first: 2/62 > 1/61.
    assert [i for i, _ in reciprocal_rank_fusion([[1, 2], [3, 2]])] == [2, 1, 3]


def test_k_decides_between_agreement_and_a_top_rank() -> None:
    # y is third in both lists, x and q first in one each: y scores 2/(k+3), x and q 1/(k+1).
    a, b = ["x", "p", "y"], ["q", "r", "y"]
    ids = {"x": 1, "p": 2, "y": 3, "q": 4, "r": 5}
    rankings = [[ids[n] for n in a], [ids[n] for n in b]]
    name = {v: n for n, v in ids.items()}
    assert [name[i] for i, _ in reciprocal_rank_fusion(rankings)] == ["y", "x", "q", "p", "r"]
    assert [name[i] for i, _ in reciprocal_rank_fusion(rankings, k=0)] == ["x", "q", "y", "p", "r"]
    at_one = dict(reciprocal_rank_fusion(rankings, k=1))
    assert at_one[ids["y"]] == at_one[ids["x"]] == at_one[ids["q"]] == 0.5  # 2/4 = 1/2: the crossover


def test_ties_keep_the_order_the_items_were_first_met() -> None:
    assert reciprocal_rank_fusion([[5, 6], [6, 5]]) == [(5, pytest.approx(1 / 61 + 1 / 62)), (6, pytest.approx(1 / 61 + 1 / 62))]
    assert [i for i, _ in reciprocal_rank_fusion([[7], [8]])] == [7, 8]
    assert [i for i, _ in reciprocal_rank_fusion([[8], [7]])] == [8, 7]
    assert [i for i, _ in reciprocal_rank_fusion([[], [3, 1, 2]])] == [3, 1, 2]


def test_numpy_rankings_give_python_ints_and_empty_rankings_nothing() -> None:
    got = reciprocal_rank_fusion([np.array([3, 1], np.int64), np.zeros(0, np.int64)])
    assert [i for i, _ in got] == [3, 1]
    assert all(type(i) is int and type(s) is float for i, s in got)
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], np.zeros(0, np.int64)]) == []


def test_hybrid_hits_are_the_fusion_of_the_dense_and_bm25_rankings(demo_index: Path) -> None:
    from index.loaded import LoadedIndex
    from qa.analyze import analyze

    idx = LoadedIndex.open(demo_index)
    r = Retriever.over(idx)
    terms = list(analyze("when were direct AZAL flights announced").terms)
    # A passage's own vector as the question: the dense side ranks that passage first.
    for pid, k, depth in ((0, 8, 30), (idx.n_passages() - 1, 5, 4), (3, 40, 12)):
        qvec = idx.passage_vectors.vectors([pid])[0]
        d_ids, _ = r.dense_passages(qvec, depth)
        b_ids, _ = idx.passage_bm25.top(terms, depth)
        assert len(d_ids) == min(depth, idx.n_passages()) and int(d_ids[0]) == pid
        want: dict[int, float] = {}
        for ranking in (d_ids.tolist(), b_ids.tolist()):
            for rank, p in enumerate(ranking):
                want[p] = want.get(p, 0.0) + 1 / (60 + rank + 1)
        hits = r.hybrid(qvec, terms, k=k, depth=depth)
        assert len(hits) == min(k, len(want))
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert {h.passage_id for h in hits} <= set(want)
        # The hits are the k best of the fusion (no unranked passage scores more than the last).
        assert sorted(want.values(), reverse=True)[: len(hits)] == pytest.approx([h.score for h in hits])
        bm = idx.passage_bm25.scores_for(terms, [h.passage_id for h in hits])
        for h, b in zip(hits, bm.tolist(), strict=True):
            assert h.score == pytest.approx(want[h.passage_id])
            # Both scores, whichever side ranked the passage.
            assert h.dense == pytest.approx(float(idx.passage_vectors.vectors([h.passage_id])[0] @ qvec), abs=1e-5)
            assert h.bm25 == pytest.approx(b, abs=1e-5)


class ExactSearch:
    """A second VectorSearch (NumPy, exact): the retriever is given its searchers."""

    def __init__(self, vecs: np.ndarray) -> None:
        self._vecs = np.asarray(vecs, np.float32)
        self.calls = 0

    @property
    def ntotal(self) -> int:
        return len(self._vecs)

    @property
    def dim(self) -> int:
        return self._vecs.shape[1]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        s = np.asarray(queries, np.float32).reshape(-1, self._vecs.shape[1]) @ self._vecs.T
        ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(s, ids, axis=1), ids

    def vectors(self, ids) -> np.ndarray:
        return self._vecs[ids] if isinstance(ids, slice) else self._vecs[np.asarray(ids, np.int64)]


def test_the_answer_step_runs_on_any_vector_search_and_reads_vectors_only_through_it(demo_index: Path) -> None:
    """Another implementation of the protocol plugged into the retriever gives the same candidate
    sentences and dense features as the index's own FAISS searchers (the demo index is exact search)."""
    from index.encoder import load_encoder
    from index.loaded import LoadedIndex
    from index.vectors import VectorSearch
    from qa.analyze import analyze
    from qa.answer import AnswerStep
    from qa.engine import encode_questions

    idx = LoadedIndex.open(demo_index)
    own = Retriever.over(idx)
    passages = ExactSearch(idx.passage_vectors.vectors(slice(None)))
    sentences = ExactSearch(idx.sentence_vectors.vectors(slice(None)))
    assert isinstance(passages, VectorSearch)
    other = Retriever(passages, sentences, idx.passage_bm25, idx.sentence_bm25)
    enc = load_encoder(idx.encoder_name)
    for question in ("when were direct AZAL flights announced", "who led the Pakistan side?"):
        q = analyze(question)
        qv = encode_questions(enc, [question])[0]
        a = AnswerStep(idx, own, None, idx.token_store()).gather(q, qv)
        b = AnswerStep(idx, other, None, idx.token_store()).gather(q, qv)
        # The same candidates (exact search both; tied scores of repeated sentences may come in
        # another order) with the same features.
        assert sorted(a.sids.tolist()) == sorted(b.sids.tolist())
        ra, rb = np.argsort(a.sids), np.argsort(b.sids)
        assert np.allclose(a.numeric[ra][:, :2], b.numeric[rb][:, :2], atol=1e-5)  # dense sentence, passage
    assert passages.calls > 0 and sentences.calls > 0
