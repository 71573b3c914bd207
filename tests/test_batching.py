"""Batching concurrent question encodings (web/batching.py) with the real packaged model."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from web.app import create_app
from web.batching import BatchingEncoder

GOLD = Path(__file__).resolve().parents[1] / "eval" / "gold" / "demo.jsonl"
QUESTIONS = [json.loads(line)["question"] for line in GOLD.read_text().splitlines() if line.strip()]


class Gated:
    """The real encoder behind a gate: the first call waits until ``hold`` says go (so the test
    can queue questions behind it); records the size of every call."""

    def __init__(self, inner, fail_on: str | None = None) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.fail_on = fail_on
        self.sizes: list[int] = []
        self.go = threading.Event()

    def _gate(self, texts) -> None:
        self.sizes.append(len(texts))
        if len(self.sizes) == 1:
            assert self.go.wait(30), "the test never opened the gate"
        if self.fail_on in texts:
            raise RuntimeError("encoder failed")

    def encode(self, texts, *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self._gate(texts)
        return self.inner.encode(texts, batch_size=batch_size, progress=progress)

    def encode_tokens(self, texts, *, batch_size: int = 64, progress: bool = False):
        self._gate(texts)
        return self.inner.encode_tokens(texts, batch_size=batch_size, progress=progress)


def queue_behind_first(enc: BatchingEncoder, gated: Gated, texts: list[str]) -> list:
    """Encode texts[0] (held at the gate), then the rest from their own threads; release when all wait."""
    out: list = [None] * len(texts)

    def one(i: int) -> None:
        try:
            out[i] = enc.encode([texts[i]])
        except Exception as e:  # the test looks at what each caller got
            out[i] = e

    threads = [threading.Thread(target=one, args=(0,))]
    threads[0].start()
    deadline = time.monotonic() + 30
    while not gated.sizes and time.monotonic() < deadline:
        time.sleep(0.001)
    assert gated.sizes, "the first question never reached the encoder"
    threads += [threading.Thread(target=one, args=(i,)) for i in range(1, len(texts))]
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 30
    while len(enc._waiting) < len(texts) - 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    gated.go.set()
    for t in threads:
        t.join(30)
    return out


def test_concurrent_questions_are_encoded_in_one_batch_each_getting_its_own_vector(engine) -> None:
    gated = Gated(engine.encoder)
    enc = BatchingEncoder(gated, max_batch=16, runners=1)
    texts = QUESTIONS[:9]
    got = queue_behind_first(enc, gated, texts)
    assert gated.sizes == [1, 8], "the eight that waited were encoded together"
    assert enc.stats.questions == 9 and enc.stats.batches == 2 and enc.stats.largest == 8
    single = engine.encoder.encode(texts)
    for i, v in enumerate(got):
        assert v.shape == (1, engine.encoder.dim)
        np.testing.assert_allclose(v[0], single[i], atol=1e-5)


def test_batches_are_capped(engine) -> None:
    gated = Gated(engine.encoder)
    enc = BatchingEncoder(gated, max_batch=3, runners=1)
    got = queue_behind_first(enc, gated, QUESTIONS[:8])
    assert gated.sizes == [1, 3, 3, 1] and all(isinstance(v, np.ndarray) for v in got)


def test_a_lone_question_is_encoded_at_once_and_lists_go_straight_through(engine) -> None:
    enc = BatchingEncoder(engine.encoder)
    v = enc.encode([QUESTIONS[0]])
    np.testing.assert_allclose(v, engine.encoder.encode([QUESTIONS[0]]), atol=1e-6)
    assert enc.stats.batches == 1 and enc.stats.largest == 1
    many = enc.encode(QUESTIONS[:5])
    assert many.shape == (5, engine.encoder.dim) and enc.stats.questions == 1  # not through the batcher
    assert (enc.name, enc.dim) == (engine.encoder.name, engine.encoder.dim)


def test_an_encoder_error_reaches_every_caller_of_its_batch_and_the_next_batch_works(engine) -> None:
    gated = Gated(engine.encoder, fail_on="boom")
    enc = BatchingEncoder(gated, runners=1)
    got = queue_behind_first(enc, gated, [QUESTIONS[0], "boom", QUESTIONS[1], QUESTIONS[2]])
    assert isinstance(got[0], np.ndarray)
    assert all(isinstance(e, RuntimeError) for e in got[1:]), got
    assert enc.encode([QUESTIONS[3]]).shape == (1, engine.encoder.dim)


def test_answers_under_concurrency_are_the_engines_answers(demo_index: Path, engine) -> None:
    """The server's engine (batched) gives the same objects as the plain engine, asked from 8 threads."""
    served = create_app(demo_index, engine=engine).state.holder.engine
    assert isinstance(served.encoder, BatchingEncoder) and served is not engine
    qs = QUESTIONS[:40]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda q: served.ask(q).to_dict(), qs))
    want = [engine.ask(q).to_dict() for q in qs]
    for g, w in zip(got, want, strict=True):
        g.pop("latency_ms"), w.pop("latency_ms")
        assert g == w
    assert served.encoder.stats.questions == len(qs)


@pytest.mark.parametrize("flag", ["0", "1"])
def test_batching_can_be_turned_off(demo_index: Path, engine, monkeypatch, flag: str) -> None:
    monkeypatch.setenv("CITEQA_BATCH_QUESTIONS", flag)
    served = create_app(demo_index, engine=engine).state.holder.engine
    assert isinstance(served.encoder, BatchingEncoder) == (flag == "1")
