"""Keeping an index in step with a folder while a server runs (``qa serve --watch CORPUS``).

``FolderWatch`` polls the folder (file names, sizes and modification times; no file is read) and
says when a change has *settled*: the folder looked the same for ``settle`` seconds, so a file
still being copied is not read half-way. ``sync_folder`` then applies what changed — new,
changed and deleted files — as ``qa index CORPUS`` would (the same listing, with the index
folder's uploads and API deletions, the same incremental generation, the same writer lock),
but with the server's loaded encoder, and publishes the new generation atomically.

Polling, not inotify: it needs no extra package, works on network and container file systems
where inotify does not, and costs a directory walk every half second.

Example::

    >>> watch = FolderWatch(Path("corpus"), settle=1.0)          # doctest: +SKIP
    >>> if watch.settled():                                       # doctest: +SKIP
    ...     report = sync_folder(Path(".citeqa"), Path("corpus"), encoder)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from index.build import BuildError, BuildReport, _load_corpus, build_lock, write_generation
from index.documents import DocumentError, Skipped
from index.encoder import Encoder
from index.live import WAIT_SECONDS, _live
from index.loaded import LoadedIndex
from index.uploads import corpus_with_uploads

SETTLE_SECONDS = 1.0
POLL_SECONDS = 0.5
Snapshot = dict[str, tuple[int, int]]  # doc_id → (size, modification time in ns)


def snapshot(corpus_dir: Path) -> Snapshot:
    """What the folder holds, cheaply: every file's size and modification time (unsupported types too,
    so a rename from .tmp to .txt counts as a change)."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(corpus_dir, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                st = None  # a broken link, or a file gone meanwhile: its name still counts
            out[os.path.relpath(path, corpus_dir)] = (st.st_size, st.st_mtime_ns) if st else (-1, -1)
    return out


class FolderWatch:
    """When has the folder changed and then stayed the same for ``settle`` seconds?"""

    def __init__(self, corpus_dir: Path, settle: float = SETTLE_SECONDS) -> None:
        self.corpus_dir = corpus_dir
        self.settle = settle
        self._seen: Snapshot | None = None
        self._seen_at = 0.0
        self._applied: Snapshot | None = None  # None: nothing applied yet, so the first look syncs

    def settled(self) -> bool:
        """True when the folder differs from what was last applied and has been still for ``settle`` s."""
        now = time.monotonic()
        snap = snapshot(self.corpus_dir)
        if snap != self._seen:
            self._seen, self._seen_at = snap, now
            return False
        if snap == self._applied or now - self._seen_at < self.settle:
            return False
        # A file modified within the settle delay (by its own clock) may still be written to.
        age = time.time() - max((m for _, m in snap.values()), default=0) / 1e9
        return not -self.settle < age < self.settle  # (a clock far ahead: stillness alone decides)

    def applied(self) -> None:
        """The folder as last seen is in the index now."""
        self._applied = self._seen


@dataclass
class SyncReport:
    report: BuildReport
    skipped: list[Skipped] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    note: str | None = None  # why nothing was applied, when nothing was

    @property
    def changed(self) -> bool:
        r = self.report
        return bool(r.added or r.changed or r.removed)


def sync_folder(index_dir: Path, corpus_dir: Path, encoder: Encoder, *, hint: LoadedIndex | None = None,
                wait: float = WAIT_SECONDS) -> SyncReport:
    """Make the index hold what ``corpus_dir`` holds now (plus the index folder's uploads, minus its
    API deletions); only new and changed files are read and embedded. An empty folder leaves the
    index as it is (an index cannot be empty)."""
    if not corpus_dir.is_dir():
        raise BuildError(f"the watched folder {corpus_dir} does not exist or is not a folder")
    with build_lock(index_dir, wait=wait):
        old = _live(index_dir, hint, encoder)
        try:
            listing = corpus_with_uploads(corpus_dir, index_dir)
        except DocumentError as e:
            raise BuildError(str(e)) from None
        docs, skipped, reused = _load_corpus(corpus_dir, old, False, listing.files)
        report = BuildReport(index_dir=str(index_dir), encoder=old.encoder_name, skipped=skipped,
                             unsupported=listing.unsupported)
        if not docs:
            return SyncReport(report, skipped, listing.unsupported,
                              note=f"{corpus_dir} holds no readable document; the index is left as it is")
        write_generation(index_dir, docs, reused, old, old.encoder_name, report, encoder=encoder,
                         progress=False, log=lambda m: None)
    return SyncReport(report, skipped, listing.unsupported)
