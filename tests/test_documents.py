"""Loading: titles, document dates with their evidence, and bad files skipped with a reason."""

from __future__ import annotations

from pathlib import Path

from index.documents import detect_document_date, find_dates, load_folder
from tests.conftest import CORPUS


def test_demo_corpus_titles_and_dates() -> None:
    docs, skipped = load_folder(CORPUS)
    assert skipped == []
    by_id = {d.doc_id: d for d in docs}
    assert len(by_id) == 5
    expected = {
        "000_78aafc7d975cfdef.txt": None,  # "today" only: no stated date
        "001_072c7506d9b82cf7.txt": ("2023-04-13", "13 April 2023"),
        "002_81bb45f291cb2277.txt": ("2023-05-27", "27.05.2023"),  # not the 2024 headline list at the end
        "003_fdf2c5db0e68fe77.txt": ("2023-11-09", "November 9, 2023"),
        "004_c5abf76d8d768680.txt": None,
    }
    for doc_id, exp in expected.items():
        d = by_id[doc_id]
        if exp is None:
            assert d.date is None, doc_id
        else:
            assert d.date is not None and d.date.iso == exp[0]
            assert d.text[d.date.start : d.date.end] == exp[1]
    assert by_id["000_78aafc7d975cfdef.txt"].title == "DNA"
    assert by_id["004_c5abf76d8d768680.txt"].title.startswith("FO says Pakistan affirms Russia's role")


def test_date_forms() -> None:
    assert [d.iso for d in find_dates("on 3rd March, 2021 and Jan 5 2020 and 2022-02-30 and 31.12.1999")] == [
        "2021-03-03",
        "2020-01-05",
        "1999-12-31",
    ]
    assert detect_document_date("Body text.\nMore text with 1 May 2020 inside the body.\nAnd more.\nAnd more.") is None


def test_markdown_title_and_recursive_doc_ids(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "note.md").write_text("intro line\n\n# The Real Title\n\nBody.\n")
    (tmp_path / "a.txt").write_text("\n\n  First line title  \nBody.")
    (tmp_path / "ignored.rtf").write_bytes(b"{\\rtf1 not a supported format}")
    docs, skipped = load_folder(tmp_path)
    assert {d.doc_id: d.title for d in docs} == {"a.txt": "First line title", "sub/deeper/note.md": "The Real Title"}
    assert skipped == []


def test_bad_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("A fine document. It has sentences.")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text("   \n\n ")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4")
    docs, skipped = load_folder(tmp_path)
    assert [d.doc_id for d in docs] == ["good.txt"]
    reasons = {s.path: s.reason for s in skipped}
    assert set(reasons) == {"empty.txt", "blank.md", "binary.txt", "broken.pdf"}
    assert "empty" in reasons["empty.txt"] and "empty" in reasons["blank.md"]
    assert "binary" in reasons["binary.txt"]
    assert "unreadable PDF" in reasons["broken.pdf"]
