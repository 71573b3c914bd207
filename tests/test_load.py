"""The load benchmark (eval/bench/load.py): its pure figures, and the CI smoke run against a real `qa serve`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval.bench.load import Sample, summarize
from tests.conftest import ROOT


def test_summarize_counts_errors_apart_from_answers() -> None:
    samples = [Sample(0.010, True), Sample(0.020, True), Sample(0.030, True), Sample(0.500, False, "HTTP 500: x")]
    res = summarize(samples, seconds=2.0, clients=2, abstained=1)
    assert (res.answers, res.errors, res.abstained) == (3, 1, 1)
    assert res.answers_per_s == 1.5 and res.p50_ms == 20.0 and res.max_ms == 30.0
    assert res.first_errors == ("HTTP 500: x",)


@pytest.mark.slow
def test_load_smoke_run(demo_index: Path) -> None:
    """The CI smoke run: a real server, 2 clients for 3 s; prints figures, no request fails."""
    r = subprocess.run([sys.executable, "-m", "eval.bench.load", "--smoke", "--index", str(demo_index), "--json"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "throughput" in out and "p99" in out and "server memory" in out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["errors"] == 0 and figures["answers"] > 0 and figures["clients"] == 2
    assert figures["p50_ms"] > 0 and figures["server_rss_mb"] > 50
    print(out)


def test_load_reports_a_server_that_cannot_start(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "eval.bench.load", "--url", "http://127.0.0.1:9", "--smoke"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1 and "eval.bench.load: no healthy server" in r.stderr
