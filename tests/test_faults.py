"""Faults and bad input: every bad file is skipped with a reason naming it and nothing else is lost;
`kill -9` during `qa index` leaves the old or the new index, never a mix; a damaged index gives one
clear line naming the file and the fix."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from index.build import prepare_document
from index.documents import MAX_FILE_BYTES, DocumentError, load_bytes, load_folder
from index.loaded import LoadedIndex
from index.store import current_generation
from tests.conftest import CORPUS, QA, run_qa

AZAL = "when were direct AZAL flights announced"
# Root reads any file whatever its mode; without the two DAC capabilities it obeys the mode bits
# like everyone else, so "unreadable" can be tested honestly as root too.
DROP_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]


def _unreadable_prefix() -> list[str] | None:
    """Command prefix under which a chmod-000 file cannot be read, or None when there is none."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    return DROP_DAC


def _bad_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (corpus / "empty.md").write_bytes(b"")
    (corpus / "dangling.txt").symlink_to(corpus / "missing.txt")
    (corpus / "loop_a.txt").symlink_to(corpus / "loop_b.txt")
    (corpus / "loop_b.txt").symlink_to(corpus / "loop_a.txt")
    (corpus / "sub").mkdir()
    (corpus / "sub" / "up").symlink_to(corpus)  # a folder link back up the tree
    with open(corpus / "huge.txt", "wb") as f:  # 200 MB, sparse: costs no disk
        f.truncate(200 * 1024 * 1024)
    os.mkfifo(corpus / "pipe.txt")  # reading it would block forever
    (corpus / "unreadable.txt").write_text("Secret minutes of the meeting. Nobody may read them.")
    (corpus / "unreadable.txt").chmod(0)
    (corpus / "legacy.txt").write_bytes(
        "Le ministre a reçu son homologue azerbaïdjanais à Paris. « Nous irons plus loin », a-t-il déclaré.".encode("cp1252"))
    return corpus


EXPECTED_REASONS = {
    "binary.txt": "binary file",
    "empty.md": "empty file",
    "dangling.txt": "broken symbolic link",
    "loop_a.txt": "symbolic link loop",
    "loop_b.txt": "symbolic link loop",
    "sub/up": "symbolic link to a folder: not followed",
    "huge.txt": "too large (200 MB > 50 MB limit)",
    "pipe.txt": "not a regular file (a pipe)",
    "unreadable.txt": "permission denied",
}


