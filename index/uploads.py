"""Documents added and removed while a server runs: kept in the index folder, next to the generations.

Layout::

    INDEX_DIR/
      uploads/<doc_id>     each file uploaded through POST /api/documents, byte for byte
      deleted.json         ids deleted through DELETE /api/documents/{doc_id} (a sorted JSON list)

They belong to the index, not to the corpus folder it was built from: that folder is the user's
own (it may be read-only, or shared), so the server never writes or deletes anything in it. A
later ``qa index CORPUS`` indexes the corpus *and* ``uploads/``, an upload replacing a corpus file
of the same id, and leaves the deleted ids out, so a rebuild neither drops an upload nor brings a
deleted document back. Uploading a deleted id again brings it back (the upload wins).

Crash safety comes from the order of writes, each one atomic (temporary file, fsync, rename):

- upload: save the file (it clears the id's deletion after), then publish the generation;
- delete: record the deletion (it removes the upload after), then publish the generation.

So the user's intent is on disk before the index shows it. A server killed between the two steps
leaves a change that is on disk but not in the index; ``pending_changes`` finds it and the server
applies it when it starts. Between the steps of an upload, both the file and the deletion may
exist for a moment: an upload always wins, so that state means "present".
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from index.documents import SUPPORTED_SUFFIXES, DocumentError, content_hash, iter_files, read_file
from index.loaded import LoadedIndex
from index.store import fsync_dir

UPLOADS = "uploads"
DELETED = "deleted.json"
MAX_NAME_BYTES = 255  # a file name on every common file system

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class BadNameError(ValueError):
    """An uploaded file's name that cannot be a document id; the message says why."""


def upload_doc_id(filename: str | None) -> str:
    """The document id of an uploaded file: its name, without any folder part a client sent.

    Refuses names that try to leave the uploads folder (``..``), hidden names (``.env``: a folder
    scan skips them, so the upload would vanish at the next ``qa index``), control characters and
    names too long for a file system::

        >>> upload_doc_id("C:\\\\Users\\\\me\\\\notes.md")
        'notes.md'
    """
    if not filename or not filename.strip():
        raise BadNameError("the uploaded file has no name; send it as a file with a name such as notes.txt")
    parts = filename.replace("\\", "/").split("/")
    if ".." in parts:
        raise BadNameError(f"invalid file name {filename[:80]!r}: it tries to leave its folder")
    name = parts[-1].strip()
    if not name or name in (".", ".."):
        raise BadNameError(f"invalid file name {filename[:80]!r}: it names a folder, not a file")
    if _UNSAFE.search(name):
        raise BadNameError(f"invalid file name {filename[:80]!r}: it holds control characters")
    if name.startswith("."):
        raise BadNameError(f"invalid file name {name[:80]!r}: hidden files (starting with a dot) are not indexed")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise BadNameError(f"the file name is longer than {MAX_NAME_BYTES} bytes; rename the file")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadNameError(f"invalid file name {name[:80]!r}: not valid Unicode") from None
    return name


def uploads_dir(index_dir: Path) -> Path:
    return index_dir / UPLOADS


def upload_path(index_dir: Path, doc_id: str) -> Path:
    return uploads_dir(index_dir) / doc_id


def uploaded_ids(index_dir: Path) -> dict[str, Path]:
    """doc_id → file of every upload (the folder scan of ``qa index``: hidden temporaries skipped)."""
    folder = uploads_dir(index_dir)
    if not folder.is_dir():
        return {}
    return {doc_id: path for path, doc_id in iter_files(folder)}


