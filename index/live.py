"""Changing the index from a running server: add, replace or delete one document at a time.

Each change writes a complete new generation with ``build.write_generation`` (every other
document copied with its vectors and annotations; only an uploaded document is split, embedded with
the server's already loaded encoder, and annotated) and publishes it atomically, holding the same
writer lock as ``qa index``, so writers take turns across processes. Where uploaded files live and
the order of writes that makes a killed server safe are in index/uploads.py.

Example::

    >>> from index.documents import load_bytes                          # doctest: +SKIP
    >>> data = b"Harbour report\\nThe new pier opened on 3 May 2024."
    >>> add_document(Path(".citeqa"), load_bytes(data, "pier.txt"), data, encoder).action
    'added'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from index.annotate import ANNOTATOR_VERSION
from index.build import BuildError, BuildReport, build_lock, write_generation
from index.documents import LOADER_VERSION, Document, DocumentError, load_bytes, read_file
from index.encoder import Encoder
from index.loaded import LoadedIndex
from index.split import SPLITTER_VERSION
from index.store import current_generation, remove_unpublished
from index.uploads import clean_temporaries, pending_changes, record_deletion, save_upload, uploaded_ids

# How long a change waits for another writer (a `qa index`, another upload) before giving up.
WAIT_SECONDS = 10.0


class LiveUpdateError(BuildError):
    """A change that cannot be made to this index as it is; the message says why and what to do."""


class UnknownDocumentError(LiveUpdateError):
    pass


ChangeAction = Literal["added", "replaced", "unchanged", "deleted"]


@dataclass(frozen=True)
class Change:
    """One applied change: what happened to which document, and the generation that shows it."""

    doc_id: str
    action: ChangeAction
    generation: str  # folder name of the live generation afterwards
    report: BuildReport
    seconds: float


def _live(index_dir: Path, hint: LoadedIndex | None, encoder: Encoder) -> LoadedIndex:
    """The live generation (the caller holds the lock): ``hint`` when it still is the live one."""
    remove_unpublished(index_dir)  # a killed writer's leftovers; no writer runs while we hold the lock
    clean_temporaries(index_dir)
    gen = current_generation(index_dir)
    old = hint if hint is not None and gen is not None and hint.gen_dir == gen else LoadedIndex.open(index_dir)
    if old.encoder_name != encoder.name:
        raise LiveUpdateError(
            f"the index at {index_dir} was rebuilt with encoder {old.encoder_name!r} while this server uses "
            f"{encoder.name!r}; the server switches to it within seconds — try again then"
        )
    if (old.meta.get("splitter"), old.meta.get("annotator"), old.meta.get("loader")) != (
        SPLITTER_VERSION, ANNOTATOR_VERSION, LOADER_VERSION
    ):
        raise LiveUpdateError(
            f"the index at {index_dir} was built by another version of citeqa; update it first: "
            f"qa index CORPUS --index {index_dir}"
        )
    return old


def _publish(index_dir: Path, docs: list[Document], reused: set[str], old: LoadedIndex, encoder: Encoder,
             before_publish: Callable[[], None] | None) -> tuple[BuildReport, str]:
    report = BuildReport(index_dir=str(index_dir), encoder=old.encoder_name)
    write_generation(index_dir, docs, reused, old, old.encoder_name, report, encoder=encoder,
                     before_publish=before_publish, progress=False, log=lambda m: None)
    gen = current_generation(index_dir)
    return report, gen.name if gen is not None else ""


def add_document(index_dir: Path, doc: Document, data: bytes, encoder: Encoder, *,
                 hint: LoadedIndex | None = None, wait: float = WAIT_SECONDS) -> Change:
    """Add ``doc`` (the document of the uploaded bytes ``data``), or replace the one with its id.

    The file is kept in ``INDEX_DIR/uploads`` before the generation that holds it is published.
    Uploading the same bytes again changes nothing.
    """
    t0 = time.perf_counter()
    with build_lock(index_dir, wait=wait):
        old = _live(index_dir, hint, encoder)
        prev = old.docs.get(doc.doc_id)
        if prev is not None and prev.content_hash == doc.content_hash:
            if doc.doc_id not in uploaded_ids(index_dir):
                save_upload(index_dir, doc.doc_id, data)  # from now on the upload is the document's source
            report = BuildReport(index_dir=str(index_dir), encoder=old.encoder_name, unchanged=[doc.doc_id],
                                 documents=len(old.docs), sentences=old.n_sentences(), passages=old.n_passages())
            return Change(doc.doc_id, "unchanged", old.gen_dir.name, report, time.perf_counter() - t0)
        docs = [doc if rec.doc_id == doc.doc_id else rec.as_document() for rec in old.docs.values()]
        if prev is None:
            docs.append(doc)
        reused = set(old.docs) - {doc.doc_id}
        report, gen = _publish(index_dir, docs, reused, old, encoder,
                               lambda: save_upload(index_dir, doc.doc_id, data))
    return Change(doc.doc_id, "replaced" if prev is not None else "added", gen, report, time.perf_counter() - t0)


def delete_document(index_dir: Path, doc_id: str, encoder: Encoder, *,
                    hint: LoadedIndex | None = None, wait: float = WAIT_SECONDS) -> Change:
    """Remove ``doc_id`` from the index; the deletion is recorded before the generation is published."""
    t0 = time.perf_counter()
    with build_lock(index_dir, wait=wait):
        old = _live(index_dir, hint, encoder)
        if doc_id not in old.docs:
            raise UnknownDocumentError(f"no document {doc_id[:80]!r} in this index; GET /api/documents lists them")
        if len(old.docs) == 1:
            raise LiveUpdateError(
                f"{doc_id[:80]!r} is the last document of the index, which cannot be empty; upload another first"
            )
        docs = [rec.as_document() for rec in old.docs.values() if rec.doc_id != doc_id]
        report, gen = _publish(index_dir, docs, {d.doc_id for d in docs}, old, encoder,
                               lambda: record_deletion(index_dir, doc_id))
    return Change(doc_id, "deleted", gen, report, time.perf_counter() - t0)


def apply_pending(index_dir: Path, encoder: Encoder, *, hint: LoadedIndex | None = None,
                  wait: float = WAIT_SECONDS, log: Callable[[str], None] = print) -> BuildReport | None:
    """Publish the uploads and deletions on disk that the live index does not show yet (a server
    killed between saving a change and publishing it); None when there are none."""
    with build_lock(index_dir, wait=wait):
        old = _live(index_dir, hint, encoder)
        pending = pending_changes(old)  # leftovers of a killed writer are gone now (see _live)
        if not pending:
            return None
        uploads = uploaded_ids(index_dir)
        new: dict[str, Document] = {}
        for doc_id in pending.uploads:
            try:
                new[doc_id] = load_bytes(read_file(uploads[doc_id]), doc_id)
            except DocumentError as e:
                log(f"skipped uploaded file {uploads[doc_id]}: {e}")
        gone = set(pending.deletions)
        fresh = set(new)
        docs = [new.pop(rec.doc_id) if rec.doc_id in new else rec.as_document() for rec in old.docs.values()
                if rec.doc_id not in gone]
        docs += new.values()
        reused = {d.doc_id for d in docs} - fresh
        if not docs:
            log(f"not applying the deletions in {index_dir}: the index would be empty")
            return None
        report, _ = _publish(index_dir, docs, reused, old, encoder, None)
    return report
