"""The vector index picks its own FAISS structure from the collection size, so nobody tunes by hand.

- up to ``FLAT_MAX`` vectors: exact inner-product search (``IndexFlatIP``) — at that size a scan
  costs well under a millisecond per thousand vectors and is never wrong;
- beyond: an inverted file (``IVF{nlist},Flat``) with ``nlist ≈ 4·√n`` lists trained on a seeded
  sample of ``min(n, 40·nlist)`` vectors, searched with ``nprobe`` derived from ``nlist`` so recall
  stays high. Its trained centroids are reused by the next build while the collection has not
  grown more than 4× since training (re-training is the slow part).

Ids are always row numbers of the generation being written: every build adds the vectors in row
order to a fresh (or freshly emptied) index, so no id can ever point at a stale row — the classic
"remove_ids then add" drift cannot happen.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

FLAT_MAX = 50_000
TRAIN_PER_LIST = 40
SEED = 1234


def ivf_params(n: int) -> tuple[int, int]:
    """(nlist, nprobe) for ``n`` vectors."""
    nlist = max(64, int(2 ** round(math.log2(4 * math.sqrt(max(n, 1))))))
    nprobe = max(16, nlist // 32)
    return nlist, nprobe


def describe(index) -> str:
    import faiss

    ivf = faiss.try_extract_index_ivf(index) if not isinstance(index, faiss.IndexFlat) else None
    if ivf is not None:
        return f"IVF{ivf.nlist},Flat nprobe={ivf.nprobe}"
    return "Flat"


def build(vectors: np.ndarray, previous=None, *, force: str | None = None):
    """A FAISS index over ``vectors`` (ids = row numbers). ``previous`` may lend trained centroids."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    kind = force or ("flat" if n <= FLAT_MAX else "ivf")
    if kind == "flat":
        idx = faiss.IndexFlatIP(dim)
        if n:
            idx.add(vectors)
        return idx
    nlist, nprobe = ivf_params(n)
    idx = None
    if previous is not None:
        old = faiss.try_extract_index_ivf(previous) if not isinstance(previous, faiss.IndexFlat) else None
        # Reuse the trained centroids while they still fit the collection's size.
        if old is not None and old.d == dim and old.nlist * 4 >= nlist:
            idx = faiss.clone_index(previous)
            idx.reset()
    if idx is None:
        idx = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(SEED)
        sample_n = min(n, TRAIN_PER_LIST * nlist)
        sample = vectors[np.sort(rng.choice(n, sample_n, replace=False))] if sample_n < n else vectors
        idx.train(sample)
    faiss.extract_index_ivf(idx).nprobe = nprobe
    idx.add(vectors)
    return idx


def save(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def load(path: Path):
    import faiss

    idx = faiss.read_index(str(path))
    ivf = faiss.try_extract_index_ivf(idx) if not isinstance(idx, faiss.IndexFlat) else None
    if ivf is not None:
        ivf.nprobe = ivf_params(ivf.ntotal)[1] if ivf.nprobe <= 1 else ivf.nprobe
    return idx
