"""One extractor per file format: bytes in, the text we store (and cite) out, with its metadata.

The stored text of an HTML, PDF or .docx file is what the extractor returns here, so every
offset of the index points into it (``text[start:end] == sentence``). Plain text and Markdown are
stored as decoded, unchanged.

- ``.txt``/``.md``: UTF-8 (with or without BOM), UTF-16/32 with a BOM, or another encoding
  detected by charset-normalizer (cp1252, latin-1, …); binary data is refused.
- ``.html``/``.htm``: trafilatura keeps the main text and drops navigation, menus, footers and
  link lists; title and date come from the page's metadata (``<title>``, ``og:title``,
  ``article:published_time``, JSON-LD, ``<time>``), read by trafilatura/htmldate without guessing
  from the body text.
- ``.pdf``: pypdf reads the text layer page by page; lines wrapped by the layout are joined back
  into paragraphs; each page's start offset is kept so a sentence knows its page. A PDF without a
  text layer (a scan) is refused as such. Title and date from the document info.
- ``.docx``: python-docx reads paragraphs and tables in document order; title and date from the
  core properties.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# How much of a text may be control characters before we call it binary (after decoding).
MAX_CONTROL_RATIO = 0.05


class DocumentError(Exception):
    """A file that cannot be indexed; the message is the one-line reason."""


@dataclass(frozen=True)
class Extracted:
    text: str
    title: str | None = None  # from the format's metadata, when it has a usable one
    date_iso: str | None = None  # from the format's metadata (YYYY-MM-DD)
    date_source: str | None = None  # which metadata field gave the date
    page_starts: tuple[int, ...] = ()  # offset in `text` where each page starts (PDF)
    format: str = "text"
    encoding: str | None = None


# --- plain text -----------------------------------------------------------------------------
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


# Unicode's control characters (category Cc) but tab, line feed, vertical tab, form feed and CR.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def _control_ratio(text: str) -> float:
    head = text[:100_000]
    return len(_CONTROL.findall(head)) / max(1, len(head))


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding) of a text file; raises DocumentError for empty, binary or undecodable data."""
    if not data.strip():
        raise DocumentError("empty file")
    text: str | None = None
    encoding = ""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                text, encoding = data.decode(enc), enc
            except UnicodeDecodeError as e:
                raise DocumentError(f"not valid {enc} although it starts with a {enc} byte-order mark ({e.reason})") from None
            break
    if text is None:
        if b"\x00" in data[:8192]:
            raise DocumentError("binary file (NUL bytes), not text")
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as e:
            text, encoding = _decode_legacy(data, e)
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise DocumentError("empty file (whitespace only)")
    if _control_ratio(text) > MAX_CONTROL_RATIO:
        raise DocumentError(f"binary file (control characters), not text (read as {encoding})")
    return text, encoding


# Single-byte Latin code pages that charset-normalizer confuses with one another on short texts.
_LATIN_FAMILY = {"cp1250", "cp1252", "cp1254", "cp1257", "cp1258", "hp_roman8", "latin_1", "iso8859_3", "iso8859_9", "iso8859_1", "iso8859_2", "iso8859_4", "iso8859_10",
                 "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16", "mac_latin2", "mac_roman", "mac_iceland",
                 "cp437", "cp850", "cp775", "cp1006", "cp1125"}
_WESTERN_MARKS = set("“”‘’„‚–—…•€«»°±·×÷©®™§¶\u00a0¿¡¢£¥")
_WESTERN_LETTERS = set("ŒœŠšŽžŸƒ")


def _plausible_western(text: str) -> bool:
    """True when ``text`` reads as a Western European language: accented letters are a minority
    and no stray symbol sits where a letter should be (cp1250's "ą" read as cp1252 is "¹")."""
    letters = accented = 0
    for ch in text:
        if ch.isascii():
            letters += ch.isalpha()
        elif ch.isalpha() and ("\u00c0" <= ch <= "\u00ff" or ch in _WESTERN_LETTERS):
            letters += 1
            accented += 1
        elif ch not in _WESTERN_MARKS:
            return False
    return accented <= 0.3 * max(letters, 1)


def _decode_legacy(data: bytes, err: UnicodeDecodeError) -> tuple[str, str]:
    """Decode a file that is not UTF-8: cp1252 when it reads as a Western language (by far the
    most common legacy encoding, and the one charset-normalizer most often mistakes for cp1250 or
    cp1257 on short texts), else charset-normalizer's best guess (cp1251, cp1254, Shift-JIS, …)."""
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding in _LATIN_FAMILY:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = None
        if text is not None and _plausible_western(text):
            # Turkish (cp1254) differs from cp1252 in six letters only, which cp1252 reads as
            # Ý ý Þ þ Ð ð; let the language model of charset-normalizer choose between the two.
            if any(ch in text for ch in "ÝýÞþÐð"):
                pick = from_bytes(data, cp_isolation=["cp1252", "cp1254"]).best()
                if pick is not None and pick.encoding == "cp1254":
                    return str(pick), "cp1254"
            return text, "cp1252"
    if best is None:
        raise DocumentError(
            f"not UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start}) and no other encoding fits; "
            "save it as UTF-8"
        )
    return str(best), best.encoding


