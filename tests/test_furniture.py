"""Page furniture: news lists, menus and running heads are kept out of the answerable text, while
real short lines of an article (headlines, datelines, bylines, agendas, lists) stay answerable."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from index.build import prepare_document
from index.documents import DocumentError, load_bytes, load_folder
from index.furniture import find_furniture, inside
from index.loaded import LoadedIndex
from tests.conftest import CORPUS, run_qa

DOC002 = "002_81bb45f291cb2277.txt"
ARTICLE = ("The two ministers met in Baku on Tuesday to discuss the new gas pipeline. "
           "They agreed that the first deliveries would reach Gwadar before the winter.\n"
           "Officials said the project would cost 1.2 billion dollars, shared by both governments.\n")


def furniture_text(text: str) -> list[str]:
    return [text[a:b] for a, b in find_furniture(text)]


def answerable(text: str, suffix: str = ".txt") -> list[str]:
    doc = load_bytes(text.encode(), "x" + suffix)
    return [doc.text[s:e] for s, e in prepare_document(doc).sents]


# --- the demo corpus ------------------------------------------------------------------------
def test_demo_002_headline_list_is_furniture_and_the_article_is_not() -> None:
    docs, _ = load_folder(CORPUS)
    by_id = {d.doc_id: d for d in docs}
    doc = by_id[DOC002]
    assert len(doc.furniture) == 1
    a, b = doc.furniture[0]
    block = doc.text[a:b]
    # From the "related" headline repeated above the list, through "News line", to the very end.
    assert block.startswith("Anti-Azerbaijan and Türkiye banners raised in Ukraine")
    assert "\nNews line\n" in block and block.endswith("22:40 24.04.2024\nHamısı") and b == len(doc.text.rstrip())
    sents = [doc.text[s:e] for s, e in prepare_document(doc).sents]
    # The article keeps its headline, dateline, questions, last sentence and byline.
    assert sents[0] == "The sustainable partnership between Azerbaijan and Pakistan would be a game changer Pakistani Expert"
    assert sents[1] == "Interviews 14:54 27.05.2023"
    assert sents[-2].endswith("in the days to come.") and sents[-1] == "Ulviyya Shahin"
    assert not any("Kenya" in s or "Barcelona" in s or "25.04.2024" in s for s in sents)
    # The other demo articles have no furniture at all.
    assert {d.doc_id: d.furniture for d in docs if d.doc_id != DOC002} == {
        d: () for d in by_id if d != DOC002
    }
    # The stored text is still the whole file: offsets into it are offsets into the file.
    assert doc.text == (CORPUS / DOC002).read_text(encoding="utf-8")


def test_demo_index_never_cites_furniture(demo_index: Path) -> None:
    idx = LoadedIndex.open(demo_index)
    doc = idx.docs[DOC002]
    assert doc.furniture and doc.text == (CORPUS / DOC002).read_text(encoding="utf-8")
    for sid in idx.doc_sentences[DOC002]:
        assert not inside(doc.furniture, int(idx.sent_start[sid]), int(idx.sent_end[sid]))
    for pid in idx.doc_passages[DOC002]:
        assert not inside(doc.furniture, int(idx.pass_start[pid]), int(idx.pass_end[pid]))
    for q in ("What happened in Kenya's capital?", "Will Xavi remain Barcelona coach?",
              "What did the Polish foreign minister say about a Russian attack on NATO?"):
        r = run_qa("ask", "--index", str(demo_index), "--json", q)
        ans = json.loads(r.stdout)
        for c in ans["citations"]:
            d = idx.docs[c["doc_id"]]
            assert not inside(d.furniture, c["start"], c["end"]), (q, c["sentence"])
        assert ans["abstained"], q


# --- synthetic pages ------------------------------------------------------------------------
def test_timestamp_first_and_relative_time_lists() -> None:
    text = ARTICLE + "\nMore news\n" + "".join(
        f"{h}:15 {d}.04.2024\nHeadline number {h} about something else entirely\n" for h, d in
        [(10, 25), (11, 25), (12, 24), (13, 24)]
    )
    block = furniture_text(text)
    assert len(block) == 1 and block[0].startswith("More news\n10:15 25.04.2024") and block[0].endswith("entirely")
    assert answerable(text)[-1].startswith("Officials said")

    text = ARTICLE + "\nRelated\n" + "".join(f"Story {i} of the day in the region\n{i} hours ago\n" for i in range(1, 5))
    assert furniture_text(text) == [text[text.index("Related") :].rstrip()]


def test_a_list_in_the_middle_is_cut_out_and_the_text_around_it_kept() -> None:
    sidebar = "".join(f"Unrelated headline {i} about football\n{i:02d}:00 2{i}.04.2024\n" for i in range(1, 6))
    text = ARTICLE + sidebar + "The pipeline is 1,100 kilometres long and crosses three provinces.\n"
    sents = answerable(text)
    assert "The pipeline is 1,100 kilometres long and crosses three provinces." in sents
    assert "Officials said the project would cost 1.2 billion dollars, shared by both governments." in sents
    assert not any("football" in s for s in sents)
    doc = load_bytes(text.encode(), "mid.txt")
    prep = prepare_document(doc)
    # No passage reaches across the list.
    for _, _, s, e in prep.passages:
        assert "football" not in doc.text[s:e]


def test_menus_are_furniture() -> None:
    text = "Home\nWorld\nBusiness\nSport\nOpinion\nContact us\n\nPipeline reaches Gwadar\n" + ARTICLE
    assert furniture_text(text) == ["Home\nWorld\nBusiness\nSport\nOpinion\nContact us"]
    assert answerable(text)[0] == "Pipeline reaches Gwadar"


def test_real_short_lines_are_kept() -> None:
    cases = [
        # headline, subtitle, byline, dateline
        "Pipeline reaches Gwadar\nA milestone for both countries\nBy Staff Reporter\nMarch 3, 2024\n\n" + ARTICLE,
        # an agenda: times without dates
        ARTICLE + "Programme\n09:00 Registration\n09:30 Opening remarks by the minister\n10:00 Panel on energy\n"
        "11:30 Coffee break\n12:00 Signing ceremony\n",
        # an itinerary: dates without years or times
        ARTICLE + "3 June\nArrival in Baku\n4 June\nMeetings with officials\n5 June\nDeparture\n",
        # a bulleted list of short items
        ARTICLE + "The agreement covers:\n- oil\n- gas\n- rail\n- ports\n- tourism\n- education\n",
        # two datelines and a single timestamp
        "Interviews 14:54 27.05.2023\n\n" + ARTICLE + "Updated 18:29 25.04.2024\n",
    ]
    for text in cases:
        assert find_furniture(text) == [], text


def test_running_page_headers_and_footers_of_a_pdf() -> None:
    from tests.makers import make_pdf

    body = ["Paragraph {n} of the report. " * 3 + "The pipeline carries gas to the coast."]
    data = make_pdf([[p.replace("{n}", str(n)) for p in body] for n in range(1, 5)], header="Energy Review 2023 - page {n}")
    doc = load_bytes(data, "r.pdf")
    heads = [doc.text[a:b] for a, b in doc.furniture]
    assert heads == [f"Energy Review 2023 - page {n}" for n in range(1, 5)]
    sents = [doc.text[s:e] for s, e in prepare_document(doc).sents]
    assert "The pipeline carries gas to the coast." in sents and not any("Energy Review" in s for s in sents)


# --- properties -----------------------------------------------------------------------------
LINES = st.sampled_from([
    "Pipeline reaches Gwadar", "18:29 25.04.2024", "2 hours ago", "Home", "Sport", "News line",
    "The ministers met in Baku on Tuesday.", "- oil", "Price of Azerbaijan oil increases", "", "   ",
    "Interviews 14:54 27.05.2023", "They agreed on a plan, and then they left for the airport.",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(LINES, max_size=40), st.text(max_size=60))
def test_furniture_spans_are_whole_lines_inside_the_text(lines: list[str], noise: str) -> None:
    text = "\n".join(lines) + noise
    spans = find_furniture(text)
    prev = -1
    for a, b in spans:
        assert prev < a < b <= len(text) or (prev < a == 0 < b)
        assert text[a:b] == text[a:b].strip()
        assert a == 0 or text[a - 1] == "\n" or text[text.rfind("\n", 0, a) + 1 : a].strip() == ""
        assert b == len(text) or text[b] in "\n" or text[b : text.find("\n", b) if "\n" in text[b:] else len(text)].strip() == ""
        prev = b
    try:
        doc = load_bytes(text.encode("utf-8", "surrogatepass"), "p.txt")
    except DocumentError:  # empty, or control characters: refused, which is fine here
        return
    if doc is not None:
        for s, e in prepare_document(doc).sents:
            assert not inside(doc.furniture, s, e)
            assert doc.text[s:e] == doc.text[s:e].strip() != ""
