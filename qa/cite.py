"""Citation assembly: a reader's decision in, the answer contract out (``qa.types.Answer``).

The answer is always a quote: the phrase the reader chose inside the top sentence, or for a
"when" question whose sentence holds no date the cited document's own date (said so), or the
whole sentence when no phrase was chosen. A phrase that is only a time relative to the writing
("today") abstains, with a note, for a question asking for a date in a document without one; so
does a person whose title in the sentence names another office than the one asked about: of
another rank (a *deputy* foreign minister for "who is the foreign minister?") or another party's
(Azerbaijan's ambassador to Pakistan for "who is Pakistan's ambassador to Azerbaijan?"). A
question asking for two things ("who led each side") gets its second phrase from the decision's
alternatives, each part cited. The other citations follow in the reader's order, one per sentence.
"""

from __future__ import annotations

import re

from index.loaded import LoadedIndex
from qa.analyze import Question, wants_several
from qa.answer import AnswerStep, Decision
from qa.features import SpanCandidate
from qa.types import Answer, AnswerPart, AnswerSource, Citation

# A question for a calendar date ("On what date was it held?"), and a phrase that names a time only
# relative to when its document was written ("today", "yesterday"): in a document without a date it
# names no date, so it answers no such question.
_ASKS_DATE = re.compile(r"\b(?:what|which)\s+date\b", re.I)
_RELATIVE_ONLY = re.compile(r"(?:today|tonight|yesterday|tomorrow|(?:this|last|next) (?:morning|evening|week|month|year))",
                            re.I)  # fmt: skip

# Offices, and the rank words that make another office of one: a deputy foreign minister is not the
# foreign minister, a vice-chair not the chair, nor the president the vice president. ("Acting",
# "interim", "caretaker" and "former" are left out: an acting or caretaker prime minister is the
# prime minister of the day, and a former one may be what a question in the past asks for.)
_OFFICE = (r"minister|secretary|president|ambassador|governor|director|chairman|chairwoman|chairperson|chair"
           r"|commander|chief|mayor|speaker|premier|chancellor|leader|head|editor|manager|representative|consul"
           r"|envoy|commissioner|attorney|prosecutor|principal|dean|provost|treasurer|captain|coach|officer"
           r"|spokesman|spokeswoman|spokesperson|administrator|general|admiral|marshal|justice|judge")  # fmt: skip
_RANK = r"deputy|vice|assistant|associate|junior|under-|undersecretary"
_RANK_WORD = re.compile(rf"^(?:{_RANK})(?:\b|-)", re.I)
# a word of a title before a name: capitalised ("Deputy Foreign Minister"), or one of the lowercase
# words titles are written with ("the deputy foreign minister")
_TITLE_WORD = (r"(?:(?-i:[A-Z][\w.&-]*)|of|for|foreign|prime|state|general|defence|defense|finance|interior|home"
               r"|chief|executive|deputy|vice|assistant|associate|junior)")  # fmt: skip
_TITLE_BEFORE = re.compile(rf"((?:{_TITLE_WORD}[\s-]+){{0,6}}?({_OFFICE}))\s+$", re.I)
_TITLE_LEADING = re.compile(rf"^((?:{_TITLE_WORD}[\s-]+){{0,6}}?({_OFFICE}))\s+(?-i:[A-Z])", re.I)  # inside the phrase
_TITLE_AFTER = re.compile(rf"^\s*,\s+(?:the\s+|a\s+|an\s+)?((?:[\w'’&.-]+\s+){{0,4}}?({_OFFICE}))\b", re.I)
# the office a question asks the holder of: "Who is/was … <office>" (the first office after the
# verb: "Who was Pakistan's prime minister during President Musharraf's visit?" asks for the prime
# minister), or "Which <office> …" ("Which Azerbaijani minister accompanied …?")
_ASKS_HOLDER = re.compile(r"^\s*(?:who|whom)\s+(?:is|was|are|were|became|becomes|has been|had been|will be|remains|remained"
                          r"|serves as|served as)\s+(?P<rest>.*)", re.I | re.S)  # fmt: skip
