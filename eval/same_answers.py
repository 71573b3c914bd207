"""Do two checkouts give the same answers? Each indexes and answers with its own code; the answers
are compared byte for byte (apart from ``latency_ms``).

    python -m eval.same_answers --before /tmp/before              # a checkout of the earlier commit
    python -m eval.same_answers --before DIR --squad-sample 500 --work /tmp/same-answers

What is compared, for each checkout run as a user runs it (``python -m qa.cli`` in its own folder,
``PYTHONPATH`` its own):

- the demo gold set (``eval/gold/demo.jsonl`` over ``corpus/``): ``qa ask --jsonl`` (the answer
  contract), ``qa ask`` human output of every question, ``POST /api/ask`` of every question through
  ``qa serve``, and the published schema (``/openapi.json``: its paths and every model's fields);
- a seeded SQuAD v1.1 dev sample over the closed corpus of every dev paragraph (as ``eval.squad``
  builds it): ``qa ask --jsonl``.

The inputs (corpus folders, question lines) are written once, by this checkout, so both answer the
very same bytes; questions are asked in the same order, one at a time, so the neural reader's int8
batches are the same in both runs. The earlier checkout's outputs are kept in ``--work`` under its
commit and reused. ``--api-extra KEY`` names a key the later API answer may add (``view``, how to
show the answer); it is reported, and every other key must be equal, in the same order. Exit 0 when
nothing differs, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from eval.benchmarks import BENCH
from eval.gold import DEMO_GOLD, load_gold
from eval.squad import gold_items, load_squad, sample, write_corpus

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("latency_ms",)


def _commit(checkout: Path) -> str:
    out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def _dirty(checkout: Path) -> bool:
    out = subprocess.run(
        ["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return bool(out.stdout.strip())


class Checkout:
    """One checkout's command line, run with its own code from its own folder."""

    def __init__(self, root: Path, python: str, out: Path) -> None:
        self.root, self.python, self.out = root, python, out
        self.env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
        out.mkdir(parents=True, exist_ok=True)

    def qa(self, *args: str, stdin: Path | None = None, stdout: Path | None = None) -> str:
        with open(stdin or os.devnull, "rb") as fin:
            res = subprocess.run(
                [self.python, "-m", "qa.cli", *args], stdin=fin, capture_output=True, env=self.env, cwd=self.root
            )
        if res.returncode != 0:
            raise SystemExit(
                f"{self.root}: qa {' '.join(args[:2])} … exited {res.returncode}:\n{res.stderr.decode()[-2000:]}"
            )
        if stdout is not None:
            stdout.write_bytes(res.stdout)
        return res.stdout.decode()

    def human(self, index: Path, questions: list[str]) -> list[str]:
        """``qa ask INDEX QUESTION``'s human output of each question, from one process running the
        checkout's own ``qa.cli.main`` (a cold process per question cost minutes on a busy machine)."""
        code = (
            "import contextlib, io, json, sys\n"
            "from qa.cli import main\n"
            "out = []\n"
            "for q in json.loads(sys.stdin.read()):\n"
            "    buf = io.StringIO()\n"
            "    with contextlib.redirect_stdout(buf):\n"
            "        rc = main(['ask', '--index', sys.argv[1], q])\n"
            "    out.append(buf.getvalue() if rc == 0 else f'exit {rc}')\n"
            "print(json.dumps(out))\n"
        )
        res = subprocess.run(
            [self.python, "-c", code, str(index)],
            input=json.dumps(questions).encode(),
            capture_output=True,
            env=self.env,
            cwd=self.root,
        )
        if res.returncode != 0:
            raise SystemExit(f"{self.root}: human output failed:\n{res.stderr.decode()[-2000:]}")
        return json.loads(res.stdout)

    def serve_and_ask(self, index: Path, questions: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            [self.python, "-m", "qa.cli", "serve", "--index", str(index), "--port", str(port)],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise SystemExit(f"{self.root}: qa serve exited {proc.returncode}") from None
                    time.sleep(0.5)
            answers = []
            for q in questions:
                req = urllib.request.Request(
                    base + "/api/ask",
                    data=json.dumps({"question": q}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=120) as r:
                    answers.append(json.loads(r.read()))
            with urllib.request.urlopen(base + "/openapi.json", timeout=30) as r:
                spec = json.loads(r.read())
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        return answers, spec


def _prepare(work: Path, squad_file: Path, n: int, seed: int) -> tuple[Path, Path, Path, Path, list[str]]:
    """The inputs both checkouts answer: demo questions, the SQuAD corpus and its question sample."""
    inputs = work / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    demo = [it.question for it in load_gold(DEMO_GOLD)]
    demo_q = inputs / "demo.jsonl"
    demo_q.write_text("".join(json.dumps({"id": it.id, "question": it.question}) + "\n" for it in load_gold(DEMO_GOLD)))
    articles = load_squad(squad_file)
    squad_corpus = inputs / "squad-corpus"
    write_corpus(articles, squad_corpus)
    squad_q = inputs / f"squad-{n}-{seed}.jsonl"
    squad_q.write_text(
        "".join(
            json.dumps({"id": it.id, "question": it.question}) + "\n" for it in sample(gold_items(articles), n, seed)
        )
    )
    return ROOT / "corpus", demo_q, squad_corpus, squad_q, demo


def _run(c: Checkout, corpus: Path, demo_q: Path, squad_corpus: Path, squad_q: Path | None, demo: list[str]) -> None:
    """Everything one checkout answers, written under ``c.out`` (skipped when already there)."""
    done = c.out / "DONE"
    if done.exists():
        print(f"  {c.root}: reusing {c.out}", file=sys.stderr)
        return
    t = time.monotonic()
    c.qa("index", str(corpus), "--index", str(c.out / "demo-index"), "-q")
    c.qa("ask", "--index", str(c.out / "demo-index"), "--jsonl", stdin=demo_q, stdout=c.out / "demo.jsonl")
    human = c.human(c.out / "demo-index", demo)
    (c.out / "demo-human.json").write_text(json.dumps(human, ensure_ascii=False, indent=0))
    api, spec = c.serve_and_ask(c.out / "demo-index", demo)
    (c.out / "demo-api.json").write_text(json.dumps(api, ensure_ascii=False))
    (c.out / "openapi.json").write_text(json.dumps(spec, ensure_ascii=False))
    print(f"  {c.root}: demo done in {time.monotonic() - t:.0f}s; indexing SQuAD …", file=sys.stderr)
    if squad_q is None:
        done.write_text("")
        return
    c.qa("index", str(squad_corpus), "--index", str(c.out / "squad-index"), "-q")
    c.qa("ask", "--index", str(c.out / "squad-index"), "--jsonl", stdin=squad_q, stdout=c.out / "squad.jsonl")
    print(f"  {c.root}: all done in {time.monotonic() - t:.0f}s", file=sys.stderr)
    done.write_text("")


def _strip(obj: dict[str, Any], drop: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in drop}


def _diff_answers(
    name: str, before: list[dict[str, Any]], after: list[dict[str, Any]], extra: tuple[str, ...] = ()
) -> int:
    if len(before) != len(after):
        print(f"{name}: {len(before)} answers before, {len(after)} after")
        return 1 + abs(len(before) - len(after))
    differ = 0
    added: set[str] = set()
    for a, b in zip(before, after, strict=True):
        added |= set(b) - set(a)
        if json.dumps(_strip(a, TIMING), ensure_ascii=False) != json.dumps(
            _strip(b, TIMING + extra), ensure_ascii=False
        ):
            differ += 1
            if differ <= 3:
                print(
                    f"  differs: {a.get('question')!r}\n    before {_strip(a, TIMING)}\n    after  {_strip(b, TIMING + extra)}"
                )
    allowed = sorted(added & set(extra))
    note = f" (after adds {', '.join(allowed)})" if allowed else ""
    print(f"{name}: {len(before)} answers, {differ} differ{note}")
    return differ


def _schema_fields(spec: dict[str, Any]) -> dict[str, Any]:
    """What a client of the API depends on: each operation's methods and statuses, each model's fields."""
    ops = {path: {m: sorted(op.get("responses", {})) for m, op in item.items()} for path, item in spec["paths"].items()}
    models = {
        name: sorted(s.get("properties", {})) for name, s in spec.get("components", {}).get("schemas", {}).items()
    }
    return {"paths": ops, "models": models}


def _diff_schema(before: dict[str, Any], after: dict[str, Any]) -> int:
    """Paths, methods, statuses and every model's fields: a removal or rename counts as a difference;
    a field or model the later schema adds (declaring what the API already sent, or its new ``view``)
    is listed, not counted, since no client of the earlier schema can miss it."""
    a, b = _schema_fields(before), _schema_fields(after)
    differ = 0
    if a["paths"] != b["paths"]:
        differ += 1
        print(f"  paths differ:\n    before {a['paths']}\n    after  {b['paths']}")
    added = []
    for name in sorted(set(a["models"]) | set(b["models"])):
        fa, fb = a["models"].get(name), b["models"].get(name)
        if fb is None:
            differ += 1
            print(f"  model {name}: removed")
        elif fa is None:
            added.append(f"model {name}")
        else:
            gone = [f for f in fa if f not in fb]
            if gone:
                differ += 1
                print(f"  model {name}: fields {gone} removed")
            added += [f"{name}.{f}" for f in fb if f not in fa]
    print(f"openapi.json: {len(a['paths'])} paths, {len(a['models'])} models before; {differ} differ")
    if added:
        print(f"  declared now (added, not counted): {', '.join(added)}")
    return differ


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--before", type=Path, required=True, help="the earlier checkout (its root folder)")
    ap.add_argument("--after", type=Path, default=ROOT, help="the later checkout (default: this one)")
    ap.add_argument("--python", default=sys.executable, help="the Python both run with (default: this one)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/citeqa-same-answers"), help="indexes and outputs")
    ap.add_argument("--squad", type=Path, default=None, help="SQuAD v1.1 dev JSON (default: benchmarks/squad-v1.1)")
    ap.add_argument("--squad-sample", type=int, default=500, help="SQuAD questions asked (default 500)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument(
        "--api-extra",
        action="append",
        default=[],
        metavar="KEY",
        help="a key the later checkout's API answer may add (reported, not compared)",
    )
    ap.add_argument("--no-squad", action="store_true", help="the demo gold set only (SQuAD indexing takes long)")
    args = ap.parse_args(argv)
    squad = args.squad or BENCH / "squad-v1.1" / "dev-v1.1.json"
    corpus, demo_q, squad_corpus, squad_q, demo = _prepare(args.work, squad, args.squad_sample, args.seed)
    inputs = (corpus, demo_q, squad_corpus, None if args.no_squad else squad_q, demo)
    runs = {}
    for role, root in (("before", args.before.resolve()), ("after", args.after.resolve())):
        tag = _commit(root) + ("-dirty" if _dirty(root) else "")
        out = args.work / f"{role}-{tag}"
        if role == "after" or tag.endswith("-dirty"):  # a changing tree is never reused
            subprocess.run(["rm", "-rf", str(out)], check=True)
        print(f"{role}: {root} at {tag}", file=sys.stderr)
        runs[role] = Checkout(root, args.python, out)
        _run(runs[role], *inputs)
    b, a = runs["before"].out, runs["after"].out
    extra = tuple(args.api_extra)
    print(
        f"before: {args.before} ({_commit(args.before)}), after: {args.after} ({_commit(args.after)}"
        f"{', uncommitted changes' if _dirty(args.after) else ''})"
    )
    differ = _diff_answers("demo gold, qa ask --jsonl", _read_jsonl(b / "demo.jsonl"), _read_jsonl(a / "demo.jsonl"))
    hb, ha = json.loads((b / "demo-human.json").read_text()), json.loads((a / "demo-human.json").read_text())
    human = sum(x != y for x, y in zip(hb, ha, strict=True))
    print(f"demo gold, qa ask (human output): {len(hb)} answers, {human} differ")
    differ += human
    differ += _diff_answers(
        "demo gold, POST /api/ask",
        json.loads((b / "demo-api.json").read_text()),
        json.loads((a / "demo-api.json").read_text()),
        extra,
    )
    differ += _diff_schema(json.loads((b / "openapi.json").read_text()), json.loads((a / "openapi.json").read_text()))
    if args.no_squad or not (a / "squad.jsonl").exists():
        print(f"total: {differ} differences (demo gold only: --no-squad)")
        return 1 if differ else 0
    differ += _diff_answers(
        f"SQuAD v1.1 dev sample (seed {args.seed}), qa ask --jsonl",
        _read_jsonl(b / "squad.jsonl"),
        _read_jsonl(a / "squad.jsonl"),
    )
    print(f"total: {differ} differences")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
