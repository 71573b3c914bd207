"""The cluster figures of issue 13, measured side by side in one run on a real two-node Ray cluster
on loopback (head 127.0.0.2, worker 127.0.0.3, one CPU each: the machine's two cores).

    python -m eval.cluster                      # SQuAD v1.1 dev, first 8 articles; 200 questions
    python -m eval.cluster --articles 4 --questions 100
    python -m eval.cluster --smoke              # the demo corpus and its gold questions (CI)
    python -m eval.cluster --ray 127.0.0.2:6379 # on a running cluster (RAY_AUTH_* in the environment)
    python -m eval.cluster --scale 1000000      # replica memory at 1M passages (eval/bench/scale.py's collection)
    python -m eval.cluster --scale 20000 --smoke

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

``--scale PASSAGES`` measures memory at a size (the issue's goal is at 1,000,000 passages) on the
synthetic collection of ``eval/bench/scale.py`` (real sentences, vectors and annotations, built
once and cached): the same collection written once as one index and once as ``--shards`` shards
(``python -m eval.bench.scale --build-only [--shards N]``: documents split by ``shard_of`` and
the collection's BM25 statistics given to every shard, as ``qa index --shards`` does). Then, one
after the other (never both in memory at once): ``qa serve`` on the unsharded index, asked
``--questions`` SQuAD dev questions; and ``qa serve --ray`` on the shards (1 replica each), asked
the same. Printed: each replica's RSS after it opened its shard and after the questions, ÷ the
unsharded ``qa serve`` process's RSS after the same questions; and how many answers (answer and
top citation) are the same.
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


def _quoted(ans: dict[str, Any] | None) -> tuple[Any, ...]:
    """The answer and the text of its top cited sentence (not where that text is: the synthetic
    collection repeats its pool's sentences, so equal candidates tie between documents)."""
    if ans is None:
        return ("no answer",)
    return ans["answer"], ans["abstained"], ans["citations"][0]["sentence"] if ans["citations"] else None


def _ask_all(url: str, questions: list[str]) -> tuple[list[dict[str, Any] | None], list[float], int]:
    answers, took, failed = [], [], 0
    for q in questions:
        code, ans, ms = _post(url, q)
        answers.append(ans)
        took.append(ms)
        failed += code != 200
    return answers, took, failed


def _connect(ray: str | None) -> tuple[str, LocalCluster | None]:
    """The cluster ``--ray`` names, or a two-node loopback cluster started here (the caller stops it)."""
    if ray:
        return ray, None
    print("starting the two-node cluster …", file=sys.stderr)
    cluster = start_cluster(2)
    os.environ.update(cluster.client_env())
    return cluster.address, cluster


def _scale_index(args: argparse.Namespace, shards: int) -> dict[str, Any]:
    """The scale benchmark's collection as one index or as ``shards`` shards (built in a child
    process, so the build's memory is gone before anything is measured)."""
    cmd = [sys.executable, "-m", "eval.bench.scale", "--build-only", "--passages", str(args.scale), "--shards",
           str(shards), "--cache", str(args.cache)]
    if args.smoke:
        cmd += ["--pool-articles", "4"]
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                       timeout=4 * 3600)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:])} failed ({r.returncode}); its messages are above")
    return {**json.loads(r.stdout.strip().splitlines()[-1]), "took_s": round(time.perf_counter() - t, 1)}


def _du_gb(path: Path) -> float:
    """Bytes on disk under ``path``, each file once (a generation hard-links its predecessor's files)."""
    seen: dict[int, int] = {}
    for p in Path(path).rglob("*"):
        if p.is_file():
            st = p.stat()
            seen[st.st_ino] = st.st_size
    return sum(seen.values()) / 1e9


