"""The SQuAD loader, corpus writer and sampling on a small excerpt of the real dev set."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from eval import squad
from index.documents import load_folder

MINI = Path(__file__).resolve().parent / "data" / "squad-mini.json"


@pytest.fixture(scope="module")
def articles() -> list[squad.SquadArticle]:
    return squad.load_squad(MINI)


def test_load_plain_and_gzipped(tmp_path: Path, articles: list[squad.SquadArticle]) -> None:
    gz = tmp_path / "mini.json.gz"
    with open(MINI, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert squad.load_squad(gz) == articles
    assert [a.title for a in articles] == ["Super_Bowl_50", "Warsaw"]
    assert [len(a.paragraphs) for a in articles] == [2, 2]
    assert sum(a.n_questions for a in articles) == 12
    q = articles[0].paragraphs[0].questions[2]
    assert q.question == "Where did Super Bowl 50 take place?"
    # distinct answer texts, one start per annotation
    assert q.answers == ("Santa Clara, California", "Levi's Stadium", "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California.")
    assert q.answer_starts == (403, 355, 355)


def test_load_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [{"title": "x"}]}')
    with pytest.raises(squad.SquadError, match="malformed"):
        squad.load_squad(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(squad.SquadError, match="not SQuAD JSON"):
        squad.load_squad(bad)
    bad.write_text("{")
    with pytest.raises(squad.SquadError, match="not valid JSON"):
        squad.load_squad(bad)
    with pytest.raises(squad.SquadError, match="cannot read"):
        squad.load_squad(tmp_path / "absent.json")


def test_bundled_copy_is_the_full_dev_set() -> None:
    arts = squad.load_squad(squad.BUNDLED_SQUAD)
    assert len(arts) == 48
    assert sum(len(a.paragraphs) for a in arts) == 2067
    assert sum(a.n_questions for a in arts) == 10570
    assert (squad.DATA_DIR / "SQUAD-LICENSE.md").read_text().count("CC BY-SA 4.0") >= 1


def test_gold_items_and_sentences(articles: list[squad.SquadArticle]) -> None:
    items = {it.id: it for it in squad.gold_items(articles)}
    assert len(items) == 12
    it = items["56be4db0acb8001400a502ec"]
    assert it.doc_ids == ("Super_Bowl_50/000.txt",) and it.answerable
    assert it.evidence == (
        "The American Football Conference (AFC) champion Denver Broncos defeated the National Football "
        "Conference (NFC) champion Carolina Panthers 24–10 to earn their third Super Bowl title.",
    )
    # answers in two different sentences ("8" and "eight") -> both are gold evidence, in text order
    two = items["56be4e1facb8001400a502f9"]
    assert len(two.evidence) == 2
    assert two.evidence[0].startswith("The Broncos finished") and two.evidence[1].startswith("They joined the Patriots")
    for it in items.values():
        for a in it.answers:
            assert any(a in ev for ev in it.evidence), (it.id, a)


def test_gold_sentences_start_in_gap_belongs_to_next() -> None:
    ctx = "First one.  Second one."
    assert squad.gold_sentences(ctx, [10]) == ("Second one.",)  # offset 10 is the first space after "."
    assert squad.gold_sentences(ctx, [0, 0]) == ("First one.",)


def test_write_corpus_keeps_offsets_and_is_idempotent(tmp_path: Path, articles: list[squad.SquadArticle]) -> None:
    out = tmp_path / "corpus"
    assert squad.write_corpus(articles, out) == 4
    docs, skipped = load_folder(out)
    assert not skipped
    texts = {d.doc_id: d.text for d in docs}
    assert sorted(texts) == ["Super_Bowl_50/000.txt", "Super_Bowl_50/001.txt", "Warsaw/000.txt", "Warsaw/001.txt"]
    # The gold answer_start points into the stored text unchanged.
    for art in articles:
        for p in art.paragraphs:
            for q in p.questions:
                a0 = q.answers[0]  # the first annotation's text, at the first annotation's start
                s0 = q.answer_starts[0]
                assert texts[p.doc_id][s0 : s0 + len(a0)] == a0
    mtime = (out / "Warsaw/000.txt").stat().st_mtime_ns
    # Re-writing without Warsaw drops its files and folder, leaves the others untouched.
    assert squad.write_corpus(articles, out, exclude=["Warsaw"]) == 2
    assert not (out / "Warsaw").exists()
    assert squad.write_corpus(articles, out) == 4
    assert (out / "Warsaw/000.txt").stat().st_mtime_ns >= mtime
    before = (out / "Super_Bowl_50/000.txt").stat().st_mtime_ns
    squad.write_corpus(articles, out)
    assert (out / "Super_Bowl_50/000.txt").stat().st_mtime_ns == before


def test_sampling_and_holdout_are_seeded(articles: list[squad.SquadArticle]) -> None:
    items = squad.gold_items(articles)
    a = squad.sample(items, 5, seed=1)
    assert a == squad.sample(items, 5, seed=1)
    assert [it.id for it in a] != [it.id for it in squad.sample(items, 5, seed=2)]
    assert [items.index(x) for x in a] == sorted(items.index(x) for x in a)  # dataset order kept
    assert squad.sample(items, None, seed=1) == items
    assert squad.sample(items, 99, seed=1) == items
    held = squad.pick_holdout(articles, 1, seed=3)
    assert held == squad.pick_holdout(articles, 1, seed=3) and len(held) == 1
    with pytest.raises(squad.SquadError):
        squad.pick_holdout(articles, 2, seed=3)
    un = squad.unanswerable_items(a)
    assert all(not x.answerable and not x.answers and not x.evidence for x in un)


def test_select_articles_slices(articles: list[squad.SquadArticle]) -> None:
    one = squad.select_articles(articles, 1, paragraphs=1)
    assert [a.title for a in one] == ["Super_Bowl_50"] and len(one[0].paragraphs) == 1
    assert squad.select_articles(articles, None) == articles


def test_doc_ids_are_safe_paths() -> None:
    assert squad.paragraph_doc_id("Fresno,_California", 7) == "Fresno,_California/007.txt"
    assert squad.paragraph_doc_id("../etc/passwd", 0) == "etc_passwd/000.txt"
    assert squad.safe_title("...") == "untitled"


def test_an_article_without_a_title_is_named_by_its_paper_or_position() -> None:
    # COVID-QA's articles are whole papers with a document_id and no title
    para = {"context": "Masks reduce spread.", "qas": [{"id": "1", "question": "What reduces spread?",
                                                         "answers": [{"text": "Masks", "answer_start": 0}]}]}
    obj = {"data": [{"paragraphs": [{**para, "document_id": 630}]}, {"paragraphs": [para]}, {"title": "T", "paragraphs": [para]}]}
    assert [a.title for a in squad.parse_squad(obj)] == ["document_630", "article_001", "T"]
