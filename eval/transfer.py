"""How the shipped readers transfer to text unlike SQuAD's Wikipedia paragraphs: one command.

    python -m eval.transfer                       # every set below, both readers, a table at the end
    python -m eval.transfer --sets new_wiki,covid --sample 200

Each set is scored by ``qa eval --squad FILE`` (the SQuAD scorer, with the neural reader as
citeqa and the linear reader beside it on the same index), on a slice of the set so that the
whole run (index builds included) takes about half an hour on 2 cores; the slices are fixed
(first N articles or paragraphs, then a seeded sample of questions), so runs compare. Measuring
only: no model, threshold or rule is fitted or tuned on any of them (``../shared/benchmarks/SOURCES.md``).

- ``new_wiki``, ``amazon``, ``reddit``: SQuADShifts (Miller et al. 2020), questions written the
  way SQuAD's were, on new Wikipedia articles, Amazon product reviews and Reddit posts;
- ``covid``: COVID-QA, questions on whole scientific papers (long documents);
- ``wikinews``: our held-out gold set on the 16 Wikinews articles (``eval/gold/wikinews.jsonl``,
  written without looking at citeqa's answers), with near-miss unanswerable questions.

Printed: evidence@1, EM, F1, false abstentions and (with unanswerable questions) abstention and
confidence AUC, for each reader. Reports go to ``--out``/NAME.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eval.benchmarks import BENCH

ROOT = Path(__file__).resolve().parents[1]
# name -> (file under the benchmarks folder, extra `qa eval` arguments: the slice)
SETS: dict[str, tuple[str, list[str]]] = {
    "new_wiki": ("squadshifts/new_wiki_v1.0.json", ["--articles", "10"]),
    "amazon": ("squadshifts/amazon_reviews_v1.0.json", ["--articles", "60"]),
    "reddit": ("squadshifts/reddit_v1.0.json", ["--paragraphs", "300"]),
    "covid": ("covid-qa/200423_covidQA.offsets-fixed.json", ["--articles", "12"]),
}
WIKINEWS_GOLD = ROOT / "eval" / "gold" / "wikinews.jsonl"
WIKINEWS_CORPUS = "wikinews-gum/corpus"
ROWS = [("evidence@1", "evidence_at_1"), ("exact match", "exact_match"), ("token F1", "f1"),
        ("false abstentions", "false_abstention"), ("unanswerable abstained", "unanswerable_abstained"),
        ("confidence AUC", "confidence_auc")]  # fmt: skip


def _eval_args(name: str, args) -> list[str]:
    common = ["--reader", "neural,linear", "--methods", "citeqa,linear", "--out", str(args.out / name),
              "--no-plots", "--no-progress"]  # fmt: skip
    if name == "wikinews":
        index = args.out / "wikinews.citeqa"  # built from the corpus by `qa eval` when missing
        return ["--gold", str(WIKINEWS_GOLD), "--corpus", str(BENCH / WIKINEWS_CORPUS), "--index", str(index), *common]
    file, extra = SETS[name]
    return ["--squad", str(BENCH / file), *extra, "--sample", str(args.sample), "--holdout-articles", "0", *common]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m eval.transfer",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    names = [*SETS, "wikinews"]
    ap.add_argument("--sets", default=",".join(names), help=f"comma-separated subset of {','.join(names)}")
    ap.add_argument("--sample", type=int, default=400, help="questions asked of each SQuAD-format set (default 400)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "transfer")
    args = ap.parse_args(argv)
    chosen = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in names]
    if unknown:
        ap.error(f"unknown set {', '.join(unknown)}; choose from {', '.join(names)}")
    from eval.run import main as qa_eval

    table: dict[str, dict[str, dict]] = {}
    for name in chosen:
        print(f"== {name}", file=sys.stderr, flush=True)
        rc = qa_eval(_eval_args(name, args))
        if rc:
            print(f"{name}: qa eval failed ({rc})", file=sys.stderr)
            continue
        rep = json.loads((args.out / name / "report.json").read_text())
        part = rep.get("squad") or rep.get("gold")
        table[name] = {m: part["methods"][m] for m in ("citeqa", "linear")}
        table[name]["_n"] = {"answerable": part["methods"]["citeqa"]["answerable"],
                             "unanswerable": part["methods"]["citeqa"]["unanswerable"]}  # fmt: skip
    print("\n| set (answerable / unanswerable) | measure | neural (citeqa) | linear |\n|---|---|---:|---:|")
    for name, res in table.items():
        n = res["_n"]
        for label, key in ROWS:
            if key in ("unanswerable_abstained", "confidence_auc") and not n["unanswerable"]:
                continue
            vals = [res[m].get(key) for m in ("citeqa", "linear")]
            shown = [("—" if v is None else f"{v:.3f}" if key == "confidence_auc" else f"{100 * v:.1f}%") for v in vals]
            print(f"| {name} ({n['answerable']} / {n['unanswerable']}) | {label} | {shown[0]} | {shown[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
