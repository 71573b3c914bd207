"""The demo gold set is well-formed and honest against the bundled corpus; the loader rejects bad files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from eval.gold import DEMO_GOLD, GoldError, GoldItem, load_gold, validate_gold
from index.documents import load_folder
from index.split import split_sentences

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus_texts() -> dict[str, str]:
    docs, skipped = load_folder(ROOT / "corpus")
    assert not skipped
    return {d.doc_id: d.text for d in docs}


@pytest.fixture(scope="module")
def demo() -> list[GoldItem]:
    return load_gold(DEMO_GOLD)


def test_demo_gold_shape(demo: list[GoldItem], corpus_texts: dict[str, str]) -> None:
    assert len(demo) >= 60
    unanswerable = [it for it in demo if not it.answerable]
    assert len(unanswerable) >= 12
    covered = Counter(d for it in demo for d in it.doc_ids)
    assert set(covered) == set(corpus_texts), "every article must be covered"
    assert min(covered.values()) >= 10
    assert sum(len(it.doc_ids) >= 2 for it in demo) >= 5, "some answers are split across two articles"
    # Questions that need a document's date (ISO form accepted as an answer).
    assert {"2023-04-13", "2023-05-27", "2023-11-09"} <= {a for it in demo for a in it.answers}
    # Paraphrase, not copy: no question is a substring of its evidence.
    for it in demo:
        q = it.question.rstrip("?").lower()
        assert not any(q in ev.lower() for ev in it.evidence), it.id


def test_demo_gold_validates_against_corpus(demo: list[GoldItem], corpus_texts: dict[str, str]) -> None:
    assert validate_gold(demo, corpus_texts) == []


def test_demo_evidence_is_whole_splitter_sentences(demo: list[GoldItem], corpus_texts: dict[str, str]) -> None:
    """Evidence must equal a sentence the index stores, so citations can match it exactly."""
    sentences = {text[s.start : s.end] for text in corpus_texts.values() for s in split_sentences(text)}
    for it in demo:
        for ev in it.evidence:
            assert ev in sentences, (it.id, ev[:60])


def test_validate_gold_reports_problems(corpus_texts: dict[str, str]) -> None:
    doc = "001_072c7506d9b82cf7.txt"
    items = [
        GoldItem("ok", "q", ("Khazar Farhadov",), (doc,), ("Both nations have longstanding historical, religious, and cultural links.",), True),
        GoldItem("iso", "q", ("2023-04-13",), (doc,), ("Both nations have longstanding historical, religious, and cultural links.",), True),
        GoldItem("missing-doc", "q", ("x",), ("nope.txt",), ("x",), True),
        GoldItem("bad-evidence", "q", ("Baku",), (doc,), ("Baku is lovely in spring.",), True),
        GoldItem("bad-answer", "q", ("Tbilisi",), (doc,), ("Both nations have longstanding historical, religious, and cultural links.",), True),
    ]
    problems = validate_gold(items, corpus_texts)
    ids = sorted({p.split(":")[0] for p in problems})
    assert ids == ["bad-answer", "bad-evidence", "missing-doc"]


def _write(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "g.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_load_gold_errors_name_the_line(tmp_path: Path) -> None:
    good = json.dumps({"id": "a", "question": "q?", "answers": ["x"], "doc_ids": ["d"], "evidence": ["x."], "answerable": True})
    with pytest.raises(GoldError, match=r"g\.jsonl:2: not valid JSON"):
        load_gold(_write(tmp_path, [good, "{oops"]))
    with pytest.raises(GoldError, match="duplicate id"):
        load_gold(_write(tmp_path, [good, good]))
    with pytest.raises(GoldError, match="unanswerable question must have empty"):
        load_gold(_write(tmp_path, [json.dumps({"id": "u", "question": "q?", "answers": ["x"], "answerable": False})]))
    with pytest.raises(GoldError, match="needs at least one answer"):
        load_gold(_write(tmp_path, [json.dumps({"id": "u", "question": "q?", "answers": [], "answerable": True})]))
    with pytest.raises(GoldError, match="holds no questions"):
        load_gold(_write(tmp_path, [""]))
    with pytest.raises(GoldError, match="cannot read"):
        load_gold(tmp_path / "absent.jsonl")
    (item,) = load_gold(_write(tmp_path, ["", good, ""]))
    assert item.answers == ("x",) and item.answerable


def test_the_wikinews_gold_set_validates_against_its_corpus() -> None:
    from eval.benchmarks import BENCH
    from eval.transfer import WIKINEWS_CORPUS, WIKINEWS_GOLD

    corpus = BENCH / WIKINEWS_CORPUS
    if not corpus.is_dir():
        pytest.skip(f"the Wikinews corpus is not at {corpus} (set CITEQA_BENCHMARKS)")
    docs, skipped = load_folder(corpus)
    texts = {d.doc_id: d.text for d in docs}
    items = load_gold(WIKINEWS_GOLD)
    assert validate_gold(items, texts) == []
    assert len(texts) == 16 and {d for it in items for d in it.doc_ids} == set(texts)
    assert sum(not it.answerable for it in items) >= 20
    sentences = {t[s.start : s.end] for t in texts.values() for s in split_sentences(t)}
    assert all(ev in sentences for it in items for ev in it.evidence)
