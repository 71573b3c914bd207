"""BM25 computed at index time and stored, so loading an index costs no tokenizing and a query
costs one postings lookup per term.

On disk, next to the vectors of a generation (``NAME`` is ``passages`` or ``sentences``)::

    NAME.terms.json              vocabulary (term of each id), analyzer version, k1, b, text count
    NAME.terms.{ids,indptr}.npy  forward index: the term ids of each text, in order
    NAME.terms.post_{indptr,docs,weights}.npy
                                 inverted index: per term, the texts holding it and its BM25 weight there

The arrays are memory-mapped on load: opening an index reads no postings until a query needs them.

The weights are Lucene's BM25 (the variant bm25s and Lucene use): for term t in text d,
``idf(t) · tf / (tf + k1 · (1 - b + b · |d| / avgdl))`` with ``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))``.
A query's score for a text is the sum of its terms' weights there, so scoring is a scatter-add
over the query terms' postings and nothing is recomputed per query.

A shard of a sharded index (index/shards.py) computes N, df and avgdl over the whole collection,
not its own texts (``Collection``), so its weights, and every score, equal the unsharded index's:
``NAME.terms.df.npy`` then holds the collection's df of each term of the shard, and ``NAME.terms.json``
the collection's N and avgdl.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from index.arrays import load_array
from index.terms import TERMS_VERSION, content_terms

K1 = 1.5
B = 0.75
_ARRAYS = ("ids", "indptr", "post_indptr", "post_docs", "post_weights")


class Collection:
    """Statistics of a whole collection when a Bm25Index holds part of it (a shard): its number
    of texts ``n``, their mean length ``avgdl`` and each term's document frequency ``df``."""

    def __init__(self, n: int, avgdl: float, df: dict[str, int]) -> None:
        self.n, self.avgdl, self.df = n, avgdl, df

    @classmethod
    def of(cls, parts: Sequence[Bm25Index]) -> Collection:
        """The statistics of the union of ``parts`` (each counted by its own texts)."""
        df: dict[str, int] = {}
        n = total = 0
        for p in parts:
            n += p.n
            total += int(len(p.ids))
            own = np.diff(p.post_indptr).tolist()
            for t, c in zip(p.terms, own, strict=True):
                df[t] = df.get(t, 0) + c
        return cls(n, total / n if n else 1.0, df)


