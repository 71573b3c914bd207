"""The vector index: structure chosen from size; ids stay right through adds and removes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index import vectors

CENTRES = np.random.default_rng(99).standard_normal((50, 32)).astype(np.float32)


def unit(rng: np.random.Generator, n: int, d: int = 32, centres: np.ndarray = CENTRES) -> np.ndarray:
    """Clustered unit vectors, as text embeddings are (uniform noise is IVF's worst case)."""
    v = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, d)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def recall_at_10(idx: vectors.VectorIndex, data: np.ndarray, q: np.ndarray) -> float:
    exact = np.argsort(-(q @ data.T), axis=1)[:, :10]
    _, approx = idx.search(q, 10)
    return float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)]))


def test_small_collections_are_exact_and_large_ones_ivf() -> None:
    rng = np.random.default_rng(0)
    assert vectors.describe(vectors.build(unit(rng, 100))) == "Flat"
    assert vectors.plan_for(vectors.FLAT_MAX).kind == "flat"
    assert vectors.plan_for(vectors.FLAT_MAX + 1).kind == "ivf"
    assert vectors.ivf_params(1_000_000) == (4096, 128)
    assert vectors.ivf_params(60_000) == (1024, 140)  # short lists: probe enough to scan ~8k vectors
    assert vectors.ivf_params(200_000) == (2048, 84)


def test_ivf_recall_and_ids_after_remove_and_add(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = unit(rng, 6000)
    idx = vectors.build(base, force="ivf")
    assert vectors.describe(idx).startswith("IVF")
    # Every vector finds itself: ids are row numbers.
    _, ids = idx.search(base[:200], 1)
    assert (ids[:, 0] == np.arange(200)).mean() >= 0.98
    # "Delete" rows 0..999 and append new ones, as an incremental build does: ids must point at
    # the new rows, never at the deleted ones.
    new_rows = unit(rng, 500)
    after = np.concatenate([base[1000:], new_rows])
    idx2 = vectors.build(after, previous=idx, force="ivf")
    assert idx2.plan.trained_on == 6000  # the centroids were reused, not retrained
    _, ids = idx2.search(new_rows[:100], 1)
    assert (ids[:, 0] == np.arange(len(base) - 1000, len(base) - 1000 + 100)).mean() >= 0.98
    _, ids = idx2.search(base[1000:1100], 1)
    assert (ids[:, 0] == np.arange(100)).mean() >= 0.98
    assert recall_at_10(idx2, after, unit(rng, 100)) >= 0.95
    # Saved and loaded with memory-mapped vectors, it answers the same.
    np.save(tmp_path / "v.npy", after)
    vectors.save(idx2, tmp_path / "v.faiss")
    back = vectors.load(tmp_path / "v.faiss", np.load(tmp_path / "v.npy", mmap_mode="r"))
    assert back.plan == idx2.plan
    q = unit(rng, 20)
    assert np.array_equal(back.search(q, 10)[1], idx2.search(q, 10)[1])


def test_a_collection_that_moved_away_from_the_centroids_is_retrained() -> None:
    rng = np.random.default_rng(2)
    idx = vectors.build(unit(rng, 6000), force="ivf")
    elsewhere = np.random.default_rng(5).standard_normal((50, 32)).astype(np.float32)
    moved = unit(rng, 6000, centres=elsewhere)
    idx2 = vectors.build(moved, previous=idx, force="ivf")
    assert idx2.plan.residual != idx.plan.residual  # trained afresh on the new vectors
    assert recall_at_10(idx2, moved, unit(rng, 100, centres=elsewhere)) >= 0.95


def test_exact_rerank_returns_exact_scores() -> None:
    rng = np.random.default_rng(3)
    data = unit(rng, 5000)
    idx = vectors.build(data, force="ivf")
    q = unit(rng, 5)
    scores, ids = idx.search(q, 5)
    assert np.allclose(scores, np.take_along_axis(q @ data.T, ids, axis=1), atol=1e-6)


@pytest.mark.slow
def test_built_index_keeps_ids_on_the_right_rows_after_removal_and_addition(
    corpus_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real incremental build with IVF indexes: drop a document, add one; every sentence and
    passage vector still finds its own row, and rows hold the right text."""
    from index.build import build_index
    from index.encoder import load_encoder
    from index.loaded import LoadedIndex

    monkeypatch.setattr(vectors, "FLAT_MAX", 50)  # the demo corpus is small: force IVF
    index_dir = tmp_path / "index"
    build_index(corpus_copy, index_dir, progress=False, log=lambda m: None)
    first = LoadedIndex.open(index_dir)
    assert first.sentence_vectors.describe().startswith("IVF")
    (corpus_copy / "003_fdf2c5db0e68fe77.txt").unlink()
    (corpus_copy / "zzz_new.txt").write_text("Fresh news from Baku.\n\nThe AZAL office opened on 3 May 2024 in Lahore.\n")
    build_index(corpus_copy, index_dir, progress=False, log=lambda m: None)
    idx = LoadedIndex.open(index_dir)
    assert "003_fdf2c5db0e68fe77.txt" not in idx.docs
    for search in (idx.sentence_vectors, idx.passage_vectors):
        vecs = search.vectors(slice(None))
        _, ids = search.search(vecs, 1)
        # Each row finds itself, or a row with the very same vector (the corpus repeats a few
        # sentences, one with a no-break space for a space).
        same = np.einsum("ij,ij->i", vecs[ids[:, 0]], vecs)
        assert (ids[:, 0] == np.arange(len(vecs))).mean() > 0.8 and same.min() > 0.9999
    enc = load_encoder(idx.encoder_name)
    sid = next(i for i in idx.doc_sentences["zzz_new.txt"] if "AZAL office" in idx.sent_text[i])
    _, ids = idx.sentence_vectors.search(enc.encode([idx.sent_text[sid]]), 1)
    assert int(ids[0, 0]) == sid


def test_a_vector_index_is_a_vector_search_with_its_stored_vectors_by_id(tmp_path: Path) -> None:
    """The seam: search and the stored vectors by id (a list, an array or a slice), also after a
    save and a load from the memory-mapped file."""
    data = unit(np.random.default_rng(5), 300)
    np.save(tmp_path / "v.npy", data)
    built = vectors.build(np.load(tmp_path / "v.npy", mmap_mode="r"))
    vectors.save(built, tmp_path / "v.faiss")
    for idx in (built, vectors.load(tmp_path / "v.faiss", np.load(tmp_path / "v.npy", mmap_mode="r"))):
        assert isinstance(idx, vectors.VectorSearch)
        assert idx.ntotal == 300 and idx.dim == 32
        got = idx.vectors([7, 3, 299])
        assert got.dtype == np.float32 and np.array_equal(got, data[[7, 3, 299]])
        assert np.array_equal(idx.vectors(np.array([0, 1])), data[:2])
        assert np.array_equal(idx.vectors(slice(10, 20)), data[10:20])
        assert idx.vectors([]).shape == (0, 32)
        _, ids = idx.search(data[[42]], 1)
        assert int(ids[0, 0]) == 42
