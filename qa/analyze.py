"""Question analysis: the expected answer type and the question's key terms. Pure and cheap."""

from __future__ import annotations

import re
from dataclasses import dataclass

STOPWORDS = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "of", "at", "by", "for", "with", "about", "against", "between", "into", "through", "during", "before", "after", "above", "below", "to", "from", "up", "down", "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here", "there", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no", "nor", "not", "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will", "just", "don", "should", "now", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does", "did", "doing", "i", "me", "my", "we", "our", "you", "your", "he", "him", "his", "she", "her", "it", "its", "they", "them", "their", "what", "which", "who", "whom", "whose", "this", "that", "these", "those", "am", "would", "could", "shall", "may", "might", "must", "also", "as", "per", "via", "when", "where", "why", "how", "whats"]
)

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")

# Expected answer types and the spaCy labels that satisfy them.
TYPE_LABELS: dict[str, frozenset[str]] = {
    "date": frozenset({"DATE", "TIME"}),
    "person": frozenset({"PERSON", "ORG", "NORP"}),
    "place": frozenset({"GPE", "LOC", "FAC"}),
    "number": frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT", "NUM", "ORDINAL"}),
    "money": frozenset({"MONEY", "NUM"}),
    "percent": frozenset({"PERCENT", "NUM"}),
    "organization": frozenset({"ORG", "NORP"}),
    "entity": frozenset({"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "PRODUCT", "WORK_OF_ART", "LAW", "LANGUAGE"}),
}

_HEAD_NOUN_TYPES = {
    "date": {"year", "date", "day", "month", "time", "century", "decade", "period", "era"},
    "person": {"person", "leader", "minister", "president", "secretary", "official", "ambassador", "man",
               "woman", "spokesperson", "spokesman", "diplomat", "expert", "author", "head", "king",
               "queen", "player", "coach", "founder", "chairman", "director", "premier", "envoy"},
    "place": {"city", "country", "place", "town", "capital", "region", "state", "location", "nation",
              "venue", "province", "district", "continent", "river", "island"},
    "organization": {"organization", "organisation", "company", "group", "party", "agency", "team",
                     "body", "institution", "bank", "university", "forum", "alliance", "newspaper", "outlet"},
    "number": {"number", "amount", "percentage", "population", "count", "total"},
}


@dataclass(frozen=True)
class Question:
    text: str
    wh: str  # who / when / where / how many / … / other
    expected: str | None  # key of TYPE_LABELS, "clause" for why/how, None when open
    terms: tuple[str, ...]  # content terms (lower-case stems), in question order


def stem(word: str) -> str:
    """A light suffix stripper: enough to match flight/flights, announced/announcement."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    for suf in ("ements", "ement", "ments", "ment", "ations", "ation", "ings", "ing", "ies", "ied", "ed", "es", "s"):
        if len(w) - len(suf) >= 3 and w.endswith(suf):
            w = w[: -len(suf)]
            if suf in ("ies", "ied"):
                w += "y"
            break
    return w


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def content_terms(text: str) -> list[str]:
    return [stem(t) for t in tokenize(text) if t.lower() not in STOPWORDS and len(t) > 1 or t.isdigit()]


def analyze(question: str) -> Question:
    q = question.strip()
    low = q.lower()
    words = [w.lower() for w in tokenize(q)]
    wh = "other"
    expected: str | None = None
    if re.search(r"\bhow (many|much)\b", low):
        wh = "how many"
        expected = "money" if re.search(r"\bhow much\b.*\b(cost|worth|pay|paid|spend|spent|price|money|fund|budget)", low) else "number"
        if re.search(r"\bhow much\b", low) and re.search(r"\b(trade|volume|percent|%)\b", low):
            expected = "number"
    elif re.search(r"\bhow (long|old)\b", low):
        wh, expected = "how long", "number"
    elif re.search(r"\b(when|what year|what date|what day|what month|which year|which date|what time)\b", low):
        wh, expected = "when", "date"
    elif re.search(r"\bwhere\b", low):
        wh, expected = "where", "place"
    elif re.search(r"\b(who|whom|whose)\b", low):
        wh, expected = "who", "person"
    elif re.search(r"\b(why)\b", low):
        wh, expected = "why", "clause"
    elif re.search(r"\bhow\b", low):
        wh, expected = "how", "clause"
    else:
        m = re.search(r"\b(which|what)\s+(?:\w+\s+){0,2}?(\w+)\b", low)
        if m:
            wh = m.group(1)
            head = stem(m.group(2))
            for typ, nouns in _HEAD_NOUN_TYPES.items():
                if head in {stem(n) for n in nouns}:
                    expected = typ
                    break
        elif words and words[0] in {"name", "list", "identify"}:
            wh = words[0]
    terms = tuple(dict.fromkeys(t for t in content_terms(q)))
    return Question(text=q, wh=wh, expected=expected, terms=terms)
