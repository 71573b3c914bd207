"""The watched folder (``qa serve --watch CORPUS``): a thread that applies the folder's settled
changes through the holder (index/watch.py does the looking and the indexing), and what
``/healthz`` reports of it: the last sync and the files it skipped, with the reason."""

from __future__ import annotations

import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index.annotate import annotate
from index.build import BuildError, IndexBusyError, build_index
from index.documents import DocumentError
from index.store import UnusableIndexError, current_generation
from index.watch import POLL_SECONDS, SETTLE_SECONDS, FolderWatch, SyncReport, sync_folder
from web.holder import EngineHolder, IndexBusy


@dataclass
class WatchStatus:
    folder: str
    settle_seconds: float
    last_sync: str | None = None  # ISO time of the last sync that completed (changes or not)
    last_change: str | None = None  # ISO time of the last sync that changed the index
    last_result: str | None = None  # one line: what the last sync did
    syncs: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"} of the last sync
    error: str | None = None  # why the last attempt failed (the index is unchanged)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def apply_sync(holder: EngineHolder, corpus: Path, status: WatchStatus) -> SyncReport | None:
    """One sync of the folder into the index, as one of the holder's writes; None when it failed."""
    eng = holder.get()
    if eng is None and current_generation(holder.index_dir) is None:
        return _first_build(holder, corpus, status)
    if eng is None:
        status.error = f"the index at {holder.index_dir} cannot be loaded: {holder.error}"
        return None
    try:
        with holder.writing():
            eng = holder.engine or eng
            result = sync_folder(holder.index_dir, corpus, eng.encoder, hint=eng.index)
            holder.refresh()
    except (IndexBusy, IndexBusyError) as e:
        status.error = f"waiting for another writer: {e}"
        return None
    except (BuildError, UnusableIndexError, DocumentError, OSError) as e:
        status.error = f"{type(e).__name__}: {e}".splitlines()[0]
        return None
    _done(holder, corpus, status, result)
    return result


def _done(holder: EngineHolder, corpus: Path, status: WatchStatus, result: SyncReport) -> None:
    r = result.report
    for action, ids in (("added", r.added), ("replaced", r.changed), ("deleted", r.removed)):
        if ids:
            holder.changes["watch", action] += len(ids)
    status.syncs += 1
    status.last_sync = _now()
    status.error = None
    status.skipped = [{"path": s.path, "reason": s.reason} for s in result.skipped]
    status.skipped += [{"path": p, "reason": "unsupported file type"} for p in result.unsupported]
    if result.changed:
        status.last_change = status.last_sync
        status.last_result = (f"{len(r.added)} added, {len(r.changed)} changed, {len(r.removed)} removed "
                              f"in {r.seconds:.2f}s")
        print(f"qa: {corpus}: {status.last_result}", file=sys.stderr, flush=True)
    else:
        status.last_result = result.note or "no change to the index"


def start_watch(holder: EngineHolder, corpus: Path, *, settle: float = SETTLE_SECONDS,
                poll: float = POLL_SECONDS) -> WatchStatus:
    """Watch ``corpus`` for as long as the holder lives (a daemon thread); returns its status."""
    status = WatchStatus(str(corpus), settle)
    watch = FolderWatch(corpus, settle)
    threading.Thread(target=_loop, args=(weakref.ref(holder), corpus, watch, status, poll),
                     name="citeqa-folder-watch", daemon=True).start()
    return status


def _loop(ref: weakref.ReferenceType[EngineHolder], corpus: Path, watch: FolderWatch, status: WatchStatus,
          poll: float) -> None:
    # The first new file would load spaCy (seconds): load it now, so a change is indexed in about a second.
    try:
        annotate(["The watched folder is ready."], [None])
    except Exception as e:  # noqa: BLE001 - a sync reports the same failure with its file
        status.error = f"cannot load the annotator: {e}".splitlines()[0]
    while True:
        holder = ref()
        if holder is None:
            return
        try:
            if watch.settled() and apply_sync(holder, corpus, status) is not None:
                watch.applied()
        except Exception as e:  # noqa: BLE001 - the watcher must outlive any one bad file or sync
            status.error = f"{type(e).__name__}: {e}".splitlines()[0]
        del holder
        time.sleep(poll)


def _first_build(holder: EngineHolder, corpus: Path, status: WatchStatus) -> SyncReport | None:
    """No index yet: build it from the folder, as `qa index CORPUS --index DIR` would."""
    try:
        with holder.writing():
            report = build_index(corpus, holder.index_dir, progress=False, log=lambda m: None)
            holder.refresh()
    except (IndexBusy, BuildError, OSError) as e:
        status.error = f"could not build the index from {corpus}: {e}".splitlines()[0]
        return None
    result = SyncReport(report, report.skipped, report.unsupported)
    _done(holder, corpus, status, result)
    return result
