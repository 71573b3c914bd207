"""The answer step's learned weights: small linear models in one JSON file, read with NumPy only.

``qa/models/answer-model.json`` holds, for the production engine:

- ``sentence``: ranks candidate sentences (listwise: a softmax over a question's candidates);
- ``rerank``: re-ranks the best few with what the phrase model found in each;
- ``span``: ranks a sentence's candidate phrases;
- ``confidence``: the probability that the answer is right, as a logistic model followed by an
  isotonic calibration curve;
- ``support``: the probability that the documents hold an answer at all (trained on questions
  asked with and without their article), calibrated the same way, and the abstention
  ``threshold`` on it. Whether *an* answer exists and whether *this* phrase is right are
  different questions: a right document with a clumsy phrase is still worth showing.

It is built by ``python -m eval.train`` from 24 articles of SQuAD v1.1 train (``eval/squad_train.py``)
with article-level cross-validation for its out-of-fold steps; SQuAD dev is for measuring only.

Each linear model scores ``((x - mean) / scale) · w + Σ w_cat[f]`` over the numeric features x
and the categorical features f that are present.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

MODEL_DIR = Path(__file__).resolve().parent / "models"
MODEL_FILE = MODEL_DIR / "answer-model.json"
MODEL_VERSION = 2


class ModelError(Exception):
    """The model file is missing or does not fit this code; the message says how to rebuild it."""


@dataclass(frozen=True)
class LinearModel:
    names: tuple[str, ...]  # numeric feature names, in column order
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    categorical: Mapping[str, float] = field(default_factory=dict)
    bias: float = 0.0

    def score(self, numeric: np.ndarray, cats: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """Scores of the rows of ``numeric`` [n, k] (plus their categorical features)."""
        x = (np.asarray(numeric, np.float64) - self.mean) / self.scale
        s = x @ self.weights + self.bias
        if cats is not None and self.categorical:
            get = self.categorical.get
            zero = repeat(0.0)
            s = s + np.fromiter((sum(map(get, fs, zero)) for fs in cats), np.float64, count=len(cats))
        return s

    def to_json(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "mean": [round(float(x), 6) for x in self.mean],
            "scale": [round(float(x), 6) for x in self.scale],
            "weights": [round(float(x), 6) for x in self.weights],
            "bias": round(float(self.bias), 6),
            "categorical": {k: round(float(v), 5) for k, v in sorted(self.categorical.items()) if abs(v) >= 1e-4},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LinearModel:
        return cls(
            names=tuple(obj["names"]),
            mean=np.asarray(obj["mean"], np.float64),
            scale=np.asarray(obj["scale"], np.float64),
            weights=np.asarray(obj["weights"], np.float64),
            categorical=dict(obj.get("categorical", {})),
            bias=float(obj.get("bias", 0.0)),
        )


@dataclass(frozen=True)
class Calibration:
    """An increasing map from a raw probability to a calibrated one (isotonic, interpolated)."""

    x: np.ndarray
    y: np.ndarray

    def __call__(self, p: float) -> float:
        if len(self.x) == 0:
            return float(p)
        return float(np.interp(p, self.x, self.y))

    def to_json(self) -> dict[str, Any]:
        return {"x": [round(float(v), 5) for v in self.x], "y": [round(float(v), 5) for v in self.y]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Calibration:
        return cls(np.asarray(obj["x"], np.float64), np.asarray(obj["y"], np.float64))


@dataclass(frozen=True)
class AnswerModel:
    """Everything the answer step learned (one production model, or one cross-validation fold)."""

    sentence: LinearModel
    rerank: LinearModel
    span: LinearModel
    confidence: LinearModel
    calibration: Calibration
    threshold: float  # abstain when support() is below it
    support: LinearModel
    support_calibration: Calibration
    rerank_depth: int = 5
    info: Mapping[str, Any] = field(default_factory=dict)

    def probability(self, numeric: np.ndarray, cats: Sequence[str]) -> float:
        """Calibrated probability that the answer is right."""
        raw = float(self.confidence.score(numeric.reshape(1, -1), [cats])[0])
        return self.calibration(1.0 / (1.0 + np.exp(-raw)))

    def supported(self, numeric: np.ndarray, cats: Sequence[str]) -> float:
        """Calibrated probability that the documents hold the answer at all (abstention is decided on it)."""
        raw = float(self.support.score(numeric.reshape(1, -1), [cats])[0])
        return self.support_calibration(1.0 / (1.0 + np.exp(-raw)))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MODEL_VERSION,
            "sentence": self.sentence.to_json(),
            "rerank": self.rerank.to_json(),
            "span": self.span.to_json(),
            "confidence": self.confidence.to_json(),
            "calibration": self.calibration.to_json(),
            "threshold": round(float(self.threshold), 5),
            "support": self.support.to_json(),
            "support_calibration": self.support_calibration.to_json(),
            "rerank_depth": self.rerank_depth,
            "info": dict(self.info),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> AnswerModel:
        if obj.get("version") != MODEL_VERSION:
            raise ModelError(
                f"answer model version {obj.get('version')!r} does not fit this citeqa ({MODEL_VERSION}) — "
                "rebuild it: python -m eval.train"
            )
        return cls(
            sentence=LinearModel.from_json(obj["sentence"]),
            rerank=LinearModel.from_json(obj["rerank"]),
            span=LinearModel.from_json(obj["span"]),
            confidence=LinearModel.from_json(obj["confidence"]),
            calibration=Calibration.from_json(obj["calibration"]),
            threshold=float(obj["threshold"]),
            support=LinearModel.from_json(obj["support"]),
            support_calibration=Calibration.from_json(obj["support_calibration"]),
            rerank_depth=int(obj.get("rerank_depth", 5)),
            info=dict(obj.get("info", {})),
        )


def _read(path: Path) -> Any:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return json.loads(raw)
    except FileNotFoundError:
        raise ModelError(f"answer model {path} is missing — build it: python -m eval.train") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"answer model {path} is unreadable ({e}) — rebuild it: python -m eval.train") from None


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_FILE) -> AnswerModel:
    """The production answer model (cached per process)."""
    return AnswerModel.from_json(_read(path))


def save_json(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    tmp.replace(path)
