"""A generation of the index read into memory: the only long-lived state of a running citeqa.

Loading does no per-row Python work: documents come from SQLite (one row each), everything per
sentence or passage (offsets, owners, mentions, vectors, BM25 postings) is a NumPy array saved at
index time and memory-mapped here, and the per-row views (``sent_text``, ``sent_doc``,
``mentions``) are computed on access. So a cold `qa ask` pays for what one question touches.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.annotate import EMPTY_PARSE, Parse, parse_sentences
from index.arrays import load_array
from index.bm25 import Bm25Index
from index.documents import DocDate, Document
from index.store import (
    CorruptIndexError,
    NoIndexError,
    check_compatible,
    current_generation,
    read_meta,
)
from index.tokens import TokenStore
from index.vectors import VectorSearch


@dataclass(frozen=True)
class DocRecord:
    doc_id: str
    ord: int
    title: str
    text: str
    content_hash: str
    date_iso: str | None
    date_start: int | None
    date_end: int | None
    format: str = "text"
    date_source: str | None = None
    page_starts: tuple[int, ...] = ()  # PDF: offset where page i+1 starts
    furniture: tuple[tuple[int, int], ...] = ()  # page furniture: shown, never answerable

    def as_document(self) -> Document:
        """The indexed document as the build takes it (copied as it is, never parsed again)."""
        date = DocDate(self.date_iso, self.date_start, self.date_end, self.date_source or "text") if self.date_iso else None
        return Document(self.doc_id, self.title, self.text, self.content_hash, date, self.format, self.page_starts,
                        self.furniture)


class _RowView(Sequence):
    """A read-only sequence computed per item from arrays (``len``, index, iterate)."""

    def __init__(self, n: int, get) -> None:
        self._n = n
        self._get = get

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._get(j) for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        return self._get(i)

    def __iter__(self) -> Iterator:
        return (self._get(j) for j in range(self._n))


class LoadedIndex:
    """Documents, sentences, passages, mentions, vectors and BM25 terms of one generation.

    Attributes kept for readers: ``docs`` (doc_id → DocRecord, in corpus order), ``doc_sentences``
    / ``doc_passages`` (doc_id → range of ids), ``sent_doc`` / ``pass_doc`` (id → doc_id),
    ``sent_text`` / ``pass_text`` (id → text), ``sent_start``, ``sent_end``, ``sent_passage``, ``sent_page``,
    ``pass_first``, ``pass_last``, ``pass_start``, ``pass_end`` (arrays), ``mentions`` (sentence id →
    ``[(start, end, label, value)]``), ``parse(sid)`` (read on demand), ``sentence_vectors`` / ``passage_vectors`` (the vector indexes, with
    the stored vectors by id: ``index.vectors.VectorSearch``),
    ``sentence_bm25`` / ``passage_bm25`` (BM25 over sentences and passages), and the terms analyzed at index time for the
    answer step: ``doc_title_terms(doc_id)``, ``sentence_mention_terms(sid)``.
    """

    def __init__(self, index_dir: Path, gen_dir: Path, meta: dict[str, str]) -> None:
        self.index_dir = index_dir
        self.gen_dir = gen_dir
        self.meta = meta
        self.docs: dict[str, DocRecord] = {}
        self.doc_sentences: dict[str, range] = {}
        self.doc_passages: dict[str, range] = {}
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()
        self._parses: dict[int, Parse] = {}
        self._tokens: TokenStore | None = None
        self._reading = gen_dir / "index.sqlite"  # the file being read, named if it is damaged

    @property
    def encoder_name(self) -> str:
        return self.meta["encoder"]

    @classmethod
    def open(cls, index_dir: Path | str) -> LoadedIndex:
        index_dir = Path(index_dir)
        gen = current_generation(index_dir)
        if gen is None:
            cur = index_dir / "CURRENT"
            if cur.is_file():
                raise CorruptIndexError(
                    f"index file {cur} names a generation that is missing — rebuild it: "
                    f"qa index CORPUS --index {index_dir} --rebuild"
                )
            raise NoIndexError(f"no index at {index_dir} — run: qa index CORPUS --index {index_dir}")
        meta = read_meta(gen)
        check_compatible(meta, index_dir)
        self = cls(index_dir, gen, meta)
        try:
            self._load()
            self.connect()
        except (sqlite3.DatabaseError, OSError, ValueError, RuntimeError, EOFError, KeyError, TypeError,
                IndexError) as e:
            # One line naming the damaged file (FAISS errors carry a multi-line C++ location).
            if isinstance(e, FileNotFoundError):
                problem = "is missing"
            elif isinstance(e, RuntimeError) and "faiss" in str(e):
                problem = "is damaged (not a complete FAISS index)"
            else:
                detail = (str(e).strip().splitlines() or [""])[-1][:200]
                problem = f"is damaged ({type(e).__name__}: {detail})"
            raise CorruptIndexError(
                f"index file {self._reading} {problem} — rebuild it: qa index CORPUS --index {index_dir} --rebuild"
            ) from None
        return self

    def _load(self) -> None:
        from index import vectors as vector_index

        gen = self.gen_dir
        db = sqlite3.connect(f"file:{gen / 'index.sqlite'}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT doc_id, ord, title, text, content_hash, date_iso, date_start, date_end, format, "
                "date_source, page_starts, furniture FROM documents ORDER BY ord"
            ).fetchall()
        finally:
            db.close()
        self.doc_order: list[str] = [r[0] for r in rows]
        if [r[1] for r in rows] != list(range(len(rows))):
            raise ValueError("document order is not contiguous")
        # Page starts and furniture are "[]" for plain text: parse only what holds something.
        self.docs = {
            r[0]: DocRecord(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                page_starts=tuple(int(p) for p in json.loads(r[10])) if r[10] != "[]" else (),
                furniture=tuple((int(a), int(b)) for a, b in json.loads(r[11])) if r[11] != "[]" else (),
            )
            for r in rows
        }

        self._reading = gen / "sentences.rows.npy"
        srows = np.load(self._reading, mmap_mode="r")
        self._reading = gen / "passages.rows.npy"
        prows = np.load(self._reading, mmap_mode="r")
        self.sent_doc_ord = np.ascontiguousarray(srows[:, 0])
        self.sent_start = np.ascontiguousarray(srows[:, 1])
        self.sent_end = np.ascontiguousarray(srows[:, 2])
        self.sent_passage = np.ascontiguousarray(srows[:, 3])
        pages = np.ascontiguousarray(srows[:, 4])  # 0: no page
        self.pass_doc_ord = np.ascontiguousarray(prows[:, 0])
        self.pass_first = np.ascontiguousarray(prows[:, 1])
        self.pass_last = np.ascontiguousarray(prows[:, 2])
        self.pass_start = np.ascontiguousarray(prows[:, 3])
        self.pass_end = np.ascontiguousarray(prows[:, 4])
        n_s, n_p = len(srows), len(prows)
        # Ids run document by document (the build writes them so): each document owns a range.
        if n_s and np.any(np.diff(self.sent_doc_ord) < 0) or n_p and np.any(np.diff(self.pass_doc_ord) < 0):
            raise ValueError("sentence or passage rows are not in document order")
        s_bounds = np.searchsorted(self.sent_doc_ord, np.arange(len(rows) + 1)).tolist()
        p_bounds = np.searchsorted(self.pass_doc_ord, np.arange(len(rows) + 1)).tolist()
        for o, d in enumerate(self.doc_order):
            self.doc_sentences[d] = range(s_bounds[o], s_bounds[o + 1])
            self.doc_passages[d] = range(p_bounds[o], p_bounds[o + 1])

        order, docs = self.doc_order, self.docs
        sd, ss, se = self.sent_doc_ord, self.sent_start, self.sent_end
        pd, ps, pe = self.pass_doc_ord, self.pass_start, self.pass_end
        self.sent_doc: Sequence[str] = _RowView(n_s, lambda i: order[sd[i]])
        self.pass_doc: Sequence[str] = _RowView(n_p, lambda i: order[pd[i]])
        self.sent_text: Sequence[str] = _RowView(n_s, lambda i: docs[order[sd[i]]].text[ss[i] : se[i]])
        self.pass_text: Sequence[str] = _RowView(n_p, lambda i: docs[order[pd[i]]].text[ps[i] : pe[i]])
        self.sent_page: Sequence[int | None] = _RowView(n_s, lambda i: int(pages[i]) or None)  # 1-based PDF page

        self._reading = gen / "mentions.rows.npy"
        m = load_array(self._reading)
        self._reading = gen / "mentions.bounds.npy"
        m_bounds = load_array(self._reading)
        if len(m_bounds) != n_s + 1 or int(m_bounds[-1]) != len(m):
            raise ValueError("mention bounds do not match the records")
        labels: list[str] = json.loads(self.meta.get("mention_labels", "[]"))
        self._reading = gen / "mentions.values.json"
        values: list[str | None] = [*json.loads(self._reading.read_text()), None]  # id -1: no value

        def mentions_of(sid: int) -> list[tuple[int, int, str, str | None]]:
            rows = m[int(m_bounds[sid]) : int(m_bounds[sid + 1])].tolist()
            return [(s, e, labels[k], values[v]) for _, s, e, k, v in rows]

        self.mentions: Sequence[list[tuple[int, int, str, str | None]]] = _RowView(n_s, mentions_of)
        self.n_mentions = len(m)
        self.mention_bounds = m_bounds  # mentions of sentence i are rows mention_bounds[i]:mention_bounds[i + 1]

        self._reading = gen / "sentences.npy"
        sent_vecs = load_array(self._reading)
        if sent_vecs.ndim != 2 or sent_vecs.shape[0] != n_s:
            raise ValueError(f"{sent_vecs.shape[0]} vectors for {n_s} sentences")
        self._reading = gen / "passages.npy"
        pass_vecs = load_array(self._reading)
        if pass_vecs.ndim != 2 or pass_vecs.shape[0] != n_p:
            raise ValueError(f"{pass_vecs.shape[0]} vectors for {n_p} passages")
        self._reading = gen / "sentences.terms.json"
        self.sentence_bm25 = Bm25Index.load(gen, "sentences")
        self._reading = gen / "passages.terms.json"
        self.passage_bm25 = Bm25Index.load(gen, "passages")
        self._reading = gen / "titles.terms.json"
        self.title_terms = Bm25Index.load(gen, "titles")
        self._reading = gen / "mentions.terms.json"
        self.mention_terms = Bm25Index.load(gen, "mentions")
        if (self.sentence_bm25.n, self.passage_bm25.n, self.title_terms.n, self.mention_terms.n) != (
            n_s, n_p, len(rows), len(m)
        ):
            raise ValueError("stored terms do not match the records")
        # The vectors are read through their index from here on (index.vectors.VectorSearch).
        self._reading = gen / "passages.faiss"
        self.passage_vectors: VectorSearch = vector_index.load(self._reading, pass_vecs)
        if self.passage_vectors.ntotal != n_p:
            raise ValueError(f"{self.passage_vectors.ntotal} vectors for {n_p} passages")
        self._reading = gen / "sentences.faiss"
        self.sentence_vectors: VectorSearch = vector_index.load(self._reading, sent_vecs)
        if self.sentence_vectors.ntotal != n_s:
            raise ValueError(f"{self.sentence_vectors.ntotal} vectors for {n_s} sentences")

    def token_store(self) -> TokenStore:
        """The sentences' token vectors (memory-mapped; see index/tokens.py)."""
        if self._tokens is None:
            try:
                store = TokenStore.open(self.gen_dir)
            except (OSError, ValueError) as e:
                raise CorruptIndexError(
                    f"index file {self.gen_dir / 'tokens.npy'} is unreadable ({e}) — rebuild it: "
                    f"qa index CORPUS --index {self.index_dir} --rebuild"
                ) from None
            if len(store.starts) != self.n_sentences() + 1:
                raise CorruptIndexError(
                    f"index file {self.gen_dir / 'token_starts.npy'} does not match the sentences — rebuild it: "
                    f"qa index CORPUS --index {self.index_dir} --rebuild"
                )
            self._tokens = store
        return self._tokens

    # --- parses: read on demand (only the few sentences an answer is chosen from need them) ---
    def connect(self) -> None:
        """Open the generation's SQLite file for the parses now: an open file stays readable after a
        later build deletes its folder, so a server still answering from this generation keeps working."""
        with self._db_lock:
            if self._db is None:
                self._db = sqlite3.connect(
                    f"file:{self.gen_dir / 'index.sqlite'}?mode=ro", uri=True, check_same_thread=False
                )
                # SQLite opens the file lazily: read the schema now, while the file is surely there.
                self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()

    def stored_parse_json(self, sid: int) -> str | None:
        """The parse an earlier build stored for sentence ``sid`` (JSON), or None (builds since
        annotator 3 store none: see ``parse``)."""
        self.connect()
        with self._db_lock:
            assert self._db is not None
            row = self._db.execute("SELECT parse FROM parses WHERE sentence_id = ?", (int(sid),)).fetchone()
        return row[0] if row else None

    def parse_json(self, sid: int) -> str:
        return self.parse(sid).to_json()

    def prepare_parses(self, sids: Sequence[int]) -> None:
        """Have the parses of ``sids`` in memory: the stored ones read, the others made in one spaCy
        batch (about half the time of one at a time; the linear answer step reads several a question)."""
        need = [int(s) for s in dict.fromkeys(sids) if int(s) not in self._parses]
        if not need:
            return
        if len(self._parses) > 50_000:
            self._parses.clear()
        to_make: list[int] = []
        for sid in need:
            stored = self.stored_parse_json(sid)
            if stored is not None:
                self._parses[sid] = Parse.from_json(stored)
            elif self.sent_text[sid].strip():
                to_make.append(sid)
            else:
                self._parses[sid] = EMPTY_PARSE
        self._parses.update(zip(to_make, parse_sentences([self.sent_text[s] for s in to_make]), strict=True))

    def parse(self, sid: int) -> Parse:
        """Sentence ``sid``'s dependency parse: the stored one, else made now with spaCy (the linear
        answer step reads it for the few sentences it chooses a phrase from) and kept in memory."""
        self.prepare_parses([sid])
        return self._parses[int(sid)]

    def doc_title_terms(self, doc_id: str) -> frozenset[str]:
        """Content terms of a document's title (analyzed at index time)."""
        t = self.title_terms
        o = self.docs[doc_id].ord
        return frozenset(t.terms[i] for i in t.ids[t.indptr[o] : t.indptr[o + 1]].tolist())

    def sentence_mention_terms(self, sid: int) -> list[frozenset[str]]:
        """Content terms of each mention of sentence ``sid``, in the order of ``mentions[sid]``."""
        t = self.mention_terms
        a, b = int(self.mention_bounds[sid]), int(self.mention_bounds[sid + 1])
        bounds = t.indptr[a : b + 1].tolist()
        ids = t.ids[bounds[0] : bounds[-1]].tolist()
        base = bounds[0]
        return [frozenset(t.terms[i] for i in ids[s - base : e - base]) for s, e in zip(bounds, bounds[1:], strict=False)]

    def n_sentences(self) -> int:
        return len(self.sent_start)

    def n_passages(self) -> int:
        return len(self.pass_start)