@pytest.mark.slow
def test_bad_files_are_skipped_by_name_and_nothing_else_is_lost(tmp_path: Path) -> None:
    prefix = _unreadable_prefix()
    if prefix is None:
        pytest.skip("running as root without setpriv: a chmod-000 file stays readable, so it cannot be tested")
    corpus = _bad_corpus(tmp_path)
    ix = tmp_path / "ix"
    r = subprocess.run([*prefix, QA, "index", str(corpus), "--index", str(ix)], capture_output=True, text=True,
                       timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    for name, reason in EXPECTED_REASONS.items():
        assert f"skipped {name}: {reason}" in r.stderr, (name, r.stderr)
    assert f"{len(EXPECTED_REASONS)} skipped" in r.stdout
    assert "indexed 6 documents" in r.stdout and "6 added" in r.stdout  # the five articles and the cp1252 one
    idx = LoadedIndex.open(ix)
    assert sorted(idx.docs) == sorted([p.name for p in CORPUS.glob("*.txt")] + ["legacy.txt"])
    for p in CORPUS.glob("*.txt"):
        assert idx.docs[p.name].text == p.read_text(encoding="utf-8")
    assert "« Nous irons plus loin »" in idx.docs["legacy.txt"].text
    r = run_qa("ask", "--index", str(ix), "--json", AZAL)
    assert json.loads(r.stdout)["citations"][0]["doc_id"] == "003_fdf2c5db0e68fe77.txt"


def test_bad_files_in_process(tmp_path: Path) -> None:
    """The same reasons from the loader itself (the unreadable file aside when running as root)."""
    corpus = _bad_corpus(tmp_path)
    docs, skipped = load_folder(corpus)
    reasons = {s.path: s.reason for s in skipped}
    expected = dict(EXPECTED_REASONS)
    if os.geteuid() == 0:
        expected.pop("unreadable.txt")  # root reads it: covered by the CLI test above through setpriv
        assert "unreadable.txt" in {d.doc_id for d in docs}
    assert set(reasons) == set(expected)
    for name, reason in expected.items():
        assert reasons[name].startswith(reason), (name, reasons[name])
    assert {p.name for p in CORPUS.glob("*.txt")} | {"legacy.txt"} <= {d.doc_id for d in docs}


def test_oversized_upload_bytes_are_refused_without_parsing() -> None:
    with pytest.raises(DocumentError, match="too large"):
        load_bytes(b" " * (MAX_FILE_BYTES + 1), "big.txt")
    with pytest.raises(DocumentError, match="unsupported file type .exe"):
        load_bytes(b"MZ", "tool.exe")


# --- kill -9 during `qa index` --------------------------------------------------------------
def _new_version(root: Path) -> Path:
    """The demo corpus, changed: one article edited, one replaced, one deleted, eight added."""
    corpus = root / "new"
    shutil.copytree(CORPUS, corpus)
    p = corpus / "001_072c7506d9b82cf7.txt"
    p.write_text(p.read_text() + "\nThe envoy later visited Lahore to open a trade office.\n")
    (corpus / "004_c5abf76d8d768680.txt").write_text(
        "Trade office opens in Lahore\n\nLahore, 2 February 2024: Azerbaijan opened a trade office in Lahore "
        "to help exporters of rice and textiles. The office will issue business visas within three days.\n")
    (corpus / "003_fdf2c5db0e68fe77.txt").unlink()
    base = [p.read_text() for p in sorted(CORPUS.glob("*.txt"))]
    for i in range(8):
        (corpus / f"extra{i:02d}.txt").write_text(f"Copy {i}\n" + base[i % 5].replace("Pakistan", f"Pakistan{i}"))
    return corpus


def _versions(new_corpus: Path) -> dict[str, dict[str, str]]:
    """The texts of the bundled corpus ("old") and of its updated copy ("new"), by file name."""
    return {"old": {p.name: p.read_text(encoding="utf-8") for p in CORPUS.glob("*.txt")},
            "new": {p.name: p.read_text(encoding="utf-8") for p in new_corpus.glob("*.txt")}}


def _check_consistent(index_dir: Path, versions: dict[str, dict[str, str]], encoder) -> str:
    """The index opens, answers, and is wholly one version; returns which one."""
    idx = LoadedIndex.open(index_dir)
    which = [name for name, files in versions.items() if set(idx.docs) == set(files)]
    assert len(which) == 1, f"document set matches no version: {sorted(idx.docs)}"
    files = versions[which[0]]
    for doc_id, rec in idx.docs.items():
        assert rec.text == files[doc_id], f"{doc_id}: text of neither version"
        expected = prepare_document(load_bytes(files[doc_id].encode(), doc_id))
        got = [(int(idx.sent_start[s]), int(idx.sent_end[s])) for s in idx.doc_sentences[doc_id]]
        assert got == expected.sents, f"{doc_id}: sentences of another version"
    # Vectors belong to their sentences (a sample across the whole index).
    sids = list(range(0, idx.n_sentences(), max(1, idx.n_sentences() // 12)))
    vecs = encoder.encode([idx.sent_text[s] for s in sids])
    assert np.min(np.sum(vecs * idx.sentence_vectors.vectors(sids), axis=1)) > 0.99
    return which[0]


@pytest.mark.slow
def test_kill_9_at_random_moments_leaves_old_or_new_never_a_mix(tmp_path: Path, demo_index: Path, engine) -> None:
    new_corpus = _new_version(tmp_path)
    versions = _versions(new_corpus)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # How long an uninterrupted update takes here, to spread the kills over it.
    probe = tmp_path / "probe"
    shutil.copytree(demo_index, probe)
    t0 = time.monotonic()
    subprocess.run([QA, "index", str(new_corpus), "--index", str(probe), "-q"], check=True, env=env, timeout=600)
    full = time.monotonic() - t0
    assert _check_consistent(probe, versions, engine.encoder) == "new"

    seed = int(os.environ.get("CITEQA_KILL_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    delays = [rng.uniform(0.05, 1.0) * full for _ in range(4)]
    # One index, killed again and again: each build starts from whatever the last kill left.
    ix = tmp_path / "ix"
    shutil.copytree(demo_index, ix)
    outcomes = []
    for delay in delays:
        proc = subprocess.Popen([QA, "index", str(new_corpus), "--index", str(ix), "-q"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        outcome = _check_consistent(ix, versions, engine.encoder)
        r = run_qa("ask", "--index", str(ix), "--json", AZAL)
        assert r.returncode == 0 and json.loads(r.stdout)["citations"], r.stderr
        outcomes.append((round(delay, 2), outcome, proc.returncode))
    print(f"kill -9 seed={seed} full build {full:.1f}s outcomes={outcomes}")
    # The next build finishes the job from whatever the kills left behind.
    subprocess.run([QA, "index", str(new_corpus), "--index", str(ix), "-q"], check=True, env=env, timeout=600)
    assert _check_consistent(ix, versions, engine.encoder) == "new"
    assert not list(ix.glob("gen-*.tmp"))


# --- a damaged index ------------------------------------------------------------------------
def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])


def _garbage(p: Path) -> None:
    p.write_bytes(os.urandom(p.stat().st_size))


def _garbage_inside(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)  # header intact, pages garbage
    p.write_bytes(bytes(data))


DAMAGE = {
    "truncated sentences.faiss": ("sentences.faiss", _truncate),
    "truncated passages.faiss": ("passages.faiss", _truncate),
    "garbage index.sqlite": ("index.sqlite", _garbage),
    "garbage pages in index.sqlite": ("index.sqlite", _garbage_inside),
    "missing sentences.npy": ("sentences.npy", lambda p: p.unlink()),
    "truncated passages.npy": ("passages.npy", _truncate),
}


@pytest.fixture()
def index_copy(demo_index: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "index"
    shutil.copytree(demo_index, dst)
    return dst


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_index_gives_one_clear_line(index_copy: Path, damage: str) -> None:
    name, spoil = DAMAGE[damage]
    target = current_generation(index_copy) / name
    spoil(target)
    for args in (["ask", "--index", str(index_copy), AZAL], ["show", "--index", str(index_copy), "001_072c7506d9b82cf7.txt"]):
        r = run_qa(*args)
        assert r.returncode == 1, (damage, args[0], r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, (damage, r.stderr)
        assert str(target) in lines[0] and f"qa index CORPUS --index {index_copy} --rebuild" in lines[0], lines[0]
        assert "Traceback" not in r.stderr


def test_current_naming_a_missing_generation(index_copy: Path) -> None:
    shutil.rmtree(current_generation(index_copy))
    r = run_qa("ask", "--index", str(index_copy), AZAL)
    assert r.returncode == 1 and "CURRENT" in r.stderr and "--rebuild" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated sentences.faiss", "garbage index.sqlite", "missing sentences.npy"])
def test_qa_index_rebuilds_a_damaged_index(index_copy: Path, damage: str) -> None:
    name, spoil = DAMAGE[damage]
    spoil(current_generation(index_copy) / name)
    r = run_qa("index", str(CORPUS), "--index", str(index_copy))
    assert r.returncode == 0, r.stderr
    assert "previous index not reused" in r.stderr and name in r.stderr and "building from scratch" in r.stderr
    assert "5 added" in r.stdout and "Traceback" not in r.stderr
    r = run_qa("ask", "--index", str(index_copy), "--json", AZAL)
    assert r.returncode == 0 and json.loads(r.stdout)["citations"][0]["doc_id"].startswith("003_")


def test_sqlite_of_another_program_is_refused_clearly(index_copy: Path) -> None:
    db_path = current_generation(index_copy) / "index.sqlite"
    db_path.unlink()
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    r = run_qa("ask", "--index", str(index_copy), AZAL)
    assert r.returncode == 1 and str(db_path) in r.stderr and "--rebuild" in r.stderr and "Traceback" not in r.stderr
