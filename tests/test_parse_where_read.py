"""Issue 13: the build runs spaCy's entity recognizer only; a parse is made where it is read.

The first ranking and the neural reader read a sentence's entities and numbers, never its
dependency parse: the build stores no parse (and no noun chunks), and the linear answer step,
which does read parses, gets each one made on first use. An index an earlier build wrote with
stored parses is read as it is.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from index.annotate import Parse, Token, annotate, parse_sentences
from index.encoder import load_encoder
from index.loaded import LoadedIndex
from qa.engine import Engine

SENTENCES = [
    "The Pakistan side was led by Foreign Secretary Sohail Mahmood in Baku on 3 March 2021.",
    "Azerbaijan Airlines (AZAL) will start direct flights between Baku and Lahore next year.",
    "Trade grew by 12 percent to $1.2 billion, the ministry said on Thursday.",
    "no capitals, no numbers and no names here",
]


def test_the_entity_pipeline_finds_what_the_whole_pipeline_finds() -> None:
    """Same entities, values and numbers with the tagger and the parser left out; no noun chunks
    and no parse unless asked for."""
    dates = ["2021-03-05"] * len(SENTENCES)
    fast, whole = annotate(SENTENCES, dates), annotate(SENTENCES, dates, parse=True)
    assert [a.parse for a in fast] == [None] * len(SENTENCES)
    assert all(isinstance(a.parse, Parse) and a.parse.tokens for a in whole)
    assert [a.mentions for a in fast] == [a.mentions for a in whole]
    labels = {m.label for a in fast for m in a.mentions}
    assert "NP" not in labels and {"PERSON", "GPE", "DATE", "NUM"} <= labels
    thursday = [m for m in fast[2].mentions if m.label == "DATE" and "Thursday" in SENTENCES[2][m.start : m.end]]
    assert [m.value for m in thursday] == ["2021-03-04"]  # read against the document's date
    assert parse_sentences(SENTENCES) == [a.parse for a in whole]


def test_a_build_stores_no_parse_and_the_linear_step_makes_the_ones_it_reads(demo_index: Path) -> None:
    idx = LoadedIndex.open(demo_index)
    n = idx.n_sentences()
    assert all(idx.stored_parse_json(s) is None for s in range(0, n, 7))
    assert not any(m[2] == "NP" for s in range(n) for m in idx.mentions[s])
    engine = Engine(idx, load_encoder(idx.encoder_name), reader="linear")
    ans = engine.ask("when were direct AZAL flights announced")
    assert not ans.abstained and ans.citations
    made = dict(idx._parses)  # the sentences the linear step chose a phrase from, parsed on first use
    assert 0 < len(made) < n
    sid = next(iter(made))
    text = idx.sent_text[sid]
    assert made[sid] == parse_sentences([text])[0]
    assert "".join(text[t.start : t.end] for t in made[sid].tokens) == "".join(text.split())


def test_a_parse_an_earlier_build_stored_is_read_as_it_is(demo_index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "index"
    shutil.copytree(demo_index, copy)
    idx = LoadedIndex.open(copy)
    stored = Parse((Token(0, 3, "DET", "det", 1, ""), Token(4, 8, "NOUN", "ROOT", 1, "")), (), ((0, 2),))
    with sqlite3.connect(idx.gen_dir / "index.sqlite") as db:
        db.execute("INSERT INTO parses VALUES (?, ?)", (0, stored.to_json()))
    again = LoadedIndex.open(copy)
    assert again.stored_parse_json(0) == stored.to_json()
    assert again.parse(0) == stored  # not parsed again
    assert again.stored_parse_json(1) is None and again.parse(1).tokens  # made on first use


def test_the_annotator_loads_without_torch_and_leaves_torch_importable() -> None:
    """spaCy's maths library would import torch (1.4 s, and its memory) for layers the small
    pipeline does not have: a build process never imports it, and torch still imports afterwards."""
    code = (
        "import sys\n"
        "from index.annotate import annotate, parse_sentences\n"
        "a = annotate(['Baku is the capital of Azerbaijan.'])\n"
        "assert [m.label for m in a[0].mentions] == ['GPE', 'GPE'], a\n"
        "assert 'torch' not in sys.modules\n"
        "import torch\n"
        "assert torch.ones(2).sum().item() == 2.0\n"
        "assert parse_sentences(['Baku is the capital of Azerbaijan.'])[0].tokens\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr[-2000:]


def test_the_parses_a_linear_answer_reads_are_made_in_one_batch(demo_index: Path, monkeypatch) -> None:
    from index import loaded

    idx = LoadedIndex.open(demo_index)
    calls: list[int] = []
    real = loaded.parse_sentences
    monkeypatch.setattr(loaded, "parse_sentences", lambda texts: calls.append(len(texts)) or real(texts))
    engine = Engine(idx, load_encoder(idx.encoder_name), reader="linear")
    engine.ask("Who led the Azerbaijan delegation?")
    assert calls and calls[0] > 1  # the re-ranked sentences, together
    n, made = len(idx._parses), len(calls)
    engine.ask("Who led the Azerbaijan delegation?")
    assert len(idx._parses) == n and len(calls) == made  # kept: the same question parses nothing again
