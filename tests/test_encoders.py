"""The two encoders agree, the index records which one built it, and the int8 path never loads
torch or spaCy (cold `qa ask` and `qa serve`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CORPUS, QA, run_qa

HEAVY = ("torch", "spacy", "sentence_transformers", "transformers")


def demo_sentences(n: int = 60) -> list[str]:
    from index.split import split_sentences

    out = []
    for p in sorted(CORPUS.glob("*.txt")):
        text = p.read_text()
        out += [text[s.start : s.end] for s in split_sentences(text)]
    return out[:n] + ["a", "when were direct AZAL flights announced", "x " * 400]


def test_int8_vectors_agree_with_fp32() -> None:
    from index.encoder import load_encoder

    texts = demo_sentences()
    fp32 = load_encoder("minilm").encode(texts)
    int8 = load_encoder("minilm-int8").encode(texts)
    assert fp32.shape == int8.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    cos = (fp32 * int8).sum(axis=1)
    assert cos.min() > 0.99, cos.min()
    # One text at a time (the single-threaded question session) gives the batch's vectors.
    one = np.stack([load_encoder("minilm-int8").encode([t])[0] for t in texts[:10]])
    assert np.allclose(one, int8[:10], atol=1e-5)


def _int8_index(demo_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from index.loaded import LoadedIndex

    if LoadedIndex.open(demo_index).encoder_name == "minilm-int8":
        return demo_index
    index_dir = tmp_path_factory.mktemp("int8") / "index"
    assert run_qa("index", str(CORPUS), "--index", str(index_dir), "--encoder", "minilm-int8", "-q").returncode == 0
    return index_dir


@pytest.fixture(scope="module")
def int8_index(demo_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _int8_index(demo_index, tmp_path_factory)


def test_cold_ask_on_an_int8_index_loads_neither_torch_nor_spacy(int8_index: Path) -> None:
    code = (
        "import sys, json\n"
        "from qa.cli import main\n"
        f"rc = main(['ask', '--index', {str(int8_index)!r}, '--json', 'when were direct AZAL flights announced'])\n"
        f"print(json.dumps({{'rc': rc, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    answer, report = json.loads(lines[0]), json.loads(lines[-1])
    assert answer["answer"] == "November 9, 2023"
    assert report == {"rc": 0, "heavy": []}


def test_server_on_an_int8_index_does_not_map_torch(int8_index: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([QA, "serve", "--index", str(int8_index), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "qa serve did not start"
                time.sleep(0.3)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/ask", headers={"content-type": "application/json"},
                                     data=json.dumps({"question": "who led the Pakistan side"}).encode())
        assert json.loads(urllib.request.urlopen(req, timeout=60).read())["citations"]
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "libtorch" not in maps and "/spacy/" not in maps
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_the_index_records_its_encoder_and_fp32_stays_selectable(tmp_path: Path, corpus_copy: Path) -> None:
    from index.encoder import DEFAULT_ENCODER
    from index.loaded import LoadedIndex

    other = "minilm" if DEFAULT_ENCODER == "minilm-int8" else "minilm-int8"
    index_dir = tmp_path / "index"
    assert run_qa("index", str(corpus_copy), "--index", str(index_dir), "--encoder", other, "-q").returncode == 0
    assert LoadedIndex.open(index_dir).encoder_name == other
    # An update without --encoder keeps the encoder the index was built with.
    (corpus_copy / "new.txt").write_text("A new note.\n\nThe AZAL office in Lahore opened on 3 May 2024.\n")
    out = run_qa("index", str(corpus_copy), "--index", str(index_dir), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["encoder"] == other
    assert LoadedIndex.open(index_dir).encoder_name == other
    ans = json.loads(run_qa("ask", "--index", str(index_dir), "--json", "when did the AZAL office in Lahore open").stdout)
    assert any(c["doc_id"] == "new.txt" for c in ans["citations"])
