"""Ingest on Ray (`qa index … --ray ADDRESS`) against a real two-node cluster on loopback: the same
index as a local build (sentences, offsets, vectors within int8 rounding, answers), incremental by
content hash, and a sharded build too (index/cluster.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from eval.gold import DEMO_GOLD, load_gold
from index.loaded import LoadedIndex
from index.shards import ShardedIndex
from tests.conftest import CORPUS, run_qa

pytestmark = pytest.mark.slow

EXTRA = "Harbour notes {n}\n\n" + " ".join(
    f"On day {k} of the survey the crane number {{n}} lifted {k * 7 + 3} tonnes at berth {k}." for k in range(1, 31))


def _corpus(tmp_path: Path) -> Path:
    """The demo corpus and four more documents of 30 sentences: batches for both nodes."""
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    for n in range(4):
        (corpus / f"harbour-{n}.txt").write_text(EXTRA.format(n=n))
    return corpus


def _same_index(a: LoadedIndex, b: LoadedIndex) -> None:
    assert a.doc_order == b.doc_order
    assert list(a.sent_text) == list(b.sent_text)
    for name in ("sent_start", "sent_end", "sent_passage", "pass_first", "pass_last", "pass_start", "pass_end"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert [a.mentions[i] for i in range(a.n_sentences())] == [b.mentions[i] for i in range(b.n_sentences())]
    # The int8 encoder's batches differ (padding), so a vector may differ in its last digits.
    for va, vb in ((a.sentence_vectors, b.sentence_vectors), (a.passage_vectors, b.passage_vectors)):
        x, y = va.vectors(slice(None)), vb.vectors(slice(None))
        assert x.shape == y.shape
        assert float(np.abs(x - y).max()) < 2e-2
        assert float((x * y).sum(1).min()) > 0.999


def test_a_ray_build_is_the_local_build(ray_cluster, tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    local, ray = tmp_path / "local", tmp_path / "ray"
    r = run_qa("index", str(corpus), "--index", str(local), "-q")
    assert r.returncode == 0, r.stderr
    r = run_qa("index", str(corpus), "--index", str(ray), "--ray", ray_cluster.address)
    assert r.returncode == 0, r.stderr
    assert "on 2 node(s) of the Ray cluster" in r.stderr  # both nodes embedded and annotated
    a, b = LoadedIndex.open(local), LoadedIndex.open(ray)
    _same_index(a, b)

    from qa.engine import Engine

    ea, eb = Engine(a, Engine.open(local).encoder), Engine(b, Engine.open(ray).encoder)
    for q in load_gold(DEMO_GOLD):
        x, y = ea.ask(q.question), eb.ask(q.question)
        assert (x.answer, x.abstained) == (y.answer, y.abstained), q.question
        assert [(c.doc_id, c.start) for c in x.citations[:1]] == [(c.doc_id, c.start) for c in y.citations[:1]]

    # Incremental by content hash: one changed file is the only one embedded again.
    (corpus / "harbour-1.txt").write_text(EXTRA.format(n=11))
    r = run_qa("index", str(corpus), "--index", str(ray), "--ray", ray_cluster.address, "--json", "-q")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["changed"] == ["harbour-1.txt"] and len(report["unchanged"]) == 8 and not report["added"]
    assert "crane number 11" in " ".join(LoadedIndex.open(ray).sent_text)


def test_a_sharded_ray_build_answers_as_the_unsharded(ray_cluster, tmp_path: Path, demo_index: Path) -> None:
    out = tmp_path / "sharded"
    r = run_qa("index", str(CORPUS), "--index", str(out), "--shards", "2", "--ray", ray_cluster.address, "-q")
    assert r.returncode == 0, r.stderr
    sharded = ShardedIndex.open(out)
    assert sorted(sharded.docs) == sorted(LoadedIndex.open(demo_index).docs)
    from qa.engine import Engine

    plain = Engine.open(demo_index)
    eng = Engine(sharded, plain.encoder)
    for q in load_gold(DEMO_GOLD):
        assert eng.ask(q.question).answer == plain.ask(q.question).answer, q.question


def test_an_unreachable_cluster_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from eval.raycluster import free_port

    r = run_qa("index", str(CORPUS), "--index", str(tmp_path / "x"), "--ray", f"127.0.0.2:{free_port()}", timeout=120)
    assert r.returncode == 1
    assert "cannot reach the Ray cluster" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x" / "CURRENT").exists()


def test_kill_9_during_a_ray_build_leaves_old_or_new_never_a_mix(ray_cluster, tmp_path: Path, demo_index: Path,
                                                                  engine) -> None:
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import QA
    from tests.test_faults import _check_consistent, _new_version, _versions

    new_corpus = _new_version(tmp_path)
    versions = _versions(new_corpus)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    ix = tmp_path / "ix"
    shutil.copytree(demo_index, ix)
    cmd = [QA, "index", str(new_corpus), "--index", str(ix), "-q", "--ray", ray_cluster.address]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, env=env, timeout=600, capture_output=True)
    full = time.monotonic() - t0
    assert _check_consistent(ix, versions, engine.encoder) == "new"
    shutil.rmtree(ix)
    shutil.copytree(demo_index, ix)
    outcomes = []
    for share in (0.3, 0.6, 0.85):  # connecting, computing on the cluster, writing
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(share * full)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        outcomes.append(_check_consistent(ix, versions, engine.encoder))
    print(f"kill -9 of a Ray build ({full:.1f} s) at 30/60/85%: {outcomes}")
    subprocess.run(cmd, check=True, env=env, timeout=600, capture_output=True)
    assert _check_consistent(ix, versions, engine.encoder) == "new"
    assert not list(ix.glob("gen-*.tmp"))


def test_nothing_imports_ray_unless_a_cluster_is_named() -> None:
    import subprocess
    import sys

    code = ("import sys, web.app, qa.cli, qa.engine, index.build, index.__main__, web.__main__, eval.cluster; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