_ASKS_WHICH = re.compile(rf"^\s*(?:which|what)\s+(?P<rest>(?:[\w'’-]+\s+){{0,3}}?(?:(?:{_RANK})-)?(?:{_OFFICE})s?\b)", re.I)
_QUESTION_OFFICE = re.compile(rf"((?:[\w'’-]+\s+){{0,3}}?)((?:(?:{_RANK})-)?({_OFFICE}))s?\b", re.I)
_NOT_TITLE = frozenset("the a an who whom which what whose is was are were s of as to did does do and in at".split())


def _ranked(words: list[str]) -> bool:
    return any(_RANK_WORD.match(w) for w in words)


def asked_office(question: str) -> tuple[str, bool, str] | None:
    """The office whose holder the question asks for: (office word, has a rank word, how the
    question says it), or None ("Who is Azerbaijan's deputy foreign minister?" → ("minister", True,
    "deputy foreign minister"))."""
    m = _ASKS_HOLDER.match(question) or _ASKS_WHICH.match(question)
    if m is None:
        return None
    o = _QUESTION_OFFICE.search(m.group("rest"))
    if o is None:
        return None
    kept: list[str] = []
    for w in reversed(o.group(1).split()):
        w = re.sub(r"['’]s$", "", w)
        if w.lower() in _NOT_TITLE or not re.fullmatch(r"[\w-]+", w) or w[:1].isupper() and not _RANK_WORD.match(w):
            break  # "Azerbaijan's", "the": not words of the title
        kept.insert(0, w)
    words = kept + [o.group(2)]
    return o.group(3).lower(), _ranked(words), " ".join(words)


def other_rank(question: str, sentence: str, start: int, end: int) -> tuple[str, str] | None:
    """(the phrase's title in the sentence, the office as the question says it) when the question
    asks for the holder of an office and the title the sentence gives the phrase ``start:end``,
    just before it ("Deputy Foreign Minister Ramiz Hasanov"), at the start of the phrase itself, or
    after it ("Ramiz Hasanov, the deputy foreign minister"), names that office with another rank:
    one has a rank word (deputy, vice, assistant …) and the other does not. None otherwise."""
    asked = asked_office(question)
    found = _phrase_title(sentence, start, end) if asked is not None else None
    if asked is None or found is None:
        return None
    base, m = found
    title, office = re.sub(r"^(?:(?:of|for)\s+)+", "", m.group(1).strip(), flags=re.I), m.group(2).lower()
    if office != asked[0] or _ranked(re.findall(r"[\w-]+", title)) == asked[1]:
        return None
    return title, asked[2]


def _phrase_title(sentence: str, start: int, end: int) -> tuple[int, re.Match[str]] | None:
    """The title the sentence gives the phrase ``start:end``: just before it, at its start, or in
    apposition after it, as (where the searched text starts in ``sentence``, the match: group 1 the
    title, group 2 its office word); None when it gives none."""
    for base, m in ((max(0, start - 80), _TITLE_BEFORE.search(sentence[max(0, start - 80) : start])),
                    (start, _TITLE_LEADING.match(sentence[start:end])),
                    (end, _TITLE_AFTER.match(sentence[end : end + 80]))):  # fmt: skip
        if m is not None:
            return base, m
    return None


# whose office, and towards whom: "Pakistan's ambassador to Azerbaijan", "Ambassador of Azerbaijan to
# Pakistan" (a run of capitalised words; an abbreviation such as "US" is left out: "US" and "United
# States" would look like two parties)
_NAME = r"(?-i:[A-Z][a-z][\w-]*)(?:\s+(?-i:[A-Z][a-z][\w-]*))*"
_POSSESSOR = re.compile(rf"({_NAME})['’]s\s+$")
_OF_TO = re.compile(rf"^s?(?:\s+of\s+(?:the\s+)?(?P<of>{_NAME}))?(?:\s+(?:to|in)\s+(?:the\s+)?(?P<to>{_NAME}))?")


