"""Question analysis: the question's class, the expected answer type and the key terms.

Pure, rule-based and cheap (no NLP model on the asking path): a question is read once into a
``Question``. The class is the wh-form ("who", "when", "how_many", "what_be", …) and, for
"what/which + noun", the head noun ("which *country*", "what *type of* engine" → "engine"),
mapped to a coarse class when it is a common one ("country" → place). The answer step learns
from data which phrases fit which class; ``expected`` is the coarse type used where a rule is
clearer than a weight (a "when" question's answer is a date).

Example::

    >>> q = analyze("Which NFL team represented the AFC at Super Bowl 50?")
    >>> q.qclass, q.head, q.expected
    ('what_n', 'team', 'organization')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One analyzer for questions and the index: BM25 terms stored at index time must match a
# question's terms exactly.
from index.terms import content_terms

_WORD = re.compile(r"[A-Za-z0-9]+")

# Coarse expected types and the spaCy labels that satisfy them.
TYPE_LABELS: dict[str, frozenset[str]] = {
    "date": frozenset({"DATE", "TIME"}),
    "person": frozenset({"PERSON", "ORG", "NORP"}),
    "place": frozenset({"GPE", "LOC", "FAC"}),
    "number": frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT", "NUM", "ORDINAL"}),
    "money": frozenset({"MONEY", "NUM"}),
    "organization": frozenset({"ORG", "NORP"}),
}

# Head nouns of "what/which X" questions, by the coarse type of their answer.
_HEAD_WORDS = {
    "person": "person people man woman leader king queen president minister emperor pope author writer player coach "
    "founder scientist artist composer character actor singer member official ambassador diplomat secretary "
    "spokesperson spokesman expert premier envoy chairman director head",
    "place": "city country place town state region area location continent island river mountain nation county "
    "district province capital venue site building stadium street park lake sea ocean",
    "organization": "company organization organisation group team network party agency university school college "
    "church institution bank club league band forum alliance newspaper outlet",
    "date": "year date day month century decade period time era season",
    "number": "number amount percentage percent population size length distance age",
}
HEAD_CLASS: dict[str, str] = {}
for _cls, _words in _HEAD_WORDS.items():
    for _w in _words.split():
        HEAD_CLASS[_w] = _cls
        HEAD_CLASS[_w[:-1] + "ies" if _w.endswith("y") else _w + ("es" if _w.endswith(("s", "x", "ch")) else "s")] = _cls

_AUX = frozenset("s is was are were did does do has have had can could will would should may might must be been".split())
_PREP = frozenset("of in on at for from to by with about as during after before between into than".split())
_DET = frozenset("the a an this that these those his her their its our your my".split())
_VERBS = frozenset(
    "won became led made said took began held built came went gave wrote found lost beat caused saw left met ran "
    "sent sold bought brought become has make makes cause causes help helps use uses allow allows".split()
)
_GENERIC = frozenset(
    "type kind sort form name part piece types kinds sorts forms names parts group member one ones series version "
    "term word title number amount percentage percent portion".split()
)
_MEASURE = frozenset("number amount percentage percent portion".split())


@dataclass(frozen=True)
class Question:
    text: str
    wh: str  # who / when / where / how many / … / other (coarse, for rules and display)
    expected: str | None  # key of TYPE_LABELS, "clause" for why/how, None when open
    terms: tuple[str, ...]  # content terms (lower-case stems), in question order
    qclass: str = "other"  # fine class: who, when, where, why, how, how_many, what_n, what_be, …
    head: str | None = None  # head noun of a "what/which X" question
    head_class: str | None = None  # HEAD_CLASS of the head noun ("other" when not a common one)


def _head_after(words: list[str], i: int) -> str | None:
    """The head noun of the phrase starting at ``words[i]`` (the words after what/which)."""
    j = i
    phrase: list[str] = []
    while j < len(words) and words[j] not in _AUX and words[j] not in _PREP and len(phrase) < 4:
        if phrase and (words[j] in _VERBS or (words[j].endswith("ed") and len(words[j]) > 4)):
            break
        if words[j] not in _DET:
            phrase.append(words[j])
        j += 1
    if not phrase:
        return None
    head = phrase[-1]
    # "what type of engine" asks for an engine; "what percentage of X" for a percentage.
    if head in _GENERIC and head not in _MEASURE and j < len(words) and words[j] == "of":
        k = j + 1
        sub: list[str] = []
        while k < len(words) and words[k] not in _AUX and words[k] not in _PREP and len(sub) < 4:
            if words[k] not in _DET:
                sub.append(words[k])
            k += 1
        if sub:
            head = sub[-1]
    return head


_SEVERAL = re.compile(r"\b(?:two|both|each|three)\b", re.I)


def wants_several(question: str) -> bool:
    """Does the question ask for more than one thing ("which two …", "both", "each side")?"""
    return bool(_SEVERAL.search(question))


def question_class(question: str) -> tuple[str, str | None]:
    """(class, head noun or None) of a question; see the module docstring."""
    words = [w.lower() for w in _WORD.findall(question)]
    low = " ".join(words)
    m = re.search(r"\bhow (many|much|long|old|far|big|large|tall|often|few)\b", low)
    if m:
        return "how_" + m.group(1), None
    if words and words[0] in ("name", "list", "identify", "give"):
        return "what_n", _head_after(words, 1)
    wh = [(i, w) for i, w in enumerate(words) if w in ("when", "where", "why", "who", "whom", "whose", "what", "which")]
    if wh and wh[0][1] not in ("what", "which"):
        w = wh[0][1]
        return ("who" if w in ("whom", "whose") else w), None
    if wh:
        i = wh[0][0]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if nxt in _AUX:
            if nxt in ("did", "does", "do") and {"do", "doing", "done"} & set(words[i + 2 :]):
                return "what_do", None
            rest = words[i + 2 :]
            if nxt in ("is", "was", "are", "were", "s") and rest[:1] == ["the"] and rest[1:3] in (["name", "of"], ["names", "of"]):
                return "what_n", _head_after(words, i + 5)
            return "what_" + ("be" if nxt in ("is", "was", "are", "were", "be", "been", "s") else "aux"), None
        head = _head_after(words, i + 1)
        return ("what_n", head) if head else ("what", None)
    if re.search(r"\bhow\b", low):
        return "how", None
    return "other", None


_EXPECTED_BY_CLASS = {
    "who": "person",
    "when": "date",
    "where": "place",
    "why": "clause",
    "how": "clause",
    "how_many": "number",
    "how_much": "number",
    "how_long": "number",
    "how_old": "number",
    "how_far": "number",
    "how_big": "number",
    "how_large": "number",
    "how_tall": "number",
    "how_often": "number",
    "how_few": "number",
}
_WH_NAME = {"what_n": "what", "what_be": "what", "what_aux": "what", "what_do": "what"}


def analyze(question: str) -> Question:
    q = question.strip()
    qclass, head = question_class(q)
    head_class = HEAD_CLASS.get(head, "other") if head else None
    expected = _EXPECTED_BY_CLASS.get(qclass)
    if qclass == "how_much" and re.search(r"\b(cost|worth|pay|paid|spend|spent|price|money|fund|budget)", q.lower()):
        expected = "money"
    if qclass == "what_n" and head_class in ("person", "place", "organization", "date", "number"):
        expected = head_class
    wh = qclass.replace("_", " ") if qclass.startswith("how_") else _WH_NAME.get(qclass, qclass)
    terms = tuple(dict.fromkeys(content_terms(q)))
    return Question(text=q, wh=wh, expected=expected, terms=terms, qclass=qclass, head=head, head_class=head_class)
