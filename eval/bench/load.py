"""Load benchmark of the HTTP API: N concurrent clients ask gold questions through POST /api/ask.

    python -m eval.bench.load                          # builds the demo index, starts `qa serve`, 8 clients for 30 s
    python -m eval.bench.load --index .citeqa --clients 16 --duration 60
    python -m eval.bench.load --url http://127.0.0.1:8000 --pid 1234   # a server that is already running
    python -m eval.bench.load --smoke --index .citeqa  # a few seconds (CI)

Each client is a keep-alive HTTP connection that asks its next question as soon as the last answer
arrives (a closed loop), cycling through the questions of ``eval/gold/demo.jsonl`` from its own
offset. Prints throughput (answers/s), latency p50/p90/p99, errors, the server's resident memory
and the CPU time the server and this load generator spent per answer (they share the machine).
Prints figures and asserts nothing about speed; the exit code is 1 only when a request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from eval.metrics import percentile
from eval.process import cpu_seconds, memory_mb
from eval.server import build_demo_index, start_server, stop_server, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
GOLD = ROOT / "eval" / "gold" / "demo.jsonl"

GOAL_RATE = 50.0  # answers/s on the 2-core project machine
GOAL_P99_MS = 250.0


# --- pure figures -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    latency_s: float
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class LoadResult:
    clients: int
    seconds: float
    answers: int
    errors: int
    answers_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    abstained: int
    first_errors: tuple[str, ...]
    server_rss_mb: float | None = None
    server_peak_rss_mb: float | None = None
    server_cpu_ms_per_answer: float | None = None
    client_cpu_ms_per_answer: float | None = None


def summarize(samples: Sequence[Sample], seconds: float, clients: int, abstained: int) -> LoadResult:
    ok = [s.latency_s * 1000 for s in samples if s.ok]
    errors = [s for s in samples if not s.ok]
    return LoadResult(
        clients=clients,
        seconds=round(seconds, 2),
        answers=len(ok),
        errors=len(errors),
        answers_per_s=round(len(ok) / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(percentile(ok, 50), 1),
        p90_ms=round(percentile(ok, 90), 1),
        p99_ms=round(percentile(ok, 99), 1),
        max_ms=round(max(ok), 1) if ok else float("nan"),
        abstained=abstained,
        first_errors=tuple(dict.fromkeys(e.error or "?" for e in errors))[:3],
    )


def gold_questions(path: Path) -> list[str]:
    qs = [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not qs:
        raise SystemExit(f"eval.bench.load: no questions in {path}")
    return qs


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --- the load -----------------------------------------------------------------------------------
async def _client(http, url: str, qs: list[str], start: int, stop_at: float, k: int,
                  out: list[Sample], abstained: list[int]) -> None:
    import httpx

    i = start
    while time.perf_counter() < stop_at:
        q = qs[i % len(qs)]
        i += 1
        t0 = time.perf_counter()
        try:
            r = await http.post(url, json={"question": q, "k": k})
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                out.append(Sample(dt, False, f"HTTP {r.status_code}: {r.text[:120]}"))
                continue
            body = r.json()
            if not isinstance(body.get("citations"), list) or "abstained" not in body:
                out.append(Sample(dt, False, f"not an answer: {r.text[:120]}"))
                continue
            abstained[0] += bool(body["abstained"])
            out.append(Sample(dt, True))
        except (httpx.HTTPError, ValueError) as e:
            out.append(Sample(time.perf_counter() - t0, False, f"{type(e).__name__}: {e}"[:160]))


async def run_load(base_url: str, qs: list[str], *, clients: int, seconds: float, warmup: float, k: int = 5,
                   pid: int | None = None) -> LoadResult:
    import httpx

    url = base_url.rstrip("/") + "/api/ask"
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0)) as http:
        stride = max(1, len(qs) // clients)
        if warmup > 0:  # first requests pay for lazy set-up (thread pool, allocator); not counted
            stop = time.perf_counter() + warmup
            await asyncio.gather(*(_client(http, url, qs, c * stride, stop, k, [], [0]) for c in range(clients)))
        samples: list[Sample] = []
        abstained = [0]
        cpu0 = cpu_seconds(pid) if pid else None
        own0 = _own_cpu()
        t0 = time.perf_counter()
        stop = t0 + seconds
        await asyncio.gather(*(_client(http, url, qs, c * stride + 1, stop, k, samples, abstained)
                               for c in range(clients)))
        elapsed = time.perf_counter() - t0
        own = _own_cpu() - own0
    res = summarize(samples, elapsed, clients, abstained[0])
    n = max(1, res.answers)
    extra: dict[str, float | None] = {"client_cpu_ms_per_answer": round(own * 1000 / n, 2)}
    if pid:
        rss, peak = memory_mb(pid)
        extra |= {"server_rss_mb": round(rss, 1), "server_peak_rss_mb": round(peak, 1),
                  "server_cpu_ms_per_answer": round((cpu_seconds(pid) - (cpu0 or 0.0)) * 1000 / n, 2)}
    return LoadResult(**{**asdict(res), **extra})


# --- the command --------------------------------------------------------------------------------
def report(res: LoadResult, where: str, workers: int | None, batch: bool | None = None) -> str:
    def fig(v: float | None, unit: str = "") -> str:
        return "n/a" if v is None else f"{v:g}{unit}"

    met = res.errors == 0 and res.answers_per_s >= GOAL_RATE and res.p99_ms <= GOAL_P99_MS
    lines = [
        f"citeqa load benchmark — {where}, {res.clients} clients, {res.seconds:.1f} s, "
        f"{os.cpu_count()} cores{'' if workers is None else f', {workers} server worker(s)'}"
        f"{'' if batch is None else (', questions batched' if batch else ', questions encoded one by one')}",
        f"  throughput      {res.answers_per_s:.1f} answers/s ({res.answers} answers, {res.abstained} abstentions)",
        f"  latency         p50 {res.p50_ms:.1f} ms · p90 {res.p90_ms:.1f} ms · p99 {res.p99_ms:.1f} ms · "
        f"max {res.max_ms:.1f} ms",
        f"  errors          {res.errors}" + (f"  (first: {'; '.join(res.first_errors)})" if res.errors else ""),
        f"  server memory   {fig(res.server_rss_mb, ' MB')} resident (peak {fig(res.server_peak_rss_mb, ' MB')})",
        f"  CPU per answer  server {fig(res.server_cpu_ms_per_answer, ' ms')} · "
        f"this load generator {fig(res.client_cpu_ms_per_answer, ' ms')}",
        f"  goal (≥ {GOAL_RATE:g} answers/s, p99 ≤ {GOAL_P99_MS:g} ms, 0 errors): {'met' if met else 'NOT met'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench.load", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--index", type=Path, help="serve this index (default: build the demo corpus in a temp dir)")
    where.add_argument("--url", help="load a running server instead of starting one, e.g. http://127.0.0.1:8000")
    ap.add_argument("--pid", type=int, help="with --url: the server's process id, to report its memory and CPU")
    ap.add_argument("--workers", type=int, default=1, help="`qa serve --workers` for the started server (default 1)")
    ap.add_argument("--no-batch", action="store_true",
                    help="start the server with CITEQA_BATCH_QUESTIONS=0: each question encoded on its own")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds (default 30)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring (default 3)")
    ap.add_argument("--k", type=int, default=5, help="citations per answer (default 5, as the chat asks)")
    ap.add_argument("--gold", type=Path, default=GOLD, help=f"questions to ask (default {GOLD.relative_to(ROOT)})")
    ap.add_argument("--smoke", action="store_true", help="a quick run (CI): 2 clients, 3 s, 0.5 s warm-up")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.warmup < 0 or args.workers < 1:
        ap.error("--clients and --workers must be at least 1, --duration positive, --warmup not negative")
    if args.pid and not args.url:
        ap.error("--pid goes with --url (a started server is measured anyway)")
    if args.smoke:
        args.clients, args.duration, args.warmup = 2, 3.0, 0.5
    qs = gold_questions(args.gold)

    server = None
    with tempfile.TemporaryDirectory(prefix="citeqa-load-") as tmp:
        try:
            if args.url:
                url, pid, workers = args.url, args.pid, None
                wait_healthy(url, timeout=10.0)
            else:
                index_dir = args.index
                if index_dir is None:
                    index_dir = Path(tmp) / "index"
                    build_demo_index(index_dir)
                server = start_server(index_dir, args.workers, batch=not args.no_batch, log=Path(tmp) / "serve.log")
                url, pid, workers = server.url, server.proc.pid, args.workers
            res = asyncio.run(run_load(url, qs, clients=args.clients, seconds=args.duration, warmup=args.warmup,
                                       k=args.k, pid=pid))
        except RuntimeError as e:
            print(f"eval.bench.load: {e}", file=sys.stderr)
            return 1
        finally:
            if server is not None:
                stop_server(server)
    print(report(res, url, workers, None if args.url else not args.no_batch))
    if args.json:
        print(json.dumps(asdict(res)))
    return 1 if res.errors or res.answers == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
