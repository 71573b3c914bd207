"""Follow-up questions: "and who led Azerbaijan's side?" or "when was that?" right after an answer.

A follow-up leans on the previous turn: a pronoun or an elided subject ("that", "it", "and who
…?") whose meaning is in the question just asked. ``resolve`` decides whether a question is a
follow-up and, if so, what to search for: the new question's own words plus the previous
question's, while the *kind* of answer still comes from the new question ("when was that?" asks
for a date). The previous turn's cited document stays among the candidates, and its answer is not
given again as the answer to the follow-up.

Example::

    >>> r = resolve("and who led Azerbaijan's side?", Previous("Who led the Pakistan side?", "000.txt"))
    >>> r.is_follow_up, r.search_text
    (True, "Who led the Pakistan side? and who led Azerbaijan's side?")
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.analyze import content_terms

_OPENERS = re.compile(r"^\s*(?:and|but|also|so|then|what about|how about|and what about)\b", re.I)
_ANAPHORA = frozenset(
    "that this it its they them their he him his she her there then those these such same".split()
)
_WORD = re.compile(r"[A-Za-z']+")
MAX_PREVIOUS_CHARS = 1000


@dataclass(frozen=True)
class Previous:
    """The turn before: its question, the document its answer cited, and that answer."""

    question: str
    doc_id: str | None = None
    answer: str | None = None


@dataclass(frozen=True)
class Resolved:
    is_follow_up: bool
    search_text: str  # what retrieval and the dense vector see
    previous: Previous | None


def is_follow_up(question: str) -> bool:
    """A question that cannot stand alone: it opens with "and …" / "what about …", or it refers
    back ("that", "it", "he", …) and names little of its own."""
    if _OPENERS.match(question):
        return True
    words = [w.lower().strip("'") for w in _WORD.findall(question)]
    refers_back = any(w in _ANAPHORA for w in words)
    return refers_back and len(content_terms(question)) <= 3


def resolve(question: str, previous: Previous | None) -> Resolved:
    if previous is None or not previous.question.strip() or not is_follow_up(question):
        return Resolved(False, question, None)
    prev = previous.question.strip()[:MAX_PREVIOUS_CHARS]
    return Resolved(True, f"{prev} {question.strip()}", previous)
