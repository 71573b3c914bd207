"""The answer model file: linear scoring, calibration, round trips, and the shipped files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qa.answer import CONFIDENCE_FEATURES
from qa.features import SENTENCE_FEATURES, SPAN_FEATURES
from qa.model import (
    MODEL_FILE,
    AnswerModel,
    Calibration,
    LinearModel,
    ModelError,
    load_model,
)


def test_linear_model_scores_standardised_numeric_plus_categorical() -> None:
    m = LinearModel(("a", "b"), np.array([1.0, 0.0]), np.array([2.0, 1.0]), np.array([0.5, -1.0]),
                    {"q:who|L:PERSON": 2.0}, bias=0.25)
    x = np.array([[3.0, 1.0], [1.0, 0.0]])
    got = m.score(x, [["q:who|L:PERSON", "unknown"], []])
    # row 0: ((3-1)/2)*0.5 + (1-0)/1*(-1) + 0.25 + 2.0 = 0.5 - 1 + 0.25 + 2 = 1.75
    assert got.tolist() == pytest.approx([1.75, 0.25])
    back = LinearModel.from_json(json.loads(json.dumps(m.to_json())))
    assert back.score(x, [["q:who|L:PERSON"], []]).tolist() == pytest.approx(got.tolist())


def test_calibration_interpolates_and_clips() -> None:
    c = Calibration(np.array([0.1, 0.5, 0.9]), np.array([0.0, 0.4, 1.0]))
    assert c(0.0) == 0.0 and c(1.0) == 1.0
    assert c(0.3) == pytest.approx(0.2)
    xs = np.linspace(0, 1, 50)
    ys = [c(x) for x in xs]
    assert all(a <= b for a, b in zip(ys, ys[1:], strict=False))


def test_a_missing_or_foreign_model_says_how_to_rebuild(tmp_path) -> None:
    with pytest.raises(ModelError, match="python -m eval.train"):
        load_model(tmp_path / "nope.json")
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps({"version": -1}))
    with pytest.raises(ModelError, match="rebuild"):
        load_model(bad)


def test_shipped_model_fits_the_features_and_is_small() -> None:
    model = load_model(MODEL_FILE)
    assert isinstance(model, AnswerModel)
    assert model.sentence.names == SENTENCE_FEATURES
    assert model.span.names == SPAN_FEATURES
    assert model.confidence.names == CONFIDENCE_FEATURES
    assert 0.0 < model.threshold < 1.0
    assert MODEL_FILE.stat().st_size < 1_500_000
    cv = model.info["cross_validation"]
    # What the README reports comes from here: out-of-fold, article-level cross-validation.
    assert cv["folds"] >= 2 and cv["questions"] >= 1000
    ys = [model.calibration(p) for p in np.linspace(0, 1, 101)]
    assert all(a <= b + 1e-12 for a, b in zip(ys, ys[1:], strict=False))


def test_the_shipped_linear_model_never_saw_squad_dev() -> None:
    from eval.squad import BUNDLED_SQUAD, load_squad
    from eval.squad_train import TRAIN_FILE, load_train, split_articles

    if not TRAIN_FILE.is_file():
        pytest.skip(f"SQuAD v1.1 train is not at {TRAIN_FILE} (set CITEQA_BENCHMARKS)")

    info = load_model(MODEL_FILE).info
    dev = {a.title for a in load_squad(BUNDLED_SQUAD)}
    fitted = set(info["articles"])
    assert fitted and not fitted & dev
    part = split_articles([a["title"] for a in load_train()["data"]])
    assert {part[t] for t in fitted} == {"linear"}
