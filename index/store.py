"""The index directory: SQLite for records, FAISS and NumPy for vectors, switched atomically.

Layout::

    INDEX_DIR/
      CURRENT            name of the live generation (replaced with os.replace: atomic)
      gen-<id>/          one complete build
        index.sqlite     meta, documents, sentences, passages, mentions, parses (the records)
        {sentences,passages}.npy         vectors (row = id), memory-mapped when loaded
        {sentences,passages}.faiss       vector index over them (ids = row numbers), and
        {sentences,passages}.vectors.json  the structure chosen and how it was trained
        {sentences,passages}.rows.npy    the numeric columns of the records, so loading does no
        mentions.{rows,bounds}.npy       per-row work: doc ord, offsets, owning passage / first and
        mentions.values.json             last sentence, page; mentions sorted by sentence, with
                                         label and value ids
        {sentences,passages}.terms.*     BM25 terms and postings (see bm25.py)
      .lock              held by a running build

A build writes a new generation next to the live one and only then points CURRENT at it, so a
build killed at any moment leaves the previous index answering.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# 2: documents carry their format, date source, PDF page starts and page-furniture spans;
#    sentences carry their page.
# 3: mentions carry a normalised value (ISO date, number); every sentence has a stored parse.
# 4: BM25 terms and postings, title and mention terms, and the records' numeric columns stored as
#    arrays (loading does no per-row work); vector index plan beside each .faiss.
# 5: every sentence's projected token vectors (tokens.npy, token_starts.npy; see index/tokens.py).
FORMAT_VERSION = "5"

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, ord INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL,
    content_hash TEXT NOT NULL, date_iso TEXT, date_start INTEGER, date_end INTEGER,
    format TEXT NOT NULL DEFAULT 'text', date_source TEXT,
    page_starts TEXT NOT NULL DEFAULT '[]', furniture TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE sentences (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, idx INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, passage_id INTEGER NOT NULL, page INTEGER
);
CREATE TABLE passages (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, first_sentence INTEGER NOT NULL,
    last_sentence INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL
);
CREATE TABLE mentions (
    sentence_id INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, label TEXT NOT NULL, value TEXT
);
CREATE TABLE parses (sentence_id INTEGER PRIMARY KEY, parse TEXT NOT NULL);
CREATE INDEX sentences_doc ON sentences(doc_id);
CREATE INDEX mentions_sentence ON mentions(sentence_id);
"""


class UnusableIndexError(Exception):
    """An index that cannot be used as it is: none there, built by another citeqa, or damaged.

    The message says what to do next; ``exit_code`` is the command line's for it: 1 (failure),
    or 2 (bad usage) for a folder that holds no index at all.
    """

    exit_code = 1


class NoIndexError(UnusableIndexError):
    exit_code = 2


class IncompatibleIndexError(UnusableIndexError):
    pass


class CorruptIndexError(UnusableIndexError):
    pass


@dataclass(frozen=True)
class IndexSettings:
    encoder: str
    dim: int
    splitter: str
    annotator: str
    terms: str = ""
    format: str = FORMAT_VERSION
    loader: str = ""

    def as_meta(self) -> dict[str, str]:
        return {
            "format": self.format,
            "encoder": self.encoder,
            "dim": str(self.dim),
            "splitter": self.splitter,
            "annotator": self.annotator,
            "terms": self.terms,
            "loader": self.loader,
        }


def current_generation(index_dir: Path) -> Path | None:
    cur = index_dir / "CURRENT"
    try:
        name = cur.read_text().strip()
    except FileNotFoundError:
        return None
    gen = index_dir / name
    return gen if gen.is_dir() else None


def new_generation_dir(index_dir: Path) -> Path:
    index_dir.mkdir(parents=True, exist_ok=True)
    name = f"gen-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9}.tmp"
    path = index_dir / name
    path.mkdir()
    return path


def remove_unpublished(index_dir: Path) -> None:
    """Drop generations a killed writer left half-written (never published; the caller holds the lock)."""
    for p in index_dir.glob("gen-*.tmp"):
        shutil.rmtree(p, ignore_errors=True)


