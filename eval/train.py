"""Fit the linear answer step's weights on SQuAD v1.1 train articles, with article-level cross-validation.

    python -m eval.train                      # the 24 'linear' train articles → qa/models/answer-model.json
    python -m eval.train --sample 2000        # a quicker fit on a seeded sample of questions

What it does, in order (every feature comes from the engine's own code, ``qa.features``):

1. builds (or reuses) the SQuAD closed-corpus index, the same one ``qa eval --squad`` uses;
2. for every question gathers its candidate sentences and their features; the gold sentence is
   the one that holds the gold answer;
3. splits the articles into ``--folds`` folds (seeded). Each model below is fitted K+1
   times: once per fold on the other folds' articles (its *out-of-fold* predictions are the
   ones reported) and once on everything (the production model);
4. ``sentence``: a linear softmax ranker over each question's candidates;
5. ``span``: a linear softmax ranker over the candidate phrases of the gold sentence;
6. ``rerank``: re-ranks the best ``--depth`` sentences of the out-of-fold sentence ranking with
   what the out-of-fold phrase model finds in each;
7. ``confidence``: logistic regression for "the answer is right" (token F1 ≥ 0.5), fitted on the
   out-of-fold answers to the questions *and* to a sample of the same questions asked with their
   whole article removed (nothing then answers them); then an isotonic calibration fitted on
   out-of-fold probabilities (nested cross-validation) and the abstention threshold: the highest
   that keeps false abstentions on answerable questions at or under ``--max-false-abstention``;
8. prints the cross-validated figures and writes ``qa/models/answer-model.json`` (the
   production model). SQuAD dev is never read here: ``qa eval --squad`` scores all of dev with
   the shipped model.

Fitting uses scikit-learn and SciPy; answering uses only NumPy and the JSON file.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval.metrics import expected_calibration_error, f1_score, normalize_answer, sentence_matches
from eval.squad import gold_items, load_squad, select_articles, write_corpus
from eval.squad_train import write_part

CORRECT_F1 = 0.5
DEFAULT_CACHE = Path(__file__).resolve().parent / "cache"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- fitting: listwise softmax and binary logistic, with numeric + categorical features ------------
@dataclass
class Design:
    """Rows of one model's training data: numeric features, categorical ids, labels, groups."""

    numeric: list[np.ndarray] = field(default_factory=list)  # per group [n_i, k]
    cats: list[list[list[int]]] = field(default_factory=list)  # per group, per row: category ids
    labels: list[np.ndarray] = field(default_factory=list)  # per group [n_i] bool (listwise) / [1] (binary)


