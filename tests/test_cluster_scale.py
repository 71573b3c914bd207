"""`python -m eval.cluster --scale PASSAGES`: the memory of one shard's Ray Serve replica against
the unsharded engine, on eval/bench/scale.py's collection written once as one index and once as
2 shards. Run here at a smoke size (6,000 passages of the small pool: small enough that every vector index
is exact, so the approximate search plays no part in the answers compared) on the
session's real two-node loopback cluster; the 1M figures are in the README."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from index.shards import shard_count, shard_dir, shard_of
from index.store import current_generation

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "eval" / "cache" / "scale"

pytestmark = pytest.mark.slow


def test_scale_smoke_measures_a_replica_against_the_unsharded_engine(ray_cluster, tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    r = subprocess.run([sys.executable, "-m", "eval.cluster", "--scale", "6000", "--smoke", "--questions", "30",
                        "--ray", ray_cluster.address, "--cache", str(CACHE), "--json", str(out)],
                       capture_output=True, text=True, timeout=1800, cwd=ROOT,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    fig = json.loads(out.read_text())
    m, s = fig["memory"], fig["same_answers"]
    # two replicas, each measured; each holds part of the collection, so less than the whole engine
    assert len(m["replica_open_mb"]) == len(m["replica_after_mb"]) == 2
    assert all(50 < x < m["engine_after_mb"] for x in m["replica_open_mb"] + m["replica_after_mb"])
    assert m["engine_after_mb"] >= m["engine_open_mb"] > 100
    assert 0 < m["ratio_open"] <= m["ratio"] < 1
    assert m["ratio"] == round(max(m["replica_after_mb"]) / m["engine_after_mb"], 3) or \
        abs(m["ratio"] - max(m["replica_after_mb"]) / m["engine_after_mb"]) < 0.01
    # every question answered by both servers, and the shards give the unsharded answers
    assert s["questions"] == 30 and s["non_200"] == 0
    # the same answer every time; the top citation may be another copy of the same words (the pool's
    # sentences repeat across the synthetic documents, and equal scores tie) or, on an abstention,
    # another near-equal candidate
    assert s["same_answer"] == s["questions"], s
    assert s["same"] >= 0.9 * s["questions"], s
    assert "memory of one shard's replica (2 shards) ÷ unsharded engine" in r.stdout

    # the sharded copy is laid out as `qa index --shards 2` lays it out
    sharded = Path(fig["indexes"]["sharded"])
    assert shard_count(sharded) == 2
    for i in range(2):
        gen = current_generation(shard_dir(sharded, i))
        assert gen is not None
        import sqlite3

        with sqlite3.connect(gen / "index.sqlite") as db:
            ids = [row[0] for row in db.execute("SELECT doc_id FROM documents")]
        assert ids and all(shard_of(d, 2) == i for d in ids)
