"""Build benchmark: `qa index`'s throughput next to the raw encoder's, and its peak memory.

    python -m eval.bench.build --articles 6            # the first 6 SQuAD dev articles (~1,400 sentences)
    python -m eval.bench.build --corpus corpus/        # any folder (the demo corpus: peak memory)
    python -m eval.bench.build --smoke                 # CI: 1 article

What is measured, in one run:

- the raw int8 encoder (``encoder.encode`` of every sentence the build will index, in this process),
  before and after the build, averaged: sentences/s;
- a cold ``qa index CORPUS --index NEW -q --json`` process: sentences indexed per second of wall
  time (model and spaCy loading included), its phases (from its report), and its peak resident
  memory (the child's ``ru_maxrss``);
- the ratio build ÷ raw encoder (the issue's figure; 0.24 on SQuAD before the streamed build).

Prints a table; asserts nothing (timing goals live in benchmarks, not tests).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eval.bench.speed import qa_bin, raw_encoder_rate

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_cold(corpus: Path, index_dir: Path, encoder: str, passages: str | None) -> tuple[float, dict, float]:
    """(wall seconds, the build report, peak resident MB of the `qa index` process)."""
    t = time.perf_counter()
    extra = ["--passage-vectors", passages] if passages else []
    proc = subprocess.Popen([qa_bin(), "index", str(corpus), "--index", str(index_dir), "--encoder", encoder, "-q",
                             "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"qa index failed ({proc.returncode}):\n{err[-2000:]}")
    # ru_maxrss of the reaped children: the `qa index` process is the only child that ran.
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, json.loads(out), peak_mb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench.build", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=None, help="a folder to index (default: SQuAD dev articles)")
    ap.add_argument("--articles", type=int, default=6, help="SQuAD dev articles to index (default 6)")
    ap.add_argument("--encoder", default="minilm-int8")
    ap.add_argument("--passage-vectors", choices=["encoded", "pooled"], default=None,
                    help="passed to qa index (default: its default)")
    ap.add_argument("--smoke", action="store_true", help="a quick run (CI): 1 SQuAD article")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if args.smoke:
        args.articles = 1
    if args.articles < 1:
        print("python -m eval.bench.build: --articles must be at least 1", file=sys.stderr)
        return 2

    from index.documents import load_folder
    from index.split import split_sentences

    started = time.strftime("%Y-%m-%d %H:%M")
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if corpus is None:
            from eval.squad import BUNDLED_SQUAD, load_squad, select_articles, write_corpus

            corpus = Path(tmp) / "squad"
            write_corpus(select_articles(load_squad(BUNDLED_SQUAD), args.articles), corpus)
        docs, _ = load_folder(corpus)
        sentences = [d.text[s.start : s.end] for d in docs for s in split_sentences(d.text)]
        raw1 = raw_encoder_rate(args.encoder, sentences)
        wall, report, peak = build_cold(corpus, Path(tmp) / "index", args.encoder, args.passage_vectors)
        raw2 = raw_encoder_rate(args.encoder, sentences)
    raw = (raw1 + raw2) / 2
    rate = report["sentences"] / wall
    fig = {
        "started": started, "load_start": load_start, "load_end": os.getloadavg()[0],
        "corpus": str(args.corpus) if args.corpus else f"SQuAD dev, first {args.articles} articles",
        "documents": report["documents"], "sentences": report["sentences"], "passages": report["passages"],
        "build_s": wall, "build_rate": rate, "raw_rates": [raw1, raw2], "raw_rate": raw, "ratio": rate / raw,
        "peak_rss_mb": peak, "timings": report["timings"], "passage_vectors": args.passage_vectors or "default",
    }
    print(f"build benchmark, {fig['corpus']} ({report['documents']} documents, {report['sentences']:,} sentences, "
          f"{report['passages']:,} passages), {args.encoder}, passage vectors {fig['passage_vectors']}; started {started}, load {load_start:.1f} → "
          f"{fig['load_end']:.1f}")
    print(f"  qa index, cold, wall          {wall:8.1f} s")
    print(f"  build throughput              {rate:8.0f} sentences/s")
    print(f"  raw encoder (before / after)  {raw1:8.0f} / {raw2:.0f} sentences/s")
    print(f"  build ÷ raw encoder           {rate / raw:8.2f}   (goal ≥ 0.60)")
    print(f"  peak resident memory          {peak:8.0f} MB")
    print("  phases: " + "; ".join(f"{k} {v:.1f} s" for k, v in report["timings"].items()))
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
