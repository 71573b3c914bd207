"""Live updates: documents uploaded and deleted while the server runs, an index rebuilt by `qa index`
in another process, and what survives both (index/live.py, index/uploads.py, web/app.py).

In process through FastAPI's TestClient where the HTTP behaviour is the point; a real `qa serve`
subprocess where another process or a crash is."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from index.build import prepare_document
from index.documents import MAX_FILE_BYTES, load_bytes
from index.loaded import LoadedIndex
from index.store import current_generation
from index.uploads import (
    BadNameError,
    corpus_with_uploads,
    pending_changes,
    read_deleted,
    save_upload,
    upload_doc_id,
    upload_path,
)
from tests.conftest import CORPUS, run_qa
from web.app import create_app

HARBOUR = (
    "Port of Tidewater annual report\n\n"
    "Tidewater, 3 May 2024: The harbour crane known as Big Bertha lifted a record load of 840 tonnes on Friday. "
    "The harbour master, Ingrid Solberg, said the lift took eleven hours.\n"
)
HARBOUR_Q = "Who is the harbour master of Tidewater?"
HARBOUR_V2 = (
    "Port of Tidewater annual report, revised\n\n"
    "Tidewater, 9 May 2024: The harbour master, Magnus Halvorsen, took office after Ingrid Solberg retired. "
    "The harbour crane known as Big Bertha was sold to a shipyard in Bergen.\n"
)
AZAL = "when were direct AZAL flights announced"
AZAL_DOC = "003_fdf2c5db0e68fe77.txt"


@pytest.fixture()
def live_index(demo_index: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "index"
    shutil.copytree(demo_index, dst)
    return dst


@pytest.fixture()
def client(live_index: Path) -> TestClient:
    return TestClient(create_app(live_index))


def upload(client: TestClient, name: str, data: bytes | str, **kw):
    body = data.encode() if isinstance(data, str) else data
    return client.post("/api/documents", files={"file": (name, body, "application/octet-stream")}, **kw)


def ask(client: TestClient, q: str) -> dict:
    r = client.post("/api/ask", json={"question": q})
    assert r.status_code == 200, r.text
    return r.json()


def one_line(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    return detail


# --- upload, replace, delete ------------------------------------------------------------------
def test_upload_answers_at_once_then_replace_then_delete(client: TestClient, live_index: Path) -> None:
    before = ask(client, HARBOUR_Q)
    assert before["abstained"] and all(c["doc_id"] != "harbour.txt" for c in before["citations"])
    gen0 = client.get("/healthz").json()["generation"]

    r = upload(client, "harbour.txt", HARBOUR)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["action"] == "added" and out["doc_id"] == "harbour.txt" and out["documents"] == 6
    assert out["sentences"] == 3 and out["date"] == "2024-05-03" and "ask about it" in out["message"]
    assert upload_path(live_index, "harbour.txt").read_text() == HARBOUR  # kept in INDEX/uploads
    served = client.get("/healthz").json()["generation"]
    assert served == current_generation(live_index).name != gen0  # swapped before the response

    ans = ask(client, HARBOUR_Q)  # the very next request
    assert not ans["abstained"] and ans["answer"] == "Ingrid Solberg"
    assert ans["citations"][0]["doc_id"] == "harbour.txt"
    doc = client.get("/api/documents/harbour.txt").json()
    c = ans["citations"][0]
    assert doc["text"][c["start"] : c["end"]] == c["sentence"]
    assert "harbour.txt" in [d["doc_id"] for d in client.get("/api/documents").json()]
    assert ask(client, AZAL)["citations"][0]["doc_id"] == AZAL_DOC  # the rest still answers

    # The same name again replaces the document (what a user expects), and says so.
    r = upload(client, "harbour.txt", HARBOUR_V2)
    assert r.status_code == 200 and r.json()["action"] == "replaced"
    assert "replaced the existing document harbour.txt" in r.json()["message"]
    assert ask(client, HARBOUR_Q)["answer"] == "Magnus Halvorsen"
    assert client.get("/api/documents/harbour.txt").json()["text"] == HARBOUR_V2
    assert len(client.get("/api/documents").json()) == 6
    # The same bytes once more change nothing.
    r = upload(client, "harbour.txt", HARBOUR_V2)
    assert r.status_code == 200 and r.json()["action"] == "unchanged"

    r = client.delete("/api/documents/harbour.txt")
    assert r.status_code == 200 and r.json()["action"] == "deleted" and r.json()["documents"] == 5
    after = ask(client, HARBOUR_Q)
    assert after["abstained"] and all(c["doc_id"] != "harbour.txt" for c in after["citations"])
    assert "no document" in one_line(client.get("/api/documents/harbour.txt"), 404)
    assert not upload_path(live_index, "harbour.txt").exists() and "harbour.txt" in read_deleted(live_index)
    assert "no document" in one_line(client.delete("/api/documents/harbour.txt"), 404)


def test_an_upload_embeds_only_itself(live_index: Path, engine) -> None:
    """The other documents keep their vectors, annotations and parses; only the new one is embedded."""
    from index import live

    old = LoadedIndex.open(live_index)
    doc = load_bytes(HARBOUR.encode(), "harbour.txt")
    change = live.add_document(live_index, doc, HARBOUR.encode(), engine.encoder, hint=old)
    prepared = prepare_document(doc)
    assert change.report.embedded_texts == len(prepared.sents) + len(prepared.passages)
    assert sorted(change.report.unchanged) == sorted(old.docs) and change.report.added == ["harbour.txt"]
    new = LoadedIndex.open(live_index)
    assert new.gen_dir != old.gen_dir and new.gen_dir.name == change.generation
    for doc_id in old.docs:
        assert np.array_equal(new.sentence_vectors.vectors(list(new.doc_sentences[doc_id])),
                              old.sentence_vectors.vectors(list(old.doc_sentences[doc_id])))
        assert [new.parse_json(s) for s in new.doc_sentences[doc_id]] == [
            old.parse_json(s) for s in old.doc_sentences[doc_id]]
    sids = new.doc_sentences["harbour.txt"]
    assert [new.sent_text[s] for s in sids] == [doc.text[a:b] for a, b in prepared.sents]
    vecs = engine.encoder.encode([new.sent_text[s] for s in sids])
    assert np.min(np.sum(vecs * new.sentence_vectors.vectors(sids), axis=1)) > 0.99


def test_other_formats_upload_too(client: TestClient) -> None:
    from tests.makers import make_docx, make_pdf

    pdf = make_pdf([["The lighthouse keeper of Skerryvore is Ewan MacLeod."], ["He lit the lamp every night."]])
    r = upload(client, "keeper.pdf", pdf)
    assert r.status_code == 201, r.text
    ans = ask(client, "Who is the lighthouse keeper of Skerryvore?")
    assert ans["citations"][0]["doc_id"] == "keeper.pdf" and ans["citations"][0]["page"] == 1
    docx = make_docx(["The ferry to Lundy leaves from Bideford at nine."], title="Lundy ferry")
    assert upload(client, "ferry.docx", docx).json()["title"] == "Lundy ferry"
    md = "# Orchard notes\n\nThe oldest pear tree in the orchard was planted by Agnes Whitlock.\n"
    assert upload(client, "orchard.md", md).json()["title"] == "Orchard notes"
    assert ask(client, "Who planted the oldest pear tree?")["citations"][0]["doc_id"] == "orchard.md"


# --- bad uploads: a 4xx with the reason, nothing lost ----------------------------------------
BAD_UPLOADS = [
    ("binary.txt", bytes(range(256)) * 40, 422, "binary"),
    ("empty.md", b"", 422, "empty file"),
    ("blank.txt", b"   \n\n  ", 422, "empty file"),
    ("tool.exe", b"MZ\x90\x00", 415, "unsupported file type .exe"),
    ("README", b"no suffix at all", 415, "unsupported file type (none)"),
    ("scan.pdf", b"%PDF-1.4 not really a pdf", 422, "scan.pdf:"),
    ("../../etc/passwd.txt", b"root:x:0:0", 400, "leave its folder"),
    ("..\\..\\boot.txt", b"x", 400, "leave its folder"),
    (".env.txt", b"SECRET=1", 400, "hidden files"),
    ("a%2fb.txt", b"words", 400, "invalid document id"),
    ("x" * 300 + ".txt", b"words", 400, "longer than 255 bytes"),
]


@pytest.mark.parametrize(("name", "data", "status", "needle"), BAD_UPLOADS, ids=[b[0][:20] for b in BAD_UPLOADS])
def test_bad_uploads_are_refused_and_lose_nothing(client: TestClient, live_index: Path, name: str, data: bytes,
                                                   status: int, needle: str) -> None:
    gen = LoadedIndex.open(live_index).gen_dir
    docs = client.get("/api/documents").json()
    assert needle in one_line(upload(client, name, data), status)
    assert client.get("/api/documents").json() == docs
    assert LoadedIndex.open(live_index).gen_dir == gen  # not even a new generation
    assert not (live_index / "uploads").exists() or not any((live_index / "uploads").iterdir())
    assert ask(client, AZAL)["citations"][0]["doc_id"] == AZAL_DOC


def test_a_folder_part_of_the_name_is_dropped(client: TestClient) -> None:
    r = upload(client, "C:\\Users\\me\\notes\\harbour.txt", HARBOUR)
    assert r.status_code == 201 and r.json()["doc_id"] == "harbour.txt"


def test_a_huge_upload_is_refused_before_it_is_read(client: TestClient) -> None:
    huge = b"a" * (MAX_FILE_BYTES + 1)
    assert "too large" in one_line(upload(client, "huge.txt", huge), 413)
    # Streamed without a length, it is cut off as it passes the limit.
    def chunks():
        for _ in range(60):
            yield b"x" * 2**20

    r = client.post("/api/documents", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert "too large" in one_line(r, 413)
    assert len(client.get("/api/documents").json()) == 5


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({}, 422),  # no body
        ({"json": {"file": "x"}}, 422),  # not multipart
        ({"files": {"other": ("a.txt", b"words", "text/plain")}}, 422),  # no `file` field
        ({"content": b"--b\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=b"}}, (400, 422)),
    ],
)
def test_malformed_upload_requests(client: TestClient, kwargs: dict, status) -> None:
    r = client.post("/api/documents", **kwargs)
    assert r.status_code in (status if isinstance(status, tuple) else (status,)), r.text
    assert "\n" not in r.json()["detail"]


def test_cross_site_requests_cannot_change_the_index(client: TestClient) -> None:
    evil = {"origin": "http://evil.example"}
    assert "another web site" in one_line(upload(client, "harbour.txt", HARBOUR, headers=evil), 403)
    assert "another web site" in one_line(client.delete(f"/api/documents/{AZAL_DOC}", headers=evil), 403)
    r = upload(client, "harbour.txt", HARBOUR, headers={"sec-fetch-site": "cross-site"})
    assert r.status_code == 403
    assert len(client.get("/api/documents").json()) == 5
    # The server's own pages send their own origin.
    assert upload(client, "harbour.txt", HARBOUR, headers={"origin": "http://testserver"}).status_code == 201


@pytest.mark.parametrize("path", ["/api/documents/..%2F..%2Fetc%2Fpasswd", "/api/documents/%2e%2e/x", "/api/documents/a%00b"])
def test_delete_refuses_traversal(client: TestClient, path: str) -> None:
    assert "invalid document id" in one_line(client.delete(path), 400)


def test_the_last_document_cannot_be_deleted(tmp_path: Path) -> None:
    from index.build import build_index

    corpus = tmp_path / "one"
    corpus.mkdir()
    (corpus / "a.txt").write_text(HARBOUR)
    build_index(corpus, tmp_path / "ix", progress=False, log=lambda m: None)
    c = TestClient(create_app(tmp_path / "ix"))
    assert "last document" in one_line(c.delete("/api/documents/a.txt"), 409)
    assert upload(c, "b.txt", HARBOUR_V2).status_code == 201
    assert c.delete("/api/documents/a.txt").status_code == 200


def test_no_index_means_503_for_changes_too(tmp_path: Path) -> None:
    c = TestClient(create_app(tmp_path / "missing"))
    assert "qa index" in one_line(upload(c, "harbour.txt", HARBOUR), 503)
    assert "qa index" in one_line(c.delete("/api/documents/x.txt"), 503)


def test_a_busy_index_gives_503_with_retry_after(client: TestClient, live_index: Path, monkeypatch) -> None:
    from index import build, live

    monkeypatch.setattr(live, "WAIT_SECONDS", 0.2)
    with build.build_lock(live_index):  # as a running `qa index` holds it
        r = upload(client, "harbour.txt", HARBOUR)
    assert "another process" in one_line(r, 503) and r.headers["retry-after"] == "5"
    assert upload(client, "harbour.txt", HARBOUR).status_code == 201  # free again


# --- what `qa index` makes of uploads and deletions --------------------------------------------
def test_qa_index_keeps_uploads_and_leaves_deleted_documents_out(client: TestClient, live_index: Path,
                                                                 corpus_copy: Path) -> None:
    assert upload(client, "harbour.txt", HARBOUR).status_code == 201
    assert client.delete(f"/api/documents/{AZAL_DOC}").status_code == 200
    assert upload(client, "001_072c7506d9b82cf7.txt", HARBOUR_V2).status_code == 200  # replaces a corpus file

    r = run_qa("index", str(corpus_copy), "--index", str(live_index))
    assert r.returncode == 0, r.stderr
    assert "2 uploaded document(s) kept" in r.stderr
    assert f"left out {AZAL_DOC}: deleted through the API" in r.stderr
    idx = LoadedIndex.open(live_index)
    assert sorted(idx.docs) == sorted([p.name for p in CORPUS.glob("*.txt") if p.name != AZAL_DOC] + ["harbour.txt"])
    assert idx.docs["001_072c7506d9b82cf7.txt"].text == HARBOUR_V2  # the upload, not the corpus file
    assert "0 added" in r.stdout and "0 removed" in r.stdout  # nothing to do: the server already did it
    r = run_qa("index", str(corpus_copy), "--index", str(live_index), "--rebuild")
    assert r.returncode == 0 and set(LoadedIndex.open(live_index).docs) == set(idx.docs)

    # Uploading a deleted document again brings it back, and a rebuild keeps it.
    data = (CORPUS / AZAL_DOC).read_bytes()
    assert upload(client, AZAL_DOC, data).json()["action"] == "added"
    assert AZAL_DOC not in read_deleted(live_index)
    run_qa("index", str(corpus_copy), "--index", str(live_index))
    assert AZAL_DOC in LoadedIndex.open(live_index).docs


def test_upload_names() -> None:
    assert upload_doc_id("notes.txt") == "notes.txt"
    assert upload_doc_id("C:\\Users\\me\\notes.md") == "notes.md"
    assert upload_doc_id("/home/me/report 2024 (final).pdf") == "report 2024 (final).pdf"
    assert upload_doc_id("ünïcødé.txt") == "ünïcødé.txt"
    for bad in [None, "", "  ", "dir/", ".", "..", "a/../b.txt", ".hidden.txt", "tab\there.txt", "x" * 256]:
        with pytest.raises(BadNameError):
            upload_doc_id(bad)


def test_an_index_folder_inside_the_corpus_is_not_indexed_as_documents(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    ix = corpus / "ix"
    save_upload(ix, "harbour.txt", HARBOUR.encode())
    files = corpus_with_uploads(corpus, ix)
    ids = [doc_id for _, doc_id in files.files]
    assert ids.count("harbour.txt") == 1 and not any(i.startswith("ix/") for i in ids)


# --- a server killed between saving a change and publishing it ---------------------------------
def test_changes_saved_but_not_published_are_applied_at_start(live_index: Path) -> None:
    """What a kill -9 between the two steps leaves: the file (or the deletion) on disk, the index
    without it. The next server start publishes it."""
    from index.uploads import record_deletion

    save_upload(live_index, "harbour.txt", HARBOUR.encode())
    record_deletion(live_index, AZAL_DOC)
    old = LoadedIndex.open(live_index)
    pending = pending_changes(old)
    assert pending.uploads == ["harbour.txt"] and pending.deletions == [AZAL_DOC]
    c = TestClient(create_app(live_index))
    docs = {d["doc_id"] for d in c.get("/api/documents").json()}
    assert "harbour.txt" in docs and AZAL_DOC not in docs
    assert ask(c, HARBOUR_Q)["answer"] == "Ingrid Solberg"
    assert not pending_changes(LoadedIndex.open(live_index))


# --- an index rebuilt by `qa index` in another process -----------------------------------------
def test_the_server_follows_qa_index_in_another_process(live_index: Path, corpus_copy: Path) -> None:
    from eval.server import start_server, stop_server

    server = start_server(live_index, log=live_index.parent / "serve.log")
    try:
        import httpx

        with httpx.Client(base_url=server.url, timeout=30) as http:
            def asking() -> dict:
                r = http.post("/api/ask", json={"question": HARBOUR_Q})
                assert r.status_code == 200, r.text
                return r.json()

            assert asking()["abstained"]
            (corpus_copy / "harbour.txt").write_text(HARBOUR)
            (corpus_copy / AZAL_DOC).unlink()
            statuses: list[int] = []
            stop = threading.Event()

            def hammer() -> None:  # questions all through the rebuild and the swap
                with httpx.Client(base_url=server.url, timeout=30) as h:
                    while not stop.is_set():
                        statuses.append(h.post("/api/ask", json={"question": AZAL}).status_code)

            t = threading.Thread(target=hammer)
            t.start()
            try:
                r = run_qa("index", str(corpus_copy), "--index", str(live_index))
                assert r.returncode == 0, r.stderr
                # The server checks CURRENT every second and swaps once the new generation is loaded.
                for _ in range(300):
                    ans = asking()
                    if not ans["abstained"]:
                        break
                    stop.wait(0.1)
            finally:
                stop.set()
                t.join()
            assert ans["answer"] == "Ingrid Solberg" and ans["citations"][0]["doc_id"] == "harbour.txt"
            assert AZAL_DOC not in {d["doc_id"] for d in http.get("/api/documents").json()}
            assert statuses and set(statuses) == {200}, sorted(set(statuses))
            assert http.get("/healthz").json()["documents"] == 5
    finally:
        stop_server(server)


def test_a_generation_deleted_under_a_loaded_index_still_answers(live_index: Path, engine) -> None:
    """Two builds in a row delete the generation a server may still be answering from: the
    answer step reads parses from its SQLite file, which the loaded index holds open."""
    from index import live

    old = LoadedIndex.open(live_index)
    for i, text in enumerate((HARBOUR, HARBOUR_V2)):
        doc = load_bytes(text.encode(), f"h{i}.txt")
        live.add_document(live_index, doc, text.encode(), engine.encoder)
    assert not old.gen_dir.exists()
    assert all(old.parse_json(s) for s in range(old.n_sentences()))
    assert json.loads(old.parse_json(0)) is not None
