"""Dateline training pairs: the reader learns when a document's date answers a "when" question.

At question time, a "when" question whose candidate sentence gives no date is read a second time
with the document's date before the sentence, as a news dateline stands before the report
(``qa/reading.py``: "On {date}, {sentence}"); when the reader's phrase is that date, the document's
date is the answer. A reader trained only on SQuAD never saw such an input: it picks the date
whether or not the sentence says what the question asks, so an unanswerable "when" question about
a dated article is answered by its date with high confidence.

This makes the input from SQuAD training questions, in both directions (``how`` ``dateline``):

- *positive*: a "when" question (``qa.analyze``: expected type ``date``) whose answer is a date
  that its gold sentence gives after "in", "on" or "during" ("The bridge opened to traffic in
  1932."): the date and its preposition taken out of the sentence ("The bridge opened to
  traffic.") and put before it as the dateline ("On 1932, The bridge opened to traffic."), the
  answer now the dateline's date. Only when at least four words are left, when the date is not
  the first part of a longer phrase ("the 12th centuries", "1990s-era"), and when
  the sentence then gives no other absolute date (a digit or a month's name: what makes the
  answer step read the dateline at all, ``qa/answer.py``);
- *retrieval negatives*: the same question's retrieval negatives with the same dateline, when they
  give no absolute date either: a dated sentence that does not say what is asked does not answer
  "when", whatever its date;
- *near-miss negatives*: the question's near-misses (``eval/train_reader.py``) asked of the
  dated positive sentence: the dateline does not make a sentence answer a question it does not.

General by construction: any "when" question, any date, no article in mind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from qa.analyze import analyze
from qa.reading import DATELINE  # how the answer step puts a document's date before a sentence

# what makes the answer step read a sentence with its document's date: no absolute date, which a
# sentence gives with a digit or a month's name (the answer step looks inside its DATE entities)
_ABSOLUTE_DATE = re.compile(r"\d|\b(?:Jan(?:uary)?|Feb(?:ruary)?|March|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
                            r"|Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\b")
# a date that modifies a noun after it ("the 11th and 12th centuries") is not a whole date
_DATE_NOUN = re.compile(r"\s*(?:centur|millenni|era\b|period|decade|season|years?\b|'s\b|-)", re.I)
_PREPOSITION = re.compile(r"(?:\b(?:in|on|during)\s+)$", re.I)


def strip_date(sentence: str, start: int, end: int) -> str | None:
    """``sentence`` without the date at ``start:end`` and the preposition before it ("in", "on",
    "during"), with the commas around it mended; None when no preposition introduces it or the
    rest still gives an absolute date."""
    m = _PREPOSITION.search(sentence[:start])
    if m is None or _DATE_NOUN.match(sentence[end:]):
        return None
    a = m.start()
    before, after = sentence[:a], sentence[end:]
    lead = re.search(r",\s*$", before)
    trail = re.match(r"\s*,", after)
    if not before.strip():  # "In 1932, the bridge ..." -> "The bridge ..."
        rest = after[trail.end() :] if trail else after
        rest = rest.lstrip()
        out = rest[:1].upper() + rest[1:]
    elif lead and trail:  # "The bridge, in 1932, opened" -> "The bridge opened"
        out = before[: lead.start()] + " " + after[trail.end() :].lstrip()
    elif lead:  # "opened, in 1932." -> "opened."
        out = before[: lead.start()] + after
    else:  # "opened in 1932, and ..." / "opened in 1932." -> "opened, and ..." / "opened."
        out = before.rstrip() + after
    out = re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"\s{2,}", " ", out)).strip()
    if len(out.split()) < 4 or _ABSOLUTE_DATE.search(out):
        return None
    return out


def is_when(question: str) -> bool:
    return analyze(question).expected == "date"


def dateline_pairs(pairs: list, pair_type) -> Iterator:
    """Dateline pairs (``pair_type``: ``eval.train_reader.Pair``) for the "when" positives of
    ``pairs``, each positive followed by its retrieval negatives (as ``load_pairs`` writes them),
    then its near-misses."""
    groups: list[tuple] = []
    near: dict[tuple[str, tuple[str, ...]], list] = {}
    for p in pairs:
        if p.kind == "pos" and not p.how:
            groups.append((p, []))
        elif p.kind == "retrieval" and not p.how and groups and groups[-1][0].question == p.question:
            groups[-1][1].append(p)
        elif p.kind == "near_miss":
            near.setdefault((p.sentence, p.answers), []).append(p)
    for pos, negs in groups:
        if pos.span is None or not is_when(pos.question):
            continue
        a, b = pos.span
        date = pos.sentence[a:b].strip()
        if not date or not _ABSOLUTE_DATE.search(date):
            continue
        rest = strip_date(pos.sentence, a, b)
        if rest is None:
            continue
        head = f"{DATELINE}{date}, "
        yield pair_type(pos.question, pos.title, head + rest, 1, (len(DATELINE), len(DATELINE) + len(date)), "pos",
                        pos.answers, "dateline")  # fmt: skip
        for n in negs:
            if not _ABSOLUTE_DATE.search(n.sentence):
                yield pair_type(n.question, n.title, head + n.sentence, 0, None, "retrieval", n.answers, "dateline")
        for n in near.get((pos.sentence, pos.answers), []):
            yield pair_type(n.question, n.title, head + rest, 0, None, "near_miss", n.answers, "dateline")
