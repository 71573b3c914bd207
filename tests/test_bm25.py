"""BM25 stored at index time: scores equal the textbook formula; the term analyzer cuts text as
written out here, and a question is cut into the terms the index stored for the same words."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.bm25 import K1, B, Bm25Builder, Bm25Index
from index.terms import TERMS_VERSION, content_terms, stem, tokenize
from qa.analyze import analyze

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
    toks = [content_terms(t) for t in texts]
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
    assert bm.tokens == [content_terms(t) for t in TEXTS]
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


# The analyzer's output, written out by hand. Stored BM25 terms depend on it: if one of these
# changes, so do the terms of every index, and index.terms.TERMS_VERSION must change with it.
def test_the_analyzer_is_the_one_the_stored_terms_were_cut_with() -> None:
    assert TERMS_VERSION == "terms-1"


def test_the_tokenizer_keeps_runs_of_letters_and_digits_and_one_apostrophe_ending() -> None:
    assert tokenize("PM Kakar's AZAL flights, 2023-24; U.S. don’t e-mail") == [
        "PM", "Kakar's", "AZAL", "flights", "2023", "24", "U", "S", "don’t", "e", "mail",
    ]  # fmt: skip
    assert tokenize("rock'n'roll x2 ... 3.5%") == ["rock'n", "roll", "x2", "3", "5"]
    assert tokenize("") == [] and tokenize(" —, ; ") == []


@pytest.mark.parametrize(
    ("word", "want"),
    [
        ("flights", "flight"), ("Flights", "flight"), ("announced", "announc"), ("announcement", "announc"),
        ("movements", "mov"), ("operations", "oper"), ("buildings", "build"), ("running", "runn"),
        ("countries", "country"), ("studied", "study"), ("boxes", "box"), ("flies", "fli"),  # "ies" would leave 2
        ("Kakar's", "kakar"), ("Pakistan’s", "pakistan"), ("don’t", "don't"), ("1990s", "1990"),
        ("bus", "bus"), ("used", "used"), ("AZAL", "azal"), ("ies", "ies"),  # a stem keeps 3 letters
    ],
)  # fmt: skip
def test_stems_are_cut_by_the_first_suffix_that_leaves_three_letters(word: str, want: str) -> None:
    assert stem(word) == want


def test_content_terms_drop_stopwords_and_one_letter_words_but_keep_digits() -> None:
    text = "PM Kakar's AZAL flights, 2023-24; U.S. don’t e-mail the 3 studies"
    assert content_terms(text) == ["pm", "kakar", "azal", "flight", "2023", "24", "don't", "mail", "3", "study"]
    assert content_terms("The flights of THE year and a 7 by X") == ["flight", "year", "7"]
    assert content_terms("what is it and who was there") == []
    assert content_terms("") == []


WORDS = ["AZAL", "flights", "Flight", "the", "and", "of", "a", "I", "x", "7", "2023", "Kakar's", "Pakistan’s",
         "don’t", "announced", "announcement", "countries", "studied", "e-mail", "U.S.", "who", "Why"]


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.lists(st.sampled_from(WORDS), max_size=20).map(" ".join),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
))  # fmt: skip
def test_a_question_quoting_a_text_asks_for_the_terms_the_index_stored_for_it(text: str) -> None:
    # Index side: the terms Bm25Index stores for the text. Question side: the terms analyze()
    # gives a question made of the same words. They must agree or the question misses postings.
    bm = Bm25Index.from_texts([text, "unrelated filler words"])
    q = analyze(text)
    assert q.terms == tuple(dict.fromkeys(bm.tokens[0]))
    if q.terms:
        scores = bm.scores(list(q.terms))
        assert scores[0] > 0 and (scores[1] == 0) == set(q.terms).isdisjoint(bm.tokens[1])


def test_questions_made_of_the_corpus_paragraphs_find_them() -> None:
    corpus = Path(__file__).resolve().parents[1] / "corpus"
    for p in sorted(corpus.glob("*.txt")):
        paragraphs = [t for t in p.read_text().split("\n\n") if t.strip()]
        bm = Bm25Index.from_texts(paragraphs)
        for i, para in enumerate(paragraphs):
            terms = list(analyze(para).terms)
            assert set(terms) == set(bm.tokens[i]) and set(terms) <= set(bm.vocab), (p.name, i)
            if terms:
                assert bm.scores(terms)[i] > 0


def _check_stored_terms(index_dir: Path) -> None:
    from index.loaded import LoadedIndex

    idx = LoadedIndex.open(index_dir)
    for doc_id, rec in idx.docs.items():
        assert idx.doc_title_terms(doc_id) == frozenset(content_terms(rec.title))
    for sid in range(idx.n_sentences()):
        text = idx.sent_text[sid]
        assert idx.sentence_mention_terms(sid) == [frozenset(content_terms(text[s:e])) for s, e, *_ in idx.mentions[sid]]
        assert idx.sentence_bm25.tokens[sid] == content_terms(text)
    for pid in range(idx.n_passages()):
        assert idx.passage_bm25.tokens[pid] == content_terms(idx.pass_text[pid])


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
