"""Fit how the neural reader's readings become a ranking, a confidence and an abstention, on
SQuAD v1.1 *train* articles that no model trained on (nothing of SQuAD dev is read).

    python -m eval.calibrate_reader                 # → qa/models/reader-calibration.json (~10 min)
    python -m eval.calibrate_reader --questions 300 --dry-run    # a quick look

What it does:

1. indexes the ``heldout`` and ``linear`` articles of SQuAD train (``eval/squad_train.py``) as a
   closed corpus, one document per paragraph (as ``qa eval --squad`` does with dev): about the
   size of SQuAD dev, so the search has as many near neighbours;
2. asks the ``heldout`` articles' questions (the reader never trained on them; the linear
   ranking never saw them) three ways: as they are (answerable); with their article removed from
   the search (nothing answers them); and near-miss versions (an entity of the question replaced
   by another of the same label, ``eval/train_reader.py``), asked of the whole index;
3. the reader reads the top ``--max-depth`` sentences of the linear ranking once per question;
   the depth (sentences read) and the weight of the first ranking's prior are chosen by answer F1
   on the answerable questions (the smallest depth within 0.5 points of the best);
4. confidence: a logistic model over what was read (``qa.reading.CONFIDENCE_FEATURES``) for
   "the answer is right" (token F1 ≥ 0.5; never, for unanswerable questions), then isotonic
   calibration; the threshold is the highest that keeps false abstentions on the answerable
   questions at or under ``--max-false-abstention``;
5. prints the figures (also by depth) and writes the calibration file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from eval.metrics import exact_match, f1_score, sentence_matches
from eval.squad import gold_items, load_squad, write_corpus
from eval.squad_train import write_part

WORK = Path(__file__).resolve().parent / "cache" / "reader-calib"
MODELS = Path(__file__).resolve().parents[1] / "qa" / "models"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _near_miss_questions(pairs_dir: Path) -> list[tuple[str, str]]:
    """(near-miss question, original question) of the held-out articles, from the reader's data."""
    from eval.train_reader import Pair

    class _Unpickler(pickle.Unpickler):
        def find_class(self, module, name):  # the data was pickled by `python -m eval.train_reader`
            return Pair if name == "Pair" else super().find_class(module, name)

    files = sorted(pairs_dir.glob("pairs-*.pkl"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise SystemExit(f"no reader training data under {pairs_dir} — run: python -m eval.train_reader")
    with open(files[-1], "rb") as f:
        pairs, _ = _Unpickler(f).load()
    return [(p.question, p.sentence) for p in pairs["heldout"] if p.kind == "near_miss"]


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from eval.train_reader import auc as _auc

    return _auc(pos, neg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.calibrate_reader", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--pairs", type=Path, default=Path(__file__).resolve().parent / "cache" / "reader",
                    help="the reader's training data folder (for the near-miss questions)")
    ap.add_argument("--questions", type=int, default=None, help="answerable questions asked (default: all)")
    ap.add_argument("--removed", type=int, default=1000, help="questions asked with their article removed")
    ap.add_argument("--near-miss", type=int, default=1000, help="near-miss questions asked")
    ap.add_argument("--max-depth", type=int, default=8)
    ap.add_argument("--max-false-abstention", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=MODELS)
    ap.add_argument("--dry-run", action="store_true", help="report, write nothing")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    from index.build import build_index
    from index.encoder import load_encoder
    from index.loaded import LoadedIndex
    from qa.analyze import analyze
    from qa.answer import AnswerStep
    from qa.engine import encode_questions
    from qa.model import Calibration, load_model
    from qa.reading import CONFIDENCE_FEATURES, UNCALIBRATED, NeuralReader, ReaderCalibration
    from qa.retrieve import Retriever

    t0 = time.time()
    rng = random.Random(args.seed)
    data = args.work / "heldout-linear.json.gz"
    if not data.exists():
        write_part(["heldout", "linear"], data)
    heldout_file = args.work / "heldout.json.gz"
    if not heldout_file.exists():
        write_part(["heldout"], heldout_file)
    articles = load_squad(data)
    write_corpus(articles, args.work / "corpus")
    build_index(args.work / "corpus", args.work / "index", progress=True, log=_log)
    index = LoadedIndex.open(args.work / "index")
    encoder = load_encoder(index.encoder_name)
    step = AnswerStep(index, Retriever.over(index), load_model(), index.token_store())
    reader = NeuralReader(step, calibration=UNCALIBRATED)

    held = load_squad(heldout_file)
    held_titles = {a.title for a in held}
    items = gold_items(held)
    if args.questions:
        items = rng.sample(items, min(args.questions, len(items)))
    article_of = {it.id: it.doc_ids[0].split("/")[0] for it in items}
    removed = rng.sample(items, min(args.removed, len(items)))
    near = _near_miss_questions(args.pairs)
    near = rng.sample(near, min(args.near_miss, len(near)))
    _log(f"{len(items)} answerable, {len(removed)} with their article removed, {len(near)} near-miss "
         f"({len(held_titles)} held-out articles; index of {index.n_sentences()} sentences)")

    asked: list[dict[str, Any]] = []

    def ask(text: str, kind: str, item=None, exclude=None) -> None:
        q = analyze(text)
        qv = encode_questions(encoder, [text])[0]
        cand = step.gather(q, qv, exclude=exclude)
        t = time.perf_counter()
        rc = reader.read_candidates(q, cand, depth=args.max_depth)
        asked.append({"kind": kind, "item": item, "read": rc, "read_s": time.perf_counter() - t})

    for n, it in enumerate(items):
        ask(it.question, "answerable", it)
        if n % 500 == 0:
            _log(f"  answerable {n}/{len(items)} · {time.time() - t0:.0f} s")
    for it in removed:
        prefix = article_of[it.id] + "/"
        ask(it.question, "removed", it, exclude=lambda d, prefix=prefix: d.startswith(prefix))
    for text, _ in near:
        ask(text, "near_miss")
    _log(f"read everything in {time.time() - t0:.0f} s")

    def outcome(rec, cal: ReaderCalibration, depth: int):
        d = reader.decide(rec["read"], calibration=cal, depth=depth)
        if rec["kind"] != "answerable" or not d.ranked:
            return d, False, 0.0, 0.0
        it = rec["item"]
        sid = d.ranked[0][0]
        ev = any(sentence_matches(index.sent_text[sid], g) for g in it.evidence)
        pred = index.sent_text[sid][d.span.start : d.span.end] if d.span else index.sent_text[sid]
        return d, ev, exact_match(pred, it.answers), f1_score(pred, it.answers)

    answerable = [r for r in asked if r["kind"] == "answerable"]
    grid = []
    for depth in (1, 2, 3, 4, 6, 8):
        if depth > args.max_depth:
            continue
        for w in (0.0, 0.25, 0.5, 1.0, 2.0):
            cal = ReaderCalibration(depth, w, UNCALIBRATED.coef, 0.0, UNCALIBRATED.calibration, 0.0)
            res = [outcome(r, cal, depth) for r in answerable]
            grid.append({"depth": depth, "prior_weight": w, "evidence_at_1": float(np.mean([x[1] for x in res])),
                         "em": float(np.mean([x[2] for x in res])), "f1": float(np.mean([x[3] for x in res]))})
    best_f1 = max(g["f1"] for g in grid)
    chosen = min((g for g in grid if g["f1"] >= best_f1 - 0.005), key=lambda g: (g["depth"], -g["f1"]))
    for g in grid:
        _log(f"  depth {g['depth']} prior {g['prior_weight']:<4}: evidence@1 {g['evidence_at_1']:.3f} "
             f"EM {g['em']:.3f} F1 {g['f1']:.3f}")
    depth, w = chosen["depth"], chosen["prior_weight"]
    _log(f"chosen: depth {depth}, prior weight {w}")

    base = ReaderCalibration(depth, w, UNCALIBRATED.coef, 0.0, UNCALIBRATED.calibration, 0.0)
    X, y, kinds, f1s = [], [], [], []
    for r in asked:
        d, ev, em, f1 = outcome(r, base, depth)
        X.append(d.features)
        y.append(1 if (r["kind"] == "answerable" and f1 >= 0.5) else 0)
        kinds.append(r["kind"])
        f1s.append(f1)
    X = np.array(X)
    y = np.array(y)
    kinds = np.array(kinds)
    lr = LogisticRegression(C=1.0, max_iter=2000).fit(X, y)
    raw = lr.predict_proba(X)[:, 1]
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
    xs = np.unique(np.quantile(raw, np.linspace(0, 1, 101)))
    calib = Calibration(xs, iso.predict(xs))
    conf = np.array([calib(p) for p in raw])
    ans_conf = np.sort(conf[kinds == "answerable"])
    k = int(math.floor(args.max_false_abstention * len(ans_conf)))
    threshold = float(ans_conf[k]) if k < len(ans_conf) else 1.0
    # ties: abstain strictly below the threshold, so false abstentions stay at or under the goal
    final = ReaderCalibration(depth, w, lr.coef_[0], float(lr.intercept_[0]), calib, threshold)
    abst = conf < threshold
    figures = {
        "answerable": int((kinds == "answerable").sum()),
        "evidence_at_1": chosen["evidence_at_1"], "em": chosen["em"], "f1": chosen["f1"],
        "false_abstentions": float(abst[kinds == "answerable"].mean()),
        "removed_abstained": float(abst[kinds == "removed"].mean()) if (kinds == "removed").any() else None,
        "near_miss_abstained": float(abst[kinds == "near_miss"].mean()) if (kinds == "near_miss").any() else None,
        "auc_answerable_vs_near_miss": auc(conf[kinds == "answerable"], conf[kinds == "near_miss"]),
        "auc_answerable_vs_removed": auc(conf[kinds == "answerable"], conf[kinds == "removed"]),
        "read_ms_median_at_max_depth": 1000 * float(np.median([r["read_s"] for r in asked])),
    }  # fmt: skip
    _log(json.dumps(figures, indent=1))
    info = {"fitted_on": "SQuAD v1.1 train, held-out articles (eval/squad_train.py 'heldout')",
            "figures_on_fit_data": figures, "grid": grid, "features": list(CONFIDENCE_FEATURES),
            "seconds": round(time.time() - t0)}  # fmt: skip
    final = ReaderCalibration(final.depth, final.prior_weight, final.coef, final.intercept, final.calibration,
                              final.threshold, info)  # fmt: skip
    if not args.dry_run:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "reader-calibration.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(final.to_json(), indent=1) + "\n")
        os.replace(tmp, path)
        _log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