class Vocab:
    """Category strings ↔ ids, with per-id counts by fold (so a fold's vocabulary never peeks)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []

    def encode(self, cats: Sequence[Sequence[str]]) -> list[list[int]]:
        out = []
        for fs in cats:
            row = []
            for f in fs:
                i = self.ids.get(f)
                if i is None:
                    i = self.ids[f] = len(self.names)
                    self.names.append(f)
                row.append(i)
            out.append(row)
        return out


def _matrix(numeric: np.ndarray, cats: list[list[int]], mean, scale, cat_index: dict[int, int]):
    import scipy.sparse as sp

    n = numeric.shape[0]
    num = (numeric - mean) / scale
    r, c = [], []
    for i, row in enumerate(cats):
        for f in row:
            j = cat_index.get(f)
            if j is not None:
                r.append(i)
                c.append(j)
    cat = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, len(cat_index)))
    return sp.hstack([sp.csr_matrix(num), cat]).tocsr()


def fit_linear(
    design: Design, groups: Sequence[int], names: Sequence[str], vocab: Vocab, *, l2: float, min_count: int = 3,
    listwise: bool = True, weights: np.ndarray | None = None,
):
    """A ``qa.model.LinearModel`` fitted on the given groups (listwise softmax or binary logistic)."""
    import scipy.sparse as sp
    from scipy.optimize import minimize

    from qa.model import LinearModel

    groups = [g for g in groups if (not listwise) or design.labels[g].any()]
    allnum = np.concatenate([design.numeric[g] for g in groups]).astype(np.float64)
    mean = allnum.mean(0)
    scale = allnum.std(0)
    scale[scale < 1e-6] = 1.0
    counts = Counter(f for g in groups for row in design.cats[g] for f in set(row))
    kept = sorted(f for f, c in counts.items() if c >= min_count)
    cat_index = {f: i for i, f in enumerate(kept)}
    mats = [_matrix(design.numeric[g].astype(np.float64), design.cats[g], mean, scale, cat_index) for g in groups]
    X = sp.vstack(mats).tocsr()
    Y = np.concatenate([design.labels[g] for g in groups]).astype(np.float64)
    lens = np.array([m.shape[0] for m in mats])
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    seg = np.repeat(np.arange(len(mats)), lens)
    G = len(mats)
    sw = np.ones(len(Y)) if weights is None else np.repeat(np.asarray(weights, np.float64)[groups], lens)
    d = X.shape[1] + (0 if listwise else 1)

    def f_listwise(w):
        s = X @ w
        m = np.maximum.reduceat(s, starts)
        e = np.exp(s - m[seg])
        Z = np.add.reduceat(e, starts)
        ep = e * Y
        P = np.add.reduceat(ep, starts)
        loss = -(np.log(P) - np.log(Z)).sum() + l2 * G * (w @ w)
        g = X.T @ (e / Z[seg] - ep / P[seg]) + 2 * l2 * G * w
        return loss, g

    def f_binary(wb):
        w, b = wb[:-1], wb[-1]
        z = X @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-12
        loss = -(sw * (Y * np.log(p + eps) + (1 - Y) * np.log(1 - p + eps))).sum() + l2 * len(Y) * (w @ w)
        r = sw * (p - Y)
        return loss, np.concatenate([X.T @ r + 2 * l2 * len(Y) * w, [r.sum()]])

    res = minimize(f_listwise if listwise else f_binary, np.zeros(d), jac=True, method="L-BFGS-B",
                   options={"maxiter": 2000})
    w = res.x if listwise else res.x[:-1]
    bias = 0.0 if listwise else float(res.x[-1])
    k = len(names)
    categorical = {vocab.names[f]: float(w[k + i]) for f, i in cat_index.items()}
    return LinearModel(tuple(names), mean, scale, w[:k].copy(), categorical, bias)


def assign_folds(articles: Sequence[str], k: int, seed: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    order = sorted(set(articles))
    perm = rng.permutation(len(order))
    return {order[i]: j % k for j, i in enumerate(perm)}


def isotonic(p: np.ndarray, y: np.ndarray, w: np.ndarray | None = None):
    from sklearn.isotonic import IsotonicRegression

    from qa.model import Calibration

    ir = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y, sample_weight=w)
    xs = np.asarray(ir.X_thresholds_, np.float64)
    ys = np.asarray(ir.y_thresholds_, np.float64)
    return Calibration(xs, ys)


# --- the run --------------------------------------------------------------------------------------
@dataclass
class TrainingQuestion:
    """One training question with what the fit needs of it: its analysis, vectors and candidates."""

    item: Any  # eval.gold.GoldItem
    article: str
    q: Any  # qa.analyze.Question
    qv: Any  # QuestionVectors
    cand: Any = None  # Candidates (full index)
    gold: set[int] = field(default_factory=set)  # gold sentence ids
    removed: Any = None  # Candidates with the article excluded


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--squad", type=Path, default=None,
                    help="SQuAD v1.1 JSON or .json.gz (default: the 'linear' articles of SQuAD train, eval/squad_train.py)")
    ap.add_argument("--index", type=Path, default=None, help="SQuAD index to use (default: the eval cache's)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--encoder", default=None, help="encoder for a new index (default: citeqa's default)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--sample", type=int, default=None, help="fit on N sampled questions (default: all)")
    ap.add_argument("--articles", type=int, default=None, help="only the first N articles (smoke runs)")
    ap.add_argument("--paragraphs", type=int, default=None, help="only the first N paragraphs of each article")
    ap.add_argument("--removed-share", type=float, default=0.3,
                    help="questions also asked with their article removed, as a share of the questions (default 0.3)")
    ap.add_argument("--depth", type=int, default=5, help="sentences re-ranked with their phrases (default 5)")
    ap.add_argument("--max-false-abstention", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=None, help="model folder (default: qa/models)")
    ap.add_argument("--dry-run", action="store_true", help="fit and report, write nothing")
    ap.add_argument("--reuse", type=Path, default=None,
                    help="folder to keep the gathered features in, so a refit skips gathering (experiments)")
    ap.add_argument("--refresh", nargs="*", default=[], choices=["gather", "phrases"],
                    help="with --reuse: recompute these parts (after changing their features)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from qa.model import MODEL_FILE

    out_model = (args.out / MODEL_FILE.name) if args.out else MODEL_FILE
    if args.squad is None:
        args.squad = args.cache / "squad-train-linear.json.gz"
        if not args.squad.exists():
            write_part(["linear"], args.squad)
    t0 = time.perf_counter()
    report = train(args)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if not args.dry_run:
        from qa.model import save_json

        save_json(report.pop("_model"), out_model)
        _log(f"wrote {out_model} ({out_model.stat().st_size // 1024} KB)")
    return 0


def _load_reuse(args, name: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """Features gathered by an earlier run with the same index, questions and seed (``--reuse``)."""
    if args.reuse is None or name in args.refresh:
        return None
    import pickle

    path = args.reuse / f"{name}.pkl"
    try:
        with open(path, "rb") as f:
            saved = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        return None
    if saved.get("key") != key:
        _log(f"{path} was made for other questions or another index; gathering anew")
        return None
    _log(f"reusing {path}")
    return saved


def _save_reuse(args, name: str, key: dict[str, Any], data: dict[str, Any]) -> None:
    if args.reuse is None:
        return
    import pickle

    args.reuse.mkdir(parents=True, exist_ok=True)
    with open(args.reuse / f"{name}.pkl", "wb") as f:
        pickle.dump({"key": key, **data}, f, protocol=pickle.HIGHEST_PROTOCOL)


def _articles(args):
    return select_articles(load_squad(args.squad), args.articles, args.paragraphs)


def _index_for(args) -> Path:
    if args.index is not None:
        return args.index
    from index.build import build_index

    articles = _articles(args)
    tag = ("all" if args.articles is None else f"a{args.articles}") + ("" if args.paragraphs is None else f"p{args.paragraphs}")
    base = args.cache / "squad" / tag
    write_corpus(articles, base / "corpus")
    build_index(base / "corpus", base / "index", encoder_name=args.encoder, progress=True, log=_log)
    return base / "index"


def train(args) -> dict[str, Any]:
    from index.encoder import load_encoder
    from index.loaded import LoadedIndex
    from qa.analyze import analyze
    from qa.answer import CONFIDENCE_FEATURES, AnswerStep
    from qa.engine import encode_questions
    from qa.features import SENTENCE_FEATURES, SPAN_FEATURES
    from qa.model import AnswerModel, LinearModel
    from qa.retrieve import Retriever

    index_dir = _index_for(args)
    index = LoadedIndex.open(index_dir)
    encoder = load_encoder(index.encoder_name)
    retriever = Retriever.over(index)
    step = AnswerStep(index, retriever, None, index.token_store())
    items = gold_items(_articles(args))
    if args.sample:
        rng = np.random.default_rng(args.seed)
        items = [items[i] for i in sorted(rng.choice(len(items), args.sample, replace=False).tolist())]
    _log(f"{len(items)} questions, index {index_dir} ({index.n_sentences()} sentences, encoder {index.encoder_name})")

    # 1. questions, vectors, candidates --------------------------------------------------------
    t = time.perf_counter()
    qvs = encode_questions(encoder, [it.question for it in items])
    _log(f"encoded questions in {time.perf_counter() - t:.0f} s")
    questions: list[TrainingQuestion] = []
    for it, qv in zip(items, qvs, strict=True):
        doc = it.doc_ids[0]
        gold = {int(s) for s in index.doc_sentences[doc] if any(sentence_matches(index.sent_text[s], g) for g in it.evidence)}
        questions.append(TrainingQuestion(it, doc.split("/")[0], analyze(it.question), qv, gold=gold))
    reuse_key = {"generation": index.gen_dir.name, "questions": [it.id for it in items], "seed": args.seed,
                 "removed_share": args.removed_share}
    reused = _load_reuse(args, "gather", reuse_key)
    t = time.perf_counter()
    for i, qq in enumerate(questions):
        qq.cand = reused["cand"][i] if reused else step.gather(qq.q, qq.qv)
        if i % 1000 == 999 and not reused:
            _log(f"  candidates {i + 1}/{len(questions)} ({time.perf_counter() - t:.0f} s)")
    recall = np.mean([bool(qq.gold & set(qq.cand.sids.tolist())) for qq in questions])
    _log(f"candidates gathered in {time.perf_counter() - t:.0f} s; gold sentence among them for {recall:.1%}")
    rng = np.random.default_rng(args.seed + 1)
    n_removed = int(round(args.removed_share * len(questions)))
    removed_ids = sorted(rng.choice(len(questions), n_removed, replace=False).tolist()) if n_removed else []
    t = time.perf_counter()
    for i in removed_ids:
        qq = questions[i]
        art = qq.article + "/"
        qq.removed = reused["removed"][i] if reused else step.gather(qq.q, qq.qv, exclude=lambda d, art=art: d.startswith(art))
    if not reused:
        _save_reuse(args, "gather", reuse_key, {"cand": [qq.cand for qq in questions],
                                                "removed": {i: questions[i].removed for i in removed_ids}})
    _log(f"{len(removed_ids)} questions re-asked with their article removed ({time.perf_counter() - t:.0f} s)")

    folds = assign_folds([qq.article for qq in questions], args.folds, args.seed)
    qfold = np.array([folds[qq.article] for qq in questions])
    K = args.folds
    vocab = Vocab()

    # 2. sentence ranker -----------------------------------------------------------------------
    s_design = Design()
    for qq in questions:
        s_design.numeric.append(qq.cand.numeric)
        s_design.cats.append(vocab.encode(qq.cand.cats))
        s_design.labels.append(np.array([int(s) in qq.gold for s in qq.cand.sids], bool))
    all_groups = list(range(len(questions)))
    sent_models = [fit_linear(s_design, [g for g in all_groups if qfold[g] != f], SENTENCE_FEATURES, vocab, l2=1e-3)
                   for f in range(K)]
    sent_full = fit_linear(s_design, all_groups, SENTENCE_FEATURES, vocab, l2=1e-3)
    oof_s1 = [sent_models[qfold[i]].score(qq.cand.numeric, qq.cand.cats) for i, qq in enumerate(questions)]
    ev1_stage1 = np.mean([s_design.labels[i][int(np.argmax(s))] if len(s) else False for i, s in enumerate(oof_s1)])
    _log(f"sentence ranker: out-of-fold evidence@1 {ev1_stage1:.4f}")

    # 3. phrase model on gold sentences ---------------------------------------------------------
    reused_phrases = _load_reuse(args, "phrases", reuse_key) if "phrases" not in args.refresh else None
    phrase_cache: dict[tuple[int, int], Any] = reused_phrases["cache"] if reused_phrases else {}

    def phrases(i: int, sid: int):
        key = (i, sid)
        got = phrase_cache.get(key)
        if got is None:
            got = phrase_cache[key] = step.phrases(questions[i].q, sid)
        return got

    p_design = Design()
    p_groups: list[int] = []
    t = time.perf_counter()
    for i, qq in enumerate(questions):
        golds = {normalize_answer(a) for a in qq.item.answers}
        best = None
        for sid in sorted(qq.gold):
            ph = phrases(i, sid)
            lab = np.array([normalize_answer(index.sent_text[sid][c.start : c.end]) in golds for c in ph.spans], bool)
            if lab.any():
                best = (ph, lab)
                break
        if best is None:
            p_design.numeric.append(np.zeros((0, len(SPAN_FEATURES)), np.float32))
            p_design.cats.append([])
            p_design.labels.append(np.zeros(0, bool))
            continue
        p_design.numeric.append(best[0].numeric)
        p_design.cats.append(vocab.encode(best[0].cats))
        p_design.labels.append(best[1])
        p_groups.append(i)
    _log(f"phrases of gold sentences in {time.perf_counter() - t:.0f} s; a candidate equals a gold answer for "
         f"{len(p_groups) / len(questions):.1%}")
    span_models = [fit_linear(p_design, [g for g in p_groups if qfold[g] != f], SPAN_FEATURES, vocab, l2=1e-4)
                   for f in range(K)]
    span_full = fit_linear(p_design, p_groups, SPAN_FEATURES, vocab, l2=1e-4)

    # 4. re-ranker on out-of-fold sentence and phrase scores ---------------------------------------
    D = args.depth
    r_design = Design()
    r_top: list[np.ndarray] = []
    t = time.perf_counter()
    for i, qq in enumerate(questions):
        s1 = oof_s1[i]
        top = np.argsort(-s1, kind="stable")[:D]
        sm = span_models[qfold[i]]
        ss = []
        for j in top:
            ph = phrases(i, int(qq.cand.sids[j]))
            ss.append(sm.score(ph.numeric, ph.cats) if ph.spans else np.zeros(0))
        r_design.numeric.append(AnswerStep.rerank_features(s1[top], ss))
        r_design.cats.append([[] for _ in top])
        r_design.labels.append(s_design.labels[i][top])
        r_top.append(top)
        if i % 2000 == 1999:
            _log(f"  re-rank features {i + 1}/{len(questions)} ({time.perf_counter() - t:.0f} s)")
    rerank_names = ("stage1_gap", "span_top", "span_lse", "span_gap", "stage1_rank")
    rerank_models = [fit_linear(r_design, [g for g in all_groups if qfold[g] != f], rerank_names, vocab, l2=1e-3)
                     for f in range(K)]
    rerank_full = fit_linear(r_design, all_groups, rerank_names, vocab, l2=1e-3)

    if not reused_phrases:
        _save_reuse(args, "phrases", reuse_key, {"cache": phrase_cache})

    # 5. out-of-fold decisions, for the confidence model ------------------------------------------
    placeholder = LinearModel(tuple(CONFIDENCE_FEATURES), np.zeros(len(CONFIDENCE_FEATURES)),
                              np.ones(len(CONFIDENCE_FEATURES)), np.zeros(len(CONFIDENCE_FEATURES)))
    from qa.model import Calibration

    none = Calibration(np.zeros(0), np.zeros(0))
    fold_models = [AnswerModel(sent_models[f], rerank_models[f], span_models[f], placeholder, none, 0.0,
                               placeholder, none, D) for f in range(K)]
    c_design = Design()
    c_fold: list[int] = []
    c_answerable: list[bool] = []
    results: list[dict[str, Any]] = []
    t = time.perf_counter()

    def run_decision(i: int, cand, answerable: bool) -> None:
        qq = questions[i]
        model = fold_models[qfold[i]]
        d = step.decide(qq.q, qq.qv, cand, model, phrases_of=lambda sid, i=i: phrases(i, sid), with_confidence=False)
        top_sid = d.ranked[0][0] if d.ranked else None
        text = None
        if top_sid is not None:
            sent = index.sent_text[top_sid]
            text = sent[d.span.start : d.span.end] if d.span is not None else sent
        f1 = f1_score(text, qq.item.answers) if answerable else 0.0
        correct = answerable and f1 >= CORRECT_F1
        j = int(np.where(cand.sids == top_sid)[0][0]) if top_sid is not None else 0
        c_design.numeric.append(d.features.reshape(1, -1))
        c_design.cats.append(vocab.encode([step.confidence_categories(qq.q, cand, j)]))
        c_design.labels.append(np.array([correct]))
        c_fold.append(int(qfold[i]))
        c_answerable.append(answerable)
        results.append({
            "answerable": answerable, "f1": f1, "em": float(normalize_answer(text or "") in
                                                            {normalize_answer(a) for a in qq.item.answers}) if answerable else 0.0,
            "evidence": bool(top_sid in qq.gold) if answerable else False,
        })

    for i, qq in enumerate(questions):
        run_decision(i, qq.cand, True)
        if i % 2000 == 1999:
            _log(f"  decisions {i + 1}/{len(questions)} ({time.perf_counter() - t:.0f} s)")
    for i in removed_ids:
        run_decision(i, questions[i].removed, False)
    _log(f"out-of-fold decisions in {time.perf_counter() - t:.0f} s")
    ans = [r for r in results if r["answerable"]]
    ev1 = np.mean([r["evidence"] for r in ans])
    em = np.mean([r["em"] for r in ans])
    f1m = np.mean([r["f1"] for r in ans])
    _log(f"out-of-fold: evidence@1 {ev1:.4f}, EM {em:.4f}, F1 {f1m:.4f} (before abstention)")

    # 6. confidence and support: logistic + nested isotonic calibration; threshold on support -----
    cg = list(range(len(c_design.labels)))
    cfold = np.array(c_fold)
    y = np.array([bool(c_design.labels[g][0]) for g in cg])
    answerable = np.array(c_answerable)
    s_design = Design(c_design.numeric, c_design.cats, [np.array([a]) for a in answerable])

    def raw_prob(model: LinearModel, g: int) -> float:
        z = float(model.score(c_design.numeric[g], c_design.cats[g])[0])
        return 1.0 / (1.0 + math.exp(-z))

    def calibrated(design: Design, labels: np.ndarray, f: int | None):
        """A logistic model and its isotonic calibration fitted without fold f (None: on everything);
        the calibration is fitted on inner out-of-fold probabilities (nested cross-validation)."""
        train_g = [g for g in cg if f is None or cfold[g] != f]
        oof = np.zeros(len(cg))
        for h in sorted({int(cfold[g]) for g in train_g}):
            m = fit_linear(design, [g for g in train_g if cfold[g] != h], CONFIDENCE_FEATURES, vocab, l2=1e-4,
                           listwise=False, min_count=10)
            for g in train_g:
                if cfold[g] == h:
                    oof[g] = raw_prob(m, g)
        idx_ = np.array(train_g)
        cal = isotonic(oof[idx_], labels[idx_].astype(float))
        model = fit_linear(design, train_g, CONFIDENCE_FEATURES, vocab, l2=1e-4, listwise=False, min_count=10)
        return model, cal, np.array([cal(p) for p in oof[idx_]]), idx_

    t = time.perf_counter()
    conf_parts = {f: calibrated(c_design, y, f) for f in [*range(K), None]}
    supp_parts = {f: calibrated(s_design, answerable, f) for f in [*range(K), None]}
    thresholds = {f: choose_threshold(supp_parts[f][2], answerable[supp_parts[f][3]], args.max_false_abstention)
                  for f in [*range(K), None]}
    _log(f"confidence and support models in {time.perf_counter() - t:.0f} s")
    oof_conf = np.array([conf_parts[cfold[g]][1](raw_prob(conf_parts[cfold[g]][0], g)) for g in cg])
    oof_supp = np.array([supp_parts[cfold[g]][1](raw_prob(supp_parts[cfold[g]][0], g)) for g in cg])
    abstain = oof_supp < np.array([thresholds[int(cfold[g])] for g in cg])
    ece = expected_calibration_error(oof_conf.tolist(), y.tolist())
    ece_support = expected_calibration_error(oof_supp.tolist(), answerable.tolist())
    unans_abst = float(abstain[~answerable].mean()) if (~answerable).any() else float("nan")
    false_abst = float(abstain[answerable].mean())
    at10 = _abstained_at(oof_supp, answerable, 0.10)
    _log(f"out-of-fold: ECE {ece:.4f} (support {ece_support:.4f}); article removed: abstained {unans_abst:.1%} at "
         f"{false_abst:.1%} false abstention ({at10:.1%} at 10%); thresholds "
         f"{[round(thresholds[f], 3) for f in range(K)]}")

    def bundle(f: int | None) -> AnswerModel:
        cm, ccal = conf_parts[f][0], conf_parts[f][1]
        sm, scal = supp_parts[f][0], supp_parts[f][1]
        if f is None:
            return AnswerModel(sent_full, rerank_full, span_full, cm, ccal, thresholds[f], sm, scal, D, info)
        return AnswerModel(sent_models[f], rerank_models[f], span_models[f], cm, ccal, thresholds[f], sm, scal, D,
                           {"fold": f})

    cv = {
        "questions": len(questions),
        "articles": len(folds),
        "folds": K,
        "seed": args.seed,
        "candidate_recall": round(float(recall), 4),
        "evidence_at_1_sentence_ranker": round(float(ev1_stage1), 4),
        "evidence_at_1": round(float(ev1), 4),
        "exact_match": round(float(em), 4),
        "f1": round(float(f1m), 4),
        "ece": round(float(ece), 4),
        "ece_support": round(float(ece_support), 4),
        "article_removed_abstained_at_10pct_false": round(at10, 4),
        "removed_questions": len(removed_ids),
        "article_removed_abstained": round(unans_abst, 4),
        "false_abstention": round(false_abst, 4),
    }
    info = {"trained_on": f"{args.squad.name}, {len(questions)} questions of {len({q.article for q in questions})} articles",
            "articles": sorted({q.article for q in questions}),
            "encoder": index.encoder_name, "cross_validation": cv}
    full = bundle(None)
    report: dict[str, Any] = {"cv": cv}
    report["_model"] = full.to_json()
    print("cross-validated (article folds):")
    for k_, v in cv.items():
        print(f"  {k_:34} {v}")
    return report


def _abstained_at(support: np.ndarray, answerable: np.ndarray, max_false: float) -> float:
    """Share of unanswerable questions abstained on at the threshold allowing ``max_false``."""
    if not (~answerable).any():
        return float("nan")
    t = choose_threshold(support, answerable, max_false)
    return float((support[~answerable] < t).mean())


def choose_threshold(probs: np.ndarray, answerable: np.ndarray, max_false: float) -> float:
    """The highest threshold whose false-abstention rate on answerable questions is ≤ ``max_false``."""
    ans = np.sort(probs[answerable])
    if len(ans) == 0:
        return 0.5
    k = int(math.floor(max_false * len(ans)))
    # Abstaining below t abstains on the answerable questions with probability < t: at most k of them.
    return float(ans[k]) if k < len(ans) else float(ans[-1])


if __name__ == "__main__":
    raise SystemExit(main())
