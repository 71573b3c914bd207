"""Warm question latency of this checkout against another one, measured side by side.

    python -m eval.bench.versus --other ../citeqa-before            # a checkout of the earlier version
    python -m eval.bench.versus --other DIR --python DIR/.venv/bin/python --rounds 10

Both engines run at once, each in its own process with its own code, and each indexes the demo
corpus with its own code (in a temporary folder). They take turns: one round is every gold
question asked once by this checkout, then once by the other (the order alternates between
rounds), so both see the same machine load. Printed: the median and p95 of each, and the ratio.
Only the engine is timed (``Engine.ask``: encode, search, answer step), as ``eval.bench`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from eval.metrics import percentile

ROOT = Path(__file__).resolve().parents[2]
GOLD = ROOT / "eval" / "gold" / "demo.jsonl"

def _worker_source() -> str:
    return (
        "import json, os, sys, time\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, os.environ['VERSUS_ROOT'])\n"
        "import subprocess\n"
        "corpus, index_dir = sys.argv[1], sys.argv[2]\n"
        "subprocess.run([sys.executable, '-m', 'qa.cli', 'index', corpus, '--index', index_dir],\n"
        "               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,\n"
        "               cwd=os.environ['VERSUS_ROOT'])\n"
        "from qa.engine import Engine\n"
        "engine = Engine.open(index_dir)\n"
        "print('ready', flush=True)\n"
        "for line in sys.stdin:\n"
        "    qs = json.loads(line)\n"
        "    out = []\n"
        "    for q in qs:\n"
        "        t = time.perf_counter(); engine.ask(q); out.append((time.perf_counter() - t) * 1000)\n"
        "    print(json.dumps(out), flush=True)\n"
    )


class Worker:
    def __init__(self, root: Path, python: str, corpus: Path, tmp: Path, name: str) -> None:
        env = {**os.environ, "VERSUS_ROOT": str(root), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(root)}
        self.name = name
        self.proc = subprocess.Popen(
            [python, "-c", _worker_source(), str(corpus), str(tmp / name)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=root,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if line.strip() != "ready":
            raise SystemExit(f"{name}: the engine did not start (exit {self.proc.wait()})")

    def ask(self, questions: list[str]) -> list[float]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(questions) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other", type=Path, required=True, help="the other checkout (its root folder)")
    ap.add_argument("--python", default=None, help="the other checkout's Python (default: OTHER/.venv/bin/python)")
    ap.add_argument("--rounds", type=int, default=6, help="rounds of every gold question (default 6)")
    ap.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    ap.add_argument("--gold", type=Path, default=GOLD)
    args = ap.parse_args(argv)
    questions = [json.loads(x)["question"] for x in args.gold.read_text().splitlines() if x.strip()]
    other_py = args.python or str(args.other / ".venv" / "bin" / "python")
    with tempfile.TemporaryDirectory(prefix="citeqa-versus-") as tmp:
        print("indexing the demo corpus with each checkout …", file=sys.stderr)
        this = Worker(ROOT, sys.executable, args.corpus.resolve(), Path(tmp), "this")
        other = Worker(args.other.resolve(), other_py, args.corpus.resolve(), Path(tmp), "other")
        try:
            this.ask(questions)  # warm-up round, not counted
            other.ask(questions)
            times: dict[str, list[float]] = {"this": [], "other": []}
            for r in range(args.rounds):
                pair = (this, other) if r % 2 == 0 else (other, this)
                for w in pair:
                    times[w.name] += w.ask(questions)
        finally:
            this.close()
            other.close()
    a, b = np.array(times["this"]), np.array(times["other"])
    print(f"{len(questions)} gold questions × {args.rounds} rounds each, engine only, taking turns")
    print(f"{'':28}{'median ms':>10}{'p95 ms':>10}")
    print(f"{'this checkout':28}{np.median(a):>10.2f}{percentile(a, 95):>10.2f}")
    print(f"{'other: ' + args.other.name:28}{np.median(b):>10.2f}{percentile(b, 95):>10.2f}")
    print(f"ratio this / other: median {np.median(a) / np.median(b):.2f}×, p95 {percentile(a, 95) / percentile(b, 95):.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
