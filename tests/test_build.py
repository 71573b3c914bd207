"""Index builds: incremental, atomic, tolerant of bad files, clear about incompatible indexes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from index.build import BuildError, build_index
from index.loaded import LoadedIndex
from index.store import IncompatibleIndexError, current_generation
from qa.engine import Engine
from tests.conftest import CORPUS, QA, run_qa

AZAL = "when were direct AZAL flights announced"


def quiet_build(corpus: Path, index: Path, **kw):
    return build_index(corpus, index, progress=False, log=lambda m: None, **kw)


@pytest.fixture()
def index_copy(demo_index: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "index"
    shutil.copytree(demo_index, dst)
    return dst


def test_rerun_changes_only_what_changed(corpus_copy: Path, index_copy: Path) -> None:
    # Nothing changed: nothing re-embedded, the live generation kept.
    gen_before = current_generation(index_copy)
    r = quiet_build(corpus_copy, index_copy)
    assert r.embedded_texts == 0 and len(r.unchanged) == 5
    assert current_generation(index_copy) == gen_before

    # Edit one file: only it is re-embedded.
    target = corpus_copy / "001_072c7506d9b82cf7.txt"
    target.write_text(target.read_text() + "\nThe envoy later visited Lahore to open a trade office.\n")
    r = quiet_build(corpus_copy, index_copy)
    assert r.changed == ["001_072c7506d9b82cf7.txt"] and r.added == [] and r.removed == []
    idx = LoadedIndex.open(index_copy)
    n_sent = len(idx.doc_sentences["001_072c7506d9b82cf7.txt"])
    n_pass = len(idx.doc_passages["001_072c7506d9b82cf7.txt"])
    assert r.embedded_texts == n_sent + n_pass
    ans = Engine(idx, Engine.open(index_copy).encoder).ask("Which city did the envoy visit to open a trade office?")
    assert "Lahore" in ans.citations[0].sentence

    # Delete one: its sentences are gone and nothing cites it.
    (corpus_copy / "003_fdf2c5db0e68fe77.txt").unlink()
    r = quiet_build(corpus_copy, index_copy)
    assert r.removed == ["003_fdf2c5db0e68fe77.txt"] and r.embedded_texts == 0
    idx = LoadedIndex.open(index_copy)
    assert "003_fdf2c5db0e68fe77.txt" not in idx.docs
    assert "003_fdf2c5db0e68fe77.txt" not in set(idx.sent_doc)
    assert not any("AZAL" in s for s in idx.sent_text)
    # Vectors still line up with their sentences after the reshuffle of ids.
    eng = Engine(idx, Engine.open(index_copy).encoder)
    for sid in range(0, idx.n_sentences(), 17):
        v = eng.encoder.encode([idx.sent_text[sid]])[0]
        assert float(v @ idx.sentence_vectors.vectors([sid])[0]) > 0.99


def test_bad_files_skipped_and_reported_by_the_cli(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    shutil.copy(CORPUS / "003_fdf2c5db0e68fe77.txt", corpus)
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (corpus / "old.txt").write_bytes(b"na\xefve caf\xe9")
    r = run_qa("index", str(corpus), "--index", str(tmp_path / "ix"))
    assert r.returncode == 0, r.stderr
    assert "skipped empty.txt: empty file" in r.stderr
    assert "skipped image.md: binary file" in r.stderr
    assert "old.txt" not in r.stderr  # latin-1: decoded, not skipped
    assert "indexed 2 documents" in r.stdout and "2 skipped" in r.stdout
    r = run_qa("ask", "--index", str(tmp_path / "ix"), "--json", AZAL)
    assert json.loads(r.stdout)["citations"][0]["doc_id"] == "003_fdf2c5db0e68fe77.txt"
    assert run_qa("show", "--index", str(tmp_path / "ix"), "old.txt").stdout == "na\u00efve caf\u00e9\n"


def test_nothing_indexable_fails_and_keeps_the_old_index(tmp_path: Path, index_copy: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    r = run_qa("index", str(bad), "--index", str(index_copy))
    assert r.returncode == 1
    assert "nothing to index" in r.stderr
    assert len(LoadedIndex.open(index_copy).docs) == 5
    with pytest.raises(BuildError):
        quiet_build(tmp_path / "missing", index_copy)


def _slow_corpus(tmp_path: Path) -> Path:
    """Enough text that embedding takes several seconds on two cores."""
    corpus = tmp_path / "big"
    corpus.mkdir()
    base = [p.read_text() for p in sorted(CORPUS.glob("*.txt"))]
    for i in range(60):
        (corpus / f"doc{i:03d}.txt").write_text(f"Copy {i}\n" + base[i % 5].replace("Pakistan", f"Pakistan{i}"))
    return corpus


@pytest.mark.parametrize("when", ["embedding", "writing"])
def test_killed_build_leaves_previous_index_answering(tmp_path: Path, index_copy: Path, when: str) -> None:
    corpus = _slow_corpus(tmp_path)
    proc = subprocess.Popen(
        [QA, "index", str(corpus), "--index", str(index_copy)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if when == "embedding":
                line = proc.stderr.readline()
                if "embedding" in line or not line:
                    time.sleep(1.0)
                    break
            elif list(index_copy.glob("gen-*.tmp")):
                break
            else:
                time.sleep(0.01)
            assert proc.poll() is None, "build finished before it could be interrupted"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    idx = LoadedIndex.open(index_copy)
    assert len(idx.docs) == 5 and "doc000.txt" not in idx.docs
    r = run_qa("ask", "--index", str(index_copy), "--json", AZAL)
    assert r.returncode == 0 and json.loads(r.stdout)["citations"][0]["doc_id"].startswith("003_")
    # The next build cleans up after the killed one.
    quiet_build(CORPUS, index_copy)
    assert not list(index_copy.glob("gen-*.tmp"))


def test_index_of_another_layout_asks_for_a_rebuild(index_copy: Path) -> None:
    import sqlite3

    gen = current_generation(index_copy)
    db = sqlite3.connect(gen / "index.sqlite")
    db.execute("UPDATE meta SET value='0' WHERE key='format'")
    db.commit()
    db.close()
    with pytest.raises(IncompatibleIndexError, match="--rebuild"):
        LoadedIndex.open(index_copy)
    r = run_qa("ask", "--index", str(index_copy), AZAL)
    assert r.returncode == 1 and "rebuild" in r.stderr and "Traceback" not in r.stderr
    r = run_qa("index", str(CORPUS), "--index", str(index_copy), "--rebuild")
    assert r.returncode == 0
    assert len(LoadedIndex.open(index_copy).docs) == 5


def test_index_built_with_an_unknown_model_asks_for_a_rebuild(index_copy: Path) -> None:
    import sqlite3

    gen = current_generation(index_copy)
    db = sqlite3.connect(gen / "index.sqlite")
    db.execute("UPDATE meta SET value='some-other-model' WHERE key='encoder'")
    db.commit()
    db.close()
    r = run_qa("ask", "--index", str(index_copy), AZAL)
    assert r.returncode == 1
    assert "some-other-model" in r.stderr and "--rebuild" in r.stderr and "Traceback" not in r.stderr


def test_qa_index_names_files_of_an_unsupported_type(tmp_path: Path) -> None:
    """`qa index` names the files it ignores for their type, as it names the files it skips."""
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "pier.txt").write_text("Harbour report\n\nThe new pier opened on 3 May 2024 in Karachi.\n")
    (corpus / "blob.bin").write_bytes(b"\x00\x01\x02")
    (corpus / "sub" / "table.xlsx").write_bytes(b"PK\x03\x04")
    (corpus / ".hidden.bin").write_bytes(b"x")  # hidden files are not the user's documents: not named
    ix = tmp_path / "ix"
    r = run_qa("index", str(corpus), "--index", str(ix), "-q")
    assert r.returncode == 0, r.stderr
    assert "indexed 1 documents" in r.stdout
    assert "ignored 2 files of an unsupported type: blob.bin, sub/table.xlsx" in r.stdout
    assert ".hidden.bin" not in r.stdout
    r = run_qa("index", str(corpus), "--index", str(ix), "--json")
    assert json.loads(r.stdout)["unsupported"] == ["blob.bin", "sub/table.xlsx"]
    (corpus / "blob.bin").unlink()
    (corpus / "sub" / "table.xlsx").unlink()
    r = run_qa("index", str(corpus), "--index", str(ix), "-q")
    assert r.returncode == 0 and "ignored" not in r.stdout
    (corpus / "pier.txt").unlink()
    (corpus / "notes.odt").write_bytes(b"x")
    r = run_qa("index", str(corpus), "--index", str(ix), "-q")
    assert r.returncode == 1 and "ignored 1 file of an unsupported type: notes.odt" in r.stderr
