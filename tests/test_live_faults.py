"""Faults that involve the server: `kill -9` of `qa serve` during uploads leaves each document in its
old or its new version, never a mix, with the uploaded files agreeing with the index once it starts
again; concurrent uploads, deletions and questions never get a 5xx; the soak benchmark's smoke run."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from eval.server import Server, start_server, stop_server
from eval.synthetic import finds_it, synthetic_doc
from index.build import prepare_document
from index.documents import load_bytes
from index.loaded import LoadedIndex
from index.uploads import read_deleted, upload_path
from tests.conftest import CORPUS, ROOT

AZAL = "when were direct AZAL flights announced"


def big_report(version: int) -> str:
    """A report long enough that its upload takes a while (so a kill can land inside it)."""
    who = ["Ingrid Solberg", "Magnus Halvorsen", "Tove Lindqvist", "Anselm Varga"][version % 4]
    lines = [f"Warehouse ledger, edition {version}", "", f"Tidewater, 3 May 2024: The ledger is kept by {who}."]
    lines += [f"Shelf {i} of edition {version} holds {i * 7 + version} crates of tea from estate number {i}."
              for i in range(250)]
    return "\n".join(lines) + "\n"


def upload(url: str, name: str, text: str, timeout: float = 120) -> httpx.Response:
    return httpx.post(f"{url}/api/documents", files={"file": (name, text.encode(), "text/plain")}, timeout=timeout)


def warm_up(url: str, n: int) -> None:
    """A small upload first: a fresh server loads spaCy on its first upload, which would otherwise
    be most of the timed one."""
    r = upload(url, "warm.txt", f"Warm-up note {n}\n\nThe kettle in room {n} was boiled by Ada Lovelace.\n")
    assert r.status_code in (200, 201), r.text


def check_consistent(index_dir: Path, doc_id: str, versions: list[str | None], encoder) -> str | None:
    """The index opens, the corpus documents are intact, and ``doc_id`` is exactly one of
    ``versions`` (None: absent), sentences and vectors included; returns that version's text."""
    idx = LoadedIndex.open(index_dir)
    for p in CORPUS.glob("*.txt"):
        assert idx.docs[p.name].text == p.read_text(encoding="utf-8")
    rec = idx.docs.get(doc_id)
    text = rec.text if rec is not None else None
    assert text in versions, f"{doc_id} holds text of no version: {None if text is None else text[:80]!r}"
    if text is not None:
        expected = prepare_document(load_bytes(text.encode(), doc_id))
        sids = idx.doc_sentences[doc_id]
        assert [(int(idx.sent_start[s]), int(idx.sent_end[s])) for s in sids] == expected.sents
        sample = sids[:: max(1, len(sids) // 8)]
        vecs = encoder.encode([idx.sent_text[s] for s in sample])
        assert np.min(np.sum(vecs * idx.sentence_vectors.vectors(sample), axis=1)) > 0.99, "vectors of another version"
    return text


@pytest.mark.slow
def test_kill_9_during_uploads_leaves_old_or_new_never_a_mix(demo_index: Path, tmp_path: Path, engine) -> None:
    ix = tmp_path / "index"
    shutil.copytree(demo_index, ix)
    log = tmp_path / "serve.log"
    name = "ledger.txt"
    server = start_server(ix, log=log)
    try:
        warm_up(server.url, 0)
        t0 = time.monotonic()
        assert upload(server.url, name, big_report(0)).status_code == 201
        full = time.monotonic() - t0  # how long one upload of this size takes here, to spread the kills
        current: str | None = big_report(0)
        seed = int(os.environ.get("CITEQA_KILL_SEED", random.randrange(10**6)))
        rng = random.Random(seed)
        outcomes = []
        for round_ in range(1, 5):
            new = big_report(round_)
            acked: list[int] = []

            def send(text: str = new, acked: list[int] = acked, url: str = server.url) -> None:
                with contextlib.suppress(httpx.HTTPError):  # the server may die under it
                    acked.append(upload(url, name, text).status_code)

            sender = threading.Thread(target=send)
            sender.start()
            # Mostly late in the upload, where the files are written (its start is parsing and embedding).
            delay = rng.uniform(0.3, 1.15) * full
            time.sleep(delay)
            server.proc.kill()  # SIGKILL: no clean-up of any kind
            server.proc.wait()
            sender.join()
            # Right after the kill: the index opens and holds the old or the new version, whole.
            got = check_consistent(ix, name, [current, new], engine.encoder)
            if acked and acked[0] in (200, 201):
                assert got == new, "an acknowledged upload must be in the index"
            kept = upload_path(ix, name)
            on_disk = kept.read_text() if kept.exists() else None
            assert on_disk in (current, new)
            # Started again, the server publishes what was saved but not published: file and index agree.
            server = start_server(ix, log=log)
            warm_up(server.url, round_)
            after = check_consistent(ix, name, [current, new], engine.encoder)
            assert after == on_disk, "the uploaded file and the index disagree after a restart"
            r = httpx.post(f"{server.url}/api/ask", json={"question": AZAL}, timeout=60)
            assert r.status_code == 200 and r.json()["citations"][0]["doc_id"].startswith("003_")
            assert not list(ix.glob("gen-*.tmp")) and not list((ix / "uploads").glob(".*"))
            outcomes.append((round(delay, 2), "new" if after == new else "old", acked[:1]))
            current = after
        print(f"kill -9 during uploads: seed={seed} upload {full:.1f}s outcomes={outcomes}")
    finally:
        stop_server(server)
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_kill_9_during_a_deletion(demo_index: Path, tmp_path: Path, engine) -> None:
    ix = tmp_path / "index"
    shutil.copytree(demo_index, ix)
    server = start_server(ix, log=tmp_path / "serve.log")
    try:
        text = big_report(1)
        assert upload(server.url, "ledger.txt", text).status_code == 201
        t = threading.Thread(target=lambda: _ignore(lambda: httpx.delete(f"{server.url}/api/documents/ledger.txt",
                                                                           timeout=60)))
        t.start()
        time.sleep(random.uniform(0.05, 0.6))
        server.proc.kill()
        server.proc.wait()
        t.join()
        check_consistent(ix, "ledger.txt", [None, text], engine.encoder)
        deleted = "ledger.txt" in read_deleted(ix)
        server = start_server(ix, log=tmp_path / "serve.log")
        after = check_consistent(ix, "ledger.txt", [None, text], engine.encoder)
        assert (after is None) == deleted and upload_path(ix, "ledger.txt").exists() == (not deleted)
    finally:
        stop_server(server)


def _ignore(fn) -> None:
    with contextlib.suppress(httpx.HTTPError):
        fn()


# --- concurrency ------------------------------------------------------------------------------------
@pytest.fixture()
def own_server(demo_index: Path, tmp_path: Path):
    ix = tmp_path / "index"
    shutil.copytree(demo_index, ix)
    server: Server = start_server(ix, log=tmp_path / "serve.log")
    try:
        yield server, ix
    finally:
        stop_server(server)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


@pytest.mark.slow
def test_concurrent_uploads_deletions_and_questions_never_5xx(own_server) -> None:
    server, ix = own_server
    statuses: list[tuple[str, int]] = []
    kept: dict[str, object] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def asker(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            n = 0
            while not stop.is_set():
                n += 1
                q = AZAL if n % 2 else synthetic_doc((i + n) % 12).question
                r = http.post("/api/ask", json={"question": q})
                with lock:
                    statuses.append(("ask", r.status_code))

    def writer(w: int) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for k in range(4):
                doc = synthetic_doc(w * 4 + k, version=1)
                r = http.post("/api/documents", files={"file": (doc.doc_id, doc.text.encode(), "text/plain")})
                with lock:
                    statuses.append(("upload", r.status_code))
                    if r.status_code in (200, 201):
                        kept[doc.doc_id] = doc
                if k == 1:  # and one deletion each
                    r = http.delete(f"/api/documents/{doc.doc_id}")
                    with lock:
                        statuses.append(("delete", r.status_code))
                        if r.status_code == 200:
                            kept.pop(doc.doc_id)

    askers = [threading.Thread(target=asker, args=(i,)) for i in range(4)]
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in askers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in askers:
        t.join()
    bad = [s for s in statuses if s[1] >= 500 or (s[0] == "ask" and s[1] != 200)]
    assert not bad, bad
    assert sum(1 for k, _ in statuses if k == "upload") == 12 and len(kept) == 9
    with httpx.Client(base_url=server.url, timeout=60) as http:
        listed = {d["doc_id"] for d in http.get("/api/documents").json()}
        assert set(kept) <= listed and len(listed) == 5 + 9
        for doc in kept.values():
            assert finds_it(http.post("/api/ask", json={"question": doc.question}).json(), doc), doc.doc_id
    assert sorted(p.name for p in (ix / "uploads").iterdir()) == sorted(kept)


@pytest.mark.slow
def test_soak_smoke_run(demo_index: Path) -> None:
    """The CI smoke run of eval/bench/soak.py: ~20 s of questions, uploads, replacements and deletions."""
    r = subprocess.run([sys.executable, "-m", "eval.bench.soak", "--smoke", "--index", str(demo_index), "--json"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    assert figures["server_errors"] == 0 and figures["lost"] == [] and figures["wrong_version"] == []
    assert figures["questions"] > 50 and figures["uploads"] > 3 and figures["deletions"] > 0
    assert figures["rss_start_mb"] > 50 and figures["rss_end_mb"] > 50
    assert "server memory" in r.stdout and "5xx" in r.stdout
    print(r.stdout)


@pytest.mark.slow
def test_soak_team_smoke_run() -> None:
    """The same with keys, filters, feedback, /metrics and a watched folder changing under it (issue 14)."""
    r = subprocess.run([sys.executable, "-m", "eval.bench.soak", "--smoke", "--team", "--json"],
                       capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    assert figures["server_errors"] == 0 and figures["unexpected"] == 0 and figures["lost"] == []
    assert figures["wrong_version"] == [] and figures["filter_violations"] == []
    assert figures["filtered_questions"] > 5 and figures["feedback"] > 0 and figures["metrics_scrapes"] > 0
    assert figures["folder_writes"] + figures["folder_rewrites"] > 3 and figures["auth_probes"] > 0
    assert "watched folder" in r.stdout
    print(r.stdout)


def test_soak_help() -> None:
    r = subprocess.run([sys.executable, "-m", "eval.bench.soak", "--help"], capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.returncode == 0 and "--duration" in r.stdout and "default 600" in r.stdout
