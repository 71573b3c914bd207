"""Formats: HTML main text, PDF text layer with pages, .docx, legacy encodings — each with the title
and date its metadata gives, and offsets that always point into the stored text."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from index.build import prepare_document
from index.documents import Document, DocumentError, load_bytes, load_folder
from index.formats import decode_text, reflow
from tests.conftest import CORPUS, run_qa
from tests.makers import NEWS_PAGE, make_docx, make_pdf

PIPELINE = ("The pipeline from Baku reached the border town of Gwadar in March after three years of work by "
            "engineers from both countries, who laid it through mountain passes and river valleys.")
GAS = ("Officials expect the first deliveries of gas to the industrial zone before the winter, when demand "
       "peaks. The project cost 1.2 billion dollars, shared by the two governments.")
TUNNEL = ("The longest tunnel on the route, at Khojak, is eleven kilometres long and took fourteen months "
          "to dig through solid rock.")


def check_offsets(doc: Document) -> list[str]:
    """Every stored sentence is text[start:end], stripped and non-empty; returns the sentences."""
    prep = prepare_document(doc)
    out = []
    for s, e in prep.sents:
        sent = doc.text[s:e]
        assert sent and sent == sent.strip()
        out.append(sent)
    for _, _, s, e in prep.passages:
        assert 0 <= s < e <= len(doc.text)
    if doc.date is not None and doc.date.start is not None:
        from index.documents import find_dates

        assert [d.iso for d in find_dates(doc.text, doc.date.start, doc.date.end)] == [doc.date.iso]
    return out


# --- HTML -----------------------------------------------------------------------------------
def test_html_main_text_without_navigation_sidebar_or_footer() -> None:
    doc = load_bytes(NEWS_PAGE.encode(), "news/trade-house.html")
    assert doc.format == "html"
    assert doc.title == "Azerbaijan and Pakistan open a trade house in Baku"  # og:title, not "… | Daily Example News"
    assert doc.date is not None and doc.date.iso == "2023-06-14" and doc.date.source == "html metadata"
    sents = check_offsets(doc)
    assert "The trade house opened on Wednesday in the centre of Baku." in sents
    assert '"This is a bridge between our business communities," Mr. Qamar told reporters after the ceremony.' in sents
    for chrome in ("Home", "Contact us", "Latest news", "Kenya", "Macron", "Privacy policy", "All rights reserved"):
        assert chrome not in doc.text, chrome


def test_html_title_tag_charset_and_dateline_from_the_text() -> None:
    page = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
            "<title>Café talks in Baku – News Site</title></head><body>"
            "<p>Islamabad, 13 April 2023: The café owners met the minister on Tuesday to discuss “new rules”.</p>"
            "<p>They asked for lower taxes on imported coffee and a simpler licence for small shops.</p>"
            "</body></html>")
    doc = load_bytes(page.encode("cp1252"), "cafe.htm")
    assert doc.title == "Café talks in Baku"
    assert "The café owners met the minister" in doc.text and "“new rules”" in doc.text
    # No date in the markup: the dateline of the text, with its evidence span.
    assert doc.date is not None and doc.date.iso == "2023-04-13" and doc.date.source == "dateline"
    assert doc.text[doc.date.start : doc.date.end] == "13 April 2023"
    check_offsets(doc)


def test_html_metadata_date_points_at_the_text_when_the_text_states_it() -> None:
    page = ('<html><head><meta property="article:published_time" content="2021-03-05T10:00:00Z">'
            "<title>Talks</title></head><body><article><p>Baku, 5 March 2021: the two ministers met.</p>"
            "<p>They agreed to meet again in the autumn to sign the trade agreement.</p></article></body></html>")
    doc = load_bytes(page.encode(), "talks.html")
    assert doc.date is not None and doc.date.iso == "2021-03-05" and doc.date.source == "html metadata"
    assert doc.text[doc.date.start : doc.date.end] == "5 March 2021"


def test_html_without_main_text_is_skipped_with_a_reason() -> None:
    with pytest.raises(DocumentError, match="no main text"):
        load_bytes(b"<html><head><script>var x = 1;</script></head><body></body></html>", "empty.html")
    with pytest.raises(DocumentError, match="binary"):
        load_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.html")


# --- PDF ------------------------------------------------------------------------------------
def test_pdf_text_pages_title_and_date() -> None:
    data = make_pdf([["Energy Review", PIPELINE, GAS], [TUNNEL]], title="Energy Review 2023", created="20230413")
    doc = load_bytes(data, "reports/energy.pdf")
    assert doc.format == "pdf" and doc.title == "Energy Review 2023"
    assert doc.date is not None and doc.date.iso == "2023-04-13" and doc.date.source == "pdf info"
    assert doc.date.start is None  # the text never states it
    assert len(doc.page_starts) == 2
    prep = prepare_document(doc)
    sents = dict(zip([doc.text[s:e] for s, e in prep.sents], prep.pages, strict=True))
    # Lines the layout wrapped are joined back: the sentence is whole, on its page.
    assert sents[PIPELINE] == 1
    assert sents["The project cost 1.2 billion dollars, shared by the two governments."] == 1
    assert sents[TUNNEL] == 2
    assert sents["Energy Review"] == 1
    check_offsets(doc)


def test_pdf_without_info_takes_title_and_date_from_the_text() -> None:
    data = make_pdf([["Pipeline reaches Gwadar", "Quetta, 2 May 2022 (APP): " + PIPELINE]])
    doc = load_bytes(data, "p.pdf")
    assert doc.title == "Pipeline reaches Gwadar"
    assert doc.date is not None and doc.date.iso == "2022-05-02" and doc.date.source == "dateline"
    assert doc.text[doc.date.start : doc.date.end] == "2 May 2022"


def test_scanned_pdf_is_skipped_as_such_and_a_partly_scanned_one_keeps_its_page_numbers() -> None:
    with pytest.raises(DocumentError, match=r"scanned PDF: no text layer on any of its 3 pages"):
        load_bytes(make_pdf([None, None, None]), "scan.pdf")
    doc = load_bytes(make_pdf([None, [PIPELINE], None, [TUNNEL]]), "mixed.pdf")
    prep = prepare_document(doc)
    pages = {doc.text[s:e]: p for (s, e), p in zip(prep.sents, prep.pages, strict=True)}
    assert pages == {PIPELINE: 2, TUNNEL: 4}


def test_broken_and_encrypted_pdfs_are_skipped_with_reasons() -> None:
    from pypdf import PdfReader, PdfWriter

    with pytest.raises(DocumentError, match="unreadable PDF"):
        load_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog", "cut.pdf")
    with pytest.raises(DocumentError, match="not a PDF"):
        load_bytes(b"just some text pretending", "fake.pdf")
    w = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([[PIPELINE]]))))
    w.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    buf = io.BytesIO()
    w.write(buf)
    with pytest.raises(DocumentError, match="encrypted PDF"):
        load_bytes(buf.getvalue(), "locked.pdf")


def test_reflow_keeps_headings_lists_and_short_lines() -> None:
    page = ("Annual Report\n"
            "The pipeline from Baku reached the border town of Gwadar in March after three\n"
            "years of work by engineers from both countries, who laid it through moun-\n"
            "tain passes.\n"
            "- first item\n"
            "- second item\n")
    assert reflow(page) == ("Annual Report\nThe pipeline from Baku reached the border town of Gwadar in March after "
                            "three years of work by engineers from both countries, who laid it through mountain "
                            "passes.\n- first item\n- second item")


# --- .docx ----------------------------------------------------------------------------------
def test_docx_paragraphs_tables_and_core_properties() -> None:
    data = make_docx([PIPELINE, GAS], title="Memo on the pipeline", created="2022-03-01", heading="Pipeline memo",
                     table=[["Item", "Value"], ["Length", "1,100 km"]])
    doc = load_bytes(data, "memo.docx")
    assert doc.format == "docx" and doc.title == "Memo on the pipeline"
    assert doc.date is not None and doc.date.iso == "2022-03-01" and doc.date.source == "docx core properties"
    sents = check_offsets(doc)
    assert PIPELINE in sents and "Pipeline memo" in sents
    assert "Length\t1,100 km" in doc.text.splitlines()
    # Without a title property: the Title-style heading.
    assert load_bytes(make_docx([GAS], heading="Gas deliveries"), "b.docx").title == "Gas deliveries"


def test_broken_docx_is_skipped_with_a_reason() -> None:
    import zipfile

    with pytest.raises(DocumentError, match="not a .docx"):
        load_bytes(b"plain text in disguise", "fake.docx")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "not a word document")
    with pytest.raises(DocumentError, match="unreadable .docx"):
        load_bytes(buf.getvalue(), "zip.docx")
    with pytest.raises(DocumentError, match="empty .docx"):
        load_bytes(make_docx([""]), "blank.docx")


# --- encodings ------------------------------------------------------------------------------
FRENCH = ("Le ministre des Affaires étrangères a reçu mercredi son homologue azerbaïdjanais à Paris. "
          "« Nous voulons aller plus loin », a déclaré le ministre. Ça fait déjà trois ans.")


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (FRENCH, "cp1252"),
        ("The “new corridor” would cut costs — by 20 % — and open markets… Café owners paid 5 €.", "cp1252"),
        ("El ministro recibió el miércoles a su homólogo de Azerbaiyán. ¿Queremos ir más allá?", "latin-1"),
        ("Zażółć gęślą jaźń, powiedział minister w Warszawie. Spotkanie odbyło się w środę.", "cp1250"),
        ("Ünlü bir şarkıcı İstanbul’da konser verdi. Bakü’den gelen heyet de oradaydı.", "cp1254"),
        ("Министр иностранных дел встретился с послом Азербайджана в Москве.", "cp1251"),
        (FRENCH, "utf-16"),  # with its byte-order mark
        (FRENCH, "utf-8-sig"),
    ],
)
def test_legacy_encodings_are_detected(text: str, encoding: str) -> None:
    decoded, _ = decode_text(text.encode(encoding))
    assert decoded == text


def test_undecodable_text_is_skipped_with_a_reason() -> None:
    with pytest.raises(DocumentError, match="binary"):
        decode_text(bytes(range(1, 32)) * 50)


# --- the whole way: a mixed folder through `qa index` and `qa ask` --------------------------
@pytest.mark.slow
def test_mixed_folder_indexed_and_cited_with_pages(tmp_path: Path) -> None:
    corpus = tmp_path / "mixed"
    corpus.mkdir()
    (corpus / "003_fdf2c5db0e68fe77.txt").write_bytes((CORPUS / "003_fdf2c5db0e68fe77.txt").read_bytes())
    (corpus / "energy.pdf").write_bytes(
        make_pdf([["Energy Review", PIPELINE, GAS], [TUNNEL]], title="Energy Review 2023", created="20230413"))
    (corpus / "trade-house.html").write_bytes(NEWS_PAGE.encode())
    (corpus / "memo.docx").write_bytes(make_docx([GAS], title="Gas memo", created="2022-03-01"))
    (corpus / "cafe.txt").write_bytes(FRENCH.encode("cp1252"))
    (corpus / "scan.pdf").write_bytes(make_pdf([None, None]))
    ix = tmp_path / "ix"
    r = run_qa("index", str(corpus), "--index", str(ix))
    assert r.returncode == 0, r.stderr
    assert "skipped scan.pdf: scanned PDF: no text layer on any of its 2 pages" in r.stderr
    assert "indexed 5 documents" in r.stdout and "1 skipped" in r.stdout

    r = run_qa("ask", "--index", str(ix), "--json", "How long is the Khojak tunnel?")
    ans = json.loads(r.stdout)
    top = ans["citations"][0]
    assert top["doc_id"] == "energy.pdf" and top["page"] == 2 and top["sentence"] == TUNNEL
    assert not ans["abstained"] and "eleven kilometres" in ans["answer"]
    shown = run_qa("show", "--index", str(ix), "energy.pdf").stdout
    assert shown[top["start"] : top["end"]] == TUNNEL
    # Citations of documents without pages carry none.
    assert all(c["page"] is None for c in ans["citations"] if not c["doc_id"].endswith(".pdf"))

    r = run_qa("ask", "--index", str(ix), "How long is the Khojak tunnel?")
    assert "energy.pdf p. 2 [" in r.stdout
    # The chat shows the page too: the API object and the server-rendered (no-JavaScript) page.
    from fastapi.testclient import TestClient

    from web.app import create_app

    client = TestClient(create_app(ix))
    assert client.post("/api/ask", json={"question": "How long is the Khojak tunnel?"}).json()["citations"][0]["page"] == 2
    assert '<span class="page">p. 2</span>' in client.get("/", params={"q": "How long is the Khojak tunnel?"}).text

    r = run_qa("ask", "--index", str(ix), "--json", "Who cut the ribbon at the trade house in Baku?")
    ans = json.loads(r.stdout)
    assert ans["citations"][0]["doc_id"] == "trade-house.html" and "Naveed Qamar" in (ans["answer"] or "")
    # The sidebar and footer of the page never made it into the index.
    r = run_qa("ask", "--index", str(ix), "--json", "What happened in Kenya's capital?")
    assert all("Kenya" not in c["sentence"] for c in json.loads(r.stdout)["citations"])


def test_supported_files_in_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(make_pdf([[PIPELINE]]))
    (tmp_path / "b.HTM").write_bytes(NEWS_PAGE.encode())
    (tmp_path / "c.docx").write_bytes(make_docx([GAS]))
    (tmp_path / "d.rtf").write_bytes(b"{\\rtf1 unsupported}")
    docs, skipped = load_folder(tmp_path)
    assert [(d.doc_id, d.format) for d in docs] == [("a.pdf", "pdf"), ("b.HTM", "html"), ("c.docx", "docx")]
    assert skipped == []


@pytest.mark.slow
@pytest.mark.browser
def test_chat_shows_the_page_of_a_pdf_citation(tmp_path: Path) -> None:
    """In a real Chromium: the chat's citation of a PDF sentence says which page it is on."""
    import shutil
    import socket
    import subprocess
    import time
    import urllib.request

    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "energy.pdf").write_bytes(make_pdf([["Energy Review", PIPELINE, GAS], [TUNNEL]]))
    ix = tmp_path / "ix"
    assert run_qa("index", str(corpus), "--index", str(ix), "-q").returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from tests.conftest import QA

    server = subprocess.Popen([QA, "serve", "--index", str(ix), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "server did not start"
                time.sleep(0.5)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#question", "How long is the Khojak tunnel?")
            page.click("#send")
            first = page.locator(".cite-item").first
            first.wait_for(timeout=60_000)
            assert first.locator(".page").inner_text() == "p. 2"
            assert TUNNEL in first.locator("blockquote").inner_text()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(ix, ignore_errors=True)
