"""GET /metrics (issue 14): the Prometheus text format, read back with prometheus_client's own parser."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import run_qa
from web.app import create_app

AZAL = "when were direct AZAL flights announced"
FIFA = "Who won the 2022 FIFA World Cup?"


def scrape(client: TestClient, **kw) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics", **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


@pytest.fixture()
def served(demo_index: Path, engine, tmp_path: Path):
    shutil.copytree(demo_index, tmp_path / "index")
    return TestClient(create_app(tmp_path / "index", engine=engine))


def test_metrics_count_requests_answers_changes_and_feedback(served: TestClient) -> None:
    client = served
    before = scrape(client)
    assert before[("citeqa_documents", ())] == 5 and before[("citeqa_index_loaded", ())] == 1
    assert before[("citeqa_abstention_ratio", ())] == 0
    gen = client.get("/healthz").json()["generation"]
    assert before[("citeqa_index_generation", (("generation", gen),))] == 1
    assert before[("citeqa_sentences", ())] == client.get("/healthz").json()["sentences"]

    for q in (AZAL, AZAL, FIFA):
        assert client.post("/api/ask", json={"question": q}).status_code == 200
    assert client.post("/api/ask", json={"question": ""}).status_code == 422
    assert client.get("/api/documents/nope.txt").status_code == 404
    r = client.post("/api/documents", files={"file": ("pier.txt", b"Harbour report\n\nThe new pier opened in May.\n")})
    assert r.status_code == 201
    assert client.post("/api/feedback", json={"question": FIFA, "verdict": "wrong"}).status_code == 201

    m = scrape(client)
    ask = ("route", "/api/ask")
    assert m[("citeqa_http_requests_total", (("method", "POST"), ask, ("status", "200")))] == 3
    assert m[("citeqa_http_errors_total", (("method", "POST"), ask, ("status", "422")))] == 1
    doc = ("route", "/api/documents/{doc_id}")
    assert m[("citeqa_http_errors_total", (("method", "GET"), doc, ("status", "404")))] == 1
    assert m[("citeqa_answers_total", (("outcome", "answered"),))] == 2
    assert m[("citeqa_answers_total", (("outcome", "abstained"),))] == 1
    assert m[("citeqa_abstention_ratio", ())] == pytest.approx(1 / 3)
    assert m[("citeqa_answer_latency_seconds_count", ())] == 3
    assert m[("citeqa_answer_latency_seconds_bucket", (("le", "+Inf"),))] == 3
    assert 0 < m[("citeqa_answer_latency_seconds_sum", ())] < 60
    assert m[("citeqa_document_changes_total", (("action", "added"), ("source", "api")))] == 1
    assert m[("citeqa_documents", ())] == 6
    new_gen = client.get("/healthz").json()["generation"]
    assert new_gen != gen and m[("citeqa_index_generation", (("generation", new_gen),))] == 1
    assert m[("citeqa_feedback_total", (("verdict", "wrong"),))] == 1
    # The scrape before this one was counted too.
    assert m[("citeqa_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200")))] == 1


def test_metrics_need_a_read_key_when_keys_are_configured(demo_index: Path, engine, tmp_path: Path) -> None:
    keys = tmp_path / "team.keys"
    r = run_qa("keys", "add", "--keys", str(keys), "--name", "grafana", "--scope", "read")
    key = r.stdout.splitlines()[-1]
    client = TestClient(create_app(demo_index, engine=engine, keys=keys))
    r = client.get("/metrics")
    assert r.status_code == 401 and r.json()["detail"].startswith("this server needs an API key")
    m = scrape(client, headers={"Authorization": f"Bearer {key}"})
    # The refused scrape is counted under its route, with its status.
    assert m[("citeqa_http_errors_total", (("method", "GET"), ("route", "/metrics"), ("status", "401")))] == 1
