"""The `qa` command as a user meets it: through a subprocess, on the demo index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS, ROOT, run_qa

CONTRACT_KEYS = {"id", "question", "answer", "abstained", "confidence", "citations"}
CITATION_KEYS = {"doc_id", "title", "sentence", "start", "end", "score", "answer_start", "answer_end"}


def check_contract(obj: dict, texts: dict[str, str]) -> None:
    assert obj.keys() >= CONTRACT_KEYS
    assert isinstance(obj["question"], str)
    assert isinstance(obj["abstained"], bool)
    assert 0.0 <= obj["confidence"] <= 1.0
    if obj["abstained"]:
        assert obj["answer"] is None
    else:
        assert isinstance(obj["answer"], str) and obj["answer"]
    assert obj["citations"], "citations are present even when abstaining"
    for c in obj["citations"]:
        assert c.keys() >= CITATION_KEYS
        assert texts[c["doc_id"]][c["start"] : c["end"]] == c["sentence"]
        if c["answer_start"] is not None:
            assert 0 <= c["answer_start"] < c["answer_end"] <= len(c["sentence"])
    scores = [c["score"] for c in obj["citations"]]
    assert scores == sorted(scores, reverse=True), "citations are ranked best first"


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in CORPUS.glob("*.txt")}


def test_azal_question_cites_003(demo_index: Path, texts: dict[str, str]) -> None:
    r = run_qa("ask", "--index", str(demo_index), "--json", "when were direct AZAL flights announced")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    check_contract(obj, texts)
    top = obj["citations"][0]
    assert top["doc_id"].startswith("003_")
    assert "AZAL" in top["sentence"]
    assert not obj["abstained"]
    # The sentence has no date, so the answer is the document's own date, quoted and located.
    assert obj["answer"] == "November 9, 2023"
    assert obj["answer_source"] == "document_date"
    doc = texts[obj["answer_doc_id"]]
    assert doc[obj["answer_doc_start"] : obj["answer_doc_end"]] == obj["answer"]


def test_answer_is_a_quote_of_the_cited_sentence(demo_index: Path, texts: dict[str, str]) -> None:
    r = run_qa("ask", "--index", str(demo_index), "--json", "Who led the Pakistani side in the political consultations?")
    obj = json.loads(r.stdout)
    check_contract(obj, texts)
    top = obj["citations"][0]
    assert top["doc_id"].startswith("000_")
    assert obj["answer"] == top["sentence"][top["answer_start"] : top["answer_end"]]
    assert "Sohail Mahmood" in obj["answer"]


def test_out_of_corpus_question_abstains(demo_index: Path, texts: dict[str, str]) -> None:
    r = run_qa("ask", "--index", str(demo_index), "--json", "Who won the 2022 FIFA World Cup?")
    assert r.returncode == 0
    obj = json.loads(r.stdout)
    check_contract(obj, texts)
    assert obj["abstained"] is True and obj["answer"] is None


def test_jsonl_echoes_ids_in_order(demo_index: Path, texts: dict[str, str]) -> None:
    questions = [
        {"id": "q1", "question": "when were direct AZAL flights announced"},
        {"id": "q2", "question": "Who won the 2022 FIFA World Cup?"},
        {"id": 3, "question": "Who is Azerbaijan's ambassador to Pakistan?"},
        {"id": "q4", "question": "What did Lavrov's visit agree on?"},
    ]
    stdin = "\n".join(json.dumps(q) for q in questions) + "\n"
    r = run_qa("ask", "--index", str(demo_index), "--jsonl", "-k", "3", input=stdin)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["id"] for x in lines] == ["q1", "q2", "3", "q4"]
    assert [x["question"] for x in lines] == [q["question"] for q in questions]
    for x in lines:
        check_contract(x, texts)
        assert len(x["citations"]) <= 3


def test_jsonl_bad_line_is_reported_and_the_rest_answered(demo_index: Path) -> None:
    stdin = '{"id": "a", "question": "who visited Islamabad?"}\nnot json\n{"id": "c", "question": "  "}\n'
    r = run_qa("ask", "--index", str(demo_index), "--jsonl", input=stdin)
    assert r.returncode == 1
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines[0]["id"] == "a" and "answer" in lines[0]
    assert "error" in lines[1] and "line 2" in lines[1]["error"]
    assert lines[2]["id"] == "c" and "empty" in lines[2]["error"]


def test_human_output_numbers_citations_and_marks_the_answer(demo_index: Path) -> None:
    r = run_qa("ask", "--index", str(demo_index), "Who is Azerbaijan's ambassador to Pakistan?")
    assert r.returncode == 0
    assert "Answer: Khazar Farhadov" in r.stdout
    assert "[1] " in r.stdout and "«Khazar Farhadov»" in r.stdout
    assert "2023-04-13" in r.stdout and "001_072c7506d9b82cf7.txt" in r.stdout


def test_missing_index_and_empty_question_are_usage_errors(tmp_path: Path, demo_index: Path) -> None:
    r = run_qa("ask", "--index", str(tmp_path / "nope"), "anything")
    assert r.returncode == 2
    assert f"no index at {tmp_path / 'nope'} — run: qa index CORPUS --index {tmp_path / 'nope'}" in r.stderr
    r = run_qa("ask", "--index", str(demo_index), "   ")
    assert r.returncode == 2 and "empty" in r.stderr
    r = run_qa("ask", "--index", str(demo_index), "-k", "0", "q")
    assert r.returncode == 2


def test_show_prints_the_stored_text(demo_index: Path, texts: dict[str, str]) -> None:
    r = run_qa("show", "--index", str(demo_index), "003_fdf2c5db0e68fe77.txt")
    assert r.returncode == 0
    assert r.stdout.rstrip("\n") == texts["003_fdf2c5db0e68fe77.txt"].rstrip("\n")
    r = run_qa("show", "--index", str(demo_index), "nope.txt")
    assert r.returncode == 2 and "no document" in r.stderr


@pytest.mark.parametrize("cmd", [[], ["index"], ["ask"], ["show"], ["serve"], ["eval"]])
def test_help_explains_each_command(cmd: list[str]) -> None:
    r = run_qa(*cmd, "--help")
    assert r.returncode == 0
    assert "usage: qa" in r.stdout and "--index" in r.stdout if cmd else "examples:" in r.stdout


def test_qa_and_index_never_import_web_or_eval() -> None:
    """Imports point one way (web → qa → index, eval → qa): no import statement of qa/ or index/,
    at any depth (inside functions too), names web or eval; index/ names no qa either."""
    import ast

    below = {"qa": {"web", "eval"}, "index": {"web", "eval", "qa"}}
    found = []
    for room, banned in below.items():
        for path in sorted((ROOT / room).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
                found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in banned]
    assert not found


@pytest.mark.parametrize(("module", "name"), [("index", "qa index"), ("web", "qa serve"), ("eval", "qa eval")])
def test_each_room_owns_its_command_line(module: str, name: str) -> None:
    own = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert own.returncode == 0 and f"usage: python -m {module}" in own.stdout
    composed = run_qa(*name.split()[1:], "--help")
    assert composed.returncode == 0 and f"usage: {name}" in composed.stdout
    # The same options under either name.
    import re

    assert set(re.findall(r"--[a-z-]+", own.stdout)) == set(re.findall(r"--[a-z-]+", composed.stdout))
