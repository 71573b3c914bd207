"""A sharded index: the documents split into N complete indexes by a stable hash of their id.

Layout::

    INDEX_DIR/
      shards.json        {"shards": N, "hash": "sha1-8"}: how documents are assigned
      shard-0/ … shard-{N-1}/   each a complete index (CURRENT, generations, lock) of its documents

A document's shard is the first 8 bytes of the SHA-1 of its id, modulo N: stable across runs,
machines and Python versions, so an incremental build finds every document where it left it.

**Collection statistics are global.** Each shard's BM25 weights use the N, document frequencies
and mean length of the whole collection (``index.bm25.Collection``), written after every shard is
built (``qa index … --shards N`` does both), so a sentence's BM25 score is the same in its shard as
in the unsharded index. Every other feature the answer step computes is a function of one
sentence, its passage or its document, and a document lives in one shard. The dense side searches
each shard and merges the best (exact search: the same ids as one index over everything).

**Asking without a cluster.** ``ShardedIndex`` opens every shard and presents them as one
``LoadedIndex`` (global ids run shard by shard): the retriever searches every shard through
``ShardedVectors`` (a ``VectorSearch``) and ``ShardedTerms`` (BM25), so `qa ask` and `qa serve` answer
from all shards in one process, with the answers of the unsharded index (ties between equal scores
may break another way, as ids are numbered shard by shard).

**Asking a cluster.** ``ShardedIndex.searched_by`` puts in other implementations of each shard's
searchers (``qa serve --ray``: the shard's Ray Serve replicas, index/serving.py); the merging stays
here, and parts that can begin a search (``start_search``, ``start_top``) are all asked before any
is awaited.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.annotate import Parse
from index.bm25 import Bm25Index, Collection
from index.loaded import LoadedIndex, _RowView
from index.store import (
    IncompatibleIndexError,
    NoIndexError,
    current_generation,
    fsync_dir,
    new_generation_dir,
    publish_generation,
)
from index.tokens import TokenStore

SHARDS_FILE = "shards.json"
HASH = "sha1-8"
MAX_SHARDS = 256
GLOBAL_TERMS = ("sentences", "passages")  # the BM25 indexes whose weights the answer step reads


def shard_of(doc_id: str, shards: int) -> int:
    """The shard of ``doc_id`` among ``shards``: stable everywhere (not Python's salted hash)."""
    return int.from_bytes(hashlib.sha1(doc_id.encode("utf-8")).digest()[:8], "big") % shards


def shard_count(index_dir: Path) -> int | None:
    """How many shards the index at ``index_dir`` has, or None when it is not sharded."""
    path = Path(index_dir) / SHARDS_FILE
    try:
        layout = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise IncompatibleIndexError(f"index file {path} is unreadable ({e}) — delete the folder and index again") from None
    if layout.get("hash") != HASH or not isinstance(layout.get("shards"), int) or not 1 <= layout["shards"] <= MAX_SHARDS:
        raise IncompatibleIndexError(f"index file {path} describes shards this citeqa cannot read — delete the folder "
                                     "and index again")
    return int(layout["shards"])


def shard_dir(index_dir: Path, i: int) -> Path:
    return Path(index_dir) / f"shard-{i}"


def write_layout(index_dir: Path, shards: int) -> None:
    """Record the layout (atomically) before the first shard is written."""
    index_dir.mkdir(parents=True, exist_ok=True)
    tmp = index_dir / (SHARDS_FILE + ".tmp")
    tmp.write_text(json.dumps({"shards": shards, "hash": HASH}))
    os.replace(tmp, index_dir / SHARDS_FILE)
    fsync_dir(index_dir)


def globalize(index_dir: Path, log: Callable[[str], None] = print) -> bool:
    """Give every shard the whole collection's BM25 statistics; True if any shard changed.

    Each shard whose weights are not yet those of the current collection gets a new generation:
    every file hard-linked from its live one but the BM25 files of ``GLOBAL_TERMS``, which are
    rewritten; published atomically (the caller holds the shards' build locks).
    """
    n = shard_count(index_dir)
    assert n is not None
    gens = [current_generation(shard_dir(index_dir, i)) for i in range(n)]
    if any(g is None for g in gens):
        raise NoIndexError(f"a shard of {index_dir} has no index yet — run: qa index CORPUS --index {index_dir} "
                           f"--shards {n}")
    changed = False
    stats = {name: Collection.of([Bm25Index.load(g, name) for g in gens if g is not None]) for name in GLOBAL_TERMS}
    for i, gen in enumerate(gens):
        assert gen is not None
        restated = {name: Bm25Index.load(gen, name).within(stats[name]) for name in GLOBAL_TERMS}
        if all(_same_weights(Bm25Index.load(gen, name), restated[name]) for name in GLOBAL_TERMS):
            continue
        shard = shard_dir(index_dir, i)
        new = new_generation_dir(shard)
        try:
            for p in gen.iterdir():
                if not any(p.name.startswith(f"{name}.terms.") for name in GLOBAL_TERMS):
                    os.link(p, new / p.name)
            for name, bm in restated.items():
                bm.save(new, name)
            for p in new.iterdir():
                if p.name.split(".terms.")[0] in GLOBAL_TERMS:
                    with open(p, "rb+") as f:
                        os.fsync(f.fileno())
            publish_generation(shard, new)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        changed = True
    if changed:
        log(f"collection statistics of {n} shards written")
    return changed


def _same_weights(a: Bm25Index, b: Bm25Index) -> bool:
    if a.collection is None or b.collection is None:
        return False
    return (a.collection[0], a.collection[1]) == (b.collection[0], b.collection[1]) and np.array_equal(
        np.asarray(a.collection[2]), np.asarray(b.collection[2]))


# --- asking from every shard in one process -------------------------------------------------------


class _Offsets:
    """Global ids run shard by shard: shard s holds ids starts[s]:starts[s + 1]."""

    def __init__(self, counts: Sequence[int]) -> None:
        self.starts = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=self.starts[1:])
        self.total = int(self.starts[-1])

    def locate(self, i: int) -> tuple[int, int]:
        s = int(np.searchsorted(self.starts, i, side="right")) - 1
        return s, i - int(self.starts[s])

    def split(self, ids: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(shard, positions in ``ids``, local ids) of each shard ``ids`` touch."""
        ids = np.asarray(ids, np.int64)
        shard = np.searchsorted(self.starts, ids, side="right") - 1
        for s in np.unique(shard).tolist():
            pos = np.flatnonzero(shard == s)
            yield s, pos, ids[pos] - self.starts[s]


def _merge_top(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of several (global ids, scores) lists: score descending, then lower id."""
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    ids = np.concatenate([p[0] for p in parts]).astype(np.int64)
    scores = np.concatenate([p[1] for p in parts])
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order]


