"""Sharded serving on Ray Serve (`qa serve --index DIR --ray ADDRESS --replicas R`) through HTTP,
against a real two-node cluster on loopback: the answers of the in-process sharded index, uploads
and deletions in their shard, no request lost when one of two replicas is killed under load, and
503 with Retry-After (never a 500, never a partial answer) while a shard's only replica is down."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from eval.gold import DEMO_GOLD, load_gold
from eval.server import start_server, stop_server
from index.shards import shard_count, shard_of
from tests.conftest import CORPUS, run_qa

pytestmark = pytest.mark.slow

HARBOUR = (
    "Port of Tidewater annual report\n\n"
    "Tidewater, 3 May 2024: The harbour crane known as Big Bertha lifted a record load of 840 tonnes on Friday. "
    "The harbour master, Ingrid Solberg, said the lift took eleven hours.\n"
)
QUESTIONS = ["when were direct AZAL flights announced", "who led the Pakistan side?", "who welcomed the announcement?"]


@pytest.fixture(scope="module")
def sharded_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("ray-sharded") / "index"
    r = run_qa("index", str(CORPUS), "--index", str(index), "--shards", "2", "-q")
    assert r.returncode == 0, r.stderr
    return index


def _copy(src: Path, tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def replica_pids(index_dir: Path, shard: int) -> list[int]:
    """The processes of a shard's replicas (Ray names them ray::ServeReplica:APP:shard)."""
    from index.serving import RayShards

    app = RayShards(index_dir).apps[shard]
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().decode("utf-8", "replace")
            except OSError:
                continue
            if cmd.startswith(f"ray::ServeReplica:{app}:"):
                found.append(int(d.name))
    return found


