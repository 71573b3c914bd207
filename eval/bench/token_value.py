"""Do the stored token vectors still pay, now that a neural reader reads the candidates?

    python -m eval.bench.token_value --squad 1000      # 1,000 sampled SQuAD v1.1 dev questions
    python -m eval.bench.token_value --gold eval/gold/demo.jsonl --index .citeqa

An index keeps one int8 vector per word piece of every sentence (``tokens.npy``: 9.1 GB of the
21.7 GB at 1M passages, ``eval/bench/scale.py``). The first ranking aligns the question's word
pieces with them (``qa/features.py``: the ``align*`` features); the neural reader then reads the
top sentences of that ranking. This asks the same questions of one engine twice, alternating the
order per question: as it is, and with its token store taken away (the alignment features are
then zero, as for an index built without token vectors), and prints evidence@1, EM, F1, the
abstention rate and the median latency of both, with how many questions changed each way.

The linear ranking is *not* refitted without the alignment features here, so the "without" column
is an upper bound of what dropping them costs (a refit would win some of it back).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("with token vectors", "without")


def _items(args: argparse.Namespace) -> tuple[list[Any], Path]:
    from eval.gold import load_gold
    from eval.squad import BUNDLED_SQUAD, gold_items, load_squad, sample

    if args.gold is not None:
        if args.index is None:
            raise SystemExit("--gold needs --index (build one: qa index CORPUS --index DIR)")
        return [it for it in load_gold(args.gold) if it.answerable], args.index
    from index.encoder import DEFAULT_ENCODER

    index = args.index or ROOT / "eval" / "cache" / "squad" / f"all-{DEFAULT_ENCODER}" / "index"
    if not (index / "CURRENT").exists():
        raise SystemExit(f"no SQuAD dev index at {index} — build it first: qa eval --squad --sample 10")
    return sample(gold_items(load_squad(BUNDLED_SQUAD)), args.squad, args.seed), index


def measure(items: list[Any], index: Path) -> dict[str, Any]:
    """Ask every item with and without the token store; the figures of both."""
    import numpy as np

    from eval.evaluate import score
    from qa.engine import Engine

    engine = Engine.open(index)
    store = engine.answerer.tokens
    if store is None:
        raise SystemExit(f"the index at {index} has no token vectors: nothing to compare")
    texts = {d: r.text for d, r in engine.index.docs.items()}
    for it in items[:3]:
        engine.ask(it.question)  # warm-up
    rows: dict[str, list[tuple[float, float, float, float]]] = {v: [] for v in VARIANTS}
    lat: dict[str, list[float]] = {v: [] for v in VARIANTS}
    changed = 0  # questions whose answer, first citation or confidence differ between the two
    for i, it in enumerate(items):
        seen = []
        for v in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
            engine.answerer.tokens = store if v == VARIANTS[0] else None
            t0 = time.perf_counter()
            ans = engine.ask(it.question, 5)
            dt = time.perf_counter() - t0
            s = score(it, ans.to_dict(), texts, dt)
            rows[v].append((float(s.evidence_at_1), s.em, s.f1, float(s.abstained)))
            lat[v].append(dt)
            d = ans.to_dict()
            cits = d.get("citations") or [{}]
            seen.append((d.get("answer"), cits[0].get("sentence"), round(float(d.get("confidence") or 0.0), 4)))
        changed += seen[0] != seen[1]
        if (i + 1) % 100 == 0:
            print(f"  {i + 1:,}/{len(items):,} questions", file=sys.stderr, flush=True)
    engine.answerer.tokens = store
    out: dict[str, Any] = {"questions": len(items), "index": str(index), "answers_changed": changed}
    for v in VARIANTS:
        a = np.asarray(rows[v])
        out[v] = {"evidence_at_1": float(a[:, 0].mean()), "em": float(a[:, 1].mean()), "f1": float(a[:, 2].mean()),
                  "abstained": float(a[:, 3].mean()), "p50_ms": 1000 * statistics.median(lat[v])}
    with_ev = np.asarray(rows[VARIANTS[0]])[:, 0]
    without_ev = np.asarray(rows[VARIANTS[1]])[:, 0]
    out["evidence_better_with"] = int((with_ev > without_ev).sum())
    out["evidence_better_without"] = int((with_ev < without_ev).sum())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench.token_value", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--squad", type=int, default=1000, metavar="N", help="sampled SQuAD v1.1 dev questions (default 1000)")
    src.add_argument("--gold", type=Path, help="a gold JSONL file instead (its answerable questions)")
    ap.add_argument("--index", type=Path, help="the index asked (default: the SQuAD dev index qa eval --squad builds)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args(argv)
    items, index = _items(args)
    if not items:
        raise SystemExit("no answerable questions to ask")
    fig = measure(items, index)
    print(f"{fig['questions']:,} questions, index {index}; alternating per question, one engine")
    print(f"| {'':<20} | evidence@1 | EM    | F1    | abstained | p50 ms |")
    print(f"|{'-' * 22}|-----------:|------:|------:|----------:|-------:|")
    for v in VARIANTS:
        f = fig[v]
        print(f"| {v:<20} | {f['evidence_at_1']:10.3f} | {f['em']:.3f} | {f['f1']:.3f} | {f['abstained']:9.3f} | "
              f"{f['p50_ms']:6.1f} |")
    print(f"answer, first citation or confidence changed: {fig['answers_changed']} of {fig['questions']}")
    print(f"evidence@1 right only with token vectors: {fig['evidence_better_with']}, "
          f"only without: {fig['evidence_better_without']}")
    if args.json is not None:
        args.json.write_text(json.dumps(fig, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
