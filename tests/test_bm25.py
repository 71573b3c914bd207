"""BM25 stored at index time: scores equal the textbook formula, and the index's term analyzer
cuts text exactly as the question analyzer does."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from index.bm25 import K1, B, Bm25Builder, Bm25Index
from index.terms import content_terms as index_terms
from qa.analyze import content_terms as question_terms

TEXTS = [
    "PM Kakar welcomed the announcement of direct flight operations of Azerbaijan Airline (AZAL).",
    "The launch of direct AZAL flights will bolster our connectivity.",
    "",
    "Flights, flights and more flights: 2023 was the year of flights.",
    "Pakistan and Azerbaijan held bilateral political consultations in Islamabad.",
    "the of and",  # only stopwords: no terms
]


def reference_scores(texts: list[str], query: list[str]) -> list[float]:
    """Lucene BM25, written out term by term."""
    toks = [index_terms(t) for t in texts]
    n = len(toks)
    avgdl = sum(len(t) for t in toks) / n
    out = []
    for t in toks:
        s = 0.0
        for q in query:
            df = sum(1 for d in toks if q in d)
            if df == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = t.count(q)
            s += idf * tf / (tf + K1 * (1 - B + B * len(t) / avgdl))
        out.append(s)
    return out


def test_scores_match_the_formula_and_top_ranks_them() -> None:
    bm = Bm25Index.from_texts(TEXTS)
    for query in (["flight"], ["azal", "flight"], ["pakistan", "islamabad", "nowhere"], ["nowhere"], []):
        got = bm.scores(query)
        want = reference_scores(TEXTS, query)
        assert np.allclose(got, want, atol=1e-5), (query, got, want)
        ids, vals = bm.top(query, 3)
        positive = sorted((i for i, w in enumerate(want) if w > 0), key=lambda i: (-want[i], i))[:3]
        assert ids.tolist() == positive
        assert np.allclose(vals, [want[i] for i in positive], atol=1e-5)
        some = [0, 3, 5, 1]
        assert np.allclose(bm.scores_for(query, some), [want[i] for i in some], atol=1e-5)
    assert bm.tokens == [index_terms(t) for t in TEXTS]
    assert bm.term_idf("neverseen") > bm.term_idf("flight") > 0


def test_saved_and_loaded_terms_score_the_same(tmp_path: Path) -> None:
    bm = Bm25Index.from_texts(TEXTS)
    bm.save(tmp_path, "passages")
    back = Bm25Index.load(tmp_path, "passages")
    assert back.tokens == bm.tokens
    assert np.array_equal(back.scores(["azal", "flight"]), bm.scores(["azal", "flight"]))


def test_incremental_builder_reuses_old_terms_without_changing_scores() -> None:
    old = Bm25Index.from_texts(TEXTS[:4])
    b = Bm25Builder()
    b.add_texts([TEXTS[4]])
    b.add_from(old, 1, 3)  # texts 1..3 of the old index, copied, not re-analyzed
    b.add_texts([TEXTS[5]])
    got = b.build()
    want = Bm25Index.from_texts([TEXTS[4], *TEXTS[1:4], TEXTS[5]])
    assert got.tokens == want.tokens
    for q in (["flight"], ["pakistan", "azal"]):
        assert np.allclose(got.scores(q), want.scores(q))
    assert "kakar" not in got.vocab  # terms only the dropped text had are gone


def test_top_on_a_large_collection_matches_a_full_sort() -> None:
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(300)]
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 12))) for _ in range(3000)]
    bm = Bm25Index.from_texts(texts)
    for q in (["w1"], ["w1", "w2", "w3"], ["w5", "w299", "zzz"]):
        full = bm.scores(q)
        ids, vals = bm.top(q, 10)
        order = sorted(np.flatnonzero(full).tolist(), key=lambda i: (-full[i], i))[:10]
        assert ids.tolist() == order
        assert np.allclose(vals, full[order])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_index_and_question_analyzers_agree(text: str) -> None:
    # The index stores BM25 terms cut by index.terms; questions are cut by qa.analyze. They must
    # agree or a question's terms miss the stored postings.
    assert index_terms(text) == question_terms(text)


def test_analyzers_agree_on_real_text() -> None:
    corpus = Path(__file__).resolve().parents[1] / "corpus"
    for p in sorted(corpus.glob("*.txt")):
        text = p.read_text()
        assert index_terms(text) == question_terms(text)


def _check_stored_terms(index_dir: Path) -> None:
    from index.loaded import LoadedIndex

    idx = LoadedIndex.open(index_dir)
    for doc_id, rec in idx.docs.items():
        assert idx.doc_title_terms(doc_id) == frozenset(index_terms(rec.title))
    for sid in range(idx.n_sentences()):
        text = idx.sent_text[sid]
        assert idx.sentence_mention_terms(sid) == [frozenset(index_terms(text[s:e])) for s, e, *_ in idx.mentions[sid]]
        assert idx.sentence_terms.tokens[sid] == index_terms(text)
    for pid in range(idx.n_passages()):
        assert idx.passage_terms.tokens[pid] == index_terms(idx.pass_text[pid])


def test_terms_stored_at_index_time_match_the_text_after_an_incremental_build(corpus_copy: Path, tmp_path: Path) -> None:
    from index.build import build_index

    index_dir = tmp_path / "index"
    build_index(corpus_copy, index_dir, progress=False, log=lambda m: None)
    _check_stored_terms(index_dir)
    (corpus_copy / "001_072c7506d9b82cf7.txt").unlink()
    (corpus_copy / "new.txt").write_text("Envoy opens office\n\nThe AZAL office opened on 3 May 2024 in Lahore, officials said.\n")
    report = build_index(corpus_copy, index_dir, progress=False, log=lambda m: None)
    assert report.unchanged and report.added == ["new.txt"] and report.removed
    _check_stored_terms(index_dir)  # reused documents' terms were copied over, new ones analyzed
