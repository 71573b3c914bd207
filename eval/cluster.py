"""The cluster figures of issue 13, measured side by side in one run on a real two-node Ray cluster
on loopback (head 127.0.0.2, worker 127.0.0.3, one CPU each: the machine's two cores).

    python -m eval.cluster                      # SQuAD v1.1 dev, first 8 articles; 200 questions
    python -m eval.cluster --articles 4 --questions 100
    python -m eval.cluster --smoke              # the demo corpus and its gold questions (CI)
    python -m eval.cluster --ray 127.0.0.2:6379 # on a running cluster (RAY_AUTH_* in the environment)

Figures, each measured here, in this run:

- **ingest**: wall time of ``qa index CORPUS`` (local, both cores) ÷ ``qa index CORPUS --ray ADDRESS``
  (Ray Data on the two one-CPU nodes): ≥ 0.85 means the cluster build is at most ~18% slower on
  the same CPUs. Both are whole commands as a user runs them (start-up and model loading included).
- **same answers**: the share of questions whose answer and top citation (document, offset) from
  ``qa serve --ray`` over 2 shards (1 replica each) equal ``qa serve`` over the unsharded index.
- **latency**: p50 of ``POST /api/ask`` through the sharded Ray Serve server ÷ through the unsharded
  one; questions sent one at a time, alternating between the two servers.
- **memory**: resident memory of one shard's replica (the larger of the two) ÷ the unsharded
  ``qa serve`` process (the engine), both after the questions.
- **lost requests**: the sharded server again with 2 replicas per shard; 3 clients send questions
  while one replica of shard 0 is killed with SIGKILL; every request that did not get a 200 is lost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from eval.benchmarks import BENCH
from eval.gold import DEMO_GOLD, GoldItem, load_gold
from eval.raycluster import LocalCluster, start_cluster
from eval.server import start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
QA = str(Path(sys.executable).with_name("qa"))
GOALS = {"ingest_ratio": 0.85, "same_answers": 0.99, "latency_ratio": 1.5, "memory_ratio": 0.55, "lost": 0}


def _qa(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    r = subprocess.run([QA, *args, "-q", "--json"], capture_output=True, text=True, env=env, timeout=3600)
    took = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"qa {' '.join(args)} failed: {r.stderr[-2000:]}")
    return took, json.loads(r.stdout)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def replica_pids(app: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes().startswith(f"ray::ServeReplica:{app}:".encode()):
                    found.append(int(d.name))
            except OSError:
                continue
    return found


def _post(url: str, question: str) -> tuple[int, dict[str, Any] | None, float]:
    import httpx

    t = time.perf_counter()
    r = httpx.post(f"{url}/api/ask", json={"question": question}, timeout=120)
    took = (time.perf_counter() - t) * 1000
    return r.status_code, (r.json() if r.status_code == 200 else None), took


def _top(ans: dict[str, Any] | None) -> tuple[Any, ...]:
    if ans is None:
        return ("no answer",)
    c = ans["citations"][0] if ans["citations"] else {}
    return ans["answer"], ans["abstained"], c.get("doc_id"), c.get("start")


def _corpus(work: Path, articles: int, questions: int, smoke: bool) -> tuple[Path, list[GoldItem], str]:
    if smoke:
        gold = load_gold(DEMO_GOLD)
        return ROOT / "corpus", gold[:questions], f"the demo corpus ({len(gold[:questions])} gold questions)"
    from eval.squad import gold_items, load_squad, sample, select_articles, write_corpus

    arts = select_articles(load_squad(BENCH / "squad-v1.1" / "dev-v1.1.json"), articles)
    corpus = work / "corpus"
    n = write_corpus(arts, corpus)
    items = sample(gold_items(arts), questions, seed=13)
    return corpus, items, f"SQuAD v1.1 dev, first {articles} articles ({n} paragraphs), {len(items)} questions (seed 13)"


def _kill_under_load(url: str, app: str, question: str, clients: int = 3, each: int = 30) -> dict[str, Any]:
    """``clients`` threads each send ``each`` questions; one replica of ``app`` is killed after 1 s."""
    import httpx

    victims = replica_pids(app)
    codes: Counter[str] = Counter()
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=120) as c:
            for _ in range(each):
                try:
                    code = str(c.post(f"{url}/api/ask", json={"question": question}).status_code)
                except httpx.HTTPError as e:
                    code = type(e).__name__
                with lock:
                    codes[code] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    os.kill(victims[0], signal.SIGKILL)
    for t in threads:
        t.join()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(replica_pids(app)) < len(victims):
        time.sleep(0.5)
    return {"requests": clients * each, "codes": dict(codes), "lost": clients * each - codes.get("200", 0),
            "replicas_before": len(victims), "replicas_after": len(replica_pids(app))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="citeqa-cluster-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus, items, what = _corpus(work, args.articles, args.questions, args.smoke)
    out: dict[str, Any] = {"corpus": what, "machine": f"{os.cpu_count()} cores; {args.note}"}
    cluster: LocalCluster | None = None
    servers = []
    try:
        if args.ray:
            address = args.ray
        else:
            print("starting the two-node cluster …", file=sys.stderr)
            cluster = start_cluster(2)
            address = cluster.address
            os.environ.update(cluster.client_env())
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        for d in ("local", "ray", "sharded"):
            shutil.rmtree(work / d, ignore_errors=True)
        print("ingest: local build …", file=sys.stderr)
        t_local, rep_local = _qa(["index", str(corpus), "--index", str(work / "local")], env)
        print("ingest: Ray build …", file=sys.stderr)
        t_ray, rep_ray = _qa(["index", str(corpus), "--index", str(work / "ray"), "--ray", address], env)
        out["ingest"] = {"sentences": rep_local["sentences"], "local_s": round(t_local, 1), "ray_s": round(t_ray, 1),
                         "ratio": round(t_local / t_ray, 3),
                         "same_sentences": rep_ray["sentences"] == rep_local["sentences"]}
        _qa(["index", str(corpus), "--index", str(work / "sharded"), "--shards", "2"], env)

        print("serving: unsharded, and 2 shards on Ray Serve (1 replica each) …", file=sys.stderr)
        plain = start_server(work / "local", log=work / "plain.log")
        servers.append(plain)
        sharded = start_server(work / "sharded", log=work / "sharded.log",
                               extra=["--ray", address, "--replicas", "1"])
        servers.append(sharded)
        for it in items[:3]:  # warm both
            _post(plain.url, it.question)
            _post(sharded.url, it.question)
        same = 0
        lat_plain, lat_sharded = [], []
        failed = 0
        for it in items:
            c1, a1, t1 = _post(plain.url, it.question)
            c2, a2, t2 = _post(sharded.url, it.question)
            lat_plain.append(t1)
            lat_sharded.append(t2)
            failed += (c1 != 200) + (c2 != 200)
            same += _top(a1) == _top(a2)
        p50_plain, p50_sharded = statistics.median(lat_plain), statistics.median(lat_sharded)
        out["same_answers"] = {"questions": len(items), "same": same, "share": round(same / len(items), 4),
                               "non_200": failed}
        out["latency"] = {"p50_unsharded_ms": round(p50_plain, 1), "p50_sharded_ray_ms": round(p50_sharded, 1),
                          "ratio": round(p50_sharded / p50_plain, 3)}
        from index.serving import RayShards

        apps = RayShards(work / "sharded").apps
        replica_rss = max(rss_mb(p) for app in apps for p in replica_pids(app))
        engine_rss = rss_mb(plain.proc.pid)
        out["memory"] = {"shard_replica_mb": round(replica_rss), "unsharded_engine_mb": round(engine_rss),
                         "ratio": round(replica_rss / engine_rss, 3)}
        stop_server(sharded)
        servers.remove(sharded)

        print("faults: 2 replicas per shard, one killed under load …", file=sys.stderr)
        sharded2 = start_server(work / "sharded", log=work / "sharded2.log",
                                extra=["--ray", address, "--replicas", "2"])
        servers.append(sharded2)
        out["faults"] = _kill_under_load(sharded2.url, apps[0], items[0].question)
    finally:
        for s in servers:
            stop_server(s)
        if cluster is not None:
            cluster.stop()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return out


def report(fig: dict[str, Any]) -> str:
    i, s, lat, m, f = fig["ingest"], fig["same_answers"], fig["latency"], fig["memory"], fig["faults"]
    rows = [
        ("ingest through Ray (2 nodes × 1 CPU) ÷ local build, wall", f"{i['ratio']:.2f} (local {i['local_s']} s, Ray "
         f"{i['ray_s']} s, {i['sentences']} sentences)", "≥ 0.85"),
        ("same answer and top citation, 2 shards on Ray Serve vs unsharded", f"{s['share']:.1%} ({s['same']} of "
         f"{s['questions']})", "≥ 99%"),
        ("question p50, 2 shards on Ray Serve (1 replica each) ÷ unsharded", f"{lat['ratio']:.2f} ({lat['p50_sharded_ray_ms']}"
         f" ms vs {lat['p50_unsharded_ms']} ms)", "≤ 1.5×"),
        ("memory of one shard replica ÷ unsharded engine (RSS)", f"{m['ratio']:.2f} ({m['shard_replica_mb']} MB vs "
         f"{m['unsharded_engine_mb']} MB)", "≤ 0.55"),
        ("requests lost, one of 2 replicas killed under load", f"{f['lost']} of {f['requests']} (replicas back: "
         f"{f['replicas_after']} of {f['replicas_before']})", "0"),
    ]
    lines = [f"corpus: {fig['corpus']}", f"machine: {fig['machine']}", "",
             "| figure | measured | goal |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=8, help="SQuAD v1.1 dev articles in the corpus (default 8)")
    ap.add_argument("--questions", type=int, default=200, help="questions asked (default 200)")
    ap.add_argument("--smoke", action="store_true", help="the demo corpus and its gold questions (a quick CI run)")
    ap.add_argument("--ray", metavar="ADDRESS", help="use this running cluster instead of starting one")
    ap.add_argument("--work", help="keep the corpus, indexes and logs here (default: a temp folder, removed)")
    ap.add_argument("--note", default="", help="the machine's state, printed with the figures")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    fig = run(args)
    print(report(fig))
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
