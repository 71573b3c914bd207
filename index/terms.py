"""The index's term analyzer: how text is cut into the lower-case stems BM25 counts.

BM25 statistics are computed once, at index time, and stored with the index, so the analyzer
that produced them belongs to the index (``TERMS_VERSION`` is recorded in its meta; a different
analyzer means a rebuild). Questions must be cut the same way: ``qa.analyze`` uses these same
rules for a question's terms (a test holds the two to the same output).
"""

from __future__ import annotations

import re

TERMS_VERSION = "terms-1"

STOPWORDS = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "of", "at", "by", "for", "with", "about", "against", "between", "into", "through", "during", "before", "after", "above", "below", "to", "from", "up", "down", "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here", "there", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no", "nor", "not", "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will", "just", "don", "should", "now", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does", "did", "doing", "i", "me", "my", "we", "our", "you", "your", "he", "him", "his", "she", "her", "it", "its", "they", "them", "their", "what", "which", "who", "whom", "whose", "this", "that", "these", "those", "am", "would", "could", "shall", "may", "might", "must", "also", "as", "per", "via", "when", "where", "why", "how", "whats"]
)

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")
_SUFFIXES = ("ements", "ement", "ments", "ment", "ations", "ation", "ings", "ing", "ies", "ied", "ed", "es", "s")


def stem(word: str) -> str:
    """A light suffix stripper: enough to match flight/flights, announced/announcement."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    for suf in _SUFFIXES:
        if len(w) - len(suf) >= 3 and w.endswith(suf):
            w = w[: -len(suf)]
            if suf in ("ies", "ied"):
                w += "y"
            break
    return w


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


# Stemming is the costly part of indexing terms and words repeat a lot: memoize per word.
_stem_cache: dict[str, str] = {}
_STEM_CACHE_MAX = 500_000


def _stem_cached(word: str) -> str:
    got = _stem_cache.get(word)
    if got is None:
        got = stem(word)
        if len(_stem_cache) < _STEM_CACHE_MAX:
            _stem_cache[word] = got
    return got


def content_terms(text: str) -> list[str]:
    """The stems of ``text``'s words, stopwords and one-letter words left out (digits kept)."""
    return [_stem_cached(t) for t in _TOKEN.findall(text) if t.lower() not in STOPWORDS and len(t) > 1 or t.isdigit()]