def run_scale(args: argparse.Namespace) -> dict[str, Any]:
    """Replica memory at ``args.scale`` passages: see the module's docstring."""
    from eval.bench.scale import SEED, squad_questions

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="citeqa-cluster-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    print(f"the {args.scale:,}-passage collection, unsharded and as {args.shards} shards (cached in {args.cache}) …",
          file=sys.stderr)
    one, many = _scale_index(args, 1), _scale_index(args, args.shards)
    questions = squad_questions(args.questions, SEED)
    warm = questions[:3]
    out: dict[str, Any] = {
        "corpus": f"eval/bench/scale.py's synthetic collection: {args.scale:,} passages, {one['documents']:,} documents "
                  f"({'smoke pool: 4 SQuAD articles' if args.smoke else 'pool: every SQuAD dev and demo sentence'}); "
                  f"{len(questions)} SQuAD dev questions (seed {SEED}), 3 of them asked first to warm each server",
        "machine": f"{os.cpu_count()} cores; {args.note}", "passages": args.scale, "shards": args.shards,
        "indexes": {"unsharded": one["index"], "sharded": many["index"], "unsharded_gb": round(_du_gb(Path(one["index"])), 2),
                    "sharded_gb": round(_du_gb(Path(many["index"])), 2),
                    "built_fresh": [one.get("built_fresh"), many.get("built_fresh")],
                    "build_s": [round(sum(one.get("build", {}).values()), 1), round(sum(many.get("build", {}).values()), 1)]},
    }
    cluster: LocalCluster | None = None
    server = None
    try:
        print("unsharded: qa serve, asking …", file=sys.stderr)
        server = start_server(Path(one["index"]), log=work / "plain.log", timeout=900)
        engine_open = rss_mb(server.proc.pid)
        _ask_all(server.url, warm)
        tops_plain, lat_plain, failed_plain = _ask_all(server.url, questions)
        engine_after = rss_mb(server.proc.pid)
        stop_server(server)
        server = None

        address, cluster = _connect(args.ray)
        print(f"{args.shards} shards: qa serve --ray (1 replica each), asking …", file=sys.stderr)
        server = start_server(Path(many["index"]), log=work / "sharded.log", timeout=900,
                              extra=["--ray", address, "--replicas", "1"])
        from index.serving import RayShards

        apps = RayShards(Path(many["index"])).apps
        pids = {app: replica_pids(app) for app in apps}
        if not all(len(v) == 1 for v in pids.values()):
            raise SystemExit(f"expected one replica process per shard, found {pids}")
        replica_open = {app: rss_mb(v[0]) for app, v in pids.items()}
        server_open = rss_mb(server.proc.pid)
        _ask_all(server.url, warm)
        tops_sharded, lat_sharded, failed_sharded = _ask_all(server.url, questions)
        replica_after = {app: rss_mb(v[0]) for app, v in pids.items()}
        server_after = rss_mb(server.proc.pid)
    finally:
        if server is not None:
            stop_server(server)
        if cluster is not None:
            cluster.stop()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    pairs = list(zip(tops_plain, tops_sharded, strict=True))
    same = sum(_top(a) == _top(b) for a, b in pairs)
    same_text = sum(_quoted(a) == _quoted(b) for a, b in pairs)
    same_answer = sum(_quoted(a)[:2] == _quoted(b)[:2] for a, b in pairs)
    differ = [{"question": q, "unsharded": _top(a), "sharded": _top(b), "same_text": _quoted(a) == _quoted(b)}
              for q, (a, b) in zip(questions, pairs, strict=True) if _top(a) != _top(b)]
    big_open, big_after = max(replica_open.values()), max(replica_after.values())
    out["memory"] = {
        "replica_open_mb": [round(replica_open[a]) for a in apps], "replica_after_mb": [round(replica_after[a]) for a in apps],
        "engine_open_mb": round(engine_open), "engine_after_mb": round(engine_after),
        "sharded_server_open_mb": round(server_open), "sharded_server_after_mb": round(server_after),
        "ratio_open": round(big_open / engine_after, 3), "ratio": round(big_after / engine_after, 3),
    }
    out["same_answers"] = {"questions": len(questions), "same": same, "share": round(same / len(questions), 4),
                           "same_text": same_text, "same_answer": same_answer, "non_200": failed_plain + failed_sharded, "differ": differ[:20]}
    out["latency"] = {"p50_unsharded_ms": round(statistics.median(lat_plain), 1),
                      "p50_sharded_ray_ms": round(statistics.median(lat_sharded), 1)}
    out["load"] = [round(load0[0], 2), round(os.getloadavg()[0], 2)]
    return out


