"""CI smoke runs of the speed benchmarks: they run end to end and print every figure.

Timing goals are not asserted here (the figures are for people to read); what is asserted is
what must hold on any machine: each benchmark finishes, prints each row with a number, the
approximate index finds what exact search finds, and every citation quotes its document.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.mark.slow
def test_bench_smoke_prints_every_figure_next_to_the_baseline(tmp_path: Path) -> None:
    out = run_module("eval.bench", "--smoke", "--json", str(tmp_path / "bench.json"),
                     "--scale-json", str(tmp_path / "none.json"))
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout
    for figure in ("warm question, engine only, demo corpus, median", "warm question, SQuAD corpus",
                   "cold `qa ask`, one question, wall, demo corpus", "index build throughput, sentences/s",
                   "÷ raw", "server resident memory, demo corpus", "1M passages"):
        line = next((ln for ln in table.splitlines() if figure in ln), None)
        assert line is not None, f"no row for {figure!r}:\n{table}"
        if "1M" not in figure:
            assert re.search(r"\d", line.split("|")[3]), line  # the citeqa column holds a number
    fig = json.loads((tmp_path / "bench.json").read_text())
    assert fig["build_report"]["sentences"] > 0 and fig["build_rate"] > 0 and fig["raw_rate"] > 0
    assert all(x > 0 for x in fig["demo_warm"] + fig["squad_warm"] + fig["demo_plain"])
    assert 50 < fig["rss"] < 4000


@pytest.mark.slow
def test_scale_smoke_keeps_recall_and_citations(tmp_path: Path) -> None:
    out = run_module("eval.bench.scale", "--smoke", "--cache", str(ROOT / "eval" / "cache" / "scale"),
                     "--json", str(tmp_path / "scale.json"))
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads((tmp_path / "scale.json").read_text())
    assert r["passages"] == 20_000
    assert r["pass_index"].startswith("IVF")  # 20k passages is past the exact-search size
    assert r["recall"] >= 0.95
    assert r["broken_citations"] == 0
    assert len(r["e2e_ms"]) == 30 and len(r["search_ms"]) == 100
    assert r["disk"]["token vectors (int8 .npy)"] > 0  # the answer step's token vectors are written and counted
    for figure in ("passage search p50", "recall@10 vs exact search", "BM25 query p50", "end-to-end question p50",
                   "index on disk", "index build"):
        assert figure in out.stdout


@pytest.mark.slow
def test_build_bench_smoke_prints_the_ratio_and_the_peak_memory(tmp_path: Path) -> None:
    out = run_module("eval.bench.build", "--smoke", "--passage-vectors", "pooled", "--json", str(tmp_path / "b.json"))
    assert out.returncode == 0, out.stderr[-3000:]
    for figure in ("build throughput", "raw encoder (before / after)", "build ÷ raw encoder", "peak resident memory"):
        line = next((ln for ln in out.stdout.splitlines() if figure in ln), None)
        assert line is not None and re.search(r"\d", line), (figure, out.stdout)
    fig = json.loads((tmp_path / "b.json").read_text())
    assert fig["sentences"] > 0 and fig["build_rate"] > 0 and fig["raw_rate"] > 0 and fig["ratio"] > 0
    assert fig["passage_vectors"] == "pooled"
    assert 100 < fig["peak_rss_mb"] < 4000  # the `qa index` child's, not this process's
    assert "embed (beside annotating)" in fig["timings"] and "annotate" in fig["timings"]


@pytest.mark.slow
def test_token_value_asks_every_question_with_and_without_the_token_vectors(demo_index: Path, tmp_path: Path) -> None:
    out = run_module("eval.bench.token_value", "--gold", "eval/gold/demo.jsonl", "--index", str(demo_index),
                     "--json", str(tmp_path / "tv.json"), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    fig = json.loads((tmp_path / "tv.json").read_text())
    answerable = sum(1 for line in (ROOT / "eval/gold/demo.jsonl").read_text().splitlines() if '"answerable": true' in line)
    assert fig["questions"] == answerable
    for variant in ("with token vectors", "without"):
        assert variant in out.stdout
        assert 0.0 < fig[variant]["evidence_at_1"] <= 1.0 and fig[variant]["p50_ms"] > 0
    # the store really is taken away: the alignment features move some answers or confidences
    assert fig["answers_changed"] > 0
