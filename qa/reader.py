"""The neural reader at question time: int8 ONNX on onnxruntime, no torch.

It reads the question with each candidate sentence (``qa/reader_inputs.py``), all candidates of
a question in one batch, and returns for each a logit that the sentence answers the question and
the best answer phrase inside it. The model is trained by ``python -m eval.train_reader``.

Example::

    >>> from qa.reader import NeuralReader
    >>> r = NeuralReader()                                             # doctest: +SKIP
    >>> r.read("who wrote it?", [("Book", "It was written by Ann Lee.")])[0].phrase  # doctest: +SKIP
    'Ann Lee'
"""

from __future__ import annotations

import functools
import os
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.reader_inputs import Pieces, batch_arrays, piece_span_to_chars, pieces, top_spans, windows

MODEL_FILE = Path(__file__).resolve().parent / "models" / "reader-int8.onnx"


class ReaderUnavailableError(RuntimeError):
    """The reader's model file is missing; the message says how to make it."""


@dataclass(frozen=True)
class Reading:
    """What the reader made of one candidate sentence."""

    logit: float  # answerability logit (uncalibrated)
    start: int  # answer phrase, characters in the sentence
    end: int
    span_score: float  # start + end logit of that phrase
    phrase: str
    # the runner-up phrases (characters in the sentence, score), best first, not overlapping it
    others: tuple[tuple[int, int, float], ...] = ()
    # the phrase is the document's own date, read before a sentence that gives none
    # (``qa.reading.NeuralReader`` sets it; ``start``/``end`` are then 0)
    document_date: bool = False


class NeuralReader:
    """Reads (question, candidate sentence) pairs with the trained cross-encoder."""

    def __init__(self, path: Path | str = MODEL_FILE, threads: int | None = None) -> None:
        """``threads``: cores one read may use when it is the only read in flight (default: up
        to 2). Reads that overlap (a server under load) take one core each, as one core per read
        is then the faster way to share the machine."""
        path = Path(path)
        if not path.exists():
            raise ReaderUnavailableError(f"no reader model at {path} — train it: python -m eval.train_reader")
        self.path = path
        self.threads = max(1, threads if threads is not None else min(2, os.cpu_count() or 1))
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._in_flight = 0
        self.runs: Counter[int] = Counter()  # forward passes by the threads they were given
        self._session(1)  # load now: a broken file fails here, not at the first question
        self._pieces: dict[str, Pieces] = {}

    def _session(self, threads: int) -> Any:
        sess = self._sessions.get(threads)
        if sess is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            sess = self._sessions[threads] = ort.InferenceSession(str(self.path), opts,
                                                                  providers=["CPUExecutionProvider"])  # fmt: skip
        return sess

    def _run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            alone = self._in_flight == 0
            self._in_flight += 1
            threads = self.threads if alone else 1
            sess = self._session(threads)
            self.runs[threads] += 1
        try:
            return sess.run(None, feed)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _cached_pieces(self, texts: list[str]) -> list[Pieces]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._pieces]
        if missing:
            if len(self._pieces) > 200_000:
                self._pieces.clear()
            for t, p in zip(missing, pieces(missing), strict=True):
                self._pieces[t] = p
        return [self._pieces[t] for t in texts]

    def read(self, question: str, candidates: list[tuple[str, str]], phrases: int = 1) -> list[Reading]:
        """``candidates``: (title, sentence) pairs; one ``Reading`` each, in the same order, with
        up to ``phrases - 1`` runner-up phrases."""
        if not candidates:
            return []
        q = pieces([question])[0]
        titles = self._cached_pieces([t for t, _ in candidates])
        sents = self._cached_pieces([s for _, s in candidates])
        # a sentence too long for one input is read in windows; its reading is its best window's
        inputs, owner = [], []
        for c, (t, s) in enumerate(zip(titles, sents, strict=True)):
            for inp in windows(q, t, s):
                inputs.append(inp)
                owner.append(c)
        ids, mask, types = batch_arrays(inputs)
        ans, start, end = self._run({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        best: dict[int, int] = {}
        for k, c in enumerate(owner):
            if c not in best or ans[k] > ans[best[c]]:
                best[c] = k
        out = []
        for c, (_, sentence) in enumerate(candidates):
            k = best[c]
            inp = inputs[k]
            spans = top_spans(start[k], end[k], inp, phrases)
            chars = [(*piece_span_to_chars(inp, i, j, sentence), sc) if inp.sent_offsets else (0, 0, sc)
                     for i, j, sc in spans]
            a, b, score = chars[0]
            out.append(Reading(float(ans[k]), a, b, score, sentence[a:b], tuple(chars[1:])))
        return out


@functools.cache
def default_reader() -> NeuralReader:
    return NeuralReader()
