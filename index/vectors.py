"""The vector index picks its own FAISS structure from the collection size, so nobody tunes by hand.

- up to ``FLAT_MAX`` vectors: exact inner-product search (``IndexFlatIP``). At that size a scan
  costs a few milliseconds and is never wrong.
- beyond: an inverted file over 8-bit scalar-quantised codes (``IVF{nlist},SQ8``), then an exact
  re-rank of the ``RERANK``·k best candidates against the stored float vectors (memory-mapped, so
  only the candidates' rows are read). ``nlist ≈ 4·√n`` (a power of two), trained on a seeded
  sample of ``min(n, TRAIN_PER_LIST·nlist)`` vectors; ``nprobe`` = 1/32 of the lists, or enough lists
  to scan ``MIN_SCAN`` vectors if that is more.
  Codes take a quarter of float vectors' memory and a quarter of the scan's memory traffic.

Why IVF and not HNSW, measured with real MiniLM sentence vectors (eval/bench/scale.py's pool, 2 shared
cores): on 1M passages IVF4096,SQ8 with nprobe 128 and the re-rank gave recall@10 0.984-0.989
against exact search at ~1.3 ms a query; on 200k topical passages HNSW32 reached only 0.88
recall@10 at efSearch 128 (IVF2048,SQ8: 0.977 at nprobe 128; near-duplicate neighbourhoods defeat
HNSW's greedy walk) and took 68 s to build against 39 s; and HNSW cannot be updated in place,
while IVF's trained centroids carry over to the next build.

Ids are always row numbers of the generation being written: every build adds the vectors in row
order to a fresh (or freshly emptied) index, so no id can ever point at a stale row — the classic
"remove_ids then add" drift cannot happen. A build reuses the previous generation's trained IVF
while the collection has not grown more than 4x since training and the new vectors still fit its
centroids (their mean residual, on a seeded sample, within ``DRIFT_MAX`` of the one recorded at
training); otherwise it trains afresh. How each index was trained (n, sample size, seed,
residual) is stored next to it in ``NAME.vectors.json``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

FLAT_MAX = 16_384
TRAIN_PER_LIST = 40
# k-means rounds when training the centroids: 10 instead of FAISS's 25 took 15-21 s instead of
# 39-41 s for 2048 lists at 300k passages, recall@10 0.968 against 0.969.
KMEANS_ITER = 10
SEED = 1234
MIN_SCAN = 8192
RERANK = 4  # IVF candidates per wanted result that the exact re-rank sees
DRIFT_MAX = 1.2
DRIFT_SAMPLE = 4096
ADD_CHUNK = 65_536


@runtime_checkable
class VectorSearch(Protocol):
    """A vector index as the question path uses it: search, and the stored vectors by id.

    ``VectorIndex`` (FAISS in this process, over the generation's memory-mapped vectors) is the
    default; a shard answered elsewhere is another implementation of the same three things, so
    nothing above ``index/`` reads raw arrays or knows which one it holds.

    Example::

        >>> idx = build(np.eye(3, dtype=np.float32))
        >>> idx.search(np.array([[0.0, 1.0, 0.0]], np.float32), 1)[1].tolist()
        [[1]]
        >>> idx.vectors([2]).tolist()
        [[0.0, 0.0, 1.0]]
    """

    @property
    def ntotal(self) -> int:
        """How many vectors (ids are 0..ntotal-1)."""
        ...

    @property
    def dim(self) -> int:
        """Their dimension."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ids by inner product for each query row: (scores [q, k], ids [q, k]), -1 where none."""
        ...

    def vectors(self, ids: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """The stored vectors of ``ids`` (a list, an array or a slice of ids), float32 [len, dim]."""
        ...


@dataclass(frozen=True)
class Plan:
    """The structure chosen for ``n`` vectors and how it was trained."""

    kind: str  # "flat" | "ivf"
    n: int
    nlist: int = 0
    nprobe: int = 0
    trained_on: int = 0  # collection size when the centroids were trained
    train_sample: int = 0
    seed: int = SEED
    residual: float = 0.0  # mean squared distance of the training sample to its nearest centroid

    def describe(self) -> str:
        return f"IVF{self.nlist},SQ8 nprobe={self.nprobe} (+exact re-rank)" if self.kind == "ivf" else "Flat"


def ivf_params(n: int) -> tuple[int, int]:
    """(nlist, nprobe) for ``n`` vectors: probe 1/32 of the lists, and at least enough lists to
    scan ``MIN_SCAN`` vectors (8-bit codes: well under a millisecond), which small collections
    can afford and need (their lists are short, so a few lists miss many neighbours)."""
    nlist = max(64, int(2 ** round(math.log2(4 * math.sqrt(max(n, 1))))))
    # k-means needs points for every list (FAISS asks for 39 each); only a forced IVF over a
    # tiny collection gets near this.
    nlist = max(1, min(nlist, n // 39))
    return nlist, nprobe_for(n, nlist)


def nprobe_for(n: int, nlist: int) -> int:
    """A search-time setting: recomputed when an index is loaded, so it follows this rule."""
    return min(nlist, max(nlist // 32, math.ceil(MIN_SCAN / (max(n, 1) / nlist))))


def plan_for(n: int, force: str | None = None) -> Plan:
    kind = force or ("flat" if n <= FLAT_MAX else "ivf")
    if kind == "flat":
        return Plan("flat", n)
    nlist, nprobe = ivf_params(n)
    return Plan("ivf", n, nlist, nprobe)


class VectorIndex:
    """A FAISS index over ``vectors`` (ids = row numbers), with the exact re-rank for IVF."""

    def __init__(self, faiss_index, vectors: np.ndarray, plan: Plan) -> None:
        self.faiss = faiss_index
        self._vectors = vectors  # float32 rows (memory-mapped when loaded); read them with ``vectors(ids)``
        self.plan = plan
        if plan.kind == "ivf":
            import faiss

            faiss.extract_index_ivf(faiss_index).nprobe = plan.nprobe

    @property
    def ntotal(self) -> int:
        return int(self.faiss.ntotal)

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    def vectors(self, ids: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """The stored float32 rows of ``ids`` (read from the memory-mapped file: only those rows)."""
        if isinstance(ids, slice):
            return np.asarray(self._vectors[ids], np.float32)
        return np.asarray(self._vectors[np.asarray(ids, np.int64)], np.float32)

    def describe(self) -> str:
        return self.plan.describe()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows by inner product for each query row: (scores, ids), -1 where none."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self._vectors.shape[1])
        if self.plan.kind == "flat":
            return self.faiss.search(queries, k)
        _, cand = self.faiss.search(queries, k * RERANK)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for r, (q, c) in enumerate(zip(queries, cand, strict=True)):
            c = c[c >= 0]
            if len(c) == 0:
                continue
            rows = np.sort(c)  # ascending rows: the mapped file is read front to back
            exact = np.asarray(self._vectors[rows]) @ q
            top = np.argsort(-exact, kind="stable")[:k]
            scores[r, : len(top)] = exact[top]
            ids[r, : len(top)] = rows[top]
        return scores, ids


def _residual(quantizer, sample: np.ndarray) -> float:
    d, _ = quantizer.search(np.ascontiguousarray(sample, dtype=np.float32), 1)
    # Inner-product quantizer on unit vectors: squared distance to the centroid = 2 - 2·ip (approx.).
    return float(np.mean(2.0 - 2.0 * d[:, 0]))


def _sample(vectors: np.ndarray, m: int, seed: int) -> np.ndarray:
    n = len(vectors)
    if m >= n:
        return np.asarray(vectors, dtype=np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(n, m, replace=False))
    return np.asarray(vectors[rows], dtype=np.float32)


def build(vectors: np.ndarray, previous: VectorIndex | None = None, *, force: str | None = None) -> VectorIndex:
    """A vector index over ``vectors`` (ids = row numbers). ``previous`` may lend trained centroids."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # training and adding use every core
    try:
        return _build(vectors, previous, force)
    finally:
        faiss.omp_set_num_threads(before)


def _build(vectors: np.ndarray, previous: VectorIndex | None, force: str | None) -> VectorIndex:
    import faiss

    n, dim = vectors.shape
    plan = plan_for(n, force)
    if plan.kind == "flat":
        flat = faiss.IndexFlatIP(dim)
        for s in range(0, n, ADD_CHUNK):
            flat.add(np.ascontiguousarray(vectors[s : s + ADD_CHUNK], dtype=np.float32))
        return VectorIndex(flat, vectors, plan)
    idx: faiss.Index | None = None
    if previous is not None and previous.plan.kind == "ivf" and previous.faiss.d == dim:
        old = previous.plan
        # Reuse the trained centroids while they still fit the collection's size and content.
        if old.trained_on * 4 >= n and old.nlist * 4 >= plan.nlist:
            drift = _residual(faiss.extract_index_ivf(previous.faiss).quantizer, _sample(vectors, DRIFT_SAMPLE, SEED))
            if drift <= DRIFT_MAX * max(old.residual, 1e-6):
                idx = faiss.clone_index(previous.faiss)
                idx.reset()
                plan = Plan("ivf", n, old.nlist, nprobe_for(n, old.nlist), old.trained_on, old.train_sample, old.seed,
                            old.residual)
    if idx is None:
        idx = faiss.index_factory(dim, f"IVF{plan.nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
        faiss.extract_index_ivf(idx).cp.niter = KMEANS_ITER
        m = min(n, TRAIN_PER_LIST * plan.nlist)
        sample = _sample(vectors, m, SEED)
        idx.train(sample)
        residual = _residual(faiss.extract_index_ivf(idx).quantizer, sample[:DRIFT_SAMPLE])
        plan = Plan("ivf", n, plan.nlist, plan.nprobe, n, m, SEED, residual)
    for s in range(0, n, ADD_CHUNK):
        idx.add(np.ascontiguousarray(vectors[s : s + ADD_CHUNK], dtype=np.float32))
    return VectorIndex(idx, vectors, plan)


def describe(index: VectorIndex) -> str:
    return index.describe()


def save(index: VectorIndex, path: Path) -> None:
    """``path`` is NAME.faiss; the plan goes to NAME.vectors.json beside it."""
    import faiss

    faiss.write_index(index.faiss, str(path))
    path.with_suffix(".vectors.json").write_text(json.dumps(asdict(index.plan)))


def load(path: Path, vectors: np.ndarray) -> VectorIndex:
    """The index saved at ``path``, set up for answering questions one at a time."""
    import faiss

    # One query is too little work to share between OpenMP threads, and on a busy machine a
    # spinning second thread waits for a core: one query over 10k vectors took 10-50 ms with two
    # threads on the shared machine, 0.4 ms with one.
    faiss.omp_set_num_threads(1)
    plan = Plan(**json.loads(path.with_suffix(".vectors.json").read_text()))
    if plan.kind == "ivf":
        plan = replace(plan, nprobe=nprobe_for(plan.n, plan.nlist))
    return VectorIndex(faiss.read_index(str(path)), vectors, plan)
