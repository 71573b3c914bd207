"""`qa eval` as a user runs it: a subprocess, real index, real model; reports checked on disk."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eval import metrics as m
from eval.gold import DEMO_GOLD, load_gold

from .conftest import CORPUS, ROOT, run_qa

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _five_question_gold(path: Path) -> Path:
    items = load_gold(DEMO_GOLD)
    answerable = [it for it in items if it.answerable]
    chosen = [answerable[0], answerable[16], answerable[45], answerable[-1], next(it for it in items if not it.answerable)]
    path.write_text("".join(json.dumps(it.to_dict(), ensure_ascii=False) + "\n" for it in chosen), encoding="utf-8")
    return path


@pytest.mark.slow
def test_qa_eval_gold_end_to_end(demo_index: Path, tmp_path: Path) -> None:
    gold = _five_question_gold(tmp_path / "five.jsonl")
    out = tmp_path / "report"
    r = run_qa("eval", "--gold", str(gold), "--index", str(demo_index), "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    for word in ("citeqa", "bm25", "dense", "citation fidelity", "evidence@3", "latency p95"):
        assert word in r.stdout

    rep = json.loads((out / "report.json").read_text())
    sec = rep["gold"]
    assert set(sec["methods"]) == {"citeqa", "bm25", "dense"}
    assert len(sec["questions"]) == 5
    for method, s in sec["methods"].items():
        assert (s["questions"], s["answerable"], s["unanswerable"]) == (5, 4, 1), method
        assert s["citation_fidelity"] == 1.0 and s["citations_total"] >= 5
        # The summary is the mean of the per-question figures written next to it.
        ans = [q["results"][method] for q in sec["questions"] if q["answerable"]]
        assert s["exact_match"] == pytest.approx(m.mean(x["em"] for x in ans))
        assert s["f1"] == pytest.approx(m.mean(x["f1"] for x in ans), abs=1e-3)
        assert s["doc_hit_at_5"] == pytest.approx(m.mean(x["doc_rank"] is not None and x["doc_rank"] <= 5 for x in ans))
        assert s["p50_ms"] > 0 and s["p95_ms"] >= s["p50_ms"]
    for q in sec["questions"]:
        # Baselines answer with their top sentence and never abstain.
        for base in ("bm25", "dense"):
            res = q["results"][base]
            assert not res["abstained"] and res["answer"] == res["citations"][0]["sentence"]
        # Scores agree with a recomputation from the written answer.
        res = q["results"]["citeqa"]
        assert res["f1"] == pytest.approx(m.f1_score(res["answer"], q["answers"]), abs=1e-4)

    md = (out / "report.md").read_text()
    failed = [q["id"] for q in sec["questions"] if not q["results"]["citeqa"]["correct"]]
    assert f"Failed questions (citeqa): {len(failed)} of 5" in md
    for qid in failed:
        assert f"`{qid}`" in md
    for name in ("gold-confidence.png", "gold-coverage.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in md


@pytest.mark.slow
def test_qa_eval_builds_the_index_when_missing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS / "003_fdf2c5db0e68fe77.txt", corpus)
    gold = tmp_path / "g.jsonl"
    gold.write_text(
        json.dumps({"id": "a", "question": "In which city did Kakar meet Aliyev?", "answers": ["Tashkent"],
                    "doc_ids": ["003_fdf2c5db0e68fe77.txt"],
                    "evidence": ["The meeting took place on the sidelines of 16th Summit of Economic Cooperation Organization being held in Tashkent."],
                    "answerable": True}) + "\n"
        + json.dumps({"id": "b", "question": "Which document is missing?", "answers": ["x"], "doc_ids": ["gone.txt"],
                      "evidence": ["x"], "answerable": True}) + "\n",
        encoding="utf-8",
    )
    index = tmp_path / "index"
    out = tmp_path / "out"
    r = run_qa("eval", "--gold", str(gold), "--index", str(index), "--corpus", str(corpus), "--out", str(out),
               "--no-progress", "--no-plots", "--methods", "citeqa,bm25")
    assert r.returncode == 0, r.stderr
    assert (index / "CURRENT").is_file()
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["gold"]["methods"]) == {"citeqa", "bm25"}
    assert any("gone.txt" in w for w in rep["gold"]["warnings"])
    assert "gone.txt" in r.stderr
    assert not list(out.glob("*.png"))


@pytest.mark.parametrize(
    "args",
    [
        ["--gold", "does-not-exist.jsonl"],
        ["--k", "0"],
        ["--methods", "citeqa,magic"],
        ["--squad", "nope.json.gz"],
        ["--squad", "--sample", "0"],
    ],
)
def test_qa_eval_bad_usage_exits_2(args: list[str], tmp_path: Path) -> None:
    r = run_qa("eval", *args, "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c"))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "error:" in r.stderr


def test_qa_eval_malformed_gold_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "question": "q", "answerable": true}\n{not json\n')
    r = run_qa("eval", "--gold", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "bad.jsonl:1" in r.stderr and "needs at least one answer" in r.stderr


def test_python_m_eval_run_entry_point() -> None:
    r = subprocess.run([sys.executable, "-m", "eval.run", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0
    assert "--squad" in r.stdout and "--gold" in r.stdout


@pytest.mark.slow
def test_squad_smoke_run(tmp_path: Path) -> None:
    """The CI smoke run of the benchmark: a small slice of the bundled dev set, indexed in seconds."""
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = ["eval", "--squad", "--articles", "3", "--paragraphs", "5", "--sample", "12", "--holdout-articles", "1",
            "--holdout-sample", "6", "--cache", str(cache), "--out", str(out), "--no-progress", "--no-plots"]
    r = run_qa(*args)
    assert r.returncode == 0, r.stderr
    assert "SQuAD v1.1" in r.stdout
    rep = json.loads((out / "report.json").read_text())
    sec = rep["squad"]
    assert "gold" not in rep  # --squad alone does not run the demo gold set
    qs = sec["questions"]
    main = [q for q in qs if q["asked_of"] == "main"]
    held = [q for q in qs if q["asked_of"] == "article removed"]
    assert (len(main), len(held)) == (12, 6)
    assert all(q["answerable"] and len(q["doc_ids"]) == 1 and q["evidence"] for q in main)
    assert all(not q["answerable"] for q in held)
    held_article = sec["about"]["held-out articles"]
    for q in held:
        for res in q["results"].values():
            assert all(not c["doc_id"].startswith(held_article + "/") for c in res["citations"])
    for s in sec["methods"].values():
        assert s["citation_fidelity"] == 1.0
        assert s["unanswerable"] == 6 and s["answerable"] == 12
    assert sec["methods"]["bm25"]["unanswerable_abstained"] == 0.0

    # A second run reuses the cached corpus and indexes: nothing is re-indexed.
    r2 = run_qa(*args)
    assert r2.returncode == 0, r2.stderr
    assert "indexed" not in r2.stderr