def extract_text(data: bytes) -> Extracted:
    text, encoding = decode_text(data)
    return Extracted(text, format="text", encoding=encoding)


# --- HTML -----------------------------------------------------------------------------------
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# The HTML standard reads these labels as windows-1252.
_HTML_AS_CP1252 = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "us-ascii", "ascii", "l1", "cp819"}


def decode_html(data: bytes) -> str:
    """The page as text: its byte-order mark, else its declared charset, else UTF-8, else the
    legacy encoding that fits (as for plain text) — never a guess where the page says."""
    import codecs

    for bom, enc in _BOMS:
        if data.startswith(bom):
            return data.decode(enc, errors="replace").removeprefix("\ufeff")
    if b"\x00" in data[:8192]:
        raise DocumentError("binary file (NUL bytes), not HTML")
    m = _META_CHARSET.search(data[:4096])
    if m:
        label = m.group(1).decode("ascii").lower()
        label = "cp1252" if label in _HTML_AS_CP1252 else label
        try:
            return data.decode(codecs.lookup(label).name, errors="replace")
        except LookupError:
            pass  # an unknown label: decode as if there were none
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        return _decode_legacy(data, e)[0]


_BLOCK_TAGS = ("address", "article", "aside", "blockquote", "dd", "details", "dialog", "div", "dl", "dt", "fieldset",
               "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li",
               "main", "nav", "ol", "p", "pre", "section", "table", "tr", "td", "th", "ul", "br")