def read_deleted(index_dir: Path) -> set[str]:
    try:
        ids = json.loads((index_dir / DELETED).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set()
    except (OSError, ValueError) as e:
        raise DocumentError(f"{index_dir / DELETED} is unreadable ({e}); delete it to forget API deletions") from None
    return {str(i) for i in ids} if isinstance(ids, list) else set()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _write_deleted(index_dir: Path, ids: set[str]) -> None:
    _write_atomic(index_dir / DELETED, json.dumps(sorted(ids), ensure_ascii=False, indent=0).encode("utf-8"))


def save_upload(index_dir: Path, doc_id: str, data: bytes) -> None:
    """Keep an uploaded file (atomically), then forget an earlier deletion of its id."""
    folder = uploads_dir(index_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / doc_id, data)
    deleted = read_deleted(index_dir)
    if doc_id in deleted:
        _write_deleted(index_dir, deleted - {doc_id})


def record_deletion(index_dir: Path, doc_id: str) -> None:
    """Remember that ``doc_id`` was deleted (atomically), then drop its uploaded file, if any."""
    _write_deleted(index_dir, read_deleted(index_dir) | {doc_id})
    path = upload_path(index_dir, doc_id)
    if path.is_file():
        path.unlink()
        fsync_dir(path.parent)


def leftovers(index_dir: Path) -> bool:
    """Did a killed writer leave half-written files (a generation, an upload) behind?"""
    ups = uploads_dir(index_dir)
    return any(index_dir.glob("gen-*.tmp")) or any(index_dir.glob(".*.tmp-*")) or (
        ups.is_dir() and any(ups.glob(".*.tmp-*")))


def clean_temporaries(index_dir: Path) -> None:
    """Half-written files of a killed server (their final names were never taken)."""
    for folder in (index_dir, uploads_dir(index_dir)):
        if folder.is_dir():
            for p in folder.glob(".*.tmp-*"):
                p.unlink(missing_ok=True)


@dataclass(frozen=True)
class CorpusFiles:
    """What ``qa index CORPUS`` reads: (path, doc_id) pairs, and how uploads and deletions shaped them."""

    files: list[tuple[Path, str]]
    uploads: list[str]  # ids read from uploads/ (replacing a corpus file of that id, or new)
    left_out: list[str]  # corpus files deleted through the API
    unsupported: list[str] = field(default_factory=list)  # corpus files of a type citeqa does not read


def corpus_with_uploads(corpus_dir: Path, index_dir: Path) -> CorpusFiles:
    """The corpus folder's files, with the index folder's uploads and deletions applied."""
    uploads = uploaded_ids(index_dir)
    deleted = read_deleted(index_dir) - set(uploads)
    inside = _inside(index_dir, corpus_dir)
    files: list[tuple[Path, str]] = []
    left_out: list[str] = []
    unsupported: list[str] = []
    for path, doc_id in iter_files(corpus_dir, unsupported):
        if inside is not None and (doc_id == inside or doc_id.startswith(inside + "/")):
            continue  # the index folder lives inside the corpus: its uploads are read below, once
        if doc_id in uploads:
            continue
        if doc_id in deleted:
            left_out.append(doc_id)
            continue
        files.append((path, doc_id))
    files += [(path, doc_id) for doc_id, path in sorted(uploads.items())]
    if inside is not None:
        unsupported = [d for d in unsupported if not (d == inside or d.startswith(inside + "/"))]
    return CorpusFiles(files, sorted(uploads), left_out, unsupported)


def _inside(index_dir: Path, corpus_dir: Path) -> str | None:
    try:
        return index_dir.resolve().relative_to(corpus_dir.resolve()).as_posix()
    except ValueError:
        return None


@dataclass(frozen=True)
class Pending:
    """Changes on disk (uploads/, deleted.json) that the live index does not show yet."""

    uploads: list[str]  # ids whose uploaded file differs from the indexed document (or is not indexed)
    deletions: list[str]  # deleted ids still in the index

    def __bool__(self) -> bool:
        return bool(self.uploads or self.deletions)


def pending_changes(index: LoadedIndex) -> Pending:
    """What a server killed between saving a change and publishing it left to do."""
    index_dir = index.index_dir
    uploads = uploaded_ids(index_dir)
    todo: list[str] = []
    for doc_id, path in sorted(uploads.items()):
        rec = index.docs.get(doc_id)
        try:
            h = content_hash(read_file(path))
        except DocumentError:
            h = None  # unreadable: reported when it is applied
        if rec is None or rec.content_hash != h:
            todo.append(doc_id)
    deletions = sorted(d for d in read_deleted(index_dir) - set(uploads) if d in index.docs)
    return Pending(todo, deletions)


def is_supported(doc_id: str) -> bool:
    return doc_id.lower().endswith(SUPPORTED_SUFFIXES)

