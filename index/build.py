"""The incremental build: unchanged files (same content hash) keep their vectors and annotations;
new and changed files are split, embedded and annotated; deleted files drop out.

The result is always a complete new generation published atomically (see store.py).
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from index.annotate import ANNOTATOR_VERSION, Annotation, annotate
from index.arrays import NpyAppender
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
from index.tokens import PROJECTION_VERSION, TOKEN_DIM, project, quantize
from index.uploads import UPLOADS, clean_temporaries, corpus_with_uploads

PROGRESS_MIN_ITEMS = 200
# How a passage (a window of up to 4 sentences) gets its vector:
# - "encoded": the encoder reads the passage's text (its own pass over ~4x the tokens; the build's
#   biggest cost after spaCy);
# - "pooled": the mean of its sentences' token vectors, which the sentence pass already computed
#   (mean pooling is what the encoder does over a passage's tokens, minus the attention across
#   sentences): no extra encoder pass. Cosine with the encoded vector 0.92 on average.
PASSAGE_VECTORS = ("encoded", "pooled")
DEFAULT_PASSAGE_VECTORS = "encoded"


def passage_vectors_of(index: LoadedIndex) -> str:
    """How ``index``'s passage vectors were made (indexes before the setting: encoded)."""
    return index.meta.get("passages", "encoded")


# New sentences per batch of the streamed build: big enough for full encoder and spaCy batches,
# small enough that a batch's token vectors and parses (~10 MB per 1,000 sentences) stay small.
CHUNK_SENTENCES = 1024
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
    unsupported: list[str] = field(default_factory=list)  # files of a type citeqa does not read (ignored)
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


def ignored_summary(unsupported: list[str], show: int = 10) -> str:
    """One line naming the files of an unsupported type: "ignored 1 file of an unsupported type: blob.bin"."""
    n = len(unsupported)
    names = ", ".join(unsupported[:show]) + (f" and {n - show} more" if n > show else "")
    return f"ignored {n} file{'s' if n != 1 else ''} of an unsupported type: {names}"


def build_index(
    corpus_dir: Path | str,
    index_dir: Path | str,
    *,
    encoder_name: str | None = None,
    passage_vectors: str | None = None,
    select: Callable[[str], bool] | None = None,
    rebuild: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    ingest: ClusterIngest | None = None,
) -> BuildReport:
    """Build (or update) the index at ``index_dir`` from ``corpus_dir``; ``ingest`` reads, splits,
    embeds and annotates on a cluster (``index.cluster.RayIngest``) while this process writes."""
    corpus_dir = Path(corpus_dir)
    index_dir = Path(index_dir)
    t0 = time.perf_counter()
    if not corpus_dir.is_dir():
        raise BuildError(f"corpus folder {corpus_dir} does not exist or is not a folder")
    with build_lock(index_dir, wait=LOCK_WAIT_SECONDS, log=log):
        return _build_locked(corpus_dir, index_dir, encoder_name, passage_vectors, rebuild, progress, log, t0, select,
                             ingest)


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