class TermIds:
    """Builds one shared vocabulary while term lists are turned into id arrays."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.terms: list[str] = []

    def ids(self, terms: Iterable[str]) -> np.ndarray:
        vocab = self.vocab
        out = []
        for t in terms:
            i = vocab.get(t)
            if i is None:
                i = vocab[t] = len(self.terms)
                self.terms.append(t)
            out.append(i)
        return np.asarray(out, dtype=np.int32)


class Bm25Builder:
    """Collects the term ids of texts in order: new texts are analyzed, texts of an older index
    are copied over (mapped to the new vocabulary), so an incremental build re-analyzes nothing."""

    def __init__(self) -> None:
        self.table = TermIds()
        self._ids: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []
        self._maps: dict[int, np.ndarray] = {}

    def add_texts(self, texts: Iterable[str]) -> None:
        parts = [self.table.ids(content_terms(t)) for t in texts]
        self._ids.extend(parts)
        self._lengths.append(np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts)))

    def add_from(self, old: Bm25Index, first: int, last: int) -> None:
        """Texts ``first..last`` (inclusive) of ``old``."""
        if last < first:
            return
        to_new = self._maps.get(id(old))
        if to_new is None:
            to_new = self._maps[id(old)] = self.table.ids(old.terms)
        self._ids.append(to_new[old.ids[old.indptr[first] : old.indptr[last + 1]]])
        self._lengths.append(np.diff(old.indptr[first : last + 2]))

    def build(self) -> Bm25Index:
        ids = np.concatenate(self._ids) if self._ids else np.zeros(0, np.int32)
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        return Bm25Index.from_arrays(self.table.terms, ids, lengths)


class Bm25Index:
    """BM25 over a fixed list of texts (ids 0..n-1), with their term lists kept for reuse."""

    def __init__(self, terms: list[str], ids: np.ndarray, indptr: np.ndarray, *, k1: float = K1, b: float = B,
                 postings: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, analyzer: str = TERMS_VERSION,
                 collection: tuple[int, float, np.ndarray] | None = None) -> None:
        self.terms = terms  # term of each id
        self.vocab = {t: i for i, t in enumerate(terms)}
        self.ids = np.asarray(ids, dtype=np.int32)  # forward index: term ids of text j are ids[indptr[j]:indptr[j+1]]
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.n = len(self.indptr) - 1
        self.k1, self.b, self.analyzer = k1, b, analyzer
        # (N, avgdl, df of each term) of the whole collection when this index holds a shard of it.
        self.collection = collection
        if postings is None:
            postings = _invert(self.ids, self.indptr, len(terms), k1, b, collection)
        self.post_indptr: np.ndarray = postings[0]
        self.post_docs: np.ndarray = postings[1]
        self.post_weights: np.ndarray = postings[2]
        n_all = self.n if collection is None else collection[0]
        df = (np.diff(self.post_indptr) if collection is None else np.asarray(collection[2])).astype(np.float64)
        self.idf_array = np.log1p((n_all - df + 0.5) / (df + 0.5)) if len(df) else np.zeros(0)
        self.max_idf = math.log(1 + (n_all + 0.5) / 0.5) if n_all else 1.0
        self._tokens: list[list[str]] | None = None

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> Bm25Index:
        table = TermIds()
        parts = [table.ids(content_terms(t)) for t in texts]
        return cls.from_parts(table, parts)

    @classmethod
    def from_parts(cls, table: TermIds, parts: Sequence[np.ndarray]) -> Bm25Index:
        """From per-text id arrays over ``table``'s vocabulary."""
        lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
        ids = np.concatenate(parts) if parts else np.zeros(0, np.int32)
        return cls.from_arrays(table.terms, ids, lengths)

    @classmethod
    def from_arrays(cls, terms: Sequence[str], ids: np.ndarray, lengths: np.ndarray) -> Bm25Index:
        """From the concatenated term ids of all texts and each text's length; unused terms are dropped."""
        indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        ids = np.asarray(ids, dtype=np.int32)
        used = np.unique(ids)
        if len(used) < len(terms):
            new_id = np.full(len(terms), -1, dtype=np.int32)
            new_id[used] = np.arange(len(used), dtype=np.int32)
            ids = new_id[ids]
            terms = [terms[i] for i in used.tolist()]
        return cls(list(terms), ids, indptr)

    def within(self, collection: Collection) -> Bm25Index:
        """This index's texts weighted by ``collection``'s statistics (a shard of it)."""
        df = np.fromiter((collection.df.get(t, 0) for t in self.terms), np.int64, count=len(self.terms))
        return Bm25Index(self.terms, self.ids, self.indptr, k1=self.k1, b=self.b, analyzer=self.analyzer,
                         collection=(collection.n, collection.avgdl, df))

    # --- storage ----------------------------------------------------------------------------
    def save(self, gen_dir: Path, name: str) -> None:
        meta: dict[str, object] = {"analyzer": self.analyzer, "k1": self.k1, "b": self.b, "n": self.n, "terms": self.terms}
        if self.collection is not None:
            meta["collection"] = {"n": self.collection[0], "avgdl": self.collection[1]}
            np.save(gen_dir / f"{name}.terms.df.npy", np.asarray(self.collection[2], np.int64))
        (gen_dir / f"{name}.terms.json").write_text(json.dumps(meta, ensure_ascii=False))
        for key in _ARRAYS:
            np.save(gen_dir / f"{name}.terms.{key}.npy", getattr(self, key))

    @classmethod
    def load(cls, gen_dir: Path, name: str) -> Bm25Index:
        meta = json.loads((gen_dir / f"{name}.terms.json").read_text())
        if meta.get("analyzer") != TERMS_VERSION:
            raise ValueError(f"BM25 terms were made by analyzer {meta.get('analyzer')!r}, this citeqa uses {TERMS_VERSION!r}")
        arrays = {key: load_array(gen_dir / f"{name}.terms.{key}.npy") for key in _ARRAYS}
        coll = meta.get("collection")
        collection = None
        if coll is not None:
            collection = (int(coll["n"]), float(coll["avgdl"]), np.load(gen_dir / f"{name}.terms.df.npy"))
        self = cls(meta["terms"], arrays["ids"], arrays["indptr"], k1=meta["k1"], b=meta["b"],
                   postings=(arrays["post_indptr"], arrays["post_docs"], arrays["post_weights"]),
                   analyzer=meta["analyzer"], collection=collection)
        if self.n != meta["n"]:
            raise ValueError(f"{name}.terms: {self.n} texts, meta says {meta['n']}")
        return self

    # --- reading ----------------------------------------------------------------------------
    def doc_ids(self, j: int) -> np.ndarray:
        return self.ids[self.indptr[j] : self.indptr[j + 1]]

    def text_terms(self, j: int) -> tuple[str, ...]:
        """Text ``j``'s terms in order (as ``content_terms`` gave them)."""
        terms = self.terms
        return tuple(terms[i] for i in self.ids[int(self.indptr[j]) : int(self.indptr[j + 1])].tolist())

    @property
    def tokens(self) -> list[list[str]]:
        """Each text's terms in order (as ``content_terms`` gave them); built on first use."""
        if self._tokens is None:
            terms = self.terms
            flat = [terms[i] for i in self.ids.tolist()]
            bounds = self.indptr.tolist()
            self._tokens = [flat[bounds[j] : bounds[j + 1]] for j in range(self.n)]
        return self._tokens

    def term_idf(self, term: str) -> float:
        # Unseen terms are the rarest of all: a question term the corpus never uses is strong
        # evidence that the corpus does not answer it.
        i = self.vocab.get(term)
        return float(self.idf_array[i]) if i is not None else self.max_idf

    @property
    def idf(self) -> dict[str, float]:
        return dict(zip(self.terms, self.idf_array.tolist(), strict=True))

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every text for a query of ``terms`` (a repeated term counts again)."""
        out = np.zeros(self.n, dtype=np.float32)
        for t in terms:
            i = self.vocab.get(t)
            if i is None:
                continue
            s, e = self.post_indptr[i], self.post_indptr[i + 1]
            out[self.post_docs[s:e]] += self.post_weights[s:e]  # each text appears once per term
        return out

    def scores_for(self, terms: Sequence[str], docs: Sequence[int] | np.ndarray) -> np.ndarray:
        """BM25 scores of just the texts ``docs`` (each term's postings are sorted by text)."""
        docs_arr = np.asarray(docs, dtype=np.int64)
        out = np.zeros(len(docs_arr), dtype=np.float32)
        for t in terms:
            i = self.vocab.get(t)
            if i is None:
                continue
            s, e = int(self.post_indptr[i]), int(self.post_indptr[i + 1])
            plist = self.post_docs[s:e]
            pos = np.searchsorted(plist, docs_arr)
            hit = pos < len(plist)
            hit[hit] = plist[pos[hit]] == docs_arr[hit]
            out[hit] += self.post_weights[s:e][pos[hit]]
        return out

    def top(self, terms: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best-scoring texts with a score above 0, best first (ties: lower id first).

        Short postings (rare terms in a big collection) are ranked on their own; otherwise the
        scores are scattered into one array and partitioned, which measured faster at 1M passages
        (1.8 ms against 4.6 ms a question, median 130k postings) than sorting the postings.
        """
        tids = [i for i in (self.vocab.get(t) for t in terms) if i is not None]
        if not tids or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        bounds = [(int(self.post_indptr[i]), int(self.post_indptr[i + 1])) for i in tids]
        total = sum(e - s for s, e in bounds)
        if total * 64 < self.n:
            docs = np.concatenate([self.post_docs[s:e] for s, e in bounds]).astype(np.int64)
            weights = np.concatenate([self.post_weights[s:e] for s, e in bounds])
            cand, inv = np.unique(docs, return_inverse=True)
            vals = np.bincount(inv, weights=weights).astype(np.float32)
        else:
            dense = self.scores(terms)
            kk = min(k, self.n)
            kth = dense[np.argpartition(-dense, kk - 1)[kk - 1]]
            cand = np.flatnonzero(dense >= kth) if kth > 0 else np.flatnonzero(dense > 0)
            vals = dense[cand]
        keep = vals > 0
        cand, vals = cand[keep], vals[keep]
        order = np.lexsort((cand, -vals))[:k]
        return cand[order], vals[order]

    def memory_bytes(self) -> int:
        return int(self.ids.nbytes + self.indptr.nbytes + self.post_indptr.nbytes + self.post_docs.nbytes
                   + self.post_weights.nbytes + self.idf_array.nbytes)


def _invert(ids: np.ndarray, indptr: np.ndarray, n_terms: int, k1: float, b: float,
            collection: tuple[int, float, np.ndarray] | None = None):
    """Postings (term → texts with BM25 weights) from the forward index; N, df and avgdl are the
    ``collection``'s when given (a shard), else these texts'."""
    n = len(indptr) - 1
    lengths = np.diff(indptr)
    if len(ids) == 0:
        return np.zeros(n_terms + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
    doc_of = np.repeat(np.arange(n, dtype=np.int64), lengths)
    key = ids.astype(np.int64) * max(n, 1) + doc_of
    uniq, tf = np.unique(key, return_counts=True)  # sorted by term, then text
    term = (uniq // max(n, 1)).astype(np.int64)
    doc = (uniq % max(n, 1)).astype(np.int32)
    df = np.bincount(term, minlength=n_terms)
    post_indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(df, out=post_indptr[1:])
    avgdl = float(lengths.mean()) if n else 1.0
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    if collection is not None:
        n_all, avgdl, df_all = collection
        idf = np.log1p((n_all - df_all + 0.5) / (df_all + 0.5))
    tf = tf.astype(np.float64)
    norm = k1 * ((1 - b) + b * lengths[doc] / (avgdl or 1.0))
    weights = (idf[term] * tf / (tf + norm)).astype(np.float32)
    return post_indptr, doc, weights
