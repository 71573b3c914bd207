"""Question analysis: classes, head nouns, expected answer types and key terms."""

from __future__ import annotations

import pytest

from qa.analyze import analyze, question_class


@pytest.mark.parametrize(
    ("question", "qclass", "head", "expected"),
    [
        ("when were direct AZAL flights announced", "when", None, "date"),
        ("Who led the Pakistan side?", "who", None, "person"),
        ("Whose support did the Foreign Secretary recognise?", "who", None, "person"),
        ("Where was the ECO summit held?", "where", None, "place"),
        ("How many Kashmiris were killed?", "how_many", None, "number"),
        ("How much did the stadium cost?", "how_much", None, "money"),
        ("How long did the visit last?", "how_long", None, "number"),
        ("Why did the two sides meet?", "why", None, "clause"),
        ("How were the consultations conducted?", "how", None, "clause"),
        ("Which NFL team represented the AFC at Super Bowl 50?", "what_n", "team", "organization"),
        ("In what year did the film mention the regenerations?", "what_n", "year", "date"),
        ("What is the name of the stadium?", "what_n", "stadium", "place"),
        ("What kind of engines did the biplane design have?", "what_n", "engines", None),
        ("What percentage of people voted?", "what_n", "percentage", "number"),
        ("What is the CJEU's duty?", "what_be", None, None),
        ("What did Luther do after the diet?", "what_do", None, None),
        ("What would a teacher do for someone who is cocky?", "what_aux", None, None),
        ("Name the two Pakistani foreign secretaries who held talks.", "what_n", "secretaries", "person"),
    ],
)
def test_question_classes(question: str, qclass: str, head: str | None, expected: str | None) -> None:
    q = analyze(question)
    assert (q.qclass, q.head, q.expected) == (qclass, head, expected)


def test_the_first_wh_word_decides_not_a_relative_pronoun() -> None:
    assert question_class("In 1517 who was Luther's bishop?") == ("who", None)
    assert question_class("What would a teacher do for someone who is cocky?")[0] == "what_aux"


def test_terms_are_stemmed_content_words_in_order() -> None:
    q = analyze("When were the direct AZAL flights announced?")
    assert q.terms == ("direct", "azal", "flight", "announc")
    assert q.wh == "when"
