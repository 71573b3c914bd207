"""Synthetic documents that exactly one question finds: what the soak benchmark uploads, replaces
and deletes, and what the live-update fault tests upload, each checked by its own question."""

from __future__ import annotations

from dataclasses import dataclass

PLACES = [
    "Quillon",
    "Brasvik",
    "Tormelund",
    "Ardquay",
    "Velmora",
    "Kestrand",
    "Olvenby",
    "Drummock",
    "Pellinor",
    "Saxholt",
    "Gildercombe",
    "Harrowgate",
    "Ivelstrand",
    "Jorvale",
    "Kelderwick",
    "Lunmoor",
    "Marrowby",
    "Norrick",
    "Orlanby",
    "Pendlewick",
]
KINDS = ["Bay", "Ford", "Marsh", "Point", "Hollow"]
FIRST = ["Ingrid", "Magnus", "Tove", "Anselm", "Petra", "Oskar", "Linnea", "Bertil", "Maja", "Eero", "Greta", "Hakon"]
LAST = [
    "Solberg",
    "Halvorsen",
    "Lindqvist",
    "Roskilde",
    "Varga",
    "Okafor",
    "Brennan",
    "Takeda",
    "Moreau",
    "Castell",
    "Nyberg",
    "Ferreira",
    "Adeyemi",
]


@dataclass(frozen=True)
class SyntheticDoc:
    """A small document with one fact only it states, and the question that asks for it."""

    doc_id: str
    text: str
    question: str
    person: str  # the answer; a new version names someone else


def synthetic_doc(n: int, version: int = 0) -> SyntheticDoc:
    """Document ``n`` (its place is unique among the first 100), in its ``version``."""
    place = f"{PLACES[n % len(PLACES)]} {KINDS[n // len(PLACES) % len(KINDS)]}"
    k = n * 5 + version * 7
    person = f"{FIRST[k % len(FIRST)]} {LAST[(k // len(FIRST) + n) % len(LAST)]}"
    text = (
        f"{place} depot notes\n\n{place}, 12 March 2024: The {place} depot is managed by {person}. "
        f"The depot stores {100 + n * 3 + version} crates of tea for the northern routes.\n"
    )
    return SyntheticDoc(f"depot-{n:05d}.txt", text, f"Who manages the {place} depot?", person)


def finds_it(answer: dict, doc: SyntheticDoc) -> bool:
    """The document's own question finds it, in this version: an answer (not an abstention) whose
    first citation is its sentence naming this version's person."""
    cits = answer.get("citations") or []
    return (
        not answer.get("abstained")
        and bool(cits)
        and cits[0].get("doc_id") == doc.doc_id
        and doc.person in cits[0].get("sentence", "")
    )


def answers_it(answer: dict, doc: SyntheticDoc) -> bool:
    """``finds_it``, and the answer phrase is (part of) the person's name: spaCy tags "Tove Roskilde"
    whole, or now and then only "Tove". That is the answer step's quality, not the index's."""
    words = set((answer.get("answer") or "").split())
    return finds_it(answer, doc) and bool(words) and words <= set(doc.person.split())
