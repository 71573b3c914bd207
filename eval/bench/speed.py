"""Speed benchmark: every figure of the speed issue, each next to the plain baseline measured in
the same run, as a ratio. Prints a table; asserts nothing (timing goals live here, not in tests).

    python -m eval.bench                 # demo corpus + SQuAD dev (2,067 paragraphs), ~20-40 min
    python -m eval.bench --smoke         # CI: demo corpus + 2 SQuAD articles, few questions

The plain baseline is eval/bench/plain.py, the script anyone could write: sentence-transformers encode
(fp32 torch) + exact FAISS flat search over every sentence vector + the top sentence as answer.

What is measured, in this order, in one run:
1. index build: a cold ``qa index`` process on the SQuAD corpus (sentences indexed per second of
   wall time, model and spaCy loading included), next to the raw encoder's sentences/s on the same
   sentences in this process (measured before and after the build, averaged), and next to the
   plain script's build (sentence-transformers encode + FAISS flat add);
2. warm questions, engine only (``Engine.ask``: encode, retrieve, rank, answer, cite) on the demo
   corpus (its gold questions) and on SQuAD (sampled SQuAD questions), next to the plain script's
   encode + search + top sentence on the same questions;
3. cold ``qa ask`` (one process, one question, wall time) next to ``python -m eval.bench.plain``;
4. resident memory of ``qa serve`` on the demo corpus after a few questions over HTTP, next to the
   plain script's after the same questions;
5. the 1M-passage rows come from the last ``python -m eval.bench.scale`` run (its JSON in the cache),
   labelled with when it ran; that benchmark takes an hour on these cores and runs on its own.
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
import urllib.request
from pathlib import Path

from eval.metrics import percentile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "corpus"
GOLD = ROOT / "eval" / "gold" / "demo.jsonl"
CACHE = ROOT / "eval" / "cache"
SCALE_JSON = CACHE / "scale" / "last-1000000.json"

FALLBACK_QUESTIONS = [
    "when were direct AZAL flights announced",
    "who led the Pakistan side in the bilateral political consultations",
    "Who is Azerbaijan's ambassador to Pakistan?",
    "where did Kakar meet Aliyev",
    "how many Kashmiris were killed in the past week",
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def demo_questions(n: int) -> list[str]:
    qs: list[str] = []
    if GOLD.exists():
        qs = [json.loads(line)["question"] for line in GOLD.read_text().splitlines() if line.strip()]
    qs = qs or FALLBACK_QUESTIONS
    return [qs[i % len(qs)] for i in range(n)]


def squad_questions(articles, n: int, seed: int = 13) -> list[str]:
    import random

    qs = [q.question for a in articles for p in a.paragraphs for q in p.questions]
    random.Random(seed).shuffle(qs)
    return [qs[i % len(qs)] for i in range(n)]


def qa_bin() -> str:
    return str(Path(sys.executable).with_name("qa"))


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def timed_each(fn, items) -> list[float]:
    out = []
    for x in items:
        t = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - t)
    return out


# --- the parts ----------------------------------------------------------------------------------


def build_index_cold(corpus: Path, index_dir: Path, encoder: str) -> tuple[float, dict]:
    t = time.perf_counter()
    out = subprocess.run([qa_bin(), "index", str(corpus), "--index", str(index_dir), "--encoder", encoder, "-q", "--json"],
                         check=True, capture_output=True, text=True, env=env())
    return time.perf_counter() - t, json.loads(out.stdout)


def raw_encoder_rate(encoder_name: str, sentences: list[str]) -> float:
    from index.encoder import load_encoder

    enc = load_encoder(encoder_name)
    enc.encode(sentences[:64])
    t = time.perf_counter()
    enc.encode(sentences)
    return len(sentences) / (time.perf_counter() - t)


def plain_build_rate(sentences: list[str], model) -> float:
    import faiss

    t = time.perf_counter()
    vecs = model.encode(sentences, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    flat = faiss.IndexFlatIP(vecs.shape[1])
    flat.add(vecs)
    return len(sentences) / (time.perf_counter() - t)


def warm(index_dir: Path, qs: list[str], plain_model) -> tuple[list[float], list[float]]:
    """(citeqa, plain) latency of each question, interleaved so a slow moment hurts both alike."""
    from eval.bench.plain import PlainSearch
    from qa.engine import Engine

    engine = Engine.open(index_dir)
    plain = PlainSearch(index_dir, plain_model)
    for q in qs[:5]:
        engine.ask(q)
        plain.ask(q)
    ours, base = [], []
    for q in qs:
        ours += timed_each(engine.ask, [q])
        base += timed_each(plain.ask, [q])
    return ours, base


def readers_warm(index_dir: Path, qs: list[str]) -> dict[str, list[float]]:
    """Warm latency of each question read by each reader on one loaded index, taking turns: the
    neural reader as shipped, the same reading every sentence of its depth on one core (how it
    read before the early exit and the idle-core session), and the linear reader."""
    from dataclasses import replace

    from qa.engine import Engine
    from qa.reader import NeuralReader as OnnxReader
    from qa.reading import NeuralReader

    engine = Engine.open(index_dir)
    shipped = engine.reader_named("neural")
    assert isinstance(shipped, NeuralReader)
    one_core = NeuralReader(engine.answerer, OnnxReader(threads=1), replace(shipped.calibration, exit_logit=None))
    ask = {
        "neural": lambda x: engine.ask(x, method="neural"),
        "neural_all_one_core": lambda x: engine._ask(x, 5, None, None, one_core),
        "linear": lambda x: engine.ask(x, method="linear"),
    }
    for q in qs[:5]:
        for fn in ask.values():
            fn(q)
    out: dict[str, list[float]] = {name: [] for name in ask}
    for q in qs:
        for name, fn in ask.items():
            out[name] += timed_each(fn, [q])
    return out


def run_readers(index_dir: Path, n: int) -> int:
    """``--readers INDEX``: the neural and the linear reader side by side, warm questions."""
    from eval.squad import BUNDLED_SQUAD, load_squad

    qs = squad_questions(load_squad(BUNDLED_SQUAD), n) if "squad" in str(index_dir) else demo_questions(n)
    load0 = os.getloadavg()[0]
    t = readers_warm(index_dir, qs)
    med = {k: statistics.median(v) for k, v in t.items()}
    p95 = {k: percentile(v, 95) for k, v in t.items()}
    rows = [
        ("warm question, median", "≤ 35 ms", ms(med["neural"]), ms(med["neural_all_one_core"]), ms(med["linear"]),
         f"{med['neural'] / med['neural_all_one_core']:.2f}×"),
        ("warm question, p95", "", ms(p95["neural"]), ms(p95["neural_all_one_core"]), ms(p95["linear"]),
         f"{p95['neural'] / p95['neural_all_one_core']:.2f}×"),
    ]
    print(render(rows, f"readers on {index_dir}, {n} questions each, taking turns "
                       f"(load {load0:.1f} → {os.getloadavg()[0]:.1f})",
                 ("figure", "goal", "neural (shipped)", "neural, no early exit, one core", "linear reader",
                  "shipped ÷ no exit")))
    return 0


def cold(index_dir: Path, question: str, runs: int) -> tuple[list[float], list[float]]:
    ours, base = [], []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([qa_bin(), "ask", "--index", str(index_dir), "--json", question], check=True,
                       capture_output=True, env=env())
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "eval.bench.plain", str(index_dir), question], check=True,
                       capture_output=True, env=env(), cwd=ROOT)
        base.append(time.perf_counter() - t)
    return ours, base


def server_rss(index_dir: Path, qs: list[str]) -> tuple[float, float]:
    """RSS (MB) of `qa serve` after answering ``qs`` over HTTP, and of the plain script after them."""
    from eval.process import resident_mb
    from eval.server import start_server, stop_server

    server = start_server(index_dir)
    try:
        for q in qs:
            req = urllib.request.Request(f"{server.url}/api/ask", data=json.dumps({"question": q}).encode(),
                                         headers={"content-type": "application/json"})
            urllib.request.urlopen(req, timeout=60).read()
        ours = resident_mb(server.proc.pid)
    finally:
        stop_server(server)
    out = subprocess.run([sys.executable, "-m", "eval.bench.plain", str(index_dir), "--rss", *qs], check=True,
                         capture_output=True, text=True, env=env(), cwd=ROOT).stdout
    base = float(out.strip().splitlines()[-1].split()[1])
    return ours, base


# --- the table ----------------------------------------------------------------------------------


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def row(name: str, goal: str, ours: str, base: str, ratio: str) -> tuple[str, str, str, str, str]:
    return (name, goal, ours, base, ratio)


def render(rows: list[tuple[str, ...]], header: str,
           names: tuple[str, ...] = ("figure", "goal", "citeqa", "plain ST + FAISS", "ratio")) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(names))]
    widths = [max(w, len(n)) for w, n in zip(widths, names, strict=True)]
    line = "| " + " | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))) + " |"
            for r in rows]
    return "\n".join([header, "", line, sep, *body])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=200, help="warm questions per corpus (default 200)")
    ap.add_argument("--cold-runs", type=int, default=5, help="cold `qa ask` runs per corpus (default 5)")
    ap.add_argument("--articles", type=int, default=None, help="SQuAD articles to index (default: all 48)")
    ap.add_argument("--encoder", default=None, help="encoder of the indexes (default: the index default)")
    ap.add_argument("--scale-json", type=Path, default=SCALE_JSON, help="figures of the last 1M-passage run")
    ap.add_argument("--smoke", action="store_true", help="a quick run (CI): 2 SQuAD articles, 10 questions, 1 cold run")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    ap.add_argument("--readers", type=Path, default=None, metavar="INDEX",
                    help="only the warm questions on INDEX, the neural reader next to the linear one")
    args = ap.parse_args(argv)
    if args.readers is not None:
        return run_readers(args.readers, args.questions)
    if args.smoke:
        args.questions, args.cold_runs, args.articles = 10, 1, args.articles or 2
    if args.questions < 1 or args.cold_runs < 1:
        print("python -m eval.bench: --questions and --cold-runs must be at least 1", file=sys.stderr)
        return 2

    from eval.squad import BUNDLED_SQUAD, load_squad, select_articles, write_corpus
    from index.encoder import DEFAULT_ENCODER, SentenceTransformerEncoder
    from index.loaded import LoadedIndex

    encoder = args.encoder or DEFAULT_ENCODER
    load_start = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M")
    articles = select_articles(load_squad(BUNDLED_SQUAD), args.articles, None)
    st_model = SentenceTransformerEncoder()._model  # the plain script's model, loaded once
    fig: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        squad_corpus = tmp_p / "squad"
        n_docs = write_corpus(articles, squad_corpus)

        log(f"1/5 index build: SQuAD ({n_docs} paragraphs), encoder {encoder}")
        squad_index = tmp_p / "squad-index"
        raw1 = None
        # The raw encoder needs the sentences; the splitter is cheap and deterministic.
        from index.documents import load_folder
        from index.split import split_sentences

        docs, _ = load_folder(squad_corpus)
        sentences = [d.text[s.start : s.end] for d in docs for s in split_sentences(d.text)]
        raw1 = raw_encoder_rate(encoder, sentences)
        build_s, report = build_index_cold(squad_corpus, squad_index, encoder)
        raw2 = raw_encoder_rate(encoder, sentences)
        raw = (raw1 + raw2) / 2
        build_rate = report["sentences"] / build_s
        plain_rate = plain_build_rate(sentences, st_model)
        fig.update(build_s=build_s, build_rate=build_rate, raw_rate=raw, raw_rates=[raw1, raw2],
                   plain_build_rate=plain_rate, build_report=report)

        log("2/5 warm questions: demo corpus and SQuAD")
        demo_index = tmp_p / "demo-index"
        build_index_cold(CORPUS, demo_index, encoder)
        d_ours, d_base = warm(demo_index, demo_questions(args.questions), st_model)
        s_qs = squad_questions(articles, args.questions)
        s_ours, s_base = warm(squad_index, s_qs, st_model)
        fig.update(demo_warm=d_ours, demo_plain=d_base, squad_warm=s_ours, squad_plain=s_base)

        log("3/5 cold `qa ask`")
        c_demo, c_demo_base = cold(demo_index, demo_questions(1)[0], args.cold_runs)
        c_squad, c_squad_base = cold(squad_index, s_qs[0], args.cold_runs)
        fig.update(cold_demo=c_demo, cold_demo_plain=c_demo_base, cold_squad=c_squad, cold_squad_plain=c_squad_base)

        log("4/5 server memory")
        rss, rss_base = server_rss(demo_index, demo_questions(5))
        fig.update(rss=rss, rss_plain=rss_base)
        n_sent_demo = LoadedIndex.open(demo_index).n_sentences()

    log("5/5 1M passages: from the last eval.bench.scale run")
    scale = json.loads(args.scale_json.read_text()) if args.scale_json.exists() else None

    med = statistics.median
    rows = [
        row("warm question, engine only, demo corpus, median", "≤ 10 ms", ms(med(d_ours)), ms(med(d_base)),
            f"{med(d_ours) / med(d_base):.2f}×"),
        row("  same, p95", "", ms(percentile(d_ours, 95)), ms(percentile(d_base, 95)), f"{percentile(d_ours, 95) / percentile(d_base, 95):.2f}×"),
        row(f"warm question, SQuAD corpus ({n_docs:,} paragraphs), median", "≤ 15 ms", ms(med(s_ours)), ms(med(s_base)),
            f"{med(s_ours) / med(s_base):.2f}×"),
        row("  same, p95", "", ms(percentile(s_ours, 95)), ms(percentile(s_base, 95)), f"{percentile(s_ours, 95) / percentile(s_base, 95):.2f}×"),
        row("cold `qa ask`, one question, wall, demo corpus", "≤ 2.5 s", f"{med(c_demo):.2f} s", f"{med(c_demo_base):.2f} s",
            f"{med(c_demo) / med(c_demo_base):.2f}×"),
        row(f"cold `qa ask`, one question, wall, SQuAD ({n_docs:,})", "≤ 2.5 s", f"{med(c_squad):.2f} s",
            f"{med(c_squad_base):.2f} s", f"{med(c_squad) / med(c_squad_base):.2f}×"),
        row(f"index build, SQuAD ({report['sentences']:,} sentences), wall", "", f"{build_s:.0f} s",
            f"{report['sentences'] / plain_rate:.0f} s", f"{build_s / (report['sentences'] / plain_rate):.2f}×"),
        row("index build throughput, sentences/s", "", f"{build_rate:.0f}/s", f"{plain_rate:.0f}/s",
            f"{build_rate / plain_rate:.2f}×"),
        row(f"  ÷ raw {encoder} encoder, sentences/s (same run)", "≥ 0.90", f"{build_rate / raw:.2f}", "",
            f"(raw {raw:.0f}/s)"),
        row(f"server resident memory, demo corpus ({n_sent_demo} sentences)", "≤ 600 MB", f"{rss:.0f} MB",
            f"{rss_base:.0f} MB", f"{rss / rss_base:.2f}×"),
    ]
    if scale:
        s = scale
        when = s.get("info", {}).get("built", "?")
        rows += [
            row(f"1M passages: search p50 / recall@10 vs exact (run of {s.get('date', when)})", "≤ 10 ms / ≥ 0.95",
                f"{med(s['search_ms']):.2f} ms / {s['recall']:.3f}", f"{med(s['flat_ms']):.1f} ms / 1.000",
                f"{med(s['search_ms']) / med(s['flat_ms']):.3f}×"),
            row("1M passages: end-to-end question p50", "≤ 50 ms", f"{med(s['e2e_ms']):.1f} ms",
                f"{med(s['base_e2e_ms']):.0f} ms" if s["base_e2e_ms"] else "—",
                f"{med(s['e2e_ms']) / med(s['base_e2e_ms']):.3f}×" if s["base_e2e_ms"] else "—"),
        ]
    else:
        rows.append(row(f"1M passages: no run yet (python -m eval.bench.scale writes {args.scale_json.name})", "", "—", "—", ""))
    header = (f"citeqa speed benchmark — {started}, encoder {encoder}, {os.cpu_count()} cores shared with other work "
              f"(load average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end); "
              f"{args.questions} warm questions per corpus, {args.cold_runs} cold runs; medians unless marked")
    print(render(rows, header))
    timings = report.get("timings", {})
    if timings:
        print("\nindex build by phase: " + "; ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    if args.json:
        args.json.write_text(json.dumps(fig, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