def report_scale(fig: dict[str, Any]) -> str:
    m, s, lat, ix = fig["memory"], fig["same_answers"], fig["latency"], fig["indexes"]
    n = fig["shards"]
    rows = [
        (f"memory of one shard's replica ({n} shards) ÷ unsharded engine, both after the questions (RSS)",
         f"{m['ratio']:.2f} ({max(m['replica_after_mb'])} MB vs {m['engine_after_mb']} MB)", "≤ 0.55"),
        ("… the replica right after opening its shard ÷ the same engine", f"{m['ratio_open']:.2f} "
         f"({max(m['replica_open_mb'])} MB)", ""),
        (f"same answer and top citation, {n} shards on Ray Serve vs unsharded", f"{s['share']:.1%} ({s['same']} of "
         f"{s['questions']}; non-200: {s['non_200']})", "≥ 99%"),
        ("… same answer and the same text of the top cited sentence", f"{s['same_text'] / s['questions']:.1%} "
         f"({s['same_text']} of {s['questions']})", ""),
        ("… same answer (text, or both abstain)", f"{s['same_answer'] / s['questions']:.1%} "
         f"({s['same_answer']} of {s['questions']})", ""),
    ]
    lines = [f"corpus: {fig['corpus']}", f"machine: {fig['machine']} (load average {fig['load'][0]} → {fig['load'][1]})",
             f"indexes: unsharded {ix['unsharded_gb']} GB, {n} shards {ix['sharded_gb']} GB on disk; "
             f"{'built in this run' if all(ix['built_fresh']) else 'cached'} (build {ix['build_s'][0]} s / {ix['build_s'][1]} s)",
             "", "| figure | measured | goal |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += ["", f"replicas after opening: {m['replica_open_mb']} MB, after the questions: {m['replica_after_mb']} MB; "
              f"unsharded engine after opening {m['engine_open_mb']} MB, after the questions {m['engine_after_mb']} MB; "
              f"the sharded qa serve process {m['sharded_server_open_mb']} / {m['sharded_server_after_mb']} MB",
              f"question p50: unsharded {lat['p50_unsharded_ms']} ms, {n} shards on Ray Serve {lat['p50_sharded_ray_ms']} ms"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="citeqa-cluster-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus, items, what = _corpus(work, args.articles, args.questions, args.smoke)
    out: dict[str, Any] = {"corpus": what, "machine": f"{os.cpu_count()} cores; {args.note}"}
    cluster: LocalCluster | None = None
    servers = []
    try:
        address, cluster = _connect(args.ray)
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
    ap.add_argument("--scale", type=int, metavar="PASSAGES",
                    help="instead: replica memory on eval/bench/scale.py's collection of PASSAGES passages "
                         "(--smoke: its small pool)")
    ap.add_argument("--shards", type=int, default=2, help="with --scale: shards of the sharded copy (default 2)")
    ap.add_argument("--cache", type=Path, default=None, help="with --scale: where the collections are cached "
                    "(default eval/cache/scale)")
    args = ap.parse_args(argv)
    if args.scale is not None:
        from eval.bench.scale import CACHE

        if args.scale < 1 or not 2 <= args.shards <= 256 or args.questions < 1:
            ap.error("--scale and --questions must be at least 1, --shards from 2 to 256")
        args.cache = args.cache or CACHE
        if args.smoke and args.questions == 200:
            args.questions = 30
        fig = run_scale(args)
        print(report_scale(fig))
        if args.json:
            Path(args.json).write_text(json.dumps(fig, indent=2))
        return 0
    fig = run(args)
    print(report(fig))
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
