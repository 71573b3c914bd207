"""The streamed build: documents go through in batches written as they go; the index is the same
whatever the batch size, incremental builds copy across batches, and passages may take pooled
vectors (`qa index --passage-vectors pooled`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from index import build as build_module
from index.arrays import NpyAppender
from index.build import build_index
from index.loaded import LoadedIndex
from tests.conftest import run_qa


def quiet_build(corpus: Path, index: Path, **kw):
    return build_index(corpus, index, progress=False, log=lambda m: None, **kw)


def assert_same_index(a: LoadedIndex, b: LoadedIndex, *, vectors_atol: float = 1e-6) -> None:
    """Same documents, sentences, offsets, passages, mentions, parses, terms; vectors and token
    vectors equal (within float rounding)."""
    assert list(a.docs) == list(b.docs)
    assert [(d.text, d.title, d.content_hash) for d in a.docs.values()] == [
        (d.text, d.title, d.content_hash) for d in b.docs.values()
    ]
    for name in ("sent_start", "sent_end", "sent_passage", "pass_first", "pass_last", "pass_start", "pass_end"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    n = a.n_sentences()
    assert [a.mentions[i] for i in range(n)] == [b.mentions[i] for i in range(n)]
    assert [a.parse_json(i) for i in range(n)] == [b.parse_json(i) for i in range(n)]
    for name in ("sentence_vectors", "passage_vectors"):
        x, y = getattr(a, name).vectors(slice(None)), getattr(b, name).vectors(slice(None))
        assert x.shape == y.shape and np.allclose(x, y, atol=vectors_atol), name
    ta, tb = a.token_store(), b.token_store()
    assert np.array_equal(ta.starts, tb.starts)
    assert np.abs(np.asarray(ta.tokens, np.int16) - np.asarray(tb.tokens, np.int16)).max(initial=0) <= 1
    for name in ("sentence_bm25", "passage_bm25", "title_terms", "mention_terms"):
        p, q = getattr(a, name), getattr(b, name)
        # The same terms of every text and the same weights (an incremental build numbers the
        # vocabulary in another order).
        assert p.tokens == q.tokens, name
        pi, qi = p.idf, q.idf
        assert pi.keys() == qi.keys() and all(abs(pi[t] - qi[t]) < 1e-9 for t in pi), name
        terms = sorted(pi)[:: max(1, len(pi) // 50)]
        for j in range(0, p.n, max(1, p.n // 20)):
            assert np.allclose(p.scores_for(terms, [j]), q.scores_for(terms, [j]), atol=1e-6), name


def test_npy_appender_writes_a_valid_array_block_by_block(tmp_path: Path) -> None:
    a = NpyAppender(tmp_path / "v.npy", 3, np.float32)
    a.append(np.ones((2, 3)))
    a.append(np.zeros((0, 3)))
    a.append(np.arange(6).reshape(2, 3))
    a.close()
    got = np.load(tmp_path / "v.npy")
    assert got.dtype == np.float32 and got.tolist() == [[1, 1, 1], [1, 1, 1], [0, 1, 2], [3, 4, 5]]
    assert np.load(tmp_path / "v.npy", mmap_mode="r").shape == (4, 3)
    empty = NpyAppender(tmp_path / "t.npy", 128, np.int8)
    empty.close()
    assert np.load(tmp_path / "t.npy").shape == (0, 128)


@pytest.mark.slow
def test_small_batches_write_the_same_index_as_one_batch(
    demo_index: Path, corpus_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 7 sentences (documents never split, so batches of one or two documents) give the
    index the session's demo index has; an incremental build in small batches copies the unchanged
    documents across batch boundaries and equals a fresh build of the same files."""
    monkeypatch.setattr(build_module, "CHUNK_SENTENCES", 7)
    small = tmp_path / "small"
    quiet_build(corpus_copy, small)
    assert_same_index(LoadedIndex.open(small), LoadedIndex.open(demo_index))

    target = corpus_copy / "001_072c7506d9b82cf7.txt"
    target.write_text(target.read_text() + "\nThe envoy later visited Lahore to open a trade office.\n")
    (corpus_copy / "003_fdf2c5db0e68fe77.txt").unlink()
    (corpus_copy / "zzz_new.txt").write_text("Fresh news from Baku.\n\nThe AZAL office opened on 3 May 2024 in Lahore.\n")
    r = quiet_build(corpus_copy, small)
    assert r.changed == ["001_072c7506d9b82cf7.txt"] and r.added == ["zzz_new.txt"] and len(r.unchanged) == 3
    monkeypatch.setattr(build_module, "CHUNK_SENTENCES", 1024)
    fresh = tmp_path / "fresh"
    quiet_build(corpus_copy, fresh)
    assert_same_index(LoadedIndex.open(small), LoadedIndex.open(fresh))


@pytest.mark.slow
def test_pooled_passage_vectors_through_the_cli(demo_index: Path, tmp_path: Path) -> None:
    """`qa index --passage-vectors pooled`: recorded in the index, kept by later builds, each
    multi-sentence passage's vector a unit vector close to its sentences' (not the encoded one),
    a one-sentence passage's its sentence's; questions are answered; switching back re-embeds."""
    from tests.conftest import CORPUS

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    index = tmp_path / "index"
    r = run_qa("index", str(corpus), "--index", str(index), "--passage-vectors", "pooled", "-q", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    pooled, encoded = LoadedIndex.open(index), LoadedIndex.open(demo_index)
    assert pooled.meta["passages"] == "pooled" and encoded.meta["passages"] == "encoded"
    # Fewer texts went through the encoder: only the sentences.
    assert report["embedded_texts"] == len(set(pooled.sent_text))
    pv, ev = pooled.passage_vectors.vectors(slice(None)), encoded.passage_vectors.vectors(slice(None))
    sv = pooled.sentence_vectors.vectors(slice(None))
    assert np.allclose(np.linalg.norm(pv, axis=1), 1.0, atol=1e-4)
    multi = 0
    for p in range(pooled.n_passages()):
        first, last = int(pooled.pass_first[p]), int(pooled.pass_last[p])
        if first == last:
            assert np.allclose(pv[p], sv[first], atol=1e-6)
            continue
        multi += 1
        mean = sv[first : last + 1].mean(0)
        assert float(pv[p] @ mean / np.linalg.norm(mean)) > 0.9
        assert float(pv[p] @ ev[p]) > 0.75 and not np.allclose(pv[p], ev[p], atol=1e-3)
    assert multi > 10

    ask = run_qa("ask", "--index", str(index), "--json", "when were direct AZAL flights announced")
    assert ask.returncode == 0, ask.stderr
    assert json.loads(ask.stdout)["citations"][0]["doc_id"] == "003_fdf2c5db0e68fe77.txt"

    again = run_qa("index", str(corpus), "--index", str(index), "-q", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["embedded_texts"] == 0
    assert LoadedIndex.open(index).meta["passages"] == "pooled"

    back = run_qa("index", str(corpus), "--index", str(index), "--passage-vectors", "encoded", "-q", "--json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["embedded_texts"] == report["embedded_texts"] + len(
        {t for t in encoded.pass_text} - set(encoded.sent_text)
    )
    assert_same_index(LoadedIndex.open(index), encoded)

    bad = run_qa("index", str(corpus), "--index", str(index), "--passage-vectors", "mean")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