def _build_locked(corpus_dir, index_dir, encoder_name, passage_vectors, rebuild, progress, log, t0,
                  select=None, ingest: ClusterIngest | None = None) -> BuildReport:
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
    if passage_vectors is None:
        passage_vectors = passage_vectors_of(old) if old is not None else DEFAULT_PASSAGE_VECTORS
    if passage_vectors not in PASSAGE_VECTORS:
        raise BuildError(f"unknown passage vectors {passage_vectors!r}; choose one of: {', '.join(PASSAGE_VECTORS)}")
    if old is not None and (
        old.encoder_name != encoder_name
        or passage_vectors_of(old) != passage_vectors
        or old.meta.get("splitter") != SPLITTER_VERSION
        or old.meta.get("annotator") != ANNOTATOR_VERSION
        or old.meta.get("loader") != LOADER_VERSION
        or old.meta.get("terms") != TERMS_VERSION
        or old.meta.get("tokens") != PROJECTION_VERSION
    ):
        log("note: index settings changed (encoder, passage vectors, splitter, annotator, loaders or terms); "
            "re-embedding everything")
        old = None

    report = BuildReport(index_dir=str(index_dir), encoder=encoder_name)
    # Documents uploaded and deleted through a running server are kept as they are (index/uploads.py).
    clean_temporaries(index_dir)
    try:
        listing = corpus_with_uploads(corpus_dir, index_dir)
    except DocumentError as e:
        raise BuildError(str(e)) from None
    report.uploads, report.left_out, report.unsupported = listing.uploads, listing.left_out, listing.unsupported
    if listing.uploads:
        log(f"{len(listing.uploads)} uploaded document(s) kept from {index_dir / UPLOADS}")
    for doc_id in listing.left_out:
        log(f"left out {doc_id}: deleted through the API (upload it again to bring it back)")
    files = listing.files if select is None else [(p, d) for p, d in listing.files if select(d)]
    prepared: dict[str, PreparedDocument] | None = None
    if ingest is not None:
        ingest = ingest.for_encoder(encoder_name)
        docs, skipped, reused, prepared = ingest.read(files, old)
    else:
        docs, skipped, reused = _load_corpus(corpus_dir, old, progress, files)
    report.skipped = skipped
    for s in skipped:
        log(f"skipped {s.path}: {s.reason}")
    if not docs:
        raise BuildError(
            f"nothing to index in {corpus_dir}: no readable {', '.join(SUPPORTED_SUFFIXES)} files"
            + (f" ({len(skipped)} skipped)" if skipped else "")
            + (f"; {ignored_summary(listing.unsupported)}" if listing.unsupported else "")
        )

    return write_generation(index_dir, docs, reused, old, encoder_name, report, passage_vectors=passage_vectors,
                            progress=progress, log=log, t0=t0, prepared=prepared, compute=ingest,
                            chunk_sentences=ingest.chunk_sentences if ingest is not None else 0)


