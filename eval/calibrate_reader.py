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
import hashlib
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
from qa.model import Calibration

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


def ece(conf: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, bins: int = 10) -> float:
    """Expected calibration error over equal-width bins, each example counted with its weight."""
    weight = np.ones(len(y)) if weight is None else weight
    b = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for k in range(bins):
        m = b == k
        if m.any():
            total += abs(np.average(conf[m], weights=weight[m]) - np.average(y[m], weights=weight[m])) * weight[m].sum()
    return float(total / weight.sum())


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from eval.train_reader import auc as _auc

    return _auc(pos, neg)


def centered_isotonic(raw: np.ndarray, y: np.ndarray, w: np.ndarray) -> Calibration:
    """Isotonic regression of ``y`` on ``raw``, its knots at the weighted centre of each constant
    block and interpolated between them (centred isotonic regression, Oron & Flournoy 2017): as
    well calibrated as the step function, but strictly increasing, so the confidence keeps the
    logistic model's order inside a block instead of tying every question in it (ties cost AUC
    and leave the abstention threshold no room between them)."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y, sample_weight=w)
    order = np.argsort(raw, kind="stable")
    xs_sorted, ws = raw[order], w[order]
    fitted = iso.predict(xs_sorted)
    xs, ys = [], []
    start = 0
    for i in range(1, len(fitted) + 1):
        if i == len(fitted) or fitted[i] != fitted[start]:
            xs.append(float(np.average(xs_sorted[start:i], weights=ws[start:i])))
            ys.append(float(fitted[start]))
            start = i
    return Calibration(np.array(xs), np.array(ys))


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
    ap.add_argument("--unanswerable-share", type=float, default=0.2,
                    help="share of unanswerable questions the confidence assumes (default 0.2: about the share in "
                         "our own gold sets, eval/gold/*.jsonl); the fit weights its unanswerable questions to it")
    ap.add_argument("--exit-cost", type=float, default=0.002,
                    help="answer F1 and evidence@1 the early exit may cost on the answerable questions (default 0.002)")
    ap.add_argument("--no-early-exit", action="store_true", help="always read --depth sentences")
    ap.add_argument("--reader-features-only", action="store_true",
                    help="ablation: fit the confidence on what the reader read alone (weights of the others 0)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=MODELS)
    ap.add_argument("--dry-run", action="store_true", help="report, write nothing")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from sklearn.linear_model import LogisticRegression

    from index.build import build_index
    from index.encoder import load_encoder
    from index.loaded import LoadedIndex
    from qa.analyze import analyze
    from qa.answer import AnswerStep
    from qa.engine import encode_questions
    from qa.model import load_model
    from qa.reading import CONFIDENCE_FEATURES, READER_FEATURES, UNCALIBRATED, NeuralReader, ReaderCalibration
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

    def ask(text: str, kind: str, item=None, exclude=None, near_article: str = "") -> None:
        q = analyze(text)
        qv = encode_questions(encoder, [text])[0]
        cand = step.gather(q, qv, exclude=exclude)
        t = time.perf_counter()
        rc = reader.read_candidates(q, cand, depth=args.max_depth)
        asked.append({"kind": kind, "item": item, "read": rc, "read_s": time.perf_counter() - t,
                      "near_article": near_article})

    # What the reader read is kept (keyed by the whole model file, the questions asked and the code
    # that reads: the features, the phrase rules), so trying another fit does not read everything again.
    import qa.reader
    import qa.reader_inputs
    from qa.reader import MODEL_FILE

    asking = [[it.id for it in items], [it.id for it in removed], near, args.seed, args.max_depth, list(CONFIDENCE_FEATURES)]
    key = hashlib.sha1(b"|".join([MODEL_FILE.read_bytes(), json.dumps(asking).encode(),
                                  *(Path(m.__file__).read_bytes() for m in (qa.reader, qa.reader_inputs))])).hexdigest()[:12]
    readings_file = args.work / f"readings-{key}.pkl"
    if readings_file.exists():
        asked = pickle.loads(readings_file.read_bytes())
        _log(f"readings from {readings_file}")
    else:
        for n, it in enumerate(items):
            ask(it.question, "answerable", it)
            if n % 500 == 0:
                _log(f"  answerable {n}/{len(items)} · {time.time() - t0:.0f} s")
        for it in removed:
            prefix = article_of[it.id] + "/"
            ask(it.question, "removed", it, exclude=lambda d, prefix=prefix: d.startswith(prefix))
        sentence_article = {s: it.doc_ids[0].split("/")[0] for it in gold_items(held) for s in it.evidence}
        for text, sentence in near:
            ask(text, "near_miss", near_article=sentence_article.get(sentence, sentence[:40]))
        readings_file.write_bytes(pickle.dumps(asked))
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

    # Early exit: the first sentence alone is read first, and the rest only when its logit is
    # under exit_logit. The lowest exit_logit (most questions answered after one sentence) that
    # costs at most --exit-cost of answer F1 and of evidence@1 on the answerable questions.
    base = ReaderCalibration(depth, w, UNCALIBRATED.coef, 0.0, UNCALIBRATED.calibration, 0.0)
    first_logit = {id(r): (r["read"].readings[0].logit if r["read"].readings else -99.0) for r in asked}

    def reads(r, exit_logit: float | None) -> int:
        return 1 if exit_logit is not None and first_logit[id(r)] >= exit_logit else depth

    full = [outcome(r, base, depth) for r in answerable]
    f1_full, ev_full = float(np.mean([x[3] for x in full])), float(np.mean([x[1] for x in full]))
    exit_logit: float | None = None
    exit_rows = []
    if depth > 1 and not args.no_early_exit:
        firsts = np.array([first_logit[id(r)] for r in answerable])
        for t in sorted(set(np.quantile(firsts, np.linspace(0.0, 1.0, 41)).round(3).tolist())):
            res = [outcome(r, base, reads(r, t)) for r in answerable]
            f1_t, ev_t = float(np.mean([x[3] for x in res])), float(np.mean([x[1] for x in res]))
            exit_rows.append({"exit_logit": t, "exits": float(np.mean(firsts >= t)), "f1": f1_t, "evidence_at_1": ev_t})
            if exit_logit is None and f1_t >= f1_full - args.exit_cost and ev_t >= ev_full - args.exit_cost:
                exit_logit = t
        _log(f"early exit: logit ≥ {exit_logit} → "
             + (f"{next(x for x in exit_rows if x['exit_logit'] == exit_logit)}" if exit_logit is not None else "never"))

    X, y, kinds, f1s, articles = [], [], [], [], []
    for r in asked:
        d, ev, em, f1 = outcome(r, base, reads(r, exit_logit))
        X.append(d.features)
        y.append(1 if (r["kind"] == "answerable" and f1 >= 0.5) else 0)
        kinds.append(r["kind"])
        f1s.append(f1)
        articles.append(article_of.get(r["item"].id, "") if r["item"] is not None else r["near_article"])
    X = np.array(X)
    if args.reader_features_only:  # ablation: the first ranking's measurements and the type check left out
        X[:, len(READER_FEATURES) :] = 0.0
    y = np.array(y)
    kinds = np.array(kinds)
    articles = np.array(articles)
    # Unanswerable questions weighted to make up --unanswerable-share of the fit (what the
    # confidence means depends on how often the documents hold no answer; see --help).
    unans = kinds != "answerable"
    weight = np.ones(len(y))
    if unans.any() and (~unans).any():
        share = args.unanswerable_share
        weight[unans] = share / (1 - share) * (~unans).sum() / unans.sum()

    def fit(rows: np.ndarray) -> tuple[Any, Calibration]:
        lr_ = LogisticRegression(C=1.0, max_iter=5000).fit(X[rows], y[rows], sample_weight=weight[rows])
        raw_ = lr_.predict_proba(X[rows])[:, 1]
        return lr_, centered_isotonic(raw_, y[rows], weight[rows])

    # Out-of-sample figures: two folds by article (fit on one half, measure on the other).
    uniq = sorted(set(articles.tolist()))
    fold_of = {a: i % 2 for i, a in enumerate(random.Random(args.seed).sample(uniq, len(uniq)))}
    folds = np.array([fold_of[a] for a in articles])
    oos = np.zeros(len(y))
    for f in (0, 1):
        lr_f, cal_f = fit(folds != f)
        oos[folds == f] = [cal_f(p) for p in lr_f.predict_proba(X[folds == f])[:, 1]]
    cross = {
        "ece_answerable_only": ece(oos[~unans], y[~unans]),
        "ece_weighted_mix": ece(oos, y, weight),
        "auc_answerable_vs_near_miss": auc(oos[kinds == "answerable"], oos[kinds == "near_miss"]),
        "auc_answerable_vs_removed": auc(oos[kinds == "answerable"], oos[kinds == "removed"]),
    }  # fmt: skip
    _log(f"two-fold out-of-sample: {cross}")

    lr, calib = fit(np.ones(len(y), bool))
    raw = lr.predict_proba(X)[:, 1]
    conf = np.array([calib(p) for p in raw])
    ans_conf = np.sort(conf[kinds == "answerable"])
    k = int(math.floor(args.max_false_abstention * len(ans_conf)))
    threshold = float(ans_conf[k]) if k < len(ans_conf) else 1.0
    # ties: abstain strictly below the threshold, so false abstentions stay at or under the goal
    final = ReaderCalibration(depth, w, lr.coef_[0], float(lr.intercept_[0]), calib, threshold, exit_logit=exit_logit)
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
        "early_exit_share": float(np.mean([reads(r, exit_logit) == 1 for r in answerable])),
        "unanswerable_share_of_fit": args.unanswerable_share,
        "two_fold_out_of_sample": cross,
    }  # fmt: skip
    _log(json.dumps(figures, indent=1))
    info = {"fitted_on": "SQuAD v1.1 train, held-out articles (eval/squad_train.py 'heldout')",
            "figures_on_fit_data": figures, "grid": grid, "early_exit_grid": exit_rows,
            "features": list(CONFIDENCE_FEATURES),
            "seconds": round(time.time() - t0)}  # fmt: skip
    final = ReaderCalibration(final.depth, final.prior_weight, final.coef, final.intercept, final.calibration,
                              final.threshold, info, exit_logit)  # fmt: skip
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
