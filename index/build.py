"""The incremental build: unchanged files (same content hash) keep their vectors and annotations;
new and changed files are split, embedded and annotated; deleted files drop out.

The result is always a complete new generation published atomically (see store.py).
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.annotate import ANNOTATOR_VERSION, annotate
from index.bm25 import Bm25Builder
from index.documents import (
    LOADER_VERSION,
    SUPPORTED_SUFFIXES,
    Document,
    DocumentError,
    Skipped,
    content_hash,
    iter_files,
    load_bytes,
    read_file,
)
from index.encoder import DEFAULT_ENCODER, Encoder, load_encoder
from index.furniture import inside
from index.loaded import LoadedIndex
from index.split import SPLITTER_VERSION, PassageSpan, Span, make_passages, split_sentences
from index.store import (
    GenerationWriter,
    IndexSettings,
    UnusableIndexError,
    current_generation,
    new_generation_dir,
    publish_generation,
    remove_unpublished,
)
from index.terms import TERMS_VERSION
from index.tokens import PROJECTION_VERSION, pack, project, quantize
from index.uploads import UPLOADS, clean_temporaries, corpus_with_uploads

PROGRESS_MIN_ITEMS = 200
PROGRESS_MIN_FILES = 100  # PDFs take a while to read: show a bar for big folders


class BuildError(Exception):
    """The build could not produce an index; the previous one (if any) is untouched."""


@dataclass
class BuildReport:
    index_dir: str
    documents: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)  # kept from INDEX_DIR/uploads
    left_out: list[str] = field(default_factory=list)  # corpus files deleted through the API
    sentences: int = 0
    passages: int = 0
    embedded_texts: int = 0
    seconds: float = 0.0
    encoder: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    def to_dict(self) -> dict[str, object]:
        d = dict(self.__dict__)
        d["skipped"] = [{"path": s.path, "reason": s.reason} for s in self.skipped]
        return d


@dataclass(frozen=True)
class PreparedDocument:
    """A document cut into what the index stores: answerable sentences (with their page) and passages."""

    doc: Document
    sents: list[tuple[int, int]]
    pages: list[int | None]  # 1-based page of each sentence (PDF), else None
    passages: list[tuple[int, int, int, int]]  # first, last, start, end (sentence idx local)


def prepare_document(doc: Document) -> PreparedDocument:
    """Sentences outside the page furniture, and passages that never reach across furniture.

    Furniture (a "latest news" list, a menu, running page headers) stays in ``doc.text`` with its
    offsets, but is not a sentence: never embedded, never in BM25, never cited. A passage is a
    window of consecutive sentences; one that crossed a furniture block would carry the block's
    text into the passage, so passages are cut per stretch of text between blocks.
    """
    spans = [s for s in split_sentences(doc.text) if not inside(doc.furniture, s.start, s.end)]
    groups: list[list[Span]] = []
    for s in spans:
        if groups and not inside(doc.furniture, groups[-1][-1].end, s.start):
            groups[-1].append(s)
        else:
            groups.append([s])
    passages: list[PassageSpan] = []
    base = 0
    for g in groups:
        passages += [PassageSpan(p.first + base, p.last + base, p.start, p.end) for p in make_passages(doc.text, g)]
        base += len(g)
    return PreparedDocument(
        doc,
        [(s.start, s.end) for s in spans],
        [doc.page_at(s.start) for s in spans],
        [(p.first, p.last, p.start, p.end) for p in passages],
    )


def _load_corpus(corpus_dir: Path, old: LoadedIndex | None, progress: bool = False,
                 files: list[tuple[Path, str]] | None = None) -> tuple[list[Document], list[Skipped], set[str]]:
    """Every readable file as a Document; files whose bytes are unchanged are not parsed again.

    ``files`` are the (path, doc_id) pairs to read (default: every supported file under the corpus).
    Returns (documents, skipped, doc_ids reused from ``old`` as they are).
    """
    docs: list[Document] = []
    skipped: list[Skipped] = []
    reused: set[str] = set()
    files = list(iter_files(corpus_dir)) if files is None else files
    if progress and len(files) > PROGRESS_MIN_FILES:
        from tqdm import tqdm

        files = tqdm(files, desc="reading", unit="file", leave=False)
    for path, doc_id in files:
        try:
            data = read_file(path)
            h = content_hash(data)
            prev = old.docs.get(doc_id) if old is not None else None
            if prev is not None and prev.content_hash == h:
                reused.add(doc_id)
                docs.append(prev.as_document())
            else:
                docs.append(load_bytes(data, doc_id, content_hash_=h))
        except DocumentError as e:
            skipped.append(Skipped(doc_id, str(e)))
    return docs, skipped, reused


def build_index(
    corpus_dir: Path | str,
    index_dir: Path | str,
    *,
    encoder_name: str | None = None,
    rebuild: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> BuildReport:
    corpus_dir = Path(corpus_dir)
    index_dir = Path(index_dir)
    t0 = time.perf_counter()
    if not corpus_dir.is_dir():
        raise BuildError(f"corpus folder {corpus_dir} does not exist or is not a folder")
    with build_lock(index_dir, wait=LOCK_WAIT_SECONDS, log=log):
        return _build_locked(corpus_dir, index_dir, encoder_name, rebuild, progress, log, t0)


# A running server holds the lock for the seconds an upload takes: `qa index` waits for it.
LOCK_WAIT_SECONDS = 60.0


class IndexBusyError(BuildError):
    """Another process is changing the index right now; try again shortly."""


@contextmanager
def build_lock(index_dir: Path, *, wait: float = 0.0, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the index folder's writer lock (one build or upload at a time, across processes).

    Waits up to ``wait`` seconds for another writer to finish, then raises IndexBusyError.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    lock_file = open(index_dir / ".lock", "w")  # noqa: SIM115 - held while the caller writes
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexBusyError(
                        f"another process (`qa index`, or `qa serve` applying an upload) is changing {index_dir}; "
                        "wait for it to finish and try again"
                    ) from None
                if log is not None and not told:
                    log(f"waiting for another process to finish changing {index_dir} …")
                    told = True
                time.sleep(0.05)
        yield
    finally:
        lock_file.close()


def _build_locked(corpus_dir, index_dir, encoder_name, rebuild, progress, log, t0) -> BuildReport:
    # Leftovers of builds that were killed midway.
    remove_unpublished(index_dir)

    old: LoadedIndex | None = None
    if not rebuild and current_generation(index_dir) is not None:
        try:
            old = LoadedIndex.open(index_dir)
        except UnusableIndexError as e:
            problem = str(e).split(" — ")[0]  # the advice to rebuild is what happens next
            log(f"note: previous index not reused ({problem}); building from scratch")
            old = None
    if encoder_name is None:
        encoder_name = old.encoder_name if old is not None else DEFAULT_ENCODER
    if old is not None and (
        old.encoder_name != encoder_name
        or old.meta.get("splitter") != SPLITTER_VERSION
        or old.meta.get("annotator") != ANNOTATOR_VERSION
        or old.meta.get("loader") != LOADER_VERSION
        or old.meta.get("terms") != TERMS_VERSION
        or old.meta.get("tokens") != PROJECTION_VERSION
    ):
        log("note: index settings changed (encoder, splitter, annotator, loaders or terms); re-embedding everything")
        old = None

    report = BuildReport(index_dir=str(index_dir), encoder=encoder_name)
    # Documents uploaded and deleted through a running server are kept as they are (index/uploads.py).
    clean_temporaries(index_dir)
    try:
        listing = corpus_with_uploads(corpus_dir, index_dir)
    except DocumentError as e:
        raise BuildError(str(e)) from None
    report.uploads, report.left_out = listing.uploads, listing.left_out
    if listing.uploads:
        log(f"{len(listing.uploads)} uploaded document(s) kept from {index_dir / UPLOADS}")
    for doc_id in listing.left_out:
        log(f"left out {doc_id}: deleted through the API (upload it again to bring it back)")
    docs, skipped, reused = _load_corpus(corpus_dir, old, progress, listing.files)
    report.skipped = skipped
    for s in skipped:
        log(f"skipped {s.path}: {s.reason}")
    if not docs:
        raise BuildError(
            f"nothing to index in {corpus_dir}: no readable {', '.join(SUPPORTED_SUFFIXES)} files"
            + (f" ({len(skipped)} skipped)" if skipped else "")
        )

    return write_generation(index_dir, docs, reused, old, encoder_name, report, progress=progress, log=log, t0=t0)


def write_generation(
    index_dir: Path,
    docs: list[Document],
    reused: set[str],
    old: LoadedIndex | None,
    encoder_name: str,
    report: BuildReport,
    *,
    encoder: Encoder | None = None,
    before_publish: Callable[[], None] | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
    t0: float | None = None,
) -> BuildReport:
    """Write ``docs`` as a new generation and publish it; the caller holds the build lock.

    Documents in ``reused`` are copied from ``old`` as they are (vectors, annotations, parses);
    the others are split, embedded with ``encoder`` (default: load ``encoder_name``) and annotated.
    ``before_publish`` runs once the generation is complete on disk and before CURRENT points at
    it (an upload saves its file there, so the file is never behind the index). When nothing
    changed, the live generation stays as it is.
    """
    t0 = time.perf_counter() if t0 is None else t0
    new_docs: list[PreparedDocument] = []
    for doc in docs:
        if doc.doc_id in reused:
            report.unchanged.append(doc.doc_id)
            continue
        prev = old.docs.get(doc.doc_id) if old is not None else None
        (report.changed if prev is not None else report.added).append(doc.doc_id)
        new_docs.append(prepare_document(doc))
    if old is not None:
        current = {d.doc_id for d in docs}
        report.removed = [d for d in old.docs if d not in current]

    if old is not None and not new_docs and not report.removed:
        # Nothing changed: keep the live generation as it is.
        report.documents = len(docs)
        report.sentences = old.n_sentences()
        report.passages = old.n_passages()
        report.seconds = time.perf_counter() - t0
        return report

    report.timings["read and split"] = time.perf_counter() - t0
    # Embed and annotate everything new in one pass each.
    new_sent_texts = [nd.doc.text[s:e] for nd in new_docs for s, e in nd.sents]
    new_pass_texts = [nd.doc.text[s:e] for nd in new_docs for _, _, s, e in nd.passages]
    # A passage of one sentence is that sentence's text: each distinct text is encoded once.
    unique = list(dict.fromkeys(new_sent_texts + new_pass_texts))
    n_embed = len(unique)
    report.embedded_texts = n_embed
    if n_embed:
        t = time.perf_counter()
        if encoder is None:
            encoder = load_encoder(encoder_name)
        report.timings["load encoder"] = time.perf_counter() - t
        show = progress and n_embed > PROGRESS_MIN_ITEMS
        if show:
            log(f"embedding {len(new_pass_texts)} passages and {len(new_sent_texts)} sentences of {len(new_docs)} documents")
        t = time.perf_counter()
        # Sentences in one pass that also yields their token vectors (kept, projected, for alignment);
        # then the passages that are not a sentence already. Each distinct text is encoded once.
        sent_unique = list(dict.fromkeys(new_sent_texts))
        sent_pooled, sent_tok, _ = encoder.encode_tokens(sent_unique, progress=show)
        sent_row = {text: i for i, text in enumerate(sent_unique)}
        tok_of = [quantize(project(t)) for t in sent_tok]
        new_sent_tokens = [tok_of[sent_row[x]] for x in new_sent_texts]
        pass_unique = [x for x in dict.fromkeys(new_pass_texts) if x not in sent_row]
        pass_pooled = encoder.encode(pass_unique, progress=show)
        pass_row = {text: i for i, text in enumerate(pass_unique)}
        empty = np.zeros((0, encoder.dim), np.float32)
        new_sent_vecs = sent_pooled[[sent_row[x] for x in new_sent_texts]] if new_sent_texts else empty
        new_pass_vecs = (
            np.stack([sent_pooled[sent_row[x]] if x in sent_row else pass_pooled[pass_row[x]] for x in new_pass_texts])
            if new_pass_texts else empty
        )
        report.timings["embed"] = time.perf_counter() - t
        if show:
            log(f"annotating {len(new_sent_texts)} sentences (entities, dates, numbers)")
        t = time.perf_counter()
        new_doc_dates = [nd.doc.date.iso if nd.doc.date else None for nd in new_docs for _ in nd.sents]
        new_mentions = annotate(new_sent_texts, new_doc_dates)
        report.timings["annotate (spaCy, incl. load)"] = time.perf_counter() - t
        dim = encoder.dim
    else:
        dim = old.sentence_vectors.dim if old is not None else 384
        new_sent_vecs = np.zeros((0, dim), np.float32)
        new_pass_vecs = np.zeros((0, dim), np.float32)
        new_mentions = []
        new_sent_tokens = []

    t_write = time.perf_counter()
    gen = new_generation_dir(index_dir)
    try:
        settings = IndexSettings(encoder_name, dim, SPLITTER_VERSION, ANNOTATOR_VERSION, TERMS_VERSION,
                                 loader=LOADER_VERSION)
        w = GenerationWriter(gen, settings)
        sent_terms, pass_terms = Bm25Builder(), Bm25Builder()
        # Terms of each title and each mention, so the answer step analyzes nothing per question.
        title_terms, mention_terms = Bm25Builder(), Bm25Builder()
        sent_vec_parts: list[np.ndarray] = []
        token_parts: list[np.ndarray] = []
        old_tokens = old.token_store() if old is not None else None
        pass_vec_parts: list[np.ndarray] = []
        sid = 0
        pid = 0
        new_by_id = {nd.doc.doc_id: (i, nd) for i, nd in enumerate(new_docs)}
        # Offsets of each new doc's rows inside the new_* arrays.
        sent_off, pass_off = [], []
        so = po = 0
        for nd in new_docs:
            sent_off.append(so)
            pass_off.append(po)
            so += len(nd.sents)
            po += len(nd.passages)
        for ord_, doc in enumerate(docs):
            date = (doc.date.iso, doc.date.start, doc.date.end) if doc.date else None
            w.add_document(ord_, doc.doc_id, doc.title, doc.text, doc.content_hash, date, format=doc.format,
                           date_source=doc.date.source if doc.date else None, page_starts=doc.page_starts,
                           furniture=doc.furniture)
            if doc.doc_id in reused:
                assert old is not None
                title_terms.add_from(old.title_terms, old.docs[doc.doc_id].ord, old.docs[doc.doc_id].ord)
                old_sids = old.doc_sentences[doc.doc_id]
                old_pids = old.doc_passages[doc.doc_id]
                sid_map = {o: sid + i for i, o in enumerate(old_sids)}
                pid_map = {o: pid + i for i, o in enumerate(old_pids)}
                w.add_sentences(
                    (sid_map[o], doc.doc_id, i, int(old.sent_start[o]), int(old.sent_end[o]),
                     pid_map[int(old.sent_passage[o])], old.sent_page[o])
                    for i, o in enumerate(old_sids)
                )
                w.add_passages(
                    (pid_map[o], doc.doc_id, sid_map[int(old.pass_first[o])], sid_map[int(old.pass_last[o])],
                     int(old.pass_start[o]), int(old.pass_end[o]))
                    for o in old_pids
                )
                w.add_mentions((sid_map[o], s, e, lab, val) for o in old_sids for s, e, lab, val in old.mentions[o])
                w.add_parses((sid_map[o], old.parse_json(o)) for o in old_sids)
                sent_vec_parts.append(old.sentence_vectors.vectors(slice(old_sids.start, old_sids.stop)))
                assert old_tokens is not None  # made with `old`, which is not None here
                token_parts.extend(old_tokens.quantized(o) for o in old_sids)
                pass_vec_parts.append(old.passage_vectors.vectors(slice(old_pids.start, old_pids.stop)))
                if len(old_sids):
                    sent_terms.add_from(old.sentence_bm25, old_sids[0], old_sids[-1])
                    mention_terms.add_from(old.mention_terms, int(old.mention_bounds[old_sids[0]]),
                                           int(old.mention_bounds[old_sids[-1] + 1]) - 1)
                if len(old_pids):
                    pass_terms.add_from(old.passage_bm25, old_pids[0], old_pids[-1])
                sid += len(old_sids)
                pid += len(old_pids)
            else:
                i, nd = new_by_id[doc.doc_id]
                # Each sentence belongs to the first passage that contains it.
                owner = [0] * len(nd.sents)
                for j, (first, last, _, _) in reversed(list(enumerate(nd.passages))):
                    for k in range(first, last + 1):
                        owner[k] = j
                w.add_sentences(
                    (sid + k, doc.doc_id, k, s, e, pid + owner[k], nd.pages[k]) for k, (s, e) in enumerate(nd.sents)
                )
                w.add_passages(
                    (pid + j, doc.doc_id, sid + first, sid + last, s, e)
                    for j, (first, last, s, e) in enumerate(nd.passages)
                )
                w.add_mentions(
                    (sid + k, m.start, m.end, m.label, m.value)
                    for k in range(len(nd.sents))
                    for m in new_mentions[sent_off[i] + k].mentions
                )
                w.add_parses((sid + k, new_mentions[sent_off[i] + k].parse.to_json()) for k in range(len(nd.sents)))
                title_terms.add_texts([doc.title])
                mention_terms.add_texts(
                    doc.text[s + m.start : s + m.end]
                    for k, (s, _) in enumerate(nd.sents)
                    for m in new_mentions[sent_off[i] + k].mentions
                )
                sent_terms.add_texts(doc.text[s:e] for s, e in nd.sents)
                pass_terms.add_texts(doc.text[s:e] for _, _, s, e in nd.passages)
                sent_vec_parts.append(new_sent_vecs[sent_off[i] : sent_off[i] + len(nd.sents)])
                token_parts.extend(new_sent_tokens[sent_off[i] : sent_off[i] + len(nd.sents)])
                pass_vec_parts.append(new_pass_vecs[pass_off[i] : pass_off[i] + len(nd.passages)])
                sid += len(nd.sents)
                pid += len(nd.passages)
        w.set_meta("documents", str(len(docs)))
        sent_vecs = np.concatenate(sent_vec_parts) if sent_vec_parts else np.zeros((0, dim), np.float32)
        pass_vecs = np.concatenate(pass_vec_parts) if pass_vec_parts else np.zeros((0, dim), np.float32)
        w.save_vectors("sentences", sent_vecs, old.sentence_vectors if old is not None else None)
        w.save_tokens(*pack(token_parts))
        w.set_meta("tokens", PROJECTION_VERSION)
        w.save_vectors("passages", pass_vecs, old.passage_vectors if old is not None else None)
        w.save_terms("sentences", sent_terms.build())
        w.save_terms("passages", pass_terms.build())
        w.save_terms("titles", title_terms.build())
        w.save_terms("mentions", mention_terms.build())
        w.close()
        if before_publish is not None:
            before_publish()
        publish_generation(index_dir, gen)
    except BaseException:
        shutil.rmtree(gen, ignore_errors=True)
        raise
    report.timings["terms, records, vector indexes"] = time.perf_counter() - t_write
    report.documents = len(docs)
    report.sentences = sid
    report.passages = pid
    report.seconds = time.perf_counter() - t0
    return report
