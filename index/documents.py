"""Load documents from a folder: one loader per format, bad files skipped with a reason.

Every offset we ever store points into ``Document.text``, which is the file's decoded text
unchanged (only a UTF-8 byte-order mark is dropped), so a citation can always be checked
against the file itself.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown")
MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class DocDate:
    iso: str  # YYYY-MM-DD
    start: int  # evidence span in the document text
    end: int

    @property
    def text_span(self) -> tuple[int, int]:
        return self.start, self.end


@dataclass(frozen=True)
class Document:
    doc_id: str  # path relative to the corpus root, POSIX separators
    title: str
    text: str
    content_hash: str
    date: DocDate | None = None


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


class DocumentError(Exception):
    """A file that cannot be indexed; the message is the one-line reason."""


_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for m in names
}
_MONTH_RE = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"

# Explicit full dates, the forms news datelines and signatures use.
_DATE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+({_MONTH_RE})\s*,?\s+(\d{{4}})\b", re.I), "dmy"),
    (re.compile(rf"\b({_MONTH_RE})\s+(\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s+(\d{{4}})\b", re.I), "mdy"),
    (re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b"), "dmy_num"),
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), "iso"),
]


def find_dates(text: str, start: int = 0, end: int | None = None) -> list[DocDate]:
    """Every explicit calendar date in ``text[start:end]``, as ISO dates with their spans."""
    end = len(text) if end is None else end
    found: list[DocDate] = []
    for pattern, kind in _DATE_PATTERNS:
        for m in pattern.finditer(text, start, end):
            try:
                if kind == "dmy":
                    d = date(int(m.group(3)), _MONTHS[m.group(2).lower().rstrip(".")], int(m.group(1)))
                elif kind == "mdy":
                    d = date(int(m.group(3)), _MONTHS[m.group(1).lower().rstrip(".")], int(m.group(2)))
                elif kind == "dmy_num":
                    d = date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
                else:
                    d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except (ValueError, KeyError):
                continue
            found.append(DocDate(d.isoformat(), m.start(), m.end()))
    found.sort(key=lambda x: x.start)
    # Drop matches nested in an earlier, longer one.
    out: list[DocDate] = []
    for d in found:
        if out and d.start < out[-1].end:
            continue
        out.append(d)
    return out


_SIGNATURE = re.compile(r"^\s*[—–-]{1,2}\s*\S.*$", re.M)


def detect_document_date(text: str) -> DocDate | None:
    """When the text says it was written: a dateline near the top, or a dated signature.

    A dateline is a date within the first three non-empty lines ("Islamabad, 13 April 2023
    (TDI): …", "Interviews 14:54 27.05.2023"); a signature is a line starting with a dash
    that ends a quoted post ("— Name (@handle) November 9, 2023"). Dates elsewhere in the body
    are events, not the writing date, so they are not used.
    """
    lines = [m for m in re.finditer(r"[^\n]*\S[^\n]*", text)][:3]
    for m in lines:
        dates = find_dates(text, m.start(), m.end())
        # A dateline opens its line ("Islamabad, 13 April 2023 (TDI): …") or is a short line of
        # its own ("Interviews 14:54 27.05.2023"); a date mid-sentence is an event.
        dates = [
            d
            for d in dates
            if m.end() - m.start() <= 40
            or (d.start - m.start() <= 40 and re.match(r"\s*(?:[(:—–-]|$)", text[d.end : m.end()]))
        ]
        if dates:
            return dates[0]
    for m in _SIGNATURE.finditer(text):
        dates = find_dates(text, m.start(), m.end())
        if dates:
            return dates[-1]
    return None


def detect_title(text: str, suffix: str) -> str:
    if suffix in (".md", ".markdown"):
        m = re.search(r"^#\s+(.+?)\s*#*\s*$", text, re.M)
        if m:
            return m.group(1).strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()[:300]
    return ""


def decode(data: bytes, name: str) -> str:
    if not data.strip():
        raise DocumentError("empty file")
    if b"\x00" in data[:8192]:
        raise DocumentError("binary file (NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DocumentError(f"not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise DocumentError("empty file (whitespace only)")
    return text


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_document(path: Path, doc_id: str) -> Document:
    """Read one file; raises DocumentError with a one-line reason when it cannot be indexed."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DocumentError(f"cannot read: {e.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise DocumentError(f"too large ({size // (1024 * 1024)} MB > {MAX_FILE_BYTES // (1024 * 1024)} MB)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DocumentError(f"cannot read: {e.strerror}") from None
    text = decode(data, doc_id)
    suffix = path.suffix.lower()
    return Document(
        doc_id=doc_id,
        title=detect_title(text, suffix),
        text=text,
        content_hash=content_hash(data),
        date=detect_document_date(text),
    )


def iter_files(root: Path) -> Iterator[tuple[Path, str]]:
    """(path, doc_id) for every supported file under root, sorted, hidden folders skipped."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(SUPPORTED_SUFFIXES):
                continue
            path = Path(dirpath) / name
            yield path, path.relative_to(root).as_posix()


def load_folder(root: Path) -> tuple[list[Document], list[Skipped]]:
    """Load every supported file under ``root``; unreadable ones are returned as Skipped."""
    docs: list[Document] = []
    skipped: list[Skipped] = []
    for path, doc_id in iter_files(root):
        try:
            docs.append(load_document(path, doc_id))
        except DocumentError as e:
            skipped.append(Skipped(doc_id, str(e)))
    return docs, skipped
