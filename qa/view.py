"""How an answer is shown: its confidence level, the answer phrase and where to highlight it.

Computed once, here, from the answer contract (``qa.types.Answer``), and read by every place
that shows an answer: the CLI's human output, the server-rendered chat page and, through the
``view`` field of ``POST /api/ask``, the chat's JavaScript (``web/static/chat.js``).

Example::

    >>> from qa.filters import DocFilter
from qa.types import Answer, Citation
    >>> c = Citation("a.txt", "A", "Flights start in May.", 0, 21, 0.9, answer_start=17, answer_end=20)
    >>> v = answer_view(Answer("when do flights start", "May", False, 0.9, (c,)))
    >>> v.level, v.phrase, v.marks
    ('high', 'May', (((17, 20),),))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from qa.filters import DocFilter
from qa.types import Answer

Level = Literal["high", "medium", "low"]

# Confidence cues: the engine abstains below its threshold, so "low" is an answer the user should check.
CONFIDENCE_LEVELS: tuple[tuple[float, Level], ...] = ((0.85, "high"), (0.65, "medium"), (0.0, "low"))
ANSWER_JOIN = " · "  # between the parts of a two-part answer ("Foreign Secretary Sohail Mahmood · Ramiz Hasanov")

Span = tuple[int, int]


@dataclass(frozen=True)
class AnswerView:
    """``level``: the confidence cue; ``phrase``: the answer as shown (both parts of a two-part
    answer), None when abstaining; ``marks[i]``: sorted, non-overlapping (start, end) spans to
    highlight in ``citations[i].sentence`` (one tuple per citation, empty when nothing is marked)."""

    level: Level
    phrase: str | None
    marks: tuple[tuple[Span, ...], ...]
    within: str | None = None  # the active filter in a few words ("folder news, dated from 2023-06-01")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"level": self.level, "phrase": self.phrase,
                               "marks": [[list(s) for s in m] for m in self.marks]}
        if self.within is not None:
            out["within"] = self.within
        return out


def confidence_level(conf: float) -> Level:
    return next(name for floor, name in CONFIDENCE_LEVELS if conf >= floor)


def answer_marks(ans: Answer) -> tuple[tuple[Span, ...], ...]:
    """Where to highlight the answer, per citation. A two-part answer marks each part in its own
    citation (both in one sentence when they share it); otherwise the first citation's answer span.
    Offsets that do not fit their sentence are skipped."""
    cits = ans.citations
    marks: list[list[Span]] = [[] for _ in cits]
    if ans.abstained or not cits:
        return tuple(tuple(m) for m in marks)

    def fits(i: int, a: int | None, b: int | None) -> bool:
        return a is not None and b is not None and 0 <= i < len(cits) and 0 <= a < b <= len(cits[i].sentence)

    spans: list[tuple[int, int, int]] = []
    if ans.answers is not None and len(ans.answers) > 1:
        spans = [
            (p.citation, p.answer_start, p.answer_end)
            for p in ans.answers
            if fits(p.citation, p.answer_start, p.answer_end)
        ]
    first = cits[0]
    if (
        not spans
        and first.answer_start is not None
        and first.answer_end is not None
        and fits(0, first.answer_start, first.answer_end)
    ):
        spans = [(0, first.answer_start, first.answer_end)]
    for i, a, b in sorted(spans):
        kept = marks[i]
        if not kept or a >= kept[-1][1]:
            kept.append((a, b))
    return tuple(tuple(m) for m in marks)


def answer_phrase(ans: Answer) -> str | None:
    """The answer as shown: both parts of a two-part answer, else the answer phrase."""
    parts = ans.answers
    if not ans.abstained and parts is not None and len(parts) > 1 and all(p.text for p in parts):
        return ANSWER_JOIN.join(p.text for p in parts)
    return ans.answer


def answer_view(ans: Answer) -> AnswerView:
    # The level of the confidence as the contract states it (rounded), so every reader of the JSON agrees.
    within = None
    if ans.filter is not None:
        active = DocFilter.parse(ans.filter)
        within = active.describe() if active is not None else None
    return AnswerView(confidence_level(round(float(ans.confidence), 4)), answer_phrase(ans), answer_marks(ans), within)
