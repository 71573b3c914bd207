"""The engine holder: the one engine of a server process, swapped whole when the index changes,
and the watcher thread that follows ``CURRENT`` on disk.

Routes get the holder as a FastAPI dependency (``Holder``), from ``app.state.holder``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from starlette.exceptions import HTTPException

from index import live
from index.build import BuildError, IndexBusyError
from index.documents import Document, DocumentError
from index.encoder import load_encoder
from index.loaded import LoadedIndex
from index.shards import ShardedIndex, after_change, home_of, index_version, open_index, shard_dir, version_of
from index.store import NoIndexError, UnusableIndexError
from index.uploads import leftovers, pending_changes
from qa.engine import Engine
from web.batching import BatchingEncoder

# An upload or a deletion waits its turn behind the ones this server is already applying (each
# writes a new generation: seconds each on a busy 2-core machine, so three at once took more than
# 10 s here); only a longer queue answers 503 with Retry-After.
QUEUE_WAIT_SECONDS = 60.0


class IndexBusy(Exception):
    """Another writer holds the index; the message says to retry."""


class EngineHolder:
    """The one engine of this process, or why there is none; swapped whole when the index changes.

    A request reads ``holder.require()`` once and uses that engine to the end, so it never sees
    half an index: a new generation (published by an upload here, or by ``qa index`` in another
    process) is loaded beside the old one and then swapped in with one assignment. A watcher
    thread reads CURRENT every ``WATCH_SECONDS``; uploads and deletions swap before they answer.
    """

    RETRY_SECONDS = 2.0
    WATCH_SECONDS = 1.0

    def __init__(self, index_dir: Path, engine: Engine | None = None, *, batch_questions: bool = True,
                 watch: bool = True, opener: Callable[[Path], LoadedIndex] = open_index) -> None:
        self.index_dir = index_dir
        self.opener = opener  # how the index is opened (its shards searched on Ray Serve: index/serving.py)
        self.batch_questions = batch_questions
        self.engine = self._serving(engine) if engine is not None else None
        self.error: str | None = None
        self.watch_error: str | None = None  # why the last change on disk could not be loaded
        self._lock = threading.Lock()
        self._swap = threading.RLock()  # one load-and-swap at a time
        self._write = threading.Lock()  # one upload or deletion at a time in this process
        self._tried_at = 0.0
        # Documents changed while serving, by (source, action): ("api", "added"), ("watch", "deleted"), …
        self.changes: Counter[tuple[str, str]] = Counter()
        if engine is None:
            self._open()
        self._reconcile()
        if watch:
            threading.Thread(target=_watch, args=(weakref.ref(self), self.WATCH_SECONDS),
                             name="citeqa-index-watch", daemon=True).start()

    def _serving(self, engine: Engine) -> Engine:
        """The engine as this server runs it: concurrent requests' questions encoded in one batch
        (a new Engine over the same loaded index, so a caller's engine is left as it was)."""
        if not self.batch_questions or isinstance(engine.encoder, BatchingEncoder):
            return engine
        return Engine(engine.index, BatchingEncoder(engine.encoder), reader=engine.reader.name)

    def _open(self) -> None:
        self._tried_at = time.monotonic()
        try:
            self.engine = self._serving(Engine.open(self.index_dir, opener=self.opener))
            self.error = None
        except NoIndexError:
            self.error = f"There is no index at {self.index_dir} yet."
        except UnusableIndexError as e:
            self.error = str(e)

    def get(self) -> Engine | None:
        # A user who builds the index while the server runs should not have to restart it.
        if self.engine is None and time.monotonic() - self._tried_at > self.RETRY_SECONDS:
            with self._lock:
                if self.engine is None and index_version(self.index_dir) is not None:
                    self._open()
                self._tried_at = time.monotonic()
        return self.engine

    def build_hint(self) -> str:
        return f"qa index corpus --index {self.index_dir}"

    def require(self) -> Engine:
        engine = self.get()
        if engine is None:
            raise HTTPException(503, f"{self.error} Build it with: {self.build_hint()}")
        return engine

    # --- following the index on disk --------------------------------------------------------------
    def refresh(self) -> bool:
        """Load the live generation if it is not the one being served, then swap; True if swapped.

        Cheap when nothing changed (one small file read). A generation that cannot be loaded (a
        build deleted it meanwhile, or it is damaged) leaves the served engine as it is.
        """
        with self._swap:
            eng = self.engine
            if eng is None:
                if index_version(self.index_dir) is None:
                    return False
                with self._lock:
                    self._open()
                return self.engine is not None
            # One generation, or every shard's of a sharded index.
            version = index_version(self.index_dir)
            if version is None or version == version_of(eng.index):
                return False
            try:
                index = self.opener(self.index_dir)
            except UnusableIndexError as e:
                self.watch_error = str(e)
                return False
            if version_of(index) == version_of(eng.index):
                return False
            if index.encoder_name == eng.encoder.name:
                new = Engine(index, eng.encoder, reader=eng.reader.name)  # the loaded models serve it too
            else:  # rebuilt with another encoder: load that one (rare; `qa index --encoder … --rebuild`)
                new = self._serving(Engine(index, load_encoder(index.encoder_name), reader=eng.reader.name))
            self.engine = new  # one assignment: requests hold the engine they started with
            self.watch_error = None
            return True

    def _reconcile(self) -> None:
        """Publish what a killed server saved but did not publish (see index/uploads.py)."""
        eng = self.engine
        if eng is None:
            return
        # A sharded index keeps each shard's uploads and deletions in that shard's folder.
        places = ([(shard_dir(self.index_dir, i), s) for i, s in enumerate(eng.index.shards)]
                  if isinstance(eng.index, ShardedIndex) else [(self.index_dir, eng.index)])
        applied = [self._reconcile_one(eng, where, index) for where, index in places]
        if isinstance(eng.index, ShardedIndex) and any(applied):
            try:
                after_change(self.index_dir, _log)
            except (BuildError, UnusableIndexError, OSError) as e:
                _log(f"could not write the collection statistics of {self.index_dir}: {e}")
            self.refresh()

    def _reconcile_one(self, eng: Engine, where: Path, index) -> bool:
        try:
            if not pending_changes(index) and not leftovers(where):
                return False
            # Briefly: a `qa index` running now holds the lock, and finishes the job itself.
            report = live.apply_pending(where, eng.encoder, hint=index, log=_log, wait=1.0)
        except (BuildError, UnusableIndexError, DocumentError, OSError) as e:
            _log(f"could not apply the uploads and deletions saved in {where}: {e}")
            return False
        if report is not None:
            _log(f"applied uploads and deletions saved before a restart: {len(report.added)} added, "
                 f"{len(report.changed)} replaced, {len(report.removed)} removed")
            self.refresh()
        return report is not None

    # --- changing the index -------------------------------------------------------------------
    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold this process's one write (an upload, a deletion, a watched folder's sync)."""
        return self._writing()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        if not self._write.acquire(timeout=QUEUE_WAIT_SECONDS):
            raise IndexBusy("another upload or deletion is still being applied; try again in a few seconds")
        try:
            yield
        finally:
            self._write.release()

    def add(self, doc: Document, data: bytes) -> live.Change:
        """Add or replace ``doc``; the next request sees it."""
        eng = self.require()
        with self._writing():
            eng = self.engine or eng
            where, hint = home_of(self.index_dir, eng.index, doc.doc_id)  # a sharded index: the document's shard
            try:
                change = live.add_document(where, doc, data, eng.encoder, hint=hint)
                if where != self.index_dir:
                    after_change(self.index_dir, _log)
            except IndexBusyError as e:
                raise IndexBusy(str(e)) from None
            self.refresh()
            self.changes["api", change.action] += 1
        return change

    def delete(self, doc_id: str) -> live.Change:
        eng = self.require()
        with self._writing():
            eng = self.engine or eng
            where, hint = home_of(self.index_dir, eng.index, doc_id)
            try:
                change = live.delete_document(where, doc_id, eng.encoder, hint=hint)
                if where != self.index_dir:
                    after_change(self.index_dir, _log)
            except IndexBusyError as e:
                raise IndexBusy(str(e)) from None
            self.refresh()
            self.changes["api", change.action] += 1
        return change


def _watch(ref: weakref.ReferenceType[EngineHolder], every: float) -> None:
    """Follow CURRENT while the holder lives (a daemon thread: it ends with the server)."""
    while True:
        time.sleep(every)
        holder = ref()
        if holder is None:
            return
        try:
            holder.refresh()
        except Exception as e:  # noqa: BLE001 - the watcher must outlive any one bad generation
            holder.watch_error = f"{type(e).__name__}: {e}"
        del holder


def _log(msg: str) -> None:
    print(f"qa: {msg}", file=sys.stderr, flush=True)


def get_holder(request: Request) -> EngineHolder:
    """The app's holder (``create_app`` puts it on ``app.state``)."""
    holder: EngineHolder = request.app.state.holder
    return holder


Holder = Annotated[EngineHolder, Depends(get_holder)]
