"""Feedback that grows the gold set (issue 14): POST /api/feedback through HTTP, the append-only
file in the index folder, `qa feedback export` and `qa eval --gold` on what it wrote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eval.gold import load_gold
from qa.feedback import feedback_path
from tests.conftest import run_qa
from web.app import create_app

AZAL = "when were direct AZAL flights announced"
FIFA = "Who won the 2022 FIFA World Cup?"
AZAL_DOC = "003_fdf2c5db0e68fe77.txt"


@pytest.fixture()
def served(demo_index: Path, engine, tmp_path: Path):
    """A client over a copy of the demo index (feedback is written into the index folder)."""
    shutil.copytree(demo_index, tmp_path / "index")
    return TestClient(create_app(tmp_path / "index", engine=engine)), tmp_path / "index"


def test_verdicts_are_appended_with_the_answer_and_its_generation(served) -> None:
    client, index = served
    ans = client.post("/api/ask", json={"question": AZAL}).json()
    assert ans["generation"].startswith("gen-")
    r = client.post("/api/feedback", json={"question": AZAL, "verdict": "right", "answer": ans})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["verdict"] == "right" and body["generation"] == ans["generation"] and body["id"].startswith("fb-")
    second = ans["citations"][1]
    wrong = {"question": AZAL, "verdict": "wrong", "answer": ans,
             "correct": {"doc_id": second["doc_id"], "start": second["start"], "end": second["end"]}}
    assert client.post("/api/feedback", json=wrong).status_code == 201
    fifa = client.post("/api/ask", json={"question": FIFA}).json()
    assert client.post("/api/feedback", json={"question": FIFA, "verdict": "wrong", "correct": None,
                                              "answer": fifa}).status_code == 201
    lines = [json.loads(x) for x in feedback_path(index).read_text().splitlines()]
    assert [x["verdict"] for x in lines] == ["right", "wrong", "wrong"]
    assert lines[0]["answer"]["answer"] == ans["answer"] and lines[0]["generation"] == ans["generation"]
    assert lines[1]["correct"]["sentence"] == second["sentence"]
    assert lines[2]["correct"] is None and lines[2]["key"] is None


@pytest.mark.parametrize(("body", "status", "reason"), [
    ({"question": AZAL, "verdict": "wrong", "correct": {"doc_id": AZAL_DOC, "start": 0, "end": 5}}, 422,
     f"correct: 0:5 is not a sentence of '{AZAL_DOC}'; send the offsets of a cited sentence (its start and end)"),
    ({"question": AZAL, "verdict": "wrong", "correct": {"doc_id": "nope.txt", "start": 0, "end": 5}}, 422,
     "correct: no document 'nope.txt' in this index"),
    ({"question": AZAL, "verdict": "right", "correct": {"doc_id": AZAL_DOC, "start": 0, "end": 5}}, 422,
     'correct is for a "wrong" verdict: the sentence that answers instead'),
    ({"question": AZAL, "verdict": "maybe"}, 422, "verdict: Input should be 'right' or 'wrong'"),
    ({"question": " ", "verdict": "right"}, 422, "the question is empty"),
    ({"verdict": "right"}, 422, "question: Field required"),
])
def test_bad_feedback_is_a_4xx_with_the_reason_and_nothing_is_written(served, body, status, reason) -> None:
    client, index = served
    r = client.post("/api/feedback", json=body)
    assert r.status_code == status and r.json() == {"detail": reason}
    assert not feedback_path(index).exists()


def test_a_read_key_may_give_feedback_and_its_name_is_kept(demo_index: Path, engine, tmp_path: Path) -> None:
    shutil.copytree(demo_index, tmp_path / "index")
    r = run_qa("keys", "add", "--keys", str(tmp_path / "k"), "--name", "wall", "--scope", "read")
    key = r.stdout.splitlines()[-1]
    client = TestClient(create_app(tmp_path / "index", engine=engine, keys=tmp_path / "k"))
    assert client.post("/api/feedback", json={"question": FIFA, "verdict": "wrong"}).status_code == 401
    r = client.post("/api/feedback", json={"question": FIFA, "verdict": "wrong"},
                    headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201
    assert json.loads(feedback_path(tmp_path / "index").read_text())["key"] == "wall"


def test_export_writes_a_gold_file_that_qa_eval_scores(served, tmp_path: Path) -> None:
    client, index = served
    r = run_qa("feedback", "export", "--index", str(index))
    assert r.returncode == 1 and "no feedback in" in r.stderr
    ans = client.post("/api/ask", json={"question": AZAL}).json()
    client.post("/api/feedback", json={"question": AZAL, "verdict": "right", "answer": ans})
    second = ans["citations"][1]
    # The last verdict on a question wins: this "wrong" replaces the "right" above.
    client.post("/api/feedback", json={"question": AZAL, "verdict": "wrong", "answer": ans, "correct": {
        "doc_id": second["doc_id"], "start": second["start"], "end": second["end"]}})
    fifa = client.post("/api/ask", json={"question": FIFA}).json()
    client.post("/api/feedback", json={"question": FIFA, "verdict": "wrong", "correct": None, "answer": fifa})
    who = "Who led the Pakistan side?"
    led = client.post("/api/ask", json={"question": who}).json()
    client.post("/api/feedback", json={"question": who, "verdict": "right", "answer": led})

    gold = tmp_path / "feedback-gold.jsonl"
    r = run_qa("feedback", "export", "--index", str(index), "--out", str(gold))
    assert r.returncode == 0, r.stderr
    assert "wrote 3 gold questions (2 answerable, 1 unanswerable) from 4 verdicts" in r.stderr
    items = {i.question: i for i in load_gold(gold)}  # eval's own loader: the format of eval/gold/*.jsonl
    assert items[AZAL].evidence == (second["sentence"],) and items[AZAL].doc_ids == (second["doc_id"],)
    assert not items[FIFA].answerable
    assert items[who].answers == (led["answer"],) and items[who].evidence == (led["citations"][0]["sentence"],)

    out = tmp_path / "report"
    r = run_qa("eval", "--gold", str(gold), "--index", str(index), "--out", str(out), "--methods", "citeqa",
               "--no-plots", "--no-progress")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())["gold"]
    assert report["warnings"] == []  # every evidence sentence found verbatim in its document
    scored = report["methods"]["citeqa"]
    assert scored["questions"] == 3 and scored["answerable"] == 2 and scored["unanswerable"] == 1
    assert scored["unanswerable_abstained"] == 1.0  # the FIFA question: citeqa abstains, as the user said
    assert scored["evidence_at_3"] == 1.0


def test_the_document_view_offers_every_sentence_to_pick(served) -> None:
    """?pick=1: the document's sentences as clickable spans, each with its offsets in the text."""
    import re as _re
    from html import unescape

    client, index = served
    page = client.get(f"/doc/{AZAL_DOC}", params={"pick": "1"}).text
    doc = client.get(f"/api/documents/{AZAL_DOC}").json()
    spans = _re.findall(r'<span class="pick" role="button" tabindex="0" data-start="(\d+)" data-end="(\d+)">(.*?)</span>',
                        page, _re.S)
    assert [(int(a), int(b)) for a, b, _ in spans] == [tuple(o) for o in doc["sentence_offsets"]]
    for a, b, piece in spans:
        assert unescape(piece) == doc["text"][int(a) : int(b)]
    assert 'id="pick-banner"' in page and f'data-doc="{AZAL_DOC}"' in page
    assert 'class="pick"' not in client.get(f"/doc/{AZAL_DOC}").text
