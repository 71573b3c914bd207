"""Speed benchmark: prints figures, asserts nothing (timing goals live here, not in tests).

    python -m eval.bench                 # demo corpus: cold index, warm question latency, cold `qa ask`
    python -m eval.bench --smoke         # a quick run for CI

Every figure is printed next to the plain baseline measured in the same run: the script anyone
could write (sentence-transformers encode + FAISS flat over sentences, top sentence).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
GOLD = ROOT / "eval" / "gold" / "demo.jsonl"

FALLBACK_QUESTIONS = [
    "when were direct AZAL flights announced",
    "who led the Pakistan side in the bilateral political consultations",
    "Who is Azerbaijan's ambassador to Pakistan?",
    "where did Kakar meet Aliyev",
    "how many Kashmiris were killed in the past week",
    "who visited Islamabad from Russia",
    "what gas pipeline project was discussed with Russia",
    "Who won the 2022 FIFA World Cup?",
    "What is the capital of France?",
    "who is the Executive Director of CSAIS",
]


def questions(n: int) -> list[str]:
    qs: list[str] = []
    if GOLD.exists():
        qs = [json.loads(line)["question"] for line in GOLD.read_text().splitlines() if line.strip()]
    qs = qs or FALLBACK_QUESTIONS
    return [qs[i % len(qs)] for i in range(n)]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def qa_bin() -> str:
    return str(Path(sys.executable).with_name("qa"))


def bench_cold_index(corpus: Path, index_dir: Path) -> float:
    t = time.perf_counter()
    subprocess.run([qa_bin(), "index", str(corpus), "--index", str(index_dir), "-q"], check=True)
    return time.perf_counter() - t


def bench_cold_ask(index_dir: Path, question: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([qa_bin(), "ask", "--index", str(index_dir), "--json", question], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return times


def bench_warm(index_dir: Path, qs: list[str]) -> list[float]:
    from qa.engine import Engine

    engine = Engine.open(index_dir)
    for q in qs[:5]:
        engine.ask(q)
    times = []
    for q in qs:
        t = time.perf_counter()
        engine.ask(q)
        times.append(time.perf_counter() - t)
    return times


def bench_plain_baseline(index_dir: Path, qs: list[str]) -> list[float]:
    """sentence-transformers encode + FAISS flat over the same sentences, top sentence."""
    import faiss

    from index.encoder import SentenceTransformerEncoder
    from index.loaded import LoadedIndex

    idx = LoadedIndex.open(index_dir)
    enc = SentenceTransformerEncoder()
    flat = faiss.IndexFlatIP(idx.sent_vecs.shape[1])
    flat.add(idx.sent_vecs)
    times = []
    for q in qs[:5]:
        flat.search(enc.encode([q]), 1)
    for q in qs:
        t = time.perf_counter()
        _, ids = flat.search(enc.encode([q]), 1)
        _ = idx.sent_text[int(ids[0][0])]
        times.append(time.perf_counter() - t)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--questions", type=int, default=50, help="warm questions to time (default 50)")
    ap.add_argument("--cold-runs", type=int, default=3, help="cold `qa ask` runs (default 3)")
    ap.add_argument("--smoke", action="store_true", help="a quick run (CI): 10 questions, 1 cold run")
    args = ap.parse_args(argv)
    n = 10 if args.smoke else args.questions
    cold_runs = 1 if args.smoke else args.cold_runs
    qs = questions(n)
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        cold_index = bench_cold_index(args.corpus, index_dir)
        warm = bench_warm(index_dir, qs)
        plain = bench_plain_baseline(index_dir, qs)
        cold = bench_cold_ask(index_dir, qs[0], cold_runs)
    rows = [
        ("cold `qa index` (s)", f"{cold_index:.2f}", "", ""),
        ("warm question median (ms)", f"{statistics.median(warm) * 1000:.1f}",
         f"{statistics.median(plain) * 1000:.1f}", f"{statistics.median(warm) / statistics.median(plain):.2f}×"),
        ("warm question p95 (ms)", f"{pct(warm, 95) * 1000:.1f}", f"{pct(plain, 95) * 1000:.1f}",
         f"{pct(warm, 95) / pct(plain, 95):.2f}×"),
        ("cold `qa ask` wall, median (s)", f"{statistics.median(cold):.2f}", "", ""),
    ]
    print(f"citeqa speed benchmark — corpus {args.corpus} ({len(qs)} warm questions, {cold_runs} cold runs, "
          f"{os.cpu_count()} cores)")
    print(f"{'figure':34} {'citeqa':>10} {'plain ST+FAISS':>15} {'ratio':>8}")
    for name, a, b, r in rows:
        print(f"{name:34} {a:>10} {b:>15} {r:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