def extract_html(data: bytes) -> Extracted:
    if not data.strip():
        raise DocumentError("empty file")
    page = decode_html(data)
    import logging

    import trafilatura

    # trafilatura and htmldate log what they could not parse; our one-line reason says enough.
    for name in ("trafilatura", "htmldate", "courlan"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    tree = trafilatura.load_html(page)
    if tree is None:
        # A bare fragment ("<p>…</p>" without <html>) is refused as dubious: give it a page.
        tree = trafilatura.load_html("<html><body>" + page + "</body></html>")
    if tree is None:
        raise DocumentError("not parseable as HTML")
    # A browser breaks the line around a block element; trafilatura, when it drops one (an aside, a
    # nav), glues the text on either side ("Monday.He met"). A line break after each block keeps
    # the words apart whether the block stays or goes.
    for el in tree.iter(*_BLOCK_TAGS):
        if not el.tail or not el.tail[0].isspace():
            el.tail = "\n" + (el.tail or "")
    # With output_format="python" it is trafilatura's Document (or None), never the dict its type also allows.
    doc: Any = trafilatura.bare_extraction(
        tree,
        output_format="python",
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        # Dates from the page's markup only (meta tags, JSON-LD, <time>): a date in the body is
        # an event, not the publication date.
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    text = _clean_lines(doc.text if doc is not None and doc.text else "")
    if not text.strip():
        raise DocumentError("no main text found in the HTML page")
    title = _usable_title(doc.title) if doc is not None else None
    date_iso = doc.date[:10] if doc is not None and doc.date and re.match(r"\d{4}-\d{2}-\d{2}", doc.date) else None
    return Extracted(text, title=title, date_iso=date_iso, date_source="html metadata" if date_iso else None,
                     format="html")


# --- PDF ------------------------------------------------------------------------------------
_HYPHEN_BREAK = re.compile(r"(?<=[a-z])-\n(?=[a-z])")


def reflow(page_text: str) -> str:
    """Join the lines a PDF layout wrapped back into paragraphs.

    PDF text layers break a paragraph into one line per printed line; the splitter ends a
    sentence at every line break, so wrapped lines are joined with a space. A line is wrapped
    when it is long (at least 60% of the page's long lines) and the next one goes on; short lines
    (headings, list items, the end of a paragraph) and blank lines keep their break. A word split
    by a hyphen at the end of a line ("exam-\\nple") is joined back.
    """
    text = _HYPHEN_BREAK.sub("", page_text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [ln.rstrip() for ln in text.split("\n")]
    lengths = sorted(len(ln) for ln in lines if ln.strip())
    if not lengths:
        return ""
    full = lengths[int(len(lengths) * 0.9)] if len(lengths) >= 3 else max(lengths)
    out: list[str] = []
    for ln in lines:
        if out and out[-1] and ln.strip() and len(out[-1]) >= 0.6 * full and not re.match(r"\s*(?:[-•*]|\d+[.)])\s", ln):
            out[-1] = out[-1] + " " + ln.strip()
        else:
            out.append(ln.strip())
    # Collapse runs of blank lines to one.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def _pdf_date(value: object) -> str | None:
    if isinstance(value, datetime):
        return value.date().isoformat()
    m = re.match(r"(?:D:)?(\d{4})(\d{2})(\d{2})", str(value or ""))
    if m:
        try:
            return datetime(int(m.group(1)), int(m.group(2)), int(m.group(3))).date().isoformat()
        except ValueError:
            return None
    return None


def extract_pdf(data: bytes) -> Extracted:
    if not data.strip():
        raise DocumentError("empty file")
    if not data.lstrip()[:1024].find(b"%PDF-") >= 0:
        raise DocumentError("not a PDF (no %PDF header)")
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    # pypdf logs recoverable damage as warnings; the reason we report is enough.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = bool(reader.decrypt(""))  # PasswordType.NOT_DECRYPTED is 0
            except Exception:  # pypdf raises several types for unsupported encryption
                ok = False
            if not ok:
                raise DocumentError("encrypted PDF (needs a password); save an unencrypted copy")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError, OSError,
            NotImplementedError, AssertionError, IndexError, ZeroDivisionError) as e:
        raise DocumentError(f"unreadable PDF ({type(e).__name__}: {str(e)[:120]})") from None
    if not pages:
        raise DocumentError("PDF has no pages")
    parts: list[str] = []
    starts: list[int] = []
    pos = 0
    for raw in pages:
        page = reflow(raw)
        if parts:
            parts.append("\n\n")
            pos += 2
        starts.append(pos)
        parts.append(page)
        pos += len(page)
    text = "".join(parts)
    if not text.strip():
        raise DocumentError(f"scanned PDF: no text layer on any of its {len(pages)} pages (run OCR on it first)")
    title = date_iso = None
    try:
        info = reader.metadata
        if info is not None:
            title = _usable_title(info.title)
            date_iso = _pdf_date(info.get("/CreationDate")) or _pdf_date(info.get("/ModDate"))
    except Exception:  # damaged info dictionaries are common and not worth losing the text for
        title = date_iso = None
    return Extracted(text, title=title, date_iso=date_iso, date_source="pdf info" if date_iso else None,
                     page_starts=tuple(starts), format="pdf")


# --- .docx ----------------------------------------------------------------------------------
def extract_docx(data: bytes) -> Extracted:
    if not data.strip():
        raise DocumentError("empty file")
    if not data.startswith(b"PK"):
        raise DocumentError("not a .docx (not a ZIP package)")
    import zipfile

    import docx
    from docx.table import Table

    try:
        d = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        heading: str | None = None
        for block in d.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    seen: set[int] = set()
                    cells = []
                    for cell in row.cells:  # merged cells repeat: keep each once
                        if id(cell._tc) in seen:
                            continue
                        seen.add(id(cell._tc))
                        cells.append(" ".join(cell.text.split()))
                    lines.append("\t".join(cells))
            else:
                t = block.text
                lines.append(t)
                # The style id as written ("Title", "Heading1"): resolving the style object costs
                # a scan of all styles per paragraph.
                if heading is None and t.strip() and (block._p.style or "").lower() in ("title", "heading1"):
                    heading = t.strip()
        core = d.core_properties
        title = _usable_title(core.title) or heading
        created = core.created
    except (zipfile.BadZipFile, KeyError, ValueError, AttributeError, TypeError) as e:
        raise DocumentError(f"unreadable .docx ({type(e).__name__}: {str(e)[:120]})") from None
    except Exception as e:  # lxml raises its own XMLSyntaxError for damaged parts
        if type(e).__module__.startswith("lxml"):
            raise DocumentError(f"unreadable .docx (damaged XML: {str(e)[:120]})") from None
        raise
    text = "\n".join(ln.replace("\r", "") for ln in lines).strip("\n")
    if not text.strip():
        raise DocumentError("empty .docx (no text in its paragraphs or tables)")
    # python-docx's own template says it was created 2013-12-23 23:15; a file generated from it
    # without setting the date keeps that, which is no date of the document's.
    if isinstance(created, datetime) and created.replace(tzinfo=None) == datetime(2013, 12, 23, 23, 15):
        created = None
    date_iso = created.date().isoformat() if isinstance(created, datetime) else None
    return Extracted(text, title=title, date_iso=date_iso, date_source="docx core properties" if date_iso else None,
                     format="docx")


# --- shared ---------------------------------------------------------------------------------
_JUNK_TITLES = re.compile(r"^(?:untitled|document\d*|microsoft word - .*|title|none|\W*)$", re.I)


def _usable_title(title: object) -> str | None:
    if not isinstance(title, str):
        return None
    t = " ".join(title.split())
    if not t or _JUNK_TITLES.match(t):
        return None
    return t[:300]


def _clean_lines(text: str) -> str:
    """Normalise line ends and drop trailing spaces, so the stored text is tidy and stable."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(ln.rstrip() for ln in text.split("\n")).strip("\n")


EXTRACTORS: dict[str, Callable[[bytes], Extracted]] = {
    ".txt": extract_text,
    ".md": extract_text,
    ".markdown": extract_text,
    ".html": extract_html,
    ".htm": extract_html,
    ".pdf": extract_pdf,
    ".docx": extract_docx,
}