def wait_for_replicas(index_dir: Path, shard: int, n: int, timeout: float = 90.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = replica_pids(index_dir, shard)
        if len(pids) == n:
            return pids
        time.sleep(0.5)
    raise AssertionError(f"shard {shard} did not get back to {n} replicas in {timeout:.0f} s")


def ask(url: str, question: str, timeout: float = 60.0) -> httpx.Response:
    return httpx.post(f"{url}/api/ask", json={"question": question}, timeout=timeout)


@pytest.fixture(scope="module")
def two_replicas(ray_cluster, sharded_demo: Path, tmp_path_factory: pytest.TempPathFactory):
    index = _copy(sharded_demo, tmp_path_factory.mktemp("r2"), "index")
    log = index.parent / "serve.log"
    server = start_server(index, log=log, extra=["--ray", ray_cluster.address, "--replicas", "2"])
    try:
        yield server.url, index, log
    finally:
        stop_server(server)


def test_answers_are_the_in_process_sharded_answers(two_replicas) -> None:
    url, index, _ = two_replicas
    assert len(replica_pids(index, 0)) == 2 and len(replica_pids(index, 1)) == 2
    from qa.engine import Engine

    local = Engine.open(index)  # the same sharded index, every shard searched in this process
    for q in load_gold(DEMO_GOLD):
        r = ask(url, q.question)
        assert r.status_code == 200, r.text
        got, want = r.json(), local.ask(q.question)
        assert got["answer"] == want.answer, q.question
        assert [(c["doc_id"], c["start"]) for c in got["citations"][:1]] == [
            (c.doc_id, c.start) for c in want.citations[:1]]
    # A follow-up is read with the turn before, as without Ray.
    from qa.followup import Previous

    first = ask(url, QUESTIONS[0]).json()
    prev = {"question": QUESTIONS[0], "doc_id": first["citations"][0]["doc_id"], "answer": first["answer"]}
    r = httpx.post(f"{url}/api/ask", json={"question": "who welcomed that?", "previous": prev}, timeout=60)
    want = local.ask("who welcomed that?", previous=Previous(**prev))
    assert r.status_code == 200 and r.json()["resolved_question"] == want.resolved_question
    assert r.json()["answer"] == want.answer and want.answer


def test_an_upload_and_a_delete_go_to_their_shard(two_replicas) -> None:
    url, index, _ = two_replicas
    before = {i: (index / f"shard-{i}" / "CURRENT").read_text() for i in range(2)}
    r = httpx.post(f"{url}/api/documents", files={"file": ("harbour.txt", HARBOUR.encode())}, timeout=120)
    assert r.status_code == 201, r.text
    home = shard_of("harbour.txt", shard_count(index) or 0)
    assert (index / f"shard-{home}" / "CURRENT").read_text() != before[home]
    assert (index / f"shard-{home}" / "uploads" / "harbour.txt").is_file()
    # The next question is searched by the replicas in the new generation of that shard.
    r = ask(url, "who is the harbour master of Tidewater?")
    assert r.status_code == 200 and r.json()["answer"] == "Ingrid Solberg", r.text
    assert r.json()["citations"][0]["doc_id"] == "harbour.txt"

    r = httpx.delete(f"{url}/api/documents/harbour.txt", timeout=120)
    assert r.status_code == 200, r.text
    r = ask(url, "who is the harbour master of Tidewater?")
    assert r.status_code == 200
    assert all(c["doc_id"] != "harbour.txt" for c in r.json()["citations"])
    assert "harbour.txt" not in [d["doc_id"] for d in httpx.get(f"{url}/api/documents", timeout=30).json()]


def test_killing_one_of_two_replicas_under_load_loses_no_request(two_replicas) -> None:
    url, index, _ = two_replicas
    victims = wait_for_replicas(index, 0, 2)
    codes: Counter[object] = Counter()
    answers: set[str | None] = set()
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(timeout=60) as c:
            for _ in range(n):
                try:
                    r = c.post(f"{url}/api/ask", json={"question": QUESTIONS[0]})
                    with lock:
                        codes[r.status_code] += 1
                        if r.status_code == 200:
                            answers.add(r.json()["answer"])
                except httpx.HTTPError as e:
                    with lock:
                        codes[type(e).__name__] += 1

    threads = [threading.Thread(target=client, args=(25,)) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    os.kill(victims[0], signal.SIGKILL)
    for t in threads:
        t.join(timeout=300)
    assert codes == Counter({200: 75}), codes  # every request answered, none lost
    assert answers == {"November 9, 2023"}  # and each the whole index's answer
    pids = wait_for_replicas(index, 0, 2)  # Ray Serve started a new replica
    assert victims[0] not in pids


def test_a_shard_whose_only_replica_is_down_is_a_503_until_it_is_back(ray_cluster, sharded_demo: Path,
                                                                         tmp_path: Path) -> None:
    index = _copy(sharded_demo, tmp_path, "index")
    # A question waits at most 1 s for a shard: shorter than a replica's restart, so the outage shows.
    server = start_server(index, log=tmp_path / "serve.log", extra=["--ray", ray_cluster.address, "--replicas", "1",
                                                                    "--shard-timeout", "1"])
    try:
        assert ask(server.url, QUESTIONS[0]).status_code == 200
        (victim,) = wait_for_replicas(index, 1, 1)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        seen: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = ask(server.url, QUESTIONS[0])
            seen.append(r.status_code)
            assert r.status_code in (200, 503), r.text
            if r.status_code == 503:
                assert r.headers["Retry-After"] == "5"
                assert "shard 1 of the index did not respond" in r.json()["detail"]
            elif 503 in seen:
                break  # back
        assert 503 in seen, seen  # the outage was seen, as a 503 …
        assert seen[-1] == 200  # … and ended: the replica was restarted
        print(f"shard 1 was back {time.monotonic() - killed:.1f} s after its only replica was killed; {seen.count(503)} "
              "questions got 503 meanwhile")
        assert ask(server.url, QUESTIONS[0]).json()["answer"] == "November 9, 2023"
        assert "Traceback" not in (tmp_path / "serve.log").read_text()
    finally:
        stop_server(server)
    assert replica_pids(index, 1) == []  # stopping the server removed its deployments


def test_serving_an_unsharded_index_on_ray_is_a_clear_error(demo_index: Path) -> None:
    pytest.importorskip("ray")
    r = run_qa("serve", "--index", str(demo_index), "--ray", "127.0.0.2:1", "--port", "1", timeout=120)
    assert r.returncode == 1
    assert "is not a sharded index" in r.stderr and "--shards N" in r.stderr and "Traceback" not in r.stderr


def test_the_cluster_benchmark_prints_every_figure(ray_cluster, tmp_path: Path) -> None:
    """`python -m eval.cluster --smoke` on the session's cluster (CI's short run of the benchmark)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "eval.cluster", "--smoke", "--questions", "20", "--ray",
                        ray_cluster.address, "--json", str(tmp_path / "c.json")], capture_output=True, text=True,
                       timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    fig = json.loads((tmp_path / "c.json").read_text())
    assert fig["same_answers"]["share"] == 1.0 and fig["same_answers"]["non_200"] == 0
    assert fig["faults"]["lost"] == 0 and fig["ingest"]["same_sentences"]
    for row in ("ingest through Ray", "same answer and top citation", "question p50", "memory of one shard replica",
                "requests lost"):
        assert row in r.stdout