def write_generation(
    index_dir: Path,
    docs: list[Document],
    reused: set[str],
    old: LoadedIndex | None,
    encoder_name: str,
    report: BuildReport,
    *,
    encoder: Encoder | None = None,
    passage_vectors: str | None = None,
    before_publish: Callable[[], None] | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
    t0: float | None = None,
    prepared: dict[str, PreparedDocument] | None = None,
    compute: ChunkCompute | None = None,
    chunk_sentences: int = 0,
) -> BuildReport:
    """Write ``docs`` as a new generation and publish it; the caller holds the build lock.

    Documents in ``reused`` are copied from ``old`` as they are (vectors, annotations, parses);
    the others are split, embedded with ``encoder`` (default: load ``encoder_name``) and annotated;
    ``passage_vectors`` says how passages get their vectors (see PASSAGE_VECTORS; default: as ``old``).
    ``before_publish`` runs once the generation is complete on disk and before CURRENT points at
    it (an upload saves its file there, so the file is never behind the index). When nothing
    changed, the live generation stays as it is.

    ``prepared`` holds new documents already split (``prepare_document``) elsewhere, by id;
    ``compute`` embeds and annotates the batches of new documents (default: ``LocalCompute``, here);
    ``chunk_sentences`` sets the batches' size (default CHUNK_SENTENCES). Whoever computes, this
    one writer writes the generation and publishes it.
    """
    t0 = time.perf_counter() if t0 is None else t0
    if passage_vectors is None:  # an upload: as the index it goes into
        passage_vectors = passage_vectors_of(old) if old is not None else DEFAULT_PASSAGE_VECTORS
    new_docs: list[PreparedDocument] = []
    for doc in docs:
        if doc.doc_id in reused:
            report.unchanged.append(doc.doc_id)
            continue
        prev = old.docs.get(doc.doc_id) if old is not None else None
        (report.changed if prev is not None else report.added).append(doc.doc_id)
        new_docs.append(prepared[doc.doc_id] if prepared is not None else prepare_document(doc))
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
    n_new_sents = sum(len(nd.sents) for nd in new_docs)
    if new_docs and compute is not None:
        dim = compute.dim  # the encoder runs elsewhere (on a cluster)
    elif new_docs:
        t = time.perf_counter()
        if encoder is None:
            encoder = load_encoder(encoder_name)
        report.timings["load encoder"] = time.perf_counter() - t
        dim = encoder.dim
    else:
        dim = old.sentence_vectors.dim if old is not None else 384
    show = progress and n_new_sents > PROGRESS_MIN_ITEMS
    if show:
        log(f"embedding and annotating {n_new_sents} sentences of {len(new_docs)} documents")
    report.timings.update({"embed (beside annotating)": 0.0, "annotate": 0.0, "waiting for the encoder": 0.0,
                           "write records": 0.0})

    gen = new_generation_dir(index_dir)
    try:
        settings = IndexSettings(encoder_name, dim, SPLITTER_VERSION, ANNOTATOR_VERSION, TERMS_VERSION,
                                 loader=LOADER_VERSION)
        w = GenerationWriter(gen, settings)
        out = _Streams(gen, dim)
        sent_terms, pass_terms = Bm25Builder(), Bm25Builder()
        # Terms of each title and each mention, so the answer step analyzes nothing per question.
        title_terms, mention_terms = Bm25Builder(), Bm25Builder()
        old_tokens = old.token_store() if old is not None else None
        new_by_id = {nd.doc.doc_id: nd for nd in new_docs}
        ord_of = {d.doc_id: i for i, d in enumerate(docs)}
        sid = pid = 0
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=n_new_sents, desc="indexing", unit="sentence", leave=False)
        # Documents go through in consecutive batches of about CHUNK_SENTENCES new sentences: the
        # encoder embeds a batch in a worker thread while this thread annotates it with spaCy (or a
        # cluster embeds and annotates the batches: ``compute``), then the batch is written out (records to SQLite, vectors and token vectors appended to their
        # files). Nothing grows with the collection but the BM25 term ids and the row arrays.
        chunks = list(_chunks(docs, new_by_id, chunk_sentences))
        news = [[new_by_id[d.doc_id] for d in c if d.doc_id in new_by_id] for c in chunks]
        if compute is None:
            assert encoder is not None or not new_docs
            compute = LocalCompute(encoder) if encoder is not None else None
        results = iter(compute([n for n in news if n], passage_vectors == "pooled", report)) if compute else iter(())
        for chunk, chunk_new in zip(chunks, news, strict=True):
            emb: _Embedded | None = None
            mentions: list[Annotation] = []
            if chunk_new:
                emb, mentions = next(results)
            t = time.perf_counter()
            soff = poff = 0
            for doc in chunk:
                w.add_document(ord_of[doc.doc_id], doc.doc_id,
                               doc.title, doc.text, doc.content_hash,
                               (doc.date.iso, doc.date.start, doc.date.end) if doc.date else None,
                               format=doc.format, date_source=doc.date.source if doc.date else None,
                               page_starts=doc.page_starts, furniture=doc.furniture)
                if doc.doc_id not in new_by_id:
                    assert old is not None and old_tokens is not None
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
                    w.add_parses((sid_map[o], p) for o in old_sids if (p := old.stored_parse_json(o)) is not None)
                    out.sentences.append(old.sentence_vectors.vectors(slice(old_sids.start, old_sids.stop)))
                    out.passages.append(old.passage_vectors.vectors(slice(old_pids.start, old_pids.stop)))
                    if len(old_sids):
                        a, b = int(old_tokens.starts[old_sids.start]), int(old_tokens.starts[old_sids.stop])
                        out.add_tokens(np.asarray(old_tokens.tokens[a:b]),
                                       np.diff(np.asarray(old_tokens.starts[old_sids.start : old_sids.stop + 1])))
                        sent_terms.add_from(old.sentence_bm25, old_sids[0], old_sids[-1])
                        mention_terms.add_from(old.mention_terms, int(old.mention_bounds[old_sids[0]]),
                                               int(old.mention_bounds[old_sids[-1] + 1]) - 1)
                    if len(old_pids):
                        pass_terms.add_from(old.passage_bm25, old_pids[0], old_pids[-1])
                    sid += len(old_sids)
                    pid += len(old_pids)
                    continue
                nd = new_by_id[doc.doc_id]
                assert emb is not None
                ns, np_ = len(nd.sents), len(nd.passages)
                # Each sentence belongs to the first passage that contains it.
                owner = [0] * ns
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
                assert mentions is not None
                doc_mentions = mentions[soff : soff + ns]
                w.add_mentions((sid + k, m.start, m.end, m.label, m.value)
                               for k, a_ in enumerate(doc_mentions) for m in a_.mentions)
                w.add_parses((sid + k, a_.parse.to_json()) for k, a_ in enumerate(doc_mentions) if a_.parse is not None)
                title_terms.add_texts([doc.title])
                mention_terms.add_texts(
                    doc.text[s + m.start : s + m.end]
                    for (s, _), a_ in zip(nd.sents, doc_mentions, strict=True)
                    for m in a_.mentions
                )
                sent_terms.add_texts(doc.text[s:e] for s, e in nd.sents)
                pass_terms.add_texts(doc.text[s:e] for _, _, s, e in nd.passages)
                out.sentences.append(emb.sent_vecs[soff : soff + ns])
                out.passages.append(emb.pass_vecs[poff : poff + np_])
                a, b = int(emb.token_starts[soff]), int(emb.token_starts[soff + ns])
                out.add_tokens(emb.tokens[a:b], np.diff(emb.token_starts[soff : soff + ns + 1]))
                soff += ns
                poff += np_
                sid += ns
                pid += np_
            report.timings["write records"] += time.perf_counter() - t
            if bar is not None:
                bar.update(sum(len(nd.sents) for nd in chunk_new))
        if bar is not None:
            bar.close()
        t = time.perf_counter()
        w.set_meta("documents", str(len(docs)))
        w.set_meta("passages", passage_vectors)
        out.close()
        w.save_vectors("sentences", np.load(gen / "sentences.npy", mmap_mode="r"),
                       old.sentence_vectors if old is not None else None)
        w.save_tokens(np.load(gen / "tokens.npy", mmap_mode="r"), out.token_starts())
        w.set_meta("tokens", PROJECTION_VERSION)
        w.save_vectors("passages", np.load(gen / "passages.npy", mmap_mode="r"),
                       old.passage_vectors if old is not None else None)
        w.save_terms("sentences", sent_terms.build())
        w.save_terms("passages", pass_terms.build())
        w.save_terms("titles", title_terms.build())
        w.save_terms("mentions", mention_terms.build())
        w.close()
        report.timings["terms, vector indexes"] = time.perf_counter() - t
        if before_publish is not None:
            before_publish()
        publish_generation(index_dir, gen)
    except BaseException:
        shutil.rmtree(gen, ignore_errors=True)
        raise
    report.documents = len(docs)
    report.sentences = sid
    report.passages = pid
    report.seconds = time.perf_counter() - t0
    return report


