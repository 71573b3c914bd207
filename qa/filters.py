"""Asking within some documents: by id, by folder, by the documents' dates.

A ``DocFilter`` names which documents may answer; ``matching(index)`` lists them. The engine
gathers candidates only from those documents (``qa.retrieve.Scope``), so the answer is read
from them and not picked out of a whole-corpus answer afterwards. A document without a date
never matches a date bound; a filter that matches no document makes the engine abstain and say so.

Example::

    >>> f = DocFilter.parse({"folder": "news/2023", "date_from": "2023-11-01"})
    >>> f.describe()
    'folder news/2023, dated from 2023-11-01'

A range whose start is after its end is no error: it matches no document, and the abstention says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from index.loaded import LoadedIndex

MAX_FILTER_DOC_IDS = 1000
MAX_FOLDER_CHARS = 1000
# The rules of the parts as regular expressions, so the API's schema states what the server applies:
# a real calendar date (leap days included, year 0001-9999), and a folder without a ".." segment.
DATE_PATTERN = (
    r"^(?!0000)(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)$"
)
FOLDER_PATTERN = r"^(?![\s\S]*(?:^|[/\\])\.\.(?:[/\\]|$))[\s\S]*$"


class FilterError(ValueError):
    """A filter that cannot be applied as written; the message says which part and why."""


def _date(value: Any, name: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise FilterError(f"{name} must be a date written YYYY-MM-DD")
    if not re.search(DATE_PATTERN, value):  # also refuses what fromisoformat takes besides ("2023-W01-1")
        raise FilterError(f"{name} {value[:40]!r} is not a date written YYYY-MM-DD")
    return date.fromisoformat(value)


@dataclass(frozen=True)
class DocFilter:
    doc_ids: tuple[str, ...] | None = None  # any of these documents
    folder: str | None = None  # documents under this folder of the corpus ("news/2023")
    date_from: date | None = None  # dated on or after
    date_to: date | None = None  # dated on or before

    @classmethod
    def make(cls, doc_ids: Iterable[str] | None = None, folder: str | None = None,
             date_from: str | None = None, date_to: str | None = None) -> DocFilter | None:
        """A filter from its parts as a user writes them (strings), or None when it has none."""
        ids = None if doc_ids is None else tuple(doc_ids)
        if ids is not None:
            if len(ids) > MAX_FILTER_DOC_IDS:
                raise FilterError(f"doc_ids lists {len(ids)} documents; the limit is {MAX_FILTER_DOC_IDS}")
            if not ids or not all(isinstance(d, str) and d for d in ids):
                raise FilterError("doc_ids must be a non-empty list of document ids")
        if folder is not None:
            if not isinstance(folder, str):
                raise FilterError("folder must be a folder of the corpus such as news/2023")
            if ".." in folder.replace("\\", "/").split("/"):
                raise FilterError(f"folder {folder[:80]!r} leaves the corpus: name a folder inside it")
            folder = folder.strip().strip("/")
            if folder in ("", "."):
                folder = None  # the corpus itself: every document
        f = cls(ids, folder, _date(date_from, "date_from"), _date(date_to, "date_to"))
        return None if f == cls() else f

    @classmethod
    def parse(cls, obj: Mapping[str, Any] | None) -> DocFilter | None:
        """The filter of a JSON object ``{"doc_ids", "folder", "date_from", "date_to"}``."""
        if obj is None:
            return None
        if not isinstance(obj, Mapping):
            raise FilterError('filter must be an object such as {"folder": "news", "date_from": "2023-01-01"}')
        extra = sorted(set(obj) - {"doc_ids", "folder", "date_from", "date_to"})
        if extra:
            raise FilterError(f"filter has no field {extra[0]!r}; its fields are doc_ids, folder, date_from, date_to")
        ids = obj.get("doc_ids")
        if ids is not None and not isinstance(ids, list | tuple):
            raise FilterError("doc_ids must be a list of document ids")
        return cls.make(ids, obj.get("folder"), obj.get("date_from"), obj.get("date_to"))

    def matches(self, doc_id: str, date_iso: str | None) -> bool:
        if self.doc_ids is not None and doc_id not in self.doc_ids:
            return False
        if self.folder is not None and not doc_id.startswith(self.folder + "/"):
            return False
        if self.date_from is not None or self.date_to is not None:
            if not date_iso:
                return False  # "from March" does not include documents whose date nobody knows
            try:
                d = date.fromisoformat(date_iso)
            except ValueError:
                return False
            if (self.date_from and d < self.date_from) or (self.date_to and d > self.date_to):
                return False
        return True

    def matching(self, index: LoadedIndex) -> list[str]:
        """The ids of the documents of ``index`` this filter lets answer, in corpus order."""
        return [d.doc_id for d in index.docs.values() if self.matches(d.doc_id, d.date_iso)]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.doc_ids is not None:
            out["doc_ids"] = list(self.doc_ids)
        if self.folder is not None:
            out["folder"] = self.folder
        if self.date_from is not None:
            out["date_from"] = self.date_from.isoformat()
        if self.date_to is not None:
            out["date_to"] = self.date_to.isoformat()
        return out

    def describe(self) -> str:
        """The filter in a few words, for a person."""
        parts = []
        if self.doc_ids is not None:
            parts.append(f"document {self.doc_ids[0]}" if len(self.doc_ids) == 1 else f"{len(self.doc_ids)} documents")
        if self.folder is not None:
            parts.append(f"folder {self.folder}")
        if self.date_from and self.date_to:
            parts.append(f"dated {self.date_from} to {self.date_to}")
        elif self.date_from:
            parts.append(f"dated from {self.date_from}")
        elif self.date_to:
            parts.append(f"dated up to {self.date_to}")
        return ", ".join(parts)
