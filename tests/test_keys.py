"""API keys with scopes (issue 14): `qa keys add`, `qa serve --keys`, 401/403 through HTTP, the
pages' session cookie, the loopback rule, and that no key reaches a log."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import run_qa
from web.app import create_app

AZAL = "when were direct AZAL flights announced"
AZAL_DOC = "003_fdf2c5db0e68fe77.txt"
NOTE = b"Harbour report\n\nThe new pier of Gwadar opened on 3 May 2024, the port authority said.\n"


def add_key(keys: Path, name: str, scope: str) -> str:
    r = run_qa("keys", "add", "--keys", str(keys), "--name", name, "--scope", scope)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()[-1]


@pytest.fixture(scope="module")
def keyed(demo_index: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("keyed")
    shutil.copytree(demo_index, root / "index")
    keys = root / "team.keys"
    read, write = add_key(keys, "reader", "read"), add_key(keys, "editor", "write")
    client = TestClient(create_app(root / "index", keys=keys))
    return client, read, write, keys


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- qa keys -----------------------------------------------------------------------------------
def test_qa_keys_add_prints_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    keys = tmp_path / "team.keys"
    r = run_qa("keys", "add", "--keys", str(keys), "--name", "alice", "--scope", "write")
    assert r.returncode == 0, r.stderr
    key = r.stdout.splitlines()[-1]
    assert key.startswith("cqk_") and len(key) > 40 and " " not in key
    assert r.stdout.count(key) == 1
    text = keys.read_text()
    assert key not in text
    assert f"write alice {hashlib.sha256(key.encode()).hexdigest()}" in text.splitlines()
    assert keys.stat().st_mode & 0o077 == 0  # readable by its owner only
    r = run_qa("keys", "add", "--keys", str(keys), "--name", "alice", "--scope", "read")
    assert r.returncode == 2 and "already has a key named 'alice'" in r.stderr
    r = run_qa("keys", "add", "--keys", str(keys), "--name", "bob", "--scope", "admin")
    assert r.returncode == 2
    r = run_qa("keys", "add", "--keys", str(keys), "--name", "bob smith", "--scope", "read")
    assert r.returncode == 2 and "invalid name" in r.stderr
    r = run_qa("keys", "list", "--keys", str(keys))
    assert r.returncode == 0 and r.stdout == "write\talice\n"


# --- through HTTP ----------------------------------------------------------------------------------
def test_without_a_key_every_api_request_is_a_401(keyed) -> None:
    client, read, write, _ = keyed
    for method, path in [("POST", "/api/ask"), ("GET", "/api/documents"), ("GET", f"/api/documents/{AZAL_DOC}"),
                         ("DELETE", f"/api/documents/{AZAL_DOC}"), ("POST", "/api/session")]:
        r = client.request(method, path, json={"question": AZAL} if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json() == {"detail": "this server needs an API key: send Authorization: Bearer KEY"}
    r = client.post("/api/ask", json={"question": AZAL}, headers=bearer(read + "x"))
    assert r.status_code == 401 and r.json()["detail"] == "the API key is not valid (unknown or removed)"
    r = client.post("/api/ask", json={"question": AZAL}, headers={"Authorization": f"Basic {read}"})
    assert r.status_code == 401
    assert client.get("/healthz").status_code == 200  # monitoring's liveness check stays open
    assert client.get("/openapi.json").status_code == 200


def test_a_read_key_asks_and_reads_but_cannot_upload_or_delete(keyed) -> None:
    client, read, write, _ = keyed
    r = client.post("/api/ask", json={"question": AZAL}, headers=bearer(read))
    assert r.status_code == 200 and "2023" in r.json()["answer"]
    assert client.get("/api/documents", headers=bearer(read)).status_code == 200
    assert client.get(f"/api/documents/{AZAL_DOC}", headers=bearer(read)).status_code == 200
    r = client.post("/api/documents", files={"file": ("pier.txt", NOTE)}, headers=bearer(read))
    assert r.status_code == 403
    assert r.json()["detail"] == "the key 'reader' has the read scope; this needs a write key"
    assert client.delete(f"/api/documents/{AZAL_DOC}", headers=bearer(read)).status_code == 403
    assert AZAL_DOC in {d["doc_id"] for d in client.get("/api/documents", headers=bearer(read)).json()}


def test_a_write_key_uploads_and_deletes(keyed) -> None:
    client, read, write, _ = keyed
    r = client.post("/api/documents", files={"file": ("pier.txt", NOTE)}, headers=bearer(write))
    assert r.status_code == 201, r.text
    r = client.post("/api/ask", json={"question": "When did the new pier of Gwadar open?"}, headers=bearer(read))
    assert r.json()["citations"][0]["doc_id"] == "pier.txt"
    assert client.delete("/api/documents/pier.txt", headers=bearer(write)).status_code == 200


def test_a_key_added_or_removed_counts_without_a_restart(keyed) -> None:
    client, read, write, keys = keyed
    late = add_key(keys, "late", "read")
    assert client.get("/api/documents", headers=bearer(late)).status_code == 200
    keys.write_text("\n".join(line for line in keys.read_text().splitlines() if " late " not in line) + "\n")
    assert client.get("/api/documents", headers=bearer(late)).status_code == 401
    assert client.get("/api/documents", headers=bearer(read)).status_code == 200


def test_the_pages_take_the_session_cookie_the_chat_gets_with_its_key(keyed) -> None:
    client, read, write, _ = keyed
    client.cookies.clear()
    shell = client.get("/")
    assert shell.status_code == 200 and 'data-keys="required"' in shell.text and 'id="key-form"' in shell.text
    assert AZAL_DOC not in shell.text  # the document picker lists ids only to a caller with a key
    for path in [f"/doc/{AZAL_DOC}", "/documents", f"/?q={AZAL}"]:
        r = client.get(path)
        assert r.status_code == 401 and "text/html" in r.headers["content-type"], path
        assert "open the chat (/) and enter your key" in r.text
    r = client.post("/api/session", headers=bearer(read))
    assert r.status_code == 200 and r.json() == {"keys": True, "name": "reader", "scope": "read"}
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age" not in cookie
    assert client.get(f"/doc/{AZAL_DOC}").status_code == 200
    assert client.get("/documents").status_code == 200
    assert AZAL_DOC in client.get("/").text
    r = client.post("/documents/delete", data={"doc_id": AZAL_DOC})
    assert r.status_code == 403 and "needs a write key" in r.text
    # The cookie is for the pages; the API takes the Authorization header only.
    assert client.get("/api/documents").status_code == 401
    client.cookies.clear()


def test_without_keys_the_session_says_so(demo_index: Path, engine) -> None:
    client = TestClient(create_app(demo_index, engine=engine))
    assert client.post("/api/session").json() == {"keys": False, "name": None, "scope": "write"}
    assert 'data-keys' not in client.get("/").text


# --- qa serve ------------------------------------------------------------------------------------
def test_serve_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    r = run_qa("serve", "--index", str(tmp_path / "none"), "--host", "0.0.0.0", "--port", "9")
    assert r.returncode == 2 and "refusing to serve on 0.0.0.0 without keys" in r.stderr and "--no-auth" in r.stderr
    r = run_qa("serve", "--index", str(tmp_path / "none"), "--keys", str(tmp_path / "missing.keys"))
    assert r.returncode == 2 and f"no keys file at {tmp_path / 'missing.keys'}" in r.stderr
    (tmp_path / "bad.keys").write_text("admin bob 1234\n")
    r = run_qa("serve", "--index", str(tmp_path / "none"), "--keys", str(tmp_path / "bad.keys"))
    assert r.returncode == 2 and "line 1: expected 'SCOPE NAME SHA256-HASH'" in r.stderr
    r = run_qa("serve", "--index", str(tmp_path / "none"), "--keys", str(tmp_path / "bad.keys"), "--no-auth")
    assert r.returncode == 2 and "contradict" in r.stderr


def test_a_served_key_is_never_logged(demo_index: Path, tmp_path: Path) -> None:
    from eval.server import start_server, stop_server

    keys = tmp_path / "team.keys"
    read = add_key(keys, "reader", "read")
    log = tmp_path / "serve.log"
    server = start_server(demo_index, log=log, extra=["--keys", str(keys)])
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            assert http.post("/api/ask", json={"question": AZAL}).status_code == 401
            assert http.post("/api/ask", json={"question": AZAL}, headers=bearer(read)).status_code == 200
            assert http.post("/api/ask", json={"question": AZAL}, headers=bearer(read[:-2])).status_code == 401
            assert http.delete(f"/api/documents/{AZAL_DOC}", headers=bearer(read)).status_code == 403
    finally:
        stop_server(server)
    text = log.read_text()
    assert read not in text and read[:-2] not in text and read[4:20] not in text


def test_healthz_names_watched_files_only_to_a_caller_with_a_key(keyed, tmp_path: Path) -> None:
    from tests.conftest import CORPUS

    client, read, write, keys = keyed
    shutil.copytree(CORPUS, tmp_path / "corpus")
    (tmp_path / "corpus" / "secret-plans.txt").write_text("")
    index = Path(client.app.state.holder.index_dir)
    watched = TestClient(create_app(index, engine=client.app.state.holder.engine, keys=keys,
                                    watch=tmp_path / "corpus", settle=0.2))
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < 30 and not watched.get("/healthz", headers=bearer(read)).json()["watch"]["syncs"]:
        time.sleep(0.2)
    mine = watched.get("/healthz", headers=bearer(read)).json()["watch"]
    assert {"path": "secret-plans.txt", "reason": "empty file"} in mine["skipped"]
    anyone = watched.get("/healthz").json()
    assert anyone["status"] == "ok" and anyone["watch"]["skipped"] == [] and "corpus" not in anyone["watch"]["folder"]


def test_the_schema_states_the_keys(keyed, demo_index: Path, engine) -> None:
    client, read, write, _ = keyed
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "an API key of `qa keys add` (read or write scope)"}
    upload = spec["paths"]["/api/documents"]["post"]
    assert upload["security"] == [{"bearer": []}] and "401" in upload["responses"]
    assert upload["responses"]["403"]["description"].endswith("; or a read key: this needs a write key")
    assert spec["paths"]["/api/ask"]["post"]["security"] == [{"bearer": []}]
    assert "403" not in spec["paths"]["/api/ask"]["post"]["responses"]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    plain = TestClient(create_app(demo_index, engine=engine)).get("/openapi.json").json()
    assert "securitySchemes" not in plain.get("components", {})