def _started(part: object, method: str, *args: object) -> Callable[[], Any]:
    """``part.method(*args)`` as a call to collect later: started now when the part can start it
    (``start_<method>``: a shard searched elsewhere), else run when collected."""
    start = getattr(part, f"start_{method}", None)
    if start is not None:
        return start(*args)
    return lambda: getattr(part, method)(*args)


class ShardedVectors:
    """A ``VectorSearch`` over every shard's vector index: each searched, the best merged."""

    def __init__(self, parts: Sequence, offsets: _Offsets) -> None:
        self.parts = list(parts)
        self.offsets = offsets

    @property
    def ntotal(self) -> int:
        return self.offsets.total

    @property
    def dim(self) -> int:
        return int(self.parts[0].dim)

    def describe(self) -> str:
        return " + ".join(p.describe() for p in self.parts)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.start_search(queries, k)()

    def start_search(self, queries: np.ndarray, k: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        """``search``, begun now and merged when the returned function is called. Every shard is
        asked before any answer is awaited: shards searched elsewhere (a part with
        ``start_search``, index/serving.py) work side by side; in-process parts run when collected."""
        queries = np.asarray(queries, np.float32).reshape(-1, self.dim)
        pending = []
        for s, part in enumerate(self.parts):
            kk = min(k, part.ntotal)
            if kk > 0:
                pending.append((s, _started(part, "search", queries, kk)))

        def merged() -> tuple[np.ndarray, np.ndarray]:
            scores = np.full((len(queries), k), -np.inf, np.float32)
            ids = np.full((len(queries), k), -1, np.int64)
            found = [(s, *get()) for s, get in pending]
            for r in range(len(queries)):
                lists = [(ix[r][ix[r] >= 0] + self.offsets.starts[s], sc[r][ix[r] >= 0]) for s, sc, ix in found]
                got_ids, got_scores = _merge_top(lists, k)
                ids[r, : len(got_ids)] = got_ids
                scores[r, : len(got_ids)] = got_scores
            return scores, ids

        return merged

    def vectors(self, ids) -> np.ndarray:
        if isinstance(ids, slice):
            ids = np.arange(*ids.indices(self.offsets.total))
        ids = np.asarray(ids, np.int64)
        out = np.zeros((len(ids), self.dim), np.float32)
        for s, pos, local in self.offsets.split(ids):
            out[pos] = self.parts[s].vectors(local)
        return out


class ShardedTerms(Bm25Index):
    """BM25 over every shard's texts, each weighted by the whole collection's statistics, so a
    text's score is its score in one index over everything. Only the reading methods are served."""

    def __init__(self, parts: Sequence[Bm25Index], offsets: _Offsets) -> None:  # noqa: D107 - no super().__init__
        self.parts = list(parts)
        self.offsets = offsets
        self.n = offsets.total
        first = self.parts[0].collection
        self.max_idf = self.parts[0].max_idf if first is not None else 1.0

    def text_terms(self, j: int) -> tuple[str, ...]:
        s, local = self.offsets.locate(int(j))
        return self.parts[s].text_terms(local)

    def term_idf(self, term: str) -> float:
        for p in self.parts:
            if term in p.vocab:
                return p.term_idf(term)
        return self.max_idf

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        pending = [_started(p, "scores", terms) for p in self.parts]
        return np.concatenate([get() for get in pending])

    def scores_for(self, terms: Sequence[str], docs: Sequence[int] | np.ndarray) -> np.ndarray:
        docs_arr = np.asarray(docs, np.int64)
        out = np.zeros(len(docs_arr), np.float32)
        for s, pos, local in self.offsets.split(docs_arr):
            out[pos] = self.parts[s].scores_for(terms, local)
        return out

    def top(self, terms: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.start_top(terms, k)()

    def start_top(self, terms: Sequence[str], k: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        """``top``, begun now in every shard and merged when the returned function is called."""
        pending = [_started(p, "top", terms, k) for p in self.parts]

        def merged() -> tuple[np.ndarray, np.ndarray]:
            lists = []
            for s, get in enumerate(pending):
                ids, sc = get()
                lists.append((ids + self.offsets.starts[s], sc))
            return _merge_top(lists, k)

        return merged


class ShardedTokens(TokenStore):
    """Every shard's token vectors under global sentence ids (a document's sentences are in one shard)."""

    def __init__(self, parts: Sequence[TokenStore], offsets: _Offsets) -> None:
        self.parts = list(parts)
        self.offsets = offsets
        starts = [np.asarray(parts[0].starts[:1], np.int64)]
        base = 0
        for p in parts:
            st = np.asarray(p.starts, np.int64)
            starts.append(st[1:] + base)
            base += int(st[-1])
        self.starts = np.concatenate(starts)
        self._token_base = np.zeros(len(parts) + 1, np.int64)
        np.cumsum([int(p.starts[-1]) for p in parts], out=self._token_base[1:])

    def sentence(self, sid: int) -> np.ndarray:
        s, local = self.offsets.locate(sid)
        return self.parts[s].sentence(local)

    def span(self, first_sid: int, last_sid: int) -> np.ndarray:
        s, a = self.offsets.locate(first_sid)
        return self.parts[s].span(a, a + (last_sid - first_sid))

    def quantized(self, sid: int) -> np.ndarray:
        s, local = self.offsets.locate(sid)
        return self.parts[s].quantized(local)


class ShardedIndex(LoadedIndex):
    """Every shard of a sharded index as one ``LoadedIndex`` (global ids run shard by shard)."""

    def __init__(self, index_dir: Path, shards: list[LoadedIndex]) -> None:  # noqa: D107
        super().__init__(index_dir, index_dir, dict(shards[0].meta))
        self.shards = shards
        self.generations = tuple(s.gen_dir for s in shards)
        for s in shards[1:]:
            if s.encoder_name != shards[0].encoder_name:
                raise IncompatibleIndexError(
                    f"the shards of {index_dir} were built with different encoders — index it again: "
                    f"qa index CORPUS --index {index_dir} --shards {len(shards)} --rebuild")
        # Every shard weighted by the statistics of this very collection (not missing, not those of
        # an earlier state): otherwise a build or an upload is between its two steps, or was killed.
        for name in GLOBAL_TERMS if len(shards) > 1 else ():
            parts = [getattr(s, f"{name[:-1]}_bm25") for s in shards]
            total = sum(p.n for p in parts)
            if any(p.collection is None or p.collection[0] != total for p in parts) or len(
                    {(p.collection[0], p.collection[1]) for p in parts if p.collection is not None}) != 1:
                raise IncompatibleIndexError(
                    f"the shards of {index_dir} do not share the collection's statistics yet (a build or an upload "
                    f"is under way, or was interrupted) — run: qa index CORPUS --index {index_dir}")
        sent = _Offsets([s.n_sentences() for s in shards])
        pas = _Offsets([s.n_passages() for s in shards])
        ments = _Offsets([s.n_mentions for s in shards])
        self._sent, self._pass = sent, pas
        self.doc_order = [d for s in shards for d in s.doc_order]
        self.docs = {}
        self._shard_of_doc: dict[str, int] = {}
        for i, s in enumerate(shards):
            for d, r in s.docs.items():
                self.docs[d] = r
                self._shard_of_doc[d] = i
                a, b = s.doc_sentences[d], s.doc_passages[d]
                self.doc_sentences[d] = range(a.start + int(sent.starts[i]), a.stop + int(sent.starts[i]))
                self.doc_passages[d] = range(b.start + int(pas.starts[i]), b.stop + int(pas.starts[i]))
        cat = np.concatenate
        self.sent_start = cat([s.sent_start for s in shards])
        self.sent_end = cat([s.sent_end for s in shards])
        self.sent_passage = cat([s.sent_passage + pas.starts[i] for i, s in enumerate(shards)])
        self.pass_first = cat([s.pass_first + sent.starts[i] for i, s in enumerate(shards)])
        self.pass_last = cat([s.pass_last + sent.starts[i] for i, s in enumerate(shards)])
        self.pass_start = cat([s.pass_start for s in shards])
        self.pass_end = cat([s.pass_end for s in shards])
        self.mention_bounds = cat([np.asarray(s.mention_bounds[:-1], np.int64) + ments.starts[i]
                                   for i, s in enumerate(shards)] + [np.array([ments.total], np.int64)])
        self.n_mentions = ments.total

        def per_sentence(attr: str) -> Callable[[int], object]:
            def get(i: int) -> object:
                s, local = sent.locate(i)
                return getattr(shards[s], attr)[local]
            return get

        def per_passage(attr: str) -> Callable[[int], object]:
            def get(i: int) -> object:
                s, local = pas.locate(i)
                return getattr(shards[s], attr)[local]
            return get

        n_s, n_p = sent.total, pas.total
        self.sent_doc = _RowView(n_s, per_sentence("sent_doc"))
        self.sent_text = _RowView(n_s, per_sentence("sent_text"))
        self.sent_page = _RowView(n_s, per_sentence("sent_page"))
        self.mentions = _RowView(n_s, per_sentence("mentions"))
        self.pass_doc = _RowView(n_p, per_passage("pass_doc"))
        self.pass_text = _RowView(n_p, per_passage("pass_text"))
        self.sentence_vectors = ShardedVectors([s.sentence_vectors for s in shards], sent)
        self.passage_vectors = ShardedVectors([s.passage_vectors for s in shards], pas)
        self.sentence_bm25 = ShardedTerms([s.sentence_bm25 for s in shards], sent)
        self.passage_bm25 = ShardedTerms([s.passage_bm25 for s in shards], pas)

    def searched_by(self, sentences: Sequence, passages: Sequence, sentence_terms: Sequence[Bm25Index],
                    passage_terms: Sequence[Bm25Index]) -> ShardedIndex:
        """This index with each shard's searches done by other implementations of the same parts
        (a ``VectorSearch`` and a BM25 index per shard: e.g. the shard's replicas on Ray Serve,
        index/serving.py); the merging of their candidates stays the same."""
        self.sentence_vectors = ShardedVectors(sentences, self._sent)
        self.passage_vectors = ShardedVectors(passages, self._pass)
        self.sentence_bm25 = ShardedTerms(sentence_terms, self._sent)
        self.passage_bm25 = ShardedTerms(passage_terms, self._pass)
        return self

    @classmethod
    def open(cls, index_dir: Path | str) -> ShardedIndex:
        index_dir = Path(index_dir)
        n = shard_count(index_dir)
        if n is None:
            raise NoIndexError(f"no sharded index at {index_dir} — run: qa index CORPUS --index {index_dir} --shards N")
        return cls(index_dir, [LoadedIndex.open(shard_dir(index_dir, i)) for i in range(n)])

    def shard_of_doc(self, doc_id: str) -> int:
        return self._shard_of_doc[doc_id]

    def token_store(self) -> TokenStore:
        if self._tokens is None:
            self._tokens = ShardedTokens([s.token_store() for s in self.shards], self._sent)
        return self._tokens

    def connect(self) -> None:
        for s in self.shards:
            s.connect()

    def parse_json(self, sid: int) -> str:
        s, local = self._sent.locate(int(sid))
        return self.shards[s].parse_json(local)

    def prepare_parses(self, sids: Sequence[int]) -> None:
        by_shard: dict[int, list[int]] = {}
        for sid in sids:
            s, local = self._sent.locate(int(sid))
            by_shard.setdefault(s, []).append(local)
        for s, local_sids in by_shard.items():
            self.shards[s].prepare_parses(local_sids)

    def stored_parse_json(self, sid: int) -> str | None:
        s, local = self._sent.locate(int(sid))
        return self.shards[s].stored_parse_json(local)

    def parse(self, sid: int) -> Parse:
        s, local = self._sent.locate(int(sid))
        return self.shards[s].parse(local)

    def doc_title_terms(self, doc_id: str) -> frozenset[str]:
        return self.shards[self._shard_of_doc[doc_id]].doc_title_terms(doc_id)

    def sentence_mention_terms(self, sid: int) -> list[frozenset[str]]:
        s, local = self._sent.locate(int(sid))
        return self.shards[s].sentence_mention_terms(local)


def build_sharded(corpus_dir: Path, index_dir: Path, shards: int, *, log: Callable[[str], None] = print,
                  **kw: object) -> list:
    """Build (or update) every shard of ``index_dir`` from ``corpus_dir``, then give them the
    collection's statistics. Returns each shard's BuildReport."""
    from index.build import BuildError, build_index, build_lock

    if not 1 <= shards <= MAX_SHARDS:
        raise BuildError(f"--shards must be from 1 to {MAX_SHARDS}")
    have = shard_count(index_dir)
    if have is None and current_generation(index_dir) is not None:
        raise BuildError(f"{index_dir} holds an index that is not sharded; index into a new folder (or delete this one)")
    if have is not None and have != shards:
        raise BuildError(f"{index_dir} is split into {have} shards, not {shards}; index into a new folder "
                         f"(or delete this one) to change the number of shards")
    from index.documents import DocumentError
    from index.uploads import corpus_with_uploads

    if not Path(corpus_dir).is_dir():
        raise BuildError(f"corpus folder {corpus_dir} does not exist or is not a folder")
    try:
        held = [sum(shard_of(d, shards) == i for _, d in corpus_with_uploads(Path(corpus_dir), shard_dir(index_dir, i)).files)
                for i in range(shards)]
    except DocumentError as e:
        raise BuildError(str(e)) from None
    if min(held) == 0:
        raise BuildError(f"{sum(held)} documents cannot fill {shards} shards (shard {held.index(0)} would hold none); "
                         "use fewer shards")
    write_layout(index_dir, shards)
    reports = []
    for i in range(shards):
        log(f"shard {i + 1} of {shards}")
        reports.append(build_index(corpus_dir, shard_dir(index_dir, i), select=_in_shard(i, shards), log=log,
                                   **kw))  # type: ignore[arg-type]
    with _all_locked(index_dir, shards, build_lock):
        globalize(index_dir, log)
    return reports


def _in_shard(i: int, shards: int) -> Callable[[str], bool]:
    return lambda doc_id: shard_of(doc_id, shards) == i


class _all_locked:
    """Hold every shard's build lock (in shard order, so two writers cannot deadlock)."""

    def __init__(self, index_dir: Path, shards: int, lock) -> None:
        self.cms = [lock(shard_dir(index_dir, i), wait=60.0) for i in range(shards)]

    def __enter__(self) -> None:
        entered = []
        try:
            for cm in self.cms:
                cm.__enter__()
                entered.append(cm)
        except BaseException:
            for cm in reversed(entered):
                cm.__exit__(None, None, None)
            raise

    def __exit__(self, *exc: object) -> None:
        for cm in reversed(self.cms):
            cm.__exit__(None, None, None)


def open_index(index_dir: Path | str) -> LoadedIndex:
    """The index at ``index_dir``: one generation, or every shard of a sharded index as one."""
    if shard_count(Path(index_dir)) is not None:
        return ShardedIndex.open(index_dir)
    return LoadedIndex.open(index_dir)


def index_version(index_dir: Path) -> object | None:
    """What identifies the live state of ``index_dir`` (its generation, or every shard's), or None
    when there is no complete index: a server compares it to what it serves to follow changes."""
    try:
        n = shard_count(index_dir)
    except IncompatibleIndexError:
        return None
    if n is None:
        return current_generation(index_dir)
    gens = tuple(current_generation(shard_dir(index_dir, i)) for i in range(n))
    return None if any(g is None for g in gens) else gens


def version_of(index: LoadedIndex) -> object:
    """``index_version`` of the state ``index`` was loaded from."""
    return index.generations if isinstance(index, ShardedIndex) else index.gen_dir


def home_of(index_dir: Path, index: LoadedIndex, doc_id: str) -> tuple[Path, LoadedIndex]:
    """Where a change to ``doc_id`` is written: the index itself, or its document's shard (and
    that shard as loaded, as the writer's hint)."""
    if not isinstance(index, ShardedIndex):
        return index_dir, index
    i = shard_of(doc_id, len(index.shards))
    return shard_dir(index_dir, i), index.shards[i]


def uploaded_in(index_dir: Path) -> set[str]:
    """The ids of the documents uploaded through a server: kept in the index folder, or in each
    shard's folder of a sharded index."""
    from index.uploads import uploaded_ids

    n = shard_count(index_dir)
    folders = [index_dir] if n is None else [shard_dir(index_dir, i) for i in range(n)]
    return {d for f in folders for d in uploaded_ids(f)}


def after_change(index_dir: Path, log: Callable[[str], None] = print) -> None:
    """After a document of a sharded index changed in its shard: the collection's statistics again."""
    from index.build import build_lock

    n = shard_count(index_dir)
    if n is not None:
        with _all_locked(index_dir, n, build_lock):
            globalize(index_dir, log)