def _parties(text: str, office_start: int, office_end: int) -> tuple[str | None, str | None, int, int]:
    """(whose office, towards whom, where the title with them starts and ends in ``text``) of the
    office word at ``office_start:office_end``: "Pakistan's ambassador to Azerbaijan" → ("Pakistan",
    "Azerbaijan", …)."""
    m = _OF_TO.match(text[office_end:])
    of, to = (m.group("of"), m.group("to")) if m else (None, None)
    end = office_end + (m.end() if m else 0)
    start = office_start
    while True:  # back over the title's words ("Foreign" of "Russia's Foreign Minister")
        w = re.search(r"([\w-]+)\s+$", text[:start])
        if w is None or not re.fullmatch(_TITLE_WORD, w.group(1), re.I) or w.group(1).lower() in ("of", "for"):
            break
        start = w.start(1)
    p = _POSSESSOR.search(text[:start])
    if p is not None:
        start = p.start(1)
        of = of or p.group(1)
    return of, to, start, end


def _same_party(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return a.startswith(b) or b.startswith(a)  # "Pakistan" and "Pakistani"


def other_party(question: str, sentence: str, start: int, end: int) -> tuple[str, str] | None:
    """(the phrase's office as the sentence says it, as the question says it) when the question asks
    for the holder of a party's office ("Who is Pakistan's ambassador to Azerbaijan?") and the title
    the sentence gives the phrase names another party's ("Khazar Farhadov, Ambassador of Azerbaijan
    to Pakistan"): whose office it is, or towards whom, differs. None otherwise."""
    asked = asked_office(question)
    found = _phrase_title(sentence, start, end) if asked is not None else None
    if asked is None or found is None:
        return None
    qo = re.search(rf"\b{re.escape(asked[0])}s?\b", question, re.I)
    if qo is None:
        return None
    base, m = found
    o_start, o_end = base + m.start(2), base + m.end(2)
    if sentence[o_start:o_end].lower() != asked[0]:
        return None
    q_of, q_to, qa, qb = _parties(question, qo.start(), qo.end())
    s_of, s_to, sa, sb = _parties(sentence, o_start, o_end)
    if (q_of and s_of and not _same_party(q_of, s_of)) or (q_to and s_to and not _same_party(q_to, s_to)):
        return sentence[sa:sb], question[qa:qb]
    return None


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


class Citer:
    """Turns decisions into cited answers over one loaded index."""

    def __init__(self, index: LoadedIndex, step: AnswerStep) -> None:
        self.index = index
        self.step = step

    def citation(self, sid: int, score: float, span: tuple[int, int] | None = None) -> Citation:
        doc = self.index.docs[self.index.sent_doc[sid]]
        start, end = int(self.index.sent_start[sid]), int(self.index.sent_end[sid])
        return Citation(
            doc_id=doc.doc_id,
            title=doc.title,
            sentence=doc.text[start:end],
            start=start,
            end=end,
            score=round(float(score), 4),
            answer_start=span[0] if span else None,
            answer_end=span[1] if span else None,
            date=doc.date_iso,
            passage_id=int(self.index.sent_passage[sid]),
            page=self.index.sent_page[sid],
        )

    def answer(
        self,
        question: str,
        q: Question,
        decision: Decision,
        k: int,
        id: str | None,
        *,
        reader: str,
        resolved_question: str | None = None,
    ) -> Answer:
        """The cited answer to ``question`` from ``decision`` (whose ``ranked`` is not empty)."""
        best_sid, best_score = decision.ranked[0]
        answer_text: str | None = None
        note: str | None = None
        parts: tuple[AnswerPart, ...] | None = None
        source: AnswerSource | None = None
        doc_span: tuple[str, int, int] | None = None
        span: tuple[int, int] | None = None
        abstain, confidence = decision.abstain, decision.confidence
        if not abstain and self._undated_relative(q, best_sid, decision.span):
            sp = decision.span
            assert sp is not None
            abstain, confidence = True, 0.0
            phrase = self.index.sent_text[best_sid][sp.start : sp.end]
            note = f'the cited sentence says "{phrase}", and its document gives no date to read that against'
        if not abstain and decision.span is not None:
            sp = decision.span
            text = self.index.sent_text[best_sid]
            other = other_rank(q.text, text, sp.start, sp.end) or other_party(q.text, text, sp.start, sp.end)
            if other is not None:
                abstain, confidence = True, 0.0
                note = (f'the cited sentence gives {text[sp.start : sp.end]} the title "{other[0]}", '
                        f"another office than the one asked about ({other[1]})")  # fmt: skip
        if not abstain:
            doc = self.step.document_date_fallback(q, best_sid, decision.span)
            s0 = int(self.index.sent_start[best_sid])
            if doc is not None:
                answer_text = doc.text[doc.date_start : doc.date_end]
                source = "document_date"
                doc_span = (doc.doc_id, int(doc.date_start), int(doc.date_end))
                note = "the cited sentence gives no date; this is the date the document was written"
            elif decision.span is not None:
                sp = decision.span
                answer_text = self.index.sent_text[best_sid][sp.start : sp.end]
                source = "sentence"
                span = (sp.start, sp.end)
                doc_span = (self.index.sent_doc[best_sid], s0 + sp.start, s0 + sp.end)
            else:
                text = self.index.sent_text[best_sid]
                answer_text, source, span = text, "sentence", (0, len(text))
                doc_span = (self.index.sent_doc[best_sid], s0, s0 + len(text))
        citations = [self.citation(best_sid, best_score, span)]
        second = self._second_part(q, decision) if source == "sentence" and span is not None else None
        if second is not None and span is not None:
            # A question that asks for two things ("which two …", "who led each side"): the second
            # phrase, from its own sentence (cited next) or from the same one.
            sid2, sp2 = second
            if sid2 == best_sid:
                where = [(0, span), (0, (sp2.start, sp2.end))]
            else:
                citations.append(self.citation(sid2, dict(decision.ranked).get(sid2, 0.0), (sp2.start, sp2.end)))
                where = [(0, span), (1, (sp2.start, sp2.end))]
            parts = tuple(AnswerPart(citations[c].sentence[a:b], c, a, b) for c, (a, b) in where)
        cited = {(c.doc_id, c.start) for c in citations}
        for sid, score in decision.ranked[1:]:
            if len(citations) >= k:
                break
            c = self.citation(sid, score)
            if (c.doc_id, c.start) not in cited:
                cited.add((c.doc_id, c.start))
                citations.append(c)
        return Answer(
            question=question,
            answer=answer_text,
            abstained=abstain,
            confidence=confidence,
            citations=tuple(citations),
            id=id,
            answer_source=source,
            answer_doc_id=doc_span[0] if doc_span else None,
            answer_doc_start=doc_span[1] if doc_span else None,
            answer_doc_end=doc_span[2] if doc_span else None,
            expected_type=q.expected,
            resolved_question=resolved_question,
            reader=reader,
            support=round(decision.support, 4),
            answer_note=note,
            answers=parts,
        )

    def _undated_relative(self, q: Question, sid: int, span: SpanCandidate | None) -> bool:
        """Is the phrase a time relative to the writing ("today") asked for a date ("on what date …?")
        in a document that has no date?"""
        if span is None or not _ASKS_DATE.search(q.text):
            return False
        phrase = self.index.sent_text[sid][span.start : span.end].strip()
        return _RELATIVE_ONLY.fullmatch(phrase) is not None and not self.index.docs[self.index.sent_doc[sid]].date_iso

    def _second_part(self, q: Question, decision: Decision) -> tuple[int, SpanCandidate] | None:
        """The second phrase of a question asking for two (or each/both), or None."""
        if not wants_several(q.text) or decision.span is None:
            return None
        first_sid = decision.ranked[0][0]
        first = decision.span
        text = self.index.sent_text
        first_text = _norm(text[first_sid][first.start : first.end])
        kind = first.kind.split(":")[1] if first.kind.startswith("ent:") else None
        for sid, sp, weight in decision.alternatives:
            if sid == first_sid and not (sp.end <= first.start or sp.start >= first.end):
                continue  # overlaps the first phrase
            t = _norm(text[sid][sp.start : sp.end])
            if not t or t == first_text or t in first_text or first_text in t:
                continue
            if kind is not None and sp.kind != f"ent:{kind}":
                continue  # "which two prime ministers": both parts are the same kind of thing
            if weight < 0.02:
                return None
            return sid, sp
        return None

