"""Token vectors: the shipped projection, int8 quantization, packing per sentence and reading back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.tokens import TOKEN_DIM, TokenStore, fit_projection, pack, project, projection, quantize

ENCODER_DIM = 384  # the packaged sentence encoder's width (index/encoder.py)


def _unit_rows(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, TOKEN_DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_shipped_projection_is_an_orthonormal_map_from_the_encoder_width() -> None:
    mean, comp = projection()
    assert TOKEN_DIM == 128
    assert mean.shape == (ENCODER_DIM,) and comp.shape == (ENCODER_DIM, TOKEN_DIM)
    assert mean.dtype == comp.dtype == np.float32
    assert np.allclose(comp.T @ comp, np.eye(TOKEN_DIM), atol=1e-5)  # PCA components: orthonormal


def test_project_gives_float32_unit_rows() -> None:
    x = np.random.default_rng(1).normal(size=(7, ENCODER_DIM))  # float64 in
    y = project(x)
    assert y.shape == (7, TOKEN_DIM) and y.dtype == np.float32
    assert np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    assert np.allclose(project(x[2:3]), y[2:3], atol=1e-6)  # a row's projection does not depend on the others
    empty = project(np.zeros((0, ENCODER_DIM), np.float32))
    assert empty.shape == (0, TOKEN_DIM) and empty.dtype == np.float32


def test_project_subtracts_the_mean_and_follows_the_components() -> None:
    mean, comp = projection()
    # mean + c * (component j) lands on the j-th axis, whatever c > 0; the mean itself on zero.
    x = np.stack([mean + 3.0 * comp[:, 0], mean + 0.2 * comp[:, 5], mean - 2.0 * comp[:, 127], mean])
    y = project(x)
    want = np.zeros((4, TOKEN_DIM), np.float32)
    want[0, 0], want[1, 5], want[2, 127] = 1.0, 1.0, -1.0
    assert np.allclose(y, want, atol=1e-4)


def test_quantize_scales_by_127_rounds_and_clips() -> None:
    x = np.array([1.0, -1.0, 0.5, -0.5, 0.004, 0.003, 2.0, -3.0, 0.0, 0.1], np.float32)
    q = quantize(x)
    assert q.dtype == np.int8
    # 63.5 rounds to the even 64; 0.508 to 1, 0.381 to 0; 254 and -381 clip to ±127; 12.7 to 13.
    assert q.tolist() == [127, -127, 64, -64, 1, 0, 127, -127, 0, 13]


def test_quantized_unit_rows_read_back_within_half_a_step() -> None:
    unit = _unit_rows(50)
    q = quantize(unit)
    back = TokenStore(q, np.array([0, 50])).sentence(0)
    assert back.dtype == np.float32 and back.shape == unit.shape
    assert np.abs(back - unit).max() <= 0.5 / 127 + 1e-6
    cos = (back * unit).sum(1) / np.linalg.norm(back, axis=1)
    assert cos.min() > 0.999


def test_pack_concatenates_sentences_and_marks_where_each_starts() -> None:
    a, b, c = quantize(_unit_rows(3, 1)), np.zeros((0, TOKEN_DIM), np.int8), quantize(_unit_rows(2, 2))
    tokens, starts = pack([a, b, c])
    assert tokens.dtype == np.int8 and tokens.shape == (5, TOKEN_DIM)
    assert starts.dtype == np.int64 and starts.tolist() == [0, 3, 3, 5]
    assert np.array_equal(tokens[:3], a) and np.array_equal(tokens[3:], c)
    none_t, none_s = pack([])
    assert none_t.shape == (0, TOKEN_DIM) and none_t.dtype == np.int8 and none_s.tolist() == [0]
    with pytest.raises(ValueError):
        pack([np.zeros((2, TOKEN_DIM - 1), np.int8)])  # rows of the wrong width


def test_a_token_store_reads_sentences_spans_and_quantized_rows(tmp_path: Path) -> None:
    rows = [quantize(_unit_rows(n, seed)) for seed, n in enumerate((2, 4, 0, 1))]
    tokens, starts = pack(rows)
    np.save(tmp_path / "tokens.npy", tokens)
    np.save(tmp_path / "token_starts.npy", starts)
    store = TokenStore.open(tmp_path)
    for sid, r in enumerate(rows):
        assert np.array_equal(store.quantized(sid), r)
        assert store.sentence(sid).dtype == np.float32
        assert np.allclose(store.sentence(sid), r.astype(np.float32) / 127.0)
    assert store.sentence(2).shape == (0, TOKEN_DIM)
    span = store.span(1, 3)  # sentences 1, 2 and 3: 4 + 0 + 1 rows
    assert span.shape == (5, TOKEN_DIM)
    assert np.allclose(span, np.concatenate([rows[1], rows[3]]).astype(np.float32) / 127.0)


def test_fit_projection_saves_the_mean_and_the_leading_directions(tmp_path: Path) -> None:
    # Points spread along the first TOKEN_DIM axes around a known centre: the first axis far the
    # widest, the last few almost flat.
    rng = np.random.default_rng(4)
    dim, n = 160, 600
    spread = np.full(dim, 0.01, np.float32)
    spread[0] = 30.0
    spread[1:TOKEN_DIM] = np.linspace(8.0, 2.0, TOKEN_DIM - 1)
    x = rng.normal(size=dim).astype(np.float32) + rng.normal(size=(n, dim)).astype(np.float32) * spread
    shipped_mean, shipped_comp = projection()
    out = tmp_path / "pca.npz"
    fit_projection(x, out)
    with np.load(out) as z:
        mean, comp = z["mean"], z["components"]
    assert mean.dtype == comp.dtype == np.float32 and mean.shape == (dim,) and comp.shape == (dim, TOKEN_DIM)
    assert np.allclose(mean, x.mean(0), atol=1e-4)
    assert np.allclose(comp.T @ comp, np.eye(TOKEN_DIM), atol=1e-4)
    assert abs(comp[0, 0]) > 0.99  # the widest axis is the first component
    assert np.linalg.norm(comp[TOKEN_DIM:]) < 0.05  # and the flat axes are left out
    # Fitting into another file leaves the shipped projection as it was.
    again_mean, again_comp = projection()
    assert np.array_equal(again_mean, shipped_mean) and np.array_equal(again_comp, shipped_comp)