class ChunkCompute(Protocol):
    """Embeds and annotates batches of new documents: one (vectors, annotations) per batch, in order."""

    @property
    def dim(self) -> int: ...

    def __call__(self, batches: list[list[PreparedDocument]], pooled_passages: bool,
                 report: BuildReport) -> Iterable[tuple[_Embedded, list[Annotation]]]: ...


class ClusterIngest(ChunkCompute, Protocol):
    """Reading and computing elsewhere (``index.cluster.RayIngest``); this process still writes."""

    chunk_sentences: int

    def for_encoder(self, name: str) -> ClusterIngest: ...

    def read(self, files: list[tuple[Path, str]], old: LoadedIndex | None
             ) -> tuple[list[Document], list[Skipped], set[str], dict[str, PreparedDocument]]: ...


def annotate_batch(batch: list[PreparedDocument]) -> list[Annotation]:
    """Mentions of a batch's sentences (each anchored on its document's date; no parses: those are
    made where read, see index.annotate)."""
    return annotate(
        [nd.doc.text[s:e] for nd in batch for s, e in nd.sents],
        [nd.doc.date.iso if nd.doc.date else None for nd in batch for _ in nd.sents],
    )


class LocalCompute:
    """In this process: the encoder embeds a batch in a worker thread while this thread annotates it
    with spaCy (the two use both cores)."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def __call__(self, batches: list[list[PreparedDocument]], pooled_passages: bool,
                 report: BuildReport) -> Iterator[tuple[_Embedded, list[Annotation]]]:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="citeqa-encoder") as pool:
            for batch in batches:
                embedded: Future[_Embedded] = pool.submit(_embed, self.encoder, batch, pooled_passages)
                t = time.perf_counter()
                mentions = annotate_batch(batch)
                report.timings["annotate"] += time.perf_counter() - t
                t = time.perf_counter()
                emb = embedded.result()
                report.timings["waiting for the encoder"] += time.perf_counter() - t
                report.timings["embed (beside annotating)"] += emb.seconds
                report.embedded_texts += emb.texts
                yield emb, mentions


def _chunks(docs: Sequence[Document], new_by_id: dict[str, PreparedDocument], size: int = 0) -> Iterator[list[Document]]:
    """Consecutive runs of ``docs`` holding about ``size`` (default CHUNK_SENTENCES) new sentences each
    (a document is never split; documents copied from the old index cost nothing and ride along)."""
    size = size or CHUNK_SENTENCES
    chunk: list[Document] = []
    n = 0
    for d in docs:
        chunk.append(d)
        nd = new_by_id.get(d.doc_id)
        n += len(nd.sents) if nd is not None else 0
        if n >= size:
            yield chunk
            chunk, n = [], 0
    if chunk:
        yield chunk


@dataclass
class _Embedded:
    """The vectors of one batch of new documents, in their sentence and passage order."""

    sent_vecs: np.ndarray  # [sentences, dim]
    pass_vecs: np.ndarray  # [passages, dim]
    tokens: np.ndarray  # int8 [tokens, TOKEN_DIM], every sentence's projected token vectors in order
    token_starts: np.ndarray  # [sentences + 1]
    texts: int  # distinct texts encoded
    seconds: float


def _embed(encoder: Encoder, new_docs: list[PreparedDocument], pooled_passages: bool) -> _Embedded:
    """Sentences in one pass that also yields their token vectors (kept, projected, for alignment);
    then the passages that are not a sentence already: encoded, or (``pooled_passages``) the mean of
    their sentences' token vectors. Each distinct text is encoded once."""
    t = time.perf_counter()
    sent_texts = [nd.doc.text[s:e] for nd in new_docs for s, e in nd.sents]
    pass_texts = [nd.doc.text[s:e] for nd in new_docs for _, _, s, e in nd.passages]
    sent_unique = list(dict.fromkeys(sent_texts))
    pooled, toks, _ = encoder.encode_tokens(sent_unique)
    sent_row = {text: i for i, text in enumerate(sent_unique)}
    # One projection for the whole batch (a matrix product per sentence cost more than the encoder's
    # share of some batches); the rows are the same up to float rounding.
    lengths = np.fromiter((len(x) for x in toks), np.int64, count=len(toks))
    flat = np.concatenate(toks) if toks else np.zeros((0, encoder.dim), np.float32)
    uniq_tokens = quantize(project(flat))
    uniq_starts = np.zeros(len(toks) + 1, np.int64)
    np.cumsum(lengths, out=uniq_starts[1:])
    rows = [sent_row[x] for x in sent_texts]
    starts = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths[rows], out=starts[1:])
    tokens = (
        np.concatenate([uniq_tokens[uniq_starts[r] : uniq_starts[r + 1]] for r in rows])
        if rows else np.zeros((0, TOKEN_DIM), np.int8)
    )
    pass_unique = [x for x in dict.fromkeys(pass_texts) if x not in sent_row]
    pass_row = {text: i for i, text in enumerate(pass_unique)}
    if pooled_passages:
        pass_pooled = np.zeros((len(pass_unique), encoder.dim), np.float32)
        sums = np.add.reduceat(flat, uniq_starts[:-1], axis=0) if len(flat) else np.zeros((0, encoder.dim), np.float32)
        sums[lengths == 0] = 0.0  # reduceat gives the next row for an empty range
        for nd in new_docs:
            local = [sent_row[nd.doc.text[s:e]] for s, e in nd.sents]
            for first, last, s, e in nd.passages:
                r = pass_row.get(nd.doc.text[s:e])
                if r is None:
                    continue
                members = local[first : last + 1]
                v = sums[members].sum(0) / max(int(lengths[members].sum()), 1)
                pass_pooled[r] = v / max(float(np.linalg.norm(v)), 1e-12)
        encoded = 0
    else:
        pass_pooled = encoder.encode(pass_unique)
        encoded = len(pass_unique)
    empty = np.zeros((0, encoder.dim), np.float32)
    sent_vecs = pooled[rows] if rows else empty
    pass_vecs = (
        np.stack([pooled[sent_row[x]] if x in sent_row else pass_pooled[pass_row[x]] for x in pass_texts])
        if pass_texts else empty
    )
    return _Embedded(sent_vecs, pass_vecs, tokens, starts, len(sent_unique) + encoded, time.perf_counter() - t)


class _Streams:
    """The generation's vector files, appended to as batches are written (see NpyAppender)."""

    def __init__(self, gen: Path, dim: int) -> None:
        self.sentences = NpyAppender(gen / "sentences.npy", dim, np.float32)
        self.passages = NpyAppender(gen / "passages.npy", dim, np.float32)
        self.tokens = NpyAppender(gen / "tokens.npy", TOKEN_DIM, np.int8)
        self._lengths: list[np.ndarray] = []

    def add_tokens(self, rows: np.ndarray, lengths: np.ndarray) -> None:
        self.tokens.append(rows)
        self._lengths.append(np.asarray(lengths, np.int64))

    def token_starts(self) -> np.ndarray:
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        starts = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=starts[1:])
        return starts

    def close(self) -> None:
        for a in (self.sentences, self.passages, self.tokens):
            a.close()
