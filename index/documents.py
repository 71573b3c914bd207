"""Load documents from a folder: one extractor per format, bad files skipped with a reason.

Every offset we ever store points into ``Document.text``. For ``.txt``/``.md`` that is the file's
decoded text unchanged (only a byte-order mark is dropped), so a citation can be checked against
the file itself; for HTML, PDF and .docx it is the text the extractor returned (see formats.py).

``load_bytes(data, doc_id)`` turns the bytes of one file into a ``Document``; ``load_document``
reads a path first (refusing links that go nowhere, non-files and files too large to read), and
``load_folder`` does it for every supported file under a folder. A file that cannot be indexed
raises ``DocumentError`` (or comes back as ``Skipped``) with a one-line reason.
"""

from __future__ import annotations

import bisect
import errno
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from index.formats import EXTRACTORS, DocumentError, Extracted
from index.furniture import FURNITURE_VERSION, find_furniture

SUPPORTED_SUFFIXES = tuple(EXTRACTORS)
MAX_FILE_BYTES = 50 * 1024 * 1024
# Changes whenever what a file turns into (text, title, date, pages, furniture) may change, so
# the build re-processes files whose bytes did not change.
LOADER_VERSION = f"loaders-2+{FURNITURE_VERSION}"

__all__ = [
    "DocDate", "Document", "DocumentError", "Skipped", "LOADER_VERSION", "SUPPORTED_SUFFIXES",
    "load_bytes", "load_document", "load_folder", "read_file", "iter_files",
]


@dataclass(frozen=True)
class DocDate:
    iso: str  # YYYY-MM-DD
    start: int | None  # evidence span in the document text; None when only metadata states it
    end: int | None
    source: str = "text"  # "dateline", "signature", or the metadata field ("pdf info", …)


@dataclass(frozen=True)
class Document:
    doc_id: str  # path relative to the corpus root, POSIX separators
    title: str
    text: str
    content_hash: str
    date: DocDate | None = None
    format: str = "text"  # text, html, pdf, docx
    page_starts: tuple[int, ...] = ()  # PDF: offset in `text` where page i+1 starts
    furniture: tuple[tuple[int, int], ...] = ()  # spans of page furniture: never answerable

    def page_at(self, offset: int) -> int | None:
        """1-based page holding ``offset`` (PDF only)."""
        if not self.page_starts:
            return None
        return max(1, bisect.bisect_right(self.page_starts, offset))


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


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
    found.sort(key=lambda x: x.start or 0)  # find_dates' dates always have their span
    # Drop matches nested in an earlier, longer one.
    out: list[DocDate] = []
    for f in found:
        if out and (f.start or 0) < (out[-1].end or 0):
            continue
        out.append(f)
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
        # Only a date opening its line counts (see below): no need to scan a long line to its end.
        dates = find_dates(text, m.start(), min(m.end(), m.start() + 80))
        # A dateline opens its line ("Islamabad, 13 April 2023 (TDI): …") or is a short line of
        # its own ("Interviews 14:54 27.05.2023"); a date mid-sentence is an event.
        dates = [
            d
            for d in dates
            if m.end() - m.start() <= 40
            or ((d.start or 0) - m.start() <= 40 and re.match(r"\s*(?:[(:—–-]|$)", text[d.end : m.end()]))
        ]
        if dates:
            return DocDate(dates[0].iso, dates[0].start, dates[0].end, "dateline")
    for m in _SIGNATURE.finditer(text):
        dates = find_dates(text, m.start(), m.end())
        if dates:
            return DocDate(dates[-1].iso, dates[-1].start, dates[-1].end, "signature")
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


def _metadata_date(text: str, iso: str, source: str) -> DocDate:
    """The metadata's date, with the place the text states it when it does (the first mention)."""
    for d in find_dates(text):
        if d.iso == iso:
            return DocDate(iso, d.start, d.end, source)
    return DocDate(iso, None, None, source)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_bytes(data: bytes, doc_id: str, *, content_hash_: str | None = None) -> Document:
    """Turn the bytes of one file into a Document; its format comes from ``doc_id``'s suffix.

    Raises DocumentError with a one-line reason when the file cannot be indexed. This is the
    one entry for a folder's files and for an uploaded file alike::

        >>> load_bytes(b"Title\\nIslamabad, 13 April 2023: talks began.", "a.txt").date.iso
        '2023-04-13'
    """
    suffix = Path(doc_id).suffix.lower()
    extractor = EXTRACTORS.get(suffix)
    if extractor is None:
        raise DocumentError(f"unsupported file type {suffix or '(none)'}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    if len(data) > MAX_FILE_BYTES:
        raise DocumentError(_too_large(len(data)))
    ex: Extracted = extractor(data)
    text = ex.text
    title = ex.title or detect_title(text, suffix)
    date_ = _metadata_date(text, ex.date_iso, ex.date_source or "metadata") if ex.date_iso else detect_document_date(text)
    return Document(
        doc_id=doc_id,
        title=title,
        text=text,
        content_hash=content_hash_ or content_hash(data),
        date=date_,
        format=ex.format,
        page_starts=ex.page_starts,
        furniture=tuple(find_furniture(text, ex.page_starts)),
    )


def _too_large(size: int) -> str:
    return f"too large ({size / (1024 * 1024):.0f} MB > {MAX_FILE_BYTES // (1024 * 1024)} MB limit); split it"


def read_file(path: Path) -> bytes:
    """The bytes of one corpus file; DocumentError says why a path cannot be read."""
    try:
        st = os.stat(path)  # follows symbolic links
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DocumentError("symbolic link loop (the link points back at itself)") from None
        if e.errno == errno.ENOENT and os.path.islink(path):
            raise DocumentError(f"broken symbolic link (target {os.readlink(path)} does not exist)") from None
        raise DocumentError(f"cannot read: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode) and os.path.islink(path):
        raise DocumentError("symbolic link to a folder: not followed (a link can loop); index the folder itself")
    if not stat.S_ISREG(st.st_mode):
        kind = "folder" if stat.S_ISDIR(st.st_mode) else "pipe" if stat.S_ISFIFO(st.st_mode) else "special file"
        raise DocumentError(f"not a regular file (a {kind})")
    if st.st_size > MAX_FILE_BYTES:
        raise DocumentError(_too_large(st.st_size))
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # the file may grow while we read it
    except PermissionError:
        raise DocumentError("permission denied: cannot read the file (check its permissions)") from None
    except OSError as e:
        raise DocumentError(f"cannot read: {e.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise DocumentError(_too_large(len(data)))
    return data


def load_document(path: Path, doc_id: str) -> Document:
    """Read one file; raises DocumentError with a one-line reason when it cannot be indexed."""
    return load_bytes(read_file(path), doc_id)


def iter_files(root: Path, unsupported: list[str] | None = None) -> Iterator[tuple[Path, str]]:
    """(path, doc_id) for every supported file under root, sorted, hidden folders skipped.

    Symbolic links to files are read (a broken one or a loop is reported by ``read_file``);
    links to folders are not followed, so a link back up the tree cannot loop. The ids of
    visible files of another type (``blob.bin``) are appended to ``unsupported``, so a build can
    name them instead of passing over them in silence.
    """
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for d in dirnames:
            if os.path.islink(Path(dirpath) / d):  # reported, never walked into
                yield Path(dirpath) / d, (Path(dirpath) / d).relative_to(root).as_posix()
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if not name.lower().endswith(SUPPORTED_SUFFIXES):
                if unsupported is not None:
                    unsupported.append((Path(dirpath) / name).relative_to(root).as_posix())
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
