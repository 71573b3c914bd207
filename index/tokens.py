"""Token-level vectors: how well each word of a question is matched by some word of a sentence.

The encoder's per-token outputs (the vectors it mean-pools into a sentence vector) are kept for
every indexed sentence, so the answer step can measure, per question word, its best match in a
sentence, in the sentences around it and in the whole document ("late interaction", as in
ColBERT, but with the stock model). To keep the store small they are projected to
``TOKEN_DIM`` dimensions with a fixed PCA (fitted once on SQuAD sentences and shipped as
``index/data/token-pca.npz``, so every index and every build shares it) and stored as int8.

Layout in a generation folder::

    tokens.npy        int8 [n_tokens, TOKEN_DIM]   every sentence's tokens, in sentence order
    token_starts.npy  int64 [n_sentences + 1]      sentence i owns rows token_starts[i]:token_starts[i+1]
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from index.arrays import load_array

TOKEN_DIM = 128
PROJECTION_FILE = Path(__file__).resolve().parent / "data" / "token-pca.npz"
PROJECTION_VERSION = "pca128-1"


@lru_cache(maxsize=1)
def projection() -> tuple[np.ndarray, np.ndarray]:
    """(mean [dim], components [dim, TOKEN_DIM]) of the shipped token projection."""
    with np.load(PROJECTION_FILE) as z:
        return z["mean"].astype(np.float32), z["components"].astype(np.float32)


def project(token_vecs: np.ndarray) -> np.ndarray:
    """Encoder token vectors [n, dim] → unit vectors [n, TOKEN_DIM] (float32)."""
    if len(token_vecs) == 0:
        return np.zeros((0, TOKEN_DIM), np.float32)
    mean, comp = projection()
    y = (np.asarray(token_vecs, np.float32) - mean) @ comp
    y /= np.linalg.norm(y, axis=1, keepdims=True) + 1e-9
    return y


def quantize(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(unit * 127.0), -127, 127).astype(np.int8)


def pack(per_sentence: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Quantized token rows of many sentences → (tokens int8 [T, d], starts int64 [n + 1])."""
    starts = np.zeros(len(per_sentence) + 1, np.int64)
    if per_sentence:
        starts[1:] = np.cumsum([len(t) for t in per_sentence])
    rows = [np.asarray(t, np.int8).reshape(-1, TOKEN_DIM) for t in per_sentence]
    tokens = np.concatenate(rows) if rows else np.zeros((0, TOKEN_DIM), np.int8)
    return tokens, starts


def fit_projection(token_vecs: np.ndarray, out: Path = PROJECTION_FILE, *, seed: int = 0, sample: int = 60_000) -> None:
    """Fit the PCA on a sample of encoder token vectors and save it (a one-time, versioned step)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(token_vecs, np.float32)
    if len(x) > sample:
        x = x[np.sort(rng.choice(len(x), sample, replace=False))]
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, mean=mean.astype(np.float32), components=vt[:TOKEN_DIM].T.astype(np.float32))
    projection.cache_clear()


class TokenStore:
    """The token vectors of one generation, memory-mapped; rows are read as float32 on demand."""

    def __init__(self, tokens: np.ndarray, starts: np.ndarray) -> None:
        self.tokens = tokens
        self.starts = starts

    @classmethod
    def open(cls, gen_dir: Path) -> TokenStore:
        return cls(load_array(gen_dir / "tokens.npy"), np.load(gen_dir / "token_starts.npy"))

    def sentence(self, sid: int) -> np.ndarray:
        a, b = int(self.starts[sid]), int(self.starts[sid + 1])
        return np.asarray(self.tokens[a:b], np.float32) * (1.0 / 127.0)

    def span(self, first_sid: int, last_sid: int) -> np.ndarray:
        """Tokens of the consecutive sentences first_sid..last_sid (a document's are contiguous)."""
        a, b = int(self.starts[first_sid]), int(self.starts[last_sid + 1])
        return np.asarray(self.tokens[a:b], np.float32) * (1.0 / 127.0)

    def quantized(self, sid: int) -> np.ndarray:
        a, b = int(self.starts[sid]), int(self.starts[sid + 1])
        return np.asarray(self.tokens[a:b])
