"""A generation of the index read into memory: the only long-lived state of a running citeqa."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.annotate import EMPTY_PARSE, Parse
from index.store import (
    CorruptIndexError,
    NoIndexError,
    check_compatible,
    current_generation,
    read_meta,
)
from index.tokens import TokenStore


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


class LoadedIndex:
    """Documents, sentences, passages, mentions and vectors of one generation, in memory."""

    def __init__(self, index_dir: Path, gen_dir: Path, meta: dict[str, str]) -> None:
        self.index_dir = index_dir
        self.gen_dir = gen_dir
        self.meta = meta
        self.docs: dict[str, DocRecord] = {}
        self.doc_sentences: dict[str, list[int]] = {}
        self.doc_passages: dict[str, list[int]] = {}
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
        except (sqlite3.DatabaseError, OSError, ValueError, RuntimeError, EOFError, KeyError, TypeError) as e:
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

        db = sqlite3.connect(f"file:{self.gen_dir / 'index.sqlite'}?mode=ro", uri=True)
        try:
            for row in db.execute(
                "SELECT doc_id, ord, title, text, content_hash, date_iso, date_start, date_end, format, "
                "date_source, page_starts, furniture FROM documents ORDER BY ord"
            ):
                pages = tuple(int(p) for p in json.loads(row[10]))
                furniture = tuple((int(a), int(b)) for a, b in json.loads(row[11]))
                self.docs[row[0]] = DocRecord(*row[:10], page_starts=pages, furniture=furniture)
                self.doc_sentences[row[0]] = []
                self.doc_passages[row[0]] = []
            srows = db.execute(
                'SELECT id, doc_id, start, "end", passage_id, page FROM sentences ORDER BY id'
            ).fetchall()
            prows = db.execute(
                'SELECT id, doc_id, first_sentence, last_sentence, start, "end" FROM passages ORDER BY id'
            ).fetchall()
            mrows = db.execute('SELECT sentence_id, start, "end", label, value FROM mentions').fetchall()
        finally:
            db.close()
        if [r[0] for r in srows] != list(range(len(srows))):
            raise ValueError("sentence ids are not contiguous")
        self.sent_doc: list[str] = [r[1] for r in srows]
        self.sent_start = np.array([r[2] for r in srows], dtype=np.int64)
        self.sent_end = np.array([r[3] for r in srows], dtype=np.int64)
        self.sent_passage = np.array([r[4] for r in srows], dtype=np.int64)
        self.sent_page: list[int | None] = [r[5] for r in srows]  # 1-based PDF page, else None
        self.sent_text: list[str] = [
            self.docs[d].text[s:e] for d, s, e in zip(self.sent_doc, self.sent_start, self.sent_end, strict=True)
        ]
        for i, d in enumerate(self.sent_doc):
            self.doc_sentences[d].append(i)
        self.pass_doc: list[str] = [r[1] for r in prows]
        self.pass_first = np.array([r[2] for r in prows], dtype=np.int64)
        self.pass_last = np.array([r[3] for r in prows], dtype=np.int64)
        self.pass_start = np.array([r[4] for r in prows], dtype=np.int64)
        self.pass_end = np.array([r[5] for r in prows], dtype=np.int64)
        self.pass_text: list[str] = [
            self.docs[d].text[s:e] for d, s, e in zip(self.pass_doc, self.pass_start, self.pass_end, strict=True)
        ]
        for i, d in enumerate(self.pass_doc):
            self.doc_passages[d].append(i)
        self.mentions: list[list[tuple[int, int, str, str | None]]] = [[] for _ in srows]
        for sid, s, e, label, value in mrows:
            self.mentions[sid].append((s, e, label, value))
        self._reading = self.gen_dir / "sentences.npy"
        self.sent_vecs = np.load(self._reading)
        if self.sent_vecs.ndim != 2 or self.sent_vecs.shape[0] != len(srows):
            raise ValueError(f"{self.sent_vecs.shape[0]} vectors for {len(srows)} sentences")
        self._reading = self.gen_dir / "passages.npy"
        self.pass_vecs = np.load(self._reading)
        if self.pass_vecs.ndim != 2 or self.pass_vecs.shape[0] != len(prows):
            raise ValueError(f"{self.pass_vecs.shape[0]} vectors for {len(prows)} passages")
        self._reading = self.gen_dir / "passages.faiss"
        self.pass_faiss = vector_index.load(self._reading)
        if self.pass_faiss.ntotal != len(prows):
            raise ValueError(f"{self.pass_faiss.ntotal} vectors for {len(prows)} passages")
        self._reading = self.gen_dir / "sentences.faiss"
        self.sent_faiss = vector_index.load(self._reading)
        if self.sent_faiss.ntotal != len(srows):
            raise ValueError(f"{self.sent_faiss.ntotal} vectors for {len(srows)} sentences")

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

    def parse_json(self, sid: int) -> str:
        self.connect()
        with self._db_lock:
            assert self._db is not None
            row = self._db.execute("SELECT parse FROM parses WHERE sentence_id = ?", (int(sid),)).fetchone()
        return row[0] if row else EMPTY_PARSE.to_json()

    def parse(self, sid: int) -> Parse:
        got = self._parses.get(sid)
        if got is None:
            got = Parse.from_json(self.parse_json(sid))
            if len(self._parses) > 50_000:
                self._parses.clear()
            self._parses[sid] = got
        return got

    def n_sentences(self) -> int:
        return len(self.sent_doc)

    def n_passages(self) -> int:
        return len(self.pass_doc)