def publish_generation(index_dir: Path, tmp_gen: Path) -> Path:
    """Make ``tmp_gen`` the live generation (atomic), then drop older generations but one."""
    final = tmp_gen.with_suffix("")
    os.replace(tmp_gen, final)
    fsync_dir(final)
    cur_tmp = index_dir / "CURRENT.tmp"
    with open(cur_tmp, "w") as f:
        f.write(final.name + "\n")
        f.flush()
        os.fsync(f.fileno())
    previous = current_generation(index_dir)
    os.replace(cur_tmp, index_dir / "CURRENT")
    fsync_dir(index_dir)
    keep = {final.name} | ({previous.name} if previous else set())
    # The previous generation stays one build longer: a server may still be reading it.
    for p in index_dir.iterdir():
        if p.is_dir() and p.name.startswith("gen-") and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
    return final


def fsync_dir(path: Path) -> None:
    """Make a rename or removal inside ``path`` durable (a folder that cannot be opened is skipped)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class GenerationWriter:
    """Writes one generation: SQLite records plus their numeric columns as arrays (``close``);
    vectors are saved with ``save_vectors`` and BM25 terms with ``save_terms``."""

    def __init__(self, gen_dir: Path, settings: IndexSettings) -> None:
        self.dir = gen_dir
        self.db = sqlite3.connect(gen_dir / "index.sqlite")
        self.db.executescript(SCHEMA)
        self.db.executemany("INSERT INTO meta VALUES (?, ?)", settings.as_meta().items())
        self._ord: dict[str, int] = {}
        self._sent_rows: list[np.ndarray] = []
        self._pass_rows: list[np.ndarray] = []
        self._mention_rows: list[np.ndarray] = []
        self._labels: dict[str, int] = {}
        self._values: dict[str | None, int] = {None: -1}

    def add_document(self, ord_: int, doc_id: str, title: str, text: str, content_hash: str,
                     date: tuple[str, int | None, int | None] | None, *, format: str = "text",
                     date_source: str | None = None, page_starts: Iterable[int] = (),
                     furniture: Iterable[tuple[int, int]] = ()) -> None:
        d = date or (None, None, None)
        self._ord[doc_id] = ord_
        self.db.execute(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (doc_id, ord_, title, text, content_hash, d[0], d[1], d[2], format, date_source,
             json.dumps(list(page_starts)), json.dumps([list(f) for f in furniture])),
        )

    def add_sentences(self, rows: Iterable[tuple[int, str, int, int, int, int, int | None]]) -> None:
        """Rows ``(id, doc_id, idx, start, end, passage_id, page or None)``, in id order."""
        rows = list(rows)
        self.db.executemany("INSERT INTO sentences VALUES (?,?,?,?,?,?,?)", rows)
        if rows:
            # page 0 stands for "no page" (pages are 1-based)
            self._sent_rows.append(np.array([(self._ord[r[1]], r[3], r[4], r[5], r[6] or 0) for r in rows], dtype=np.int64))

    def add_passages(self, rows: Iterable[tuple[int, str, int, int, int, int]]) -> None:
        """Rows ``(id, doc_id, first_sentence, last_sentence, start, end)``, in id order."""
        rows = list(rows)
        self.db.executemany("INSERT INTO passages VALUES (?,?,?,?,?,?)", rows)
        if rows:
            self._pass_rows.append(np.array([(self._ord[r[1]], r[2], r[3], r[4], r[5]) for r in rows], dtype=np.int64))

    def add_mentions(self, rows: Iterable[tuple[int, int, int, str, str | None]]) -> None:
        """Rows ``(sentence_id, start, end, label, value or None)``, in sentence order."""
        rows = list(rows)
        self.db.executemany("INSERT INTO mentions VALUES (?,?,?,?,?)", rows)
        if rows:
            labels, values = self._labels, self._values
            self._mention_rows.append(np.array(
                [(r[0], r[1], r[2], labels.setdefault(r[3], len(labels)), values.setdefault(r[4], len(values) - 1))
                 for r in rows], dtype=np.int32
            ))

    def add_parses(self, rows: Iterable[tuple[int, str]]) -> None:
        self.db.executemany("INSERT INTO parses VALUES (?,?)", rows)

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def save_vectors(self, name: str, vectors: np.ndarray, previous: object = None) -> str:
        """Save the vectors and a vector index over them; returns the structure chosen.

        ``vectors`` may already be a memory-mapped ``NAME.npy`` of this generation (large
        collections are written in place rather than held in memory)."""
        from index import vectors as vector_index

        path = self.dir / f"{name}.npy"
        if not (isinstance(vectors, np.memmap) and vectors.filename is not None and Path(vectors.filename).resolve() == path.resolve()):
            np.save(path, np.ascontiguousarray(vectors, dtype=np.float32))
        stored = np.load(path, mmap_mode="r")
        idx = vector_index.build(stored, previous)  # type: ignore[arg-type]
        vector_index.save(idx, self.dir / f"{name}.faiss")
        kind = vector_index.describe(idx)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"{name}_index", kind))
        return kind

    def save_tokens(self, tokens: np.ndarray, starts: np.ndarray) -> None:
        """Every sentence's projected token vectors (see index/tokens.py).

        ``tokens`` may already be a memory-mapped ``tokens.npy`` of this generation (as with
        ``save_vectors``: large collections are written in place)."""
        path = self.dir / "tokens.npy"
        if not (isinstance(tokens, np.memmap) and tokens.filename is not None and Path(tokens.filename).resolve() == path.resolve()):
            np.save(path, tokens)
        np.save(self.dir / "token_starts.npy", starts)

    def save_terms(self, name: str, terms: object) -> None:
        terms.save(self.dir, name)  # type: ignore[attr-defined]

    def close(self) -> None:
        def stack(parts: list[np.ndarray], width: int, dtype: type) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros((0, width), dtype=dtype)

        np.save(self.dir / "sentences.rows.npy", stack(self._sent_rows, 5, np.int64))
        np.save(self.dir / "passages.rows.npy", stack(self._pass_rows, 5, np.int64))
        mentions = stack(self._mention_rows, 5, np.int32)
        # Stable sort by sentence: a sentence's mentions keep the order the annotator gave them.
        mentions = mentions[np.argsort(mentions[:, 0], kind="stable")]
        np.save(self.dir / "mentions.rows.npy", mentions)
        n_sent = sum(len(r) for r in self._sent_rows)
        bounds = np.zeros(n_sent + 1, dtype=np.int64)  # mentions of sentence i: rows bounds[i]:bounds[i+1]
        np.cumsum(np.bincount(mentions[:, 0], minlength=n_sent)[:n_sent], out=bounds[1:])
        np.save(self.dir / "mentions.bounds.npy", bounds)
        self.set_meta("mention_labels", json.dumps(list(self._labels)))
        # Mention values (ISO dates, numbers) by id; -1 is "no value".
        (self.dir / "mentions.values.json").write_text(json.dumps([v for v in self._values if v is not None]))
        self.db.commit()
        self.db.close()
        # Every file goes to disk before the generation is published.
        for p in self.dir.iterdir():
            with open(p, "rb+") as f:
                os.fsync(f.fileno())


def read_meta(gen_dir: Path) -> dict[str, str]:
    db_path = gen_dir / "index.sqlite"
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            return dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise CorruptIndexError(
            f"index file {db_path} is unreadable ({e}) — rebuild it: qa index CORPUS --index {gen_dir.parent} --rebuild"
        ) from None


def check_compatible(meta: dict[str, str], index_dir: Path) -> None:
    if meta.get("format") != FORMAT_VERSION:
        raise IncompatibleIndexError(
            f"index at {index_dir} has layout version {meta.get('format')!r}, this citeqa reads "
            f"{FORMAT_VERSION!r} — rebuild it: qa index CORPUS --index {index_dir} --rebuild"
        )


def dump_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False))
