"""Question encodings of concurrent requests, run as one batch.

Encoding the question is most of an answer's CPU time, and a transformer encodes a batch of
eight short questions for about half the cost per question of eight single calls (the Python
overhead of each forward pass is paid once). Under load the server's request threads each ask
for one question vector at the same moment, so ``BatchingEncoder`` lets the first of them encode
everything that is waiting while the others wait for their row. Nothing waits on purpose: a lone
request is encoded at once, so an idle server answers as fast as without batching. Up to
``runners`` batches (one per core by default) run at once, so batching never leaves a core idle
that single calls would have used.

Example::

    >>> from index.encoder import load_encoder                 # doctest: +SKIP
    >>> enc = BatchingEncoder(load_encoder("minilm"))          # doctest: +SKIP
    >>> enc.encode(["when were direct AZAL flights announced"]).shape  # from any number of threads
    (1, 384)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from index.encoder import Encoder


@dataclass
class _Job:
    text: str
    vector: np.ndarray | None = None
    error: BaseException | None = None
    taken: bool = False  # in a batch that a thread is encoding
    done: bool = False


@dataclass
class BatchStats:
    """How many single-question calls went through, in how many encoder batches."""

    questions: int = 0
    batches: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)


class BatchingEncoder:
    """An ``Encoder`` that coalesces concurrent one-text calls into batches of the wrapped encoder.

    Calls with several texts (an index build) go straight through. Safe from any number of threads.
    """

    def __init__(self, inner: Encoder, max_batch: int = 16, runners: int | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.max_batch = max_batch
        self.runners = runners or os.cpu_count() or 1
        self.stats = BatchStats()
        self._cond = threading.Condition()
        self._waiting: list[_Job] = []
        self._running = 0  # threads running the wrapped encoder on a batch right now

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if len(texts) != 1 or progress:
            return self.inner.encode(texts, batch_size=batch_size, progress=progress)
        job = _Job(texts[0])
        with self._cond:
            self._waiting.append(job)
            while not job.done:
                if job.taken or self._running >= self.runners:
                    # Its batch is running, or every runner is busy: wait for a batch to end.
                    self._cond.wait()
                    continue
                # A runner is free: this thread encodes what is waiting (its own job is in it or ahead of it).
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                for j in batch:
                    j.taken = True
                self._running += 1
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._running -= 1
                    self._count(len(batch))
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        assert job.vector is not None
        return job.vector[None, :]

    def _run(self, batch: list[_Job]) -> None:
        try:
            vecs = self.inner.encode([j.text for j in batch], batch_size=len(batch))
        except BaseException as e:  # every caller of this batch gets the error, not only the runner
            for j in batch:
                j.error, j.done = e, True
        else:
            for j, v in zip(batch, vecs, strict=True):
                j.vector, j.done = v, True

    def _count(self, n: int) -> None:
        s = self.stats
        s.questions += n
        s.batches += 1
        s.largest = max(s.largest, n)
        s.sizes[n] = s.sizes.get(n, 0) + 1
