"""The watched folder (issue 14): `qa serve --index DIR --watch CORPUS` as a subprocess, files
copied in, changed and deleted, each seen through HTTP within 10 s; a half-written file is never
read; /healthz reports the last sync and the files skipped, with the reason."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from index.watch import FolderWatch
from tests.conftest import CORPUS

PIER = "Harbour report\n\nThe new pier of Gwadar opened on 3 May 2024, the port authority said.\n"
PIER_2 = "Harbour report\n\nThe new pier of Gwadar opened on 9 June 2024, the port authority said.\n"
QUESTION = "When did the new pier of Gwadar open?"
DEADLINE = 10.0  # the promise: a change is answered within 10 s


def test_a_folder_settles_only_after_it_stays_still(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one")
    watch = FolderWatch(tmp_path, settle=0.3)
    assert not watch.settled()  # first look: remembered, not yet still
    time.sleep(0.35)
    assert watch.settled()  # still for the settle delay, and never applied: sync
    watch.applied()
    assert not watch.settled()
    (tmp_path / "b.txt").write_text("two")
    assert not watch.settled()
    time.sleep(0.1)
    (tmp_path / "b.txt").write_text("two and more")  # still being written
    assert not watch.settled()
    time.sleep(0.35)
    assert watch.settled()
    watch.applied()
    time.sleep(0.35)
    assert not watch.settled()  # nothing new


@pytest.fixture(scope="module")
def watched(demo_index: Path, tmp_path_factory: pytest.TempPathFactory):
    from eval.server import start_server, stop_server

    root = tmp_path_factory.mktemp("watched")
    shutil.copytree(demo_index, root / "index")
    shutil.copytree(CORPUS, root / "corpus")
    server = start_server(root / "index", log=root / "serve.log", extra=["--watch", str(root / "corpus")])
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            _until(lambda: http.get("/healthz").json()["watch"]["syncs"] >= 1, "the first sync")
            yield http, root / "corpus"
    finally:
        stop_server(server)


def _until(check, what: str, deadline: float = DEADLINE) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline:
        if check():
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {deadline:.0f} s")


def _top_doc(http: httpx.Client) -> tuple[str | None, str | None]:
    ans = http.post("/api/ask", json={"question": QUESTION}).json()
    top = ans["citations"][0]["doc_id"] if ans["citations"] else None
    return top, ans["answer"]


def test_a_copied_file_is_answered_then_changed_then_gone_within_10_s(watched) -> None:
    http, corpus = watched
    before = http.get("/healthz").json()
    shutil.copyfile(_write(corpus.parent / "pier.txt", PIER), corpus / "pier.txt")
    took = _until(lambda: _top_doc(http) == ("pier.txt", "3 May 2024"), "the copied file answered")
    print(f"copied file answered after {took:.1f} s")
    after = http.get("/healthz").json()
    assert after["documents"] == before["documents"] + 1 and after["generation"] != before["generation"]
    assert after["watch"]["last_result"].startswith("1 added, 0 changed, 0 removed")

    (corpus / "pier.txt").write_text(PIER_2)
    took = _until(lambda: _top_doc(http) == ("pier.txt", "9 June 2024"), "the changed file answered")
    print(f"changed file answered after {took:.1f} s")

    (corpus / "pier.txt").unlink()
    took = _until(lambda: "pier.txt" not in {d["doc_id"] for d in http.get("/api/documents").json()},
                  "the deleted file gone")
    print(f"deleted file gone after {took:.1f} s")
    assert _top_doc(http)[0] != "pier.txt"
    metrics = http.get("/metrics").text
    for action in ("added", "replaced", "deleted"):
        assert f'citeqa_document_changes_total{{action="{action}",source="watch"}} 1.0' in metrics


def test_skipped_files_are_reported_with_the_reason(watched) -> None:
    http, corpus = watched
    (corpus / "empty.txt").write_text("")
    (corpus / "blob.bin").write_bytes(b"\x00\x01")
    syncs = http.get("/healthz").json()["watch"]["syncs"]

    def reported() -> bool:
        w = http.get("/healthz").json()["watch"]
        return w["syncs"] > syncs and {"path": "empty.txt", "reason": "empty file"} in w["skipped"]

    _until(reported, "the skipped files reported")
    watch = http.get("/healthz").json()["watch"]
    assert {"path": "blob.bin", "reason": "unsupported file type"} in watch["skipped"]
    assert watch["error"] is None and watch["last_sync"].endswith("Z")
    (corpus / "empty.txt").unlink()
    (corpus / "blob.bin").unlink()


def test_a_file_still_being_written_is_not_read_half_way(watched) -> None:
    http, corpus = watched
    lines = [f"Line {i}: the harbour master of Pasni counted {i} fishing boats this morning." for i in range(12)]
    text = "Pasni harbour log\n\n" + "\n".join(lines) + "\n"
    seen_early: list[set[str]] = []
    done = threading.Event()

    def writer() -> None:
        with open(corpus / "pasni.txt", "w") as f:
            for i in range(0, len(text), len(text) // 8):  # 9 chunks, 0.4 s apart: 3.2 s of writing
                f.write(text[i : i + len(text) // 8])
                f.flush()
                time.sleep(0.4)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    while not done.is_set():
        seen_early.append({d["doc_id"] for d in http.get("/api/documents").json()})
        time.sleep(0.2)
    t.join()
    assert seen_early and all("pasni.txt" not in s for s in seen_early), "read while still being written"
    _until(lambda: "pasni.txt" in {d["doc_id"] for d in http.get("/api/documents").json()}, "the finished file")
    doc = http.get("/api/documents/pasni.txt").json()
    assert doc["text"] == text  # the whole file, not a part of it
    (corpus / "pasni.txt").unlink()
    _until(lambda: "pasni.txt" not in {d["doc_id"] for d in http.get("/api/documents").json()}, "pasni.txt gone")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_serve_refuses_a_watch_it_cannot_keep(tmp_path: Path) -> None:
    from tests.conftest import run_qa

    r = run_qa("serve", "--index", str(tmp_path / "ix"), "--watch", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "does not exist or is not a folder" in r.stderr
    r = run_qa("serve", "--index", str(tmp_path / "ix"), "--watch", str(tmp_path), "--workers", "2")
    assert r.returncode == 2 and "use --workers 1" in r.stderr
