"""Helpers the test modules share (test modules import from here, never from each other).

Real test files of each format, made here: PDFs written by hand (text layer, scans, info),
.docx files through python-docx, HTML pages with the chrome a saved page carries. And what the
browser tests (tests/test_browser*.py) do with a page: open one, ask as a user would, read the
last answer, notice what a user would see as broken."""

from __future__ import annotations

import io
import textwrap
import zlib
from collections.abc import Sequence
from pathlib import Path


def _pdf_str(s: str) -> bytes:
    return b"(" + s.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def make_pdf(pages: Sequence[Sequence[str] | None], *, title: str | None = None, created: str | None = None,
             width: int = 80, header: str | None = None) -> bytes:
    """A PDF whose pages hold the given paragraphs, wrapped at ``width`` characters like a layout
    would; ``None`` is a scanned page (an image, no text layer). ``header`` is printed at the top of
    every page with its page number ("{n}" is replaced). ``created`` is "YYYYMMDD"."""
    objs: list[bytes] = []

    def add(body: bytes) -> int:
        objs.append(body)
        return len(objs)

    catalog = add(b"")  # filled in below
    pages_obj = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    kids = []
    for n, paras in enumerate(pages, 1):
        if paras is None:
            pixels = bytes((x * 37 + y * 11) % 256 for y in range(16) for x in range(16))
            img = add(b"<< /Type /XObject /Subtype /Image /Width 16 /Height 16 /ColorSpace /DeviceGray "
                      b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n" % len(zlib.compress(pixels))
                      + zlib.compress(pixels) + b"\nendstream")
            content = b"q 500 0 0 700 50 50 cm /Im1 Do Q"
            resources = b"<< /XObject << /Im1 %d 0 R >> >>" % img
        else:
            ops = [b"BT /F1 11 Tf 14 TL 50 790 Td"]
            if header:
                ops.append(_pdf_str(header.replace("{n}", str(n))) + b" Tj T* T*")
            for para in paras:
                for line in textwrap.wrap(para, width) or [""]:
                    ops.append(_pdf_str(line) + b" Tj T*")
                ops.append(b"T*")
            ops.append(b"ET")
            content = b"\n".join(ops)
            resources = b"<< /Font << /F1 %d 0 R >> >>" % font
        stream = add(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Resources %s /Contents %d 0 R >>"
                        % (pages_obj, resources, stream)))
    objs[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_obj
    objs[pages_obj - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    info_parts = []
    if title is not None:
        info_parts.append(b"/Title " + _pdf_str(title))
    if created is not None:
        info_parts.append(b"/CreationDate " + _pdf_str(f"D:{created}120000Z"))
    info = add(b"<< " + b" ".join(info_parts) + b" >>") if info_parts else None
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root %d 0 R" % (len(objs) + 1, catalog))
    if info:
        out.write(b" /Info %d 0 R" % info)
    out.write(b" >>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def make_docx(paragraphs: Sequence[str], *, title: str | None = None, created: str | None = None,
              heading: str | None = None, table: Sequence[Sequence[str]] | None = None) -> bytes:
    """A .docx with an optional Title-style heading, paragraphs, a table, and core properties."""
    from datetime import datetime

    import docx

    d = docx.Document()
    if heading:
        d.add_heading(heading, level=0)
    for p in paragraphs:
        d.add_paragraph(p)
    if table:
        t = d.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                t.cell(r, c).text = cell
    d.core_properties.title = title or ""
    if created:
        d.core_properties.created = datetime.strptime(created, "%Y-%m-%d")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


NEWS_PAGE = """<!DOCTYPE html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Azerbaijan and Pakistan open a trade house in Baku | Daily Example News</title>
<meta property="og:title" content="Azerbaijan and Pakistan open a trade house in Baku">
<meta property="article:published_time" content="2023-06-14T09:30:00+05:00">
</head><body>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li><li><a href="/business">Business</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/contact">Contact us</a></li></ul></nav></header>
<main><article>
<h1>Azerbaijan and Pakistan open a trade house in Baku</h1>
<p>The trade house opened on Wednesday in the centre of Baku. It will host exporters of rice, textiles and
surgical instruments from Sialkot and Karachi.</p>
<p>Officials said the house would cut the time needed to register a company to two weeks. The commerce minister,
Naveed Qamar, cut the ribbon together with his Azerbaijani counterpart.</p>
<p>"This is a bridge between our business communities," Mr. Qamar told reporters after the ceremony.</p>
</article></main>
<aside class="sidebar"><h3>Latest news</h3><ul>
<li><a href="/a1">Deadly floods wreak havoc in Kenya's capital</a> <span>18:29 25.04.2024</span></li>
<li><a href="/a2">Macron: Europe must show that it is not a US vassal</a> <span>16:12 25.04.2024</span></li>
<li><a href="/a3">Price of Azerbaijan oil increases</a> <span>09:31 25.04.2024</span></li>
</ul></aside>
<footer><p>&copy; 2024 Daily Example News. All rights reserved.</p>
<p><a href="/privacy">Privacy policy</a> | <a href="/terms">Terms of use</a></p></footer>
</body></html>
"""


# --- the browser tests -----------------------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")  # Debian's Chromium, which the browser fixture drives
TIMEOUT_MS = 30_000  # one answer takes well under a second; this is for a machine under heavy load


class Watch:
    """What a page did that a user would notice as broken: dialogs, script errors, CSP violations."""

    def __init__(self, page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)

    def _dialog(self, d) -> None:
        self.dialogs.append(d.message)
        d.dismiss()

    def assert_clean(self) -> None:
        assert not self.dialogs, f"a dialog fired: {self.dialogs}"
        assert not self.errors, self.errors


def open_page(browser, **context_options):
    """(context, page, Watch) of a new desktop-sized page; close the context when done."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, **context_options)
    ctx.set_default_timeout(TIMEOUT_MS)
    page = ctx.new_page()
    return ctx, page, Watch(page)


def ask(page, question: str) -> None:
    """Type the question as a user would and press Enter."""
    box = page.locator("#question")
    box.click()
    box.press_sequentially(question)
    box.press("Enter")


def last_answer(page):
    return page.locator(".exchange").last.locator(".msg.bot")
