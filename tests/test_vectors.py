"""The vector index: structure chosen from size; ids stay right through adds and removes."""

from __future__ import annotations

import numpy as np

from index import vectors

CENTRES = np.random.default_rng(99).standard_normal((50, 32)).astype(np.float32)


def unit(rng: np.random.Generator, n: int, d: int = 32) -> np.ndarray:
    """Clustered unit vectors, as text embeddings are (uniform noise is IVF's worst case)."""
    v = CENTRES[rng.integers(0, len(CENTRES), n)] + 0.6 * rng.standard_normal((n, d)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_small_collections_are_exact_and_large_ones_ivf() -> None:
    rng = np.random.default_rng(0)
    assert vectors.describe(vectors.build(unit(rng, 100))) == "Flat"
    assert vectors.ivf_params(1_000_000) == (4096, 128)
    assert vectors.ivf_params(60_000)[0] == 1024


def test_ivf_recall_and_ids_after_remove_and_add() -> None:
    rng = np.random.default_rng(1)
    base = unit(rng, 6000)
    idx = vectors.build(base, force="ivf")
    assert vectors.describe(idx).startswith("IVF")
    # Every vector finds itself: ids are row numbers.
    _, ids = idx.search(base[:200], 1)
    assert (ids[:, 0] == np.arange(200)).mean() >= 0.95
    # "Delete" rows 0..999 and append new ones, as an incremental build does: ids must point at
    # the new rows, never at the deleted ones.
    new_rows = unit(rng, 500)
    after = np.concatenate([base[1000:], new_rows])
    idx2 = vectors.build(after, previous=idx, force="ivf")
    _, ids = idx2.search(new_rows[:100], 1)
    assert (ids[:, 0] == np.arange(len(base) - 1000, len(base) - 1000 + 100)).mean() >= 0.95
    _, ids = idx2.search(base[1000:1100], 1)
    assert (ids[:, 0] == np.arange(100)).mean() >= 0.95
    # Recall@10 against exact search.
    q = unit(rng, 100)
    exact = np.argsort(-(q @ after.T), axis=1)[:, :10]
    _, approx = idx2.search(q, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.9
