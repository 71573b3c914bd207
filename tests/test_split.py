"""The splitter: exact offsets for any input, and sensible sentences on news text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from index.split import approx_tokens, make_passages, split_sentences


def texts(s: str) -> list[str]:
    return [s[x.start : x.end] for x in split_sentences(s)]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_offsets_point_at_their_text_for_any_input(text: str) -> None:
    spans = split_sentences(text)
    prev_end = 0
    for sp in spans:
        sent = text[sp.start : sp.end]
        assert sent and sent == sent.strip()
        assert sp.start >= prev_end  # ordered, non-overlapping
        prev_end = sp.end
    # Nothing but whitespace is left out.
    covered = set()
    for sp in spans:
        covered.update(range(sp.start, sp.end))
    assert all(text[i].isspace() for i in range(len(text)) if i not in covered)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["Dr. Khan met U.S. officials.", "He said: \u201cYes.\u201d", "Headline without stop",
                                 "Islamabad, 13 April 2023 (TDI): talks began.", "\n", "  ", "Why? Because.", "e.g. this"]),
                max_size=30))
def test_offsets_and_passages_on_sentence_soup(parts: list[str]) -> None:
    text = " ".join(parts)
    spans = split_sentences(text)
    for sp in spans:
        assert text[sp.start : sp.end] == text[sp.start : sp.end].strip() != ""
    passages = make_passages(text, spans)
    covered = set()
    for p in passages:
        assert text[p.start : p.end].startswith(text[spans[p.first].start : spans[p.first].end])
        covered.update(range(p.first, p.last + 1))
    assert covered == set(range(len(spans)))


def test_abbreviations_do_not_end_sentences() -> None:
    s = "EDnews's interviewer is Dr. Mehmood Ul Hassan Khan of the U.S. office. He spoke at 5 p.m. today. Then he left."
    assert texts(s) == [
        "EDnews's interviewer is Dr. Mehmood Ul Hassan Khan of the U.S. office.",
        "He spoke at 5 p.m. today.",
        "Then he left.",
    ]


def test_dateline_colon_and_headlines() -> None:
    s = "Pakistan and Azerbaijan hold talks\n\nIslamabad, 13 April 2023 (TDI): Asad Majeed Khan met the envoy. They talked.\nNews line\n"
    assert texts(s) == [
        "Pakistan and Azerbaijan hold talks",
        "Islamabad, 13 April 2023 (TDI): Asad Majeed Khan met the envoy.",
        "They talked.",
        "News line",
    ]


def test_quotes_stay_with_their_sentence() -> None:
    s = '"Together, we address global issues," PM Kakar said. \u201cIt is good.\u201d He left.'
    assert texts(s) == ['"Together, we address global issues," PM Kakar said.', "\u201cIt is good.\u201d", "He left."]


def test_passages_fit_the_encoder_budget() -> None:
    sent = "The two sides reviewed the full spectrum of bilateral relations in many fields. "
    text = sent * 40
    spans = split_sentences(text)
    passages = make_passages(text, spans, max_tokens=200)
    assert len(passages) > 1
    for p in passages:
        assert approx_tokens(text[p.start : p.end]) <= 200 + 2 * (p.last - p.first + 1)
    # Windows overlap: consecutive passages share a sentence.
    assert all(b.first <= a.last for a, b in zip(passages, passages[1:], strict=False))
