"""Soak benchmark: questions, uploads and deletions at a steady rate against a running `qa serve`.

    python -m eval.bench.soak                          # builds the demo index in a temp dir, 600 s
    python -m eval.bench.soak --duration 120 --index .citeqa   # serves a temporary COPY of that index
    python -m eval.bench.soak --smoke                  # ~20 s (CI)

Clients on loopback ask questions at a steady rate (the gold questions of eval/gold/demo.jsonl,
and for each uploaded document a question only it answers), while a writer uploads new documents,
replaces uploaded ones with a new version and deletes them, one change at a steady interval,
keeping about ``--max-uploads`` uploaded documents alive so the index (and memory) stay the same
size. Every change the server acknowledged (2xx) is remembered. At the end:

- 5xx responses: must be zero (any status but the expected ones counts as an error too);
- lost documents: every acknowledged upload still listed by GET /api/documents and answering its
  own question with itself as the first citation and the version last uploaded; no deleted
  document listed;
- the server's resident memory at the start (after a warm-up), at half time and at the end
  (sampled throughout): growth over the second half tells a leak from a warm-up.

An answer phrase that is not the person (the answer step picked the date of the same sentence) is
counted apart: the document was found in its last version, so nothing was lost.

With ``--team`` (issue 14) the server is run as a team would run it: with keys (questions,
feedback and metrics with a read key, changes with a write key; a read key trying to delete and
a request without a key must get 403 and 401), filters on a share of the questions (every
citation must come from the filter's documents; a filter matching nothing must abstain without
citations), feedback on a share of the answers (201), ``/metrics`` scraped and parsed, and a
watched folder (a copy of the demo corpus) changing under it: files written, rewritten and
deleted at a steady interval, each of which must be listed (or gone) and found by its question
in its last version at the end.

Prints figures; the exit code is 1 when a request failed with 5xx, or a document was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from eval.bench.load import GOLD, gold_questions
from eval.metrics import percentile
from eval.process import memory_mb
from eval.server import build_demo_index, start_server, stop_server
from eval.synthetic import SyntheticDoc, answers_it, finds_it, synthetic_doc


# --- figures --------------------------------------------------------------------------------------
@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)  # "kind status" -> count
    errors: list[str] = field(default_factory=list)  # 5xx and unexpected statuses, first few kept

    def add(self, kind: str, status: int, seconds: float, expected: tuple[int, ...], body: str = "") -> None:
        self.latencies.setdefault(kind, []).append(seconds)
        self.statuses[f"{kind} {status}"] += 1
        if status not in expected and len(self.errors) < 20:
            self.errors.append(f"{kind} -> {status}: {body[:160]}")


@dataclass(frozen=True)
class SoakResult:
    seconds: float
    questions: int
    uploads: int
    replacements: int
    deletions: int
    server_errors: int  # 5xx
    unexpected: int  # any other status the request should not have had
    transport_errors: int
    lost: list[str]  # acknowledged uploads not listed
    resurrected: list[str]  # acknowledged deletions still listed
    wrong_version: list[str]  # listed, but their question does not find them in their last version
    answer_phrase_off: list[str]  # found, but the answer phrase is not the person (answer quality; not a failure)
    live_uploads_at_end: int
    rss_start_mb: float
    rss_end_mb: float
    rss_peak_mb: float
    rss_samples_mb: list[float]
    rss_half_mb: float  # the sample nearest half time: growth over the second half tells a leak from warm-up
    ask_p50_ms: float
    ask_p99_ms: float
    change_p50_ms: float
    change_p99_ms: float
    statuses: dict[str, int]
    first_errors: list[str]
    # --team only
    filtered_questions: int = 0
    filter_violations: list[str] = field(default_factory=list)  # a citation outside its filter, or no abstention
    feedback: int = 0
    auth_probes: int = 0  # a read key deleting (403) and no key (401), as expected
    metrics_scrapes: int = 0
    folder_writes: int = 0
    folder_rewrites: int = 0
    folder_deletes: int = 0
    folder_files_at_end: int = 0

    @property
    def ok(self) -> bool:
        return not (self.server_errors or self.unexpected or self.transport_errors or self.lost or self.resurrected
                    or self.wrong_version or self.filter_violations)


@dataclass(frozen=True)
class Team:
    """How --team runs the server: its keys and the folder it watches."""

    read_key: str
    write_key: str
    folder: Path  # watched; its synthetic files live in folder / WATCHED
    settle: float = 1.0


WATCHED = "watched"  # the subfolder of the watched corpus the soak writes into
FOLDER_IDS = range(50, 100)  # synthetic documents of the folder; uploads use 0-49 (their ids never meet)


# --- the load --------------------------------------------------------------------------------------
class Soak:
    def __init__(self, url: str, pid: int, questions: list[str], *, ask_rate: float, change_every: float,
                 max_uploads: int, clients: int, seed: int, team: Team | None = None) -> None:
        self.url = url.rstrip("/")
        self.pid = pid
        self.questions = questions
        self.ask_rate = ask_rate
        self.change_every = change_every
        self.max_uploads = max_uploads
        self.clients = clients
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.live: dict[str, SyntheticDoc] = {}  # acknowledged uploads: doc_id -> last version
        self.deleted: set[str] = set()
        self.next_n = 0
        self.counts = Counter()
        self.transport_errors = 0
        self.rss: list[float] = []
        self.team = team
        self.upload_ids = 50 if team else 100
        self.read = {"Authorization": f"Bearer {team.read_key}"} if team else {}
        self.write = {"Authorization": f"Bearer {team.write_key}"} if team else {}
        self.filter_violations: list[str] = []
        self.folder: dict[str, SyntheticDoc] = {}  # the watched folder's synthetic files: doc_id -> last version
        self.folder_deleted: set[str] = set()
        self.last_folder_change = 0.0

    async def _ask(self, http, question: str, flt: dict | None = None) -> dict | None:
        t0 = time.perf_counter()
        body: dict = {"question": question} if flt is None else {"question": question, "filter": flt}
        try:
            r = await http.post(self.url + "/api/ask", json=body, headers=self.read)
        except Exception as e:  # noqa: BLE001 - counted, then the soak goes on
            self.transport_errors += 1
            self.tally.errors.append(f"ask: {type(e).__name__}: {e}"[:160])
            return None
        self.tally.add("ask", r.status_code, time.perf_counter() - t0, (200,), r.text)
        self.counts["questions"] += 1
        ans = r.json() if r.status_code == 200 else None
        if ans is not None and flt is not None:
            self.counts["filtered"] += 1
            cited = {c["doc_id"] for c in ans["citations"]}
            if "doc_ids" in flt and not cited <= set(flt["doc_ids"]) and len(self.filter_violations) < 20:
                self.filter_violations.append(f"{question!r} within {flt}: cited {sorted(cited)}")
            if flt.get("date_from") == "2030-01-01" and (cited or not ans["abstained"]):
                self.filter_violations.append(f"{question!r} within {flt}: answered from {sorted(cited)}")
        return ans

    async def _feedback(self, http, ans: dict) -> None:
        r = await self._change(http, "POST", "/api/feedback", "feedback", (201,), headers=self.read, json={
            "question": ans["question"], "verdict": "right" if not ans["abstained"] else "wrong", "answer": ans})
        if r is not None and r.status_code == 201:
            self.counts["feedback"] += 1

    async def _team_question(self, http, i: int) -> None:
        """--team: a question within a filter, now and then feedback on an answer."""
        if i % 8 == 3:  # a filter no document matches: abstains, cites nothing
            ans = await self._ask(http, self.questions[i % len(self.questions)], {"date_from": "2030-01-01"})
        else:  # within one document (an upload, or a file of the watched folder)
            pool = list(self.live.values()) + list(self.folder.values())
            doc = self.rng.choice(pool) if pool else synthetic_doc(0)
            ans = await self._ask(http, doc.question, {"doc_ids": [doc.doc_id]})
        if ans is not None and i % 3 == 0:
            await self._feedback(http, ans)

    async def asker(self, http, stop_at: float, index: int) -> None:
        every = self.clients / self.ask_rate
        next_at = time.perf_counter() + every * index / self.clients
        i = index
        while True:
            next_at += every
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))  # a steady rate, not a closed loop
            if time.perf_counter() >= stop_at:
                return
            i += 1
            if self.team is not None and i % 4 == 1:
                await self._team_question(http, i)
            elif self.live and i % 2:
                doc = self.rng.choice(list(self.live.values()))
                await self._ask(http, doc.question)
            else:
                await self._ask(http, self.questions[i % len(self.questions)])

    async def _change(self, http, method: str, path: str, kind: str, expected: tuple[int, ...], **kw):
        t0 = time.perf_counter()
        try:
            r = await http.request(method, self.url + path, **kw)
        except Exception as e:  # noqa: BLE001
            self.transport_errors += 1
            self.tally.errors.append(f"{kind}: {type(e).__name__}: {e}"[:160])
            return None
        self.tally.add(kind, r.status_code, time.perf_counter() - t0, expected, r.text)
        return r

    async def upload(self, http, doc: SyntheticDoc, kind: str) -> None:
        files = {"file": (doc.doc_id, doc.text.encode(), "text/plain")}
        r = await self._change(http, "POST", "/api/documents", kind, (200, 201), files=files, headers=self.write)
        if r is not None and r.status_code in (200, 201):
            self.live[doc.doc_id] = doc
            self.deleted.discard(doc.doc_id)
            self.counts[kind] += 1

    async def delete(self, http, doc_id: str) -> None:
        r = await self._change(http, "DELETE", f"/api/documents/{doc_id}", "delete", (200,), headers=self.write)
        if r is not None and r.status_code == 200:
            self.live.pop(doc_id, None)
            self.deleted.add(doc_id)
            self.counts["delete"] += 1

    async def writer(self, http, stop_at: float) -> None:
        next_at = time.perf_counter()
        versions: Counter = Counter()
        while True:
            next_at += self.change_every
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            if time.perf_counter() >= stop_at:
                return
            roll = self.rng.random()
            if self.team is not None and roll < 0.1:  # what a read key and no key may not do
                gold = self.rng.choice(["000_78aafc7d975cfdef.txt", "003_fdf2c5db0e68fe77.txt"])
                r1 = await self._change(http, "DELETE", f"/api/documents/{gold}", "forbidden", (403,), headers=self.read)
                r2 = await self._change(http, "POST", "/api/ask", "unauthorized", (401,), json={"question": "who?"})
                self.counts["auth_probes"] += sum(1 for r in (r1, r2) if r is not None and r.status_code in (401, 403))
            elif len(self.live) >= self.max_uploads or (self.live and roll < 0.25):
                await self.delete(http, self.rng.choice(sorted(self.live)))
            elif self.live and roll < 0.5:
                doc_id = self.rng.choice(sorted(self.live))
                n = int(doc_id.split("-")[1].split(".")[0])
                versions[n] += 1
                await self.upload(http, synthetic_doc(n, versions[n]), "replace")
            else:
                n = self.next_n
                self.next_n = (self.next_n + 1) % self.upload_ids  # places repeat after 100: ids are reused, as users do
                while synthetic_doc(n).doc_id in self.live:
                    n = self.next_n
                    self.next_n = (self.next_n + 1) % self.upload_ids
                versions[n] += 1
                await self.upload(http, synthetic_doc(n, versions[n]), "upload")

    def _folder_doc(self, n: int, version: int) -> SyntheticDoc:
        doc = synthetic_doc(n, version)
        return replace(doc, doc_id=f"{WATCHED}/{doc.doc_id}")

    async def folder_writer(self, stop_at: float) -> None:
        """--team: write, rewrite and delete files of the watched folder, as a user's sync tool would
        (written in place, not renamed into place: the server's settle delay must cope)."""
        assert self.team is not None
        base = self.team.folder
        (base / WATCHED).mkdir(exist_ok=True)
        versions: Counter = Counter()
        next_at = time.perf_counter()
        every = self.change_every * 1.5
        while True:
            next_at += every
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            if time.perf_counter() >= stop_at:
                return
            roll = self.rng.random()
            free = [n for n in FOLDER_IDS if self._folder_doc(n, 0).doc_id not in self.folder]
            if self.folder and (roll < 0.3 or len(self.folder) >= self.max_uploads or not free):
                doc_id = self.rng.choice(sorted(self.folder))
                (base / doc_id).unlink()
                del self.folder[doc_id]
                self.folder_deleted.add(doc_id)
                self.counts["folder_delete"] += 1
            else:
                if self.folder and roll < 0.6:
                    n = int(self.rng.choice(sorted(self.folder)).split("-")[1].split(".")[0])
                    kind = "folder_rewrite"
                else:
                    n = self.rng.choice(free)
                    kind = "folder_write"
                versions[n] += 1
                doc = self._folder_doc(n, versions[n])
                (base / doc.doc_id).write_text(doc.text)
                self.folder[doc.doc_id] = doc
                self.folder_deleted.discard(doc.doc_id)
                self.counts[kind] += 1
            self.last_folder_change = time.perf_counter()

    async def sampler(self, stop_at: float, http=None) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        while time.perf_counter() < stop_at:
            self.rss.append(round(memory_mb(self.pid)[0], 1))
            if self.team is not None and http is not None:  # monitoring scrapes, with a read key
                r = await self._change(http, "GET", "/metrics", "metrics", (200,), headers=self.read)
                if r is not None and r.status_code == 200:
                    list(text_string_to_metric_families(r.text))  # parses, or the soak fails loudly
                    self.counts["metrics"] += 1
            await asyncio.sleep(min(10.0, max(1.0, (stop_at - time.perf_counter()) / 10)))

    async def verify(self, http) -> tuple[list[str], list[str], list[str], list[str]]:
        """After the load: every acknowledged upload listed and found by its question in its last
        version; no acknowledged deletion listed."""
        if self.team is not None:  # the folder's last change: applied within the settle delay and a sync
            wait_until = self.last_folder_change + self.team.settle + 10.0
            while time.perf_counter() < wait_until:
                r = await http.get(self.url + "/api/documents", headers=self.read)
                listed = {d["doc_id"] for d in r.json()} if r.status_code == 200 else set()
                if set(self.folder) <= listed and not self.folder_deleted & listed:
                    break
                await asyncio.sleep(0.5)
        r = await http.get(self.url + "/api/documents", headers=self.read)
        listed = {d["doc_id"] for d in r.json()} if r.status_code == 200 else set()
        everything = {**self.live, **self.folder}
        lost = sorted(d for d in everything if d not in listed)
        resurrected = sorted(d for d in self.deleted | self.folder_deleted if d in listed and d not in everything)
        wrong, off = [], []
        for doc in sorted(everything.values(), key=lambda d: d.doc_id):
            if doc.doc_id in listed:
                ans = await self._ask(http, doc.question)
                got = "no answer" if ans is None else (
                    f"{ans.get('answer')!r} from {(ans.get('citations') or [{}])[0].get('doc_id')}")
                if ans is None or not finds_it(ans, doc):
                    wrong.append(f"{doc.doc_id} (expected {doc.person!r}, got {got})")
                elif not answers_it(ans, doc):
                    off.append(f"{doc.doc_id} (expected {doc.person!r}, got {got})")
        return lost, resurrected, wrong, off

    async def run(self, seconds: float, warmup: float) -> SoakResult:
        import httpx

        limits = httpx.Limits(max_connections=self.clients + 2, max_keepalive_connections=self.clients + 2)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0)) as http:
            # Warm-up: a few questions and one upload and deletion (spaCy loads on the first upload).
            warm = synthetic_doc(99, 0)
            await self.upload(http, warm, "upload")
            await self.delete(http, warm.doc_id)
            t_end = time.perf_counter() + warmup
            while time.perf_counter() < t_end:
                await self._ask(http, self.questions[0])
            self.tally = Tally()
            self.counts = Counter()
            self.deleted.clear()
            rss_start = memory_mb(self.pid)[0]
            t0 = time.perf_counter()
            stop_at = t0 + seconds
            extra = [self.folder_writer(stop_at)] if self.team is not None else []
            await asyncio.gather(self.writer(http, stop_at), self.sampler(stop_at, http), *extra,
                                 *(self.asker(http, stop_at, i) for i in range(self.clients)))
            elapsed = time.perf_counter() - t0
            rss_end, peak = memory_mb(self.pid)
            lost, resurrected, wrong, off = await self.verify(http)
        t = self.tally
        ask_ms = [x * 1000 for x in t.latencies.get("ask", [])]
        change_ms = [x * 1000 for k in ("upload", "replace", "delete") for x in t.latencies.get(k, [])]
        server_errors = sum(v for k, v in t.statuses.items() if k.split()[1].startswith("5"))
        expected = {"ask": {"200"}, "upload": {"200", "201"}, "replace": {"200", "201"}, "delete": {"200"},
                    "feedback": {"201"}, "forbidden": {"403"}, "unauthorized": {"401"}, "metrics": {"200"}}
        unexpected = sum(v for k, v in t.statuses.items()
                         if not k.split()[1].startswith("5") and k.split()[1] not in expected[k.split()[0]])
        return SoakResult(
            seconds=round(elapsed, 1), questions=self.counts["questions"], uploads=self.counts["upload"],
            replacements=self.counts["replace"], deletions=self.counts["delete"], server_errors=server_errors,
            unexpected=unexpected, transport_errors=self.transport_errors, lost=lost, resurrected=resurrected,
            wrong_version=wrong, answer_phrase_off=off, live_uploads_at_end=len(self.live),
            rss_start_mb=round(rss_start, 1),
            rss_end_mb=round(rss_end, 1), rss_peak_mb=round(peak, 1), rss_samples_mb=self.rss,
            rss_half_mb=self.rss[len(self.rss) // 2] if self.rss else round(rss_start, 1),
            ask_p50_ms=round(percentile(ask_ms, 50), 1), ask_p99_ms=round(percentile(ask_ms, 99), 1),
            change_p50_ms=round(percentile(change_ms, 50), 1), change_p99_ms=round(percentile(change_ms, 99), 1),
            statuses=dict(sorted(t.statuses.items())), first_errors=t.errors[:5],
            filtered_questions=self.counts["filtered"], filter_violations=self.filter_violations,
            feedback=self.counts["feedback"], auth_probes=self.counts["auth_probes"],
            metrics_scrapes=self.counts["metrics"], folder_writes=self.counts["folder_write"],
            folder_rewrites=self.counts["folder_rewrite"], folder_deletes=self.counts["folder_delete"],
            folder_files_at_end=len(self.folder),
        )


def report(res: SoakResult, args: argparse.Namespace) -> str:
    lines = [
        f"citeqa soak — {res.seconds:.0f} s on loopback, {os.cpu_count()} cores; {args.ask_rate:g} questions/s from "
        f"{args.clients} clients, one change every {args.change_every:g} s (≤ {args.max_uploads} uploads alive)",
        f"  requests        {res.questions} questions · {res.uploads} uploads · {res.replacements} replacements · "
        f"{res.deletions} deletions",
        f"  5xx             {res.server_errors}   (other unexpected statuses {res.unexpected}, "
        f"transport errors {res.transport_errors})",
        f"  lost documents  {len(res.lost)} lost · {len(res.resurrected)} deleted but listed · "
        f"{len(res.wrong_version)} not found by their question in their last version "
        f"(of {res.live_uploads_at_end} alive at the end; {len(res.answer_phrase_off)} of those found gave another "
        f"answer phrase than the person)",
        f"  latency         questions p50 {res.ask_p50_ms:.0f} ms · p99 {res.ask_p99_ms:.0f} ms; "
        f"changes p50 {res.change_p50_ms:.0f} ms · p99 {res.change_p99_ms:.0f} ms",
        f"  server memory   {res.rss_start_mb:.0f} MB at the start → {res.rss_end_mb:.0f} MB at the end "
        f"(peak {res.rss_peak_mb:.0f} MB; at half time {res.rss_half_mb:.0f} MB, so "
        f"{res.rss_end_mb - res.rss_half_mb:+.0f} MB over the second half)",
        f"  verdict         {'ok' if res.ok else 'FAILED'}",
    ]
    if args.team:
        lines[-1:-1] = [
            f"  team            {res.filtered_questions} questions within a filter ({len(res.filter_violations)} "
            f"citations outside it) · {res.feedback} feedback verdicts · {res.auth_probes} refused as they should "
            f"be (401/403) · {res.metrics_scrapes} /metrics scrapes",
            f"  watched folder  {res.folder_writes} files written · {res.folder_rewrites} rewritten · "
            f"{res.folder_deletes} deleted ({res.folder_files_at_end} at the end, each checked like an upload)",
        ]
    if res.first_errors:
        lines.append("  first errors    " + "; ".join(res.first_errors))
    for name in ("lost", "resurrected", "wrong_version", "answer_phrase_off", "filter_violations"):
        if getattr(res, name):
            lines.append(f"  {name:15s} {', '.join(getattr(res, name)[:10])}")
    return "\n".join(lines)


def make_team(tmp: Path) -> tuple[Team, list[str]]:
    """A keys file with a read and a write key, and a copy of the demo corpus to watch."""
    from eval.server import CORPUS
    from web.keys import add_key

    keys = tmp / "team.keys"
    team = Team(add_key(keys, "soak-reader", "read"), add_key(keys, "soak-writer", "write"), tmp / "corpus")
    shutil.copytree(CORPUS, team.folder)
    return team, ["--keys", str(keys), "--watch", str(team.folder), "--settle", str(team.settle)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path,
                    help="serve a temporary copy of this index (default: build the demo corpus in a temp dir)")
    ap.add_argument("--duration", type=float, default=600.0, help="measured seconds (default 600)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of questions before measuring (default 5)")
    ap.add_argument("--ask-rate", type=float, default=8.0, help="questions per second, all clients (default 8)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent question clients (default 4)")
    ap.add_argument("--change-every", type=float, default=2.0,
                    help="seconds between two changes (upload, replacement or deletion; default 2)")
    ap.add_argument("--max-uploads", type=int, default=20, help="uploaded documents kept alive at most (default 20)")
    ap.add_argument("--seed", type=int, default=7, help="random seed of the change sequence (default 7)")
    ap.add_argument("--gold", type=Path, default=GOLD, help="questions to ask besides the uploads' own")
    ap.add_argument("--smoke", action="store_true", help="a quick run (CI): 20 s, a change every second")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    ap.add_argument("--team", action="store_true", help="serve with keys and a watched folder; ask within filters, "
                    "give feedback, scrape /metrics (the demo corpus; not with --index)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.duration, args.warmup, args.change_every, args.ask_rate, args.max_uploads = 20.0, 1.0, 1.0, 6.0, 6
    if args.duration <= 0 or args.ask_rate <= 0 or args.change_every <= 0 or args.clients < 1 or not 1 <= args.max_uploads <= 90:
        ap.error("--duration, --ask-rate and --change-every must be positive; --clients at least 1; --max-uploads 1 to 90")
    if args.team and args.index is not None:
        ap.error("--team watches a copy of the demo corpus, which the index must mirror: leave out --index")
    qs = gold_questions(args.gold)
    with tempfile.TemporaryDirectory(prefix="citeqa-soak-") as tmp:
        index_dir = Path(tmp) / "index"
        team, extra = None, []
        if args.team:
            team, extra = make_team(Path(tmp))
        if args.index is not None:  # the soak writes: never into the user's own index
            if not (args.index / "CURRENT").is_file():
                print(f"eval.bench.soak: no index at {args.index}", file=sys.stderr)
                return 1
            shutil.copytree(args.index, index_dir, ignore=shutil.ignore_patterns(".lock"))
        else:
            build_demo_index(index_dir)
        try:
            server = start_server(index_dir, log=Path(tmp) / "serve.log", extra=extra)
        except RuntimeError as e:
            print(f"eval.bench.soak: {e}", file=sys.stderr)
            return 1
        try:
            soak = Soak(server.url, server.proc.pid, qs, ask_rate=args.ask_rate, change_every=args.change_every,
                        max_uploads=args.max_uploads, clients=args.clients, seed=args.seed, team=team)
            res = asyncio.run(soak.run(args.duration, args.warmup))
        finally:
            stop_server(server)
            log = (Path(tmp) / "serve.log").read_text(errors="replace")
        if "Traceback" in log:
            print("eval.bench.soak: the server logged a traceback:\n" + log[-2000:], file=sys.stderr)
    print(report(res, args))
    if args.json:
        print(json.dumps(asdict(res)))
    return 0 if res.ok and "Traceback" not in log else 1


if __name__ == "__main__":
    sys.exit(main())
