"""The answer step on the demo corpus: phrases, dates, two-part answers, follow-ups, abstention."""

from __future__ import annotations

import numpy as np
import pytest

from eval.gold import DEMO_GOLD, load_gold
from index.annotate import Parse, Token
from qa.analyze import analyze
from qa.features import SPAN_FEATURES, span_candidates, span_features
from qa.followup import Previous, is_follow_up, resolve


def test_answer_phrases_are_quotes_of_the_top_citation(engine) -> None:
    """Every answer of the gold set is its top citation's text at answer_start:answer_end (or the
    cited document's own date, located in the document)."""
    for item in load_gold(DEMO_GOLD):
        a = engine.ask(item.question).to_dict()
        if a["abstained"]:
            assert a["answer"] is None
            continue
        top = a["citations"][0]
        if a["answer_source"] == "document_date":
            text = engine.index.docs[a["answer_doc_id"]].text
            assert text[a["answer_doc_start"] : a["answer_doc_end"]] == a["answer"]
        else:
            assert top["sentence"][top["answer_start"] : top["answer_end"]] == a["answer"]
            doc = engine.index.docs[a["answer_doc_id"]].text
            assert doc[a["answer_doc_start"] : a["answer_doc_end"]] == a["answer"]
        for part in a.get("answers") or []:
            c = a["citations"][part["citation"]]
            assert c["sentence"][part["answer_start"] : part["answer_end"]] == part["text"]


def test_when_without_a_date_in_the_sentence_falls_back_to_the_document_date(engine) -> None:
    a = engine.ask("when were direct AZAL flights announced").to_dict()
    assert not a["abstained"]
    assert a["citations"][0]["doc_id"].startswith("003_")
    assert "AZAL" in a["citations"][0]["sentence"]
    assert a["answer"] == "November 9, 2023"
    assert a["answer_source"] == "document_date"
    assert a["answer_note"]


def test_the_document_date_answers_only_for_a_document_that_reports_at_its_date(engine) -> None:
    """A news report that says "on Thursday" dates its events by its own date; an interview dated the
    day it was published (the demo's 002, no time relative to its writing in its first sentences)
    speaks of other times, but for a sentence of its own that says "today"."""
    from qa.answer import _AT_WRITING

    step = engine.answerer
    q = analyze("When did it happen?")
    by_doc = {doc_id[:3]: sids for doc_id, sids in engine.index.doc_sentences.items()}
    news = [step.document_date_fallback(q, s, None) for s in by_doc["003"]]
    assert any(d is not None and d.doc_id.startswith("003_") for d in news)
    assert engine.index.docs[next(iter(d for d in engine.index.docs if d.startswith("002_")))].date_iso
    interview = [s for s in by_doc["002"] if not _AT_WRITING.search(engine.index.sent_text[s])]
    assert len(interview) > 20 and all(step.document_date_fallback(q, s, None) is None for s in interview)
    today = [s for s in by_doc["002"] if s not in interview]  # "Today EDnews will talk about …"
    assert today and all(step.document_date_fallback(q, s, None) is not None for s in today)
    assert all(step.document_date_fallback(analyze("Who met Aliyev?"), s, None) is None for s in by_doc["003"])
    a = engine.ask("When was the Center for South Asia & International Studies founded?").to_dict()
    assert a["answer_source"] != "document_date"


@pytest.mark.parametrize("question", ["When will it happen?", "When is the meeting to be held?",
                                      "When is the vote scheduled to take place?", "When are the talks expected to resume?"])
def test_a_question_about_what_will_happen_is_not_answered_by_the_date_of_writing(engine, question) -> None:
    """The news report (003) dates what it reports by its own date; what is to come happens later."""
    step = engine.answerer
    sids = next(s for d, s in engine.index.doc_sentences.items() if d.startswith("003_"))
    dated = [s for s in sids if step.document_date_fallback(analyze("When did it happen?"), s, None) is not None]
    assert dated and all(step.document_date_fallback(analyze(question), s, None) is None for s in dated)


def test_today_in_a_document_without_a_date_answers_no_question_for_a_date(engine) -> None:
    """The demo's 000 has no date: its "held in a virtual mode today" names no date to a user."""
    undated = "On what date was the second round of Pakistan-Azerbaijan Bilateral Political Consultations held?"
    a = engine.ask(undated).to_dict()
    assert a["abstained"] and a["answer"] is None and a["confidence"] == 0.0
    assert '"today"' in a["answer_note"] and "no date" in a["answer_note"]
    assert a["citations"][0]["sentence"].endswith("in a virtual mode today.")  # the nearest sentence still cited
    when = engine.ask("When was the second round of Pakistan-Azerbaijan Bilateral Political Consultations held?")
    assert "no date to read" not in (when.answer_note or "")  # "when" may be answered "today": a quote, not a date
    dated = engine.ask("On what date were direct AZAL flights announced?").to_dict()  # a dated report's "today"
    assert not dated["abstained"] and dated["answer_source"] == "document_date"


@pytest.mark.parametrize(("question", "sentence", "phrase", "expected"), [
    ("Who is Azerbaijan's foreign minister?",
     "Deputy Foreign Minister Ramiz Hasanov headed the Azerbaijan delegation.", "Ramiz Hasanov",
     ("Deputy Foreign Minister", "foreign minister")),
    ("Who is Azerbaijan's foreign minister?",
     "Ramiz Hasanov, the deputy foreign minister of Azerbaijan, arrived on Friday.", "Ramiz Hasanov",
     ("deputy foreign minister", "foreign minister")),
    ("Who was the first chair of the IPCC?", "In 1988 the IPCC was led by his vice-Chair Ismail El Gizouli.",
     "Ismail El Gizouli", ("vice-Chair", "first chair")),
    ("Who was the vice president in 1962?", "In 1962 students occupied the office of President George Beadle.",
     "George Beadle", ("President", "vice president")),
    ("Which minister accompanied President Aliyev?", "He was joined by Assistant Minister Ali Khan.", "Ali Khan",
     ("Assistant Minister", "minister")),
    ("Who is Azerbaijan's foreign minister?", "Deputy Foreign Minister Ramiz Hasanov headed the delegation.",
     "Deputy Foreign Minister Ramiz Hasanov", ("Deputy Foreign Minister", "foreign minister")),  # the phrase's own title
    # the same rank, or a rank word the question also has: the office asked about
    ("Who is Azerbaijan's deputy foreign minister?",
     "Deputy Foreign Minister Ramiz Hasanov headed the Azerbaijan delegation.", "Ramiz Hasanov", None),
    ("Who is Pakistan's foreign secretary?", "The Pakistan side was led by Foreign Secretary Sohail Mahmood.",
     "Sohail Mahmood", None),
    # acting, caretaker and former are not another office; a question not asking for an office holder
    ("Who was Pakistan's prime minister in 2023?", "Caretaker Prime Minister Anwaar-ul-Haq Kakar met Aliyev.",
     "Anwaar-ul-Haq Kakar", None),
    ("Whom did Vice President Pence meet in Paris?", "Vice President Pence met President Macron.", "Macron", None),
    ("Who led the Norse?", "The Normans came under their leader Rollo.", "Rollo", None),
])  # fmt: skip
def test_a_title_of_another_rank_than_the_office_asked_about_is_found(question, sentence, phrase, expected) -> None:
    from qa.cite import other_rank

    a = sentence.index(phrase)
    assert other_rank(question, sentence, a, a + len(phrase)) == expected


_FARHADOV = "Asad Majeed Khan met with Khazar Farhadov, Ambassador of Azerbaijan to Pakistan, on Monday."


@pytest.mark.parametrize(("question", "sentence", "phrase", "expected"), [
    ("Who is Pakistan's ambassador to Azerbaijan?", _FARHADOV, "Khazar Farhadov",
     ("Ambassador of Azerbaijan to Pakistan", "Pakistan's ambassador to Azerbaijan")),  # the other way round
    ("Who is Russia's ambassador to Pakistan?", _FARHADOV, "Khazar Farhadov",
     ("Ambassador of Azerbaijan to Pakistan", "Russia's ambassador to Pakistan")),  # another country's
    ("Who is Pakistan's foreign minister?", "Russia's Foreign Minister Sergey Lavrov arrived on Friday.",
     "Sergey Lavrov", ("Russia's Foreign Minister", "Pakistan's foreign minister")),
    ("Who was the President of France?", "Barack Obama, President of the United States, arrived.", "Barack Obama",
     ("President of the United States", "President of France")),
    # the same parties, or one side does not say whose office it is
    ("Who is Azerbaijan's ambassador to Pakistan?", _FARHADOV, "Khazar Farhadov", None),
    ("Who is the ambassador of Azerbaijan to Pakistan?", _FARHADOV, "Khazar Farhadov", None),
    ("Who is the ambassador to Pakistan?", _FARHADOV, "Khazar Farhadov", None),
    ("Who is Russia's foreign minister?", "Russia's Foreign Minister Sergey Lavrov arrived on Friday.",
     "Sergey Lavrov", None),
    ("Who was the President of the US?", "Barack Obama, President of the United States, arrived.", "Barack Obama",
     None),  # an abbreviation is not compared: "US" and "United States" are one party
])  # fmt: skip
def test_a_title_of_another_partys_office_is_found(question, sentence, phrase, expected) -> None:
    from qa.cite import other_party

    a = sentence.index(phrase)
    assert other_party(question, sentence, a, a + len(phrase)) == expected


def test_the_ambassador_of_the_other_country_is_no_answer(engine) -> None:
    a = engine.ask("Who is Pakistan's ambassador to Azerbaijan?").to_dict()
    assert a["abstained"] and a["answer"] is None  # it was "Khazar Farhadov" at 0.96


def test_a_deputy_is_no_answer_to_who_holds_the_office(engine) -> None:
    """"Who is Azerbaijan's foreign minister?" is not answered by the deputy foreign minister: the
    answer abstains with confidence 0, cites the sentence, and says why."""
    from qa.answer import Decision
    from qa.features import SpanCandidate

    text = engine.index.sent_text
    sid = next(i for i in range(len(text)) if "Deputy Foreign Minister Ramiz Hasanov" in text[i])
    a = text[sid].index("Ramiz Hasanov")
    decision = Decision([(sid, 0.9)], SpanCandidate(a, a + len("Ramiz Hasanov"), 0, 0, "neural"), 0.82, False,
                        np.zeros(3))  # what the reader decided (0.82) before this rule
    question = "Who is Azerbaijan's foreign minister?"
    got = engine.citer.answer(question, analyze(question), decision, 3, None, reader="neural").to_dict()
    assert got["abstained"] and got["answer"] is None and got["confidence"] == 0.0
    assert got["answer_note"] == ('the cited sentence gives Ramiz Hasanov the title "Deputy Foreign Minister", '
                                  "another office than the one asked about (foreign minister)")  # fmt: skip
    assert got["citations"][0]["sentence"] == text[sid]
    asked = engine.ask(question)
    assert asked.abstained and asked.answer is None  # and so does the whole question path


def test_a_question_for_the_day_of_the_week_gets_the_weekday_not_the_document_date(engine) -> None:
    a = engine.ask("What day of the week was Kakar's meeting with President Aliyev held?").to_dict()
    assert a["answer_source"] == "sentence" and a["answer"] == "Thursday"
    assert engine.ask("When was Kakar's meeting with President Aliyev held?").answer_source == "document_date"


def test_a_document_date_answer_is_as_sure_as_the_reader_is_of_that_date(engine) -> None:
    """The reader reads "On <date>, <sentence>"; when its phrase is that date, the reading (and so the
    confidence's phrase score and type) is the date's, not a phrase of the sentence that is not the answer."""
    from qa.analyze import TYPE_LABELS

    question = "when were direct AZAL flights announced"
    q = analyze(question)
    reader = engine.reader_named("neural")
    read = reader.read_candidates(q, engine.answerer.gather(q, engine.question_vectors(question)))
    top = read.readings[0]
    assert top.document_date and top.phrase == "November 9, 2023" and top.start == top.end == 0
    assert read.expected == TYPE_LABELS["date"]
    decision = reader.decide(read)
    assert decision.span is None and decision.features[-1] == 1.0  # the phrase is typed: a date
    assert not decision.abstain and decision.confidence > 0.5


@pytest.mark.parametrize("question", ["Who is Ilham Aliyev?", "who is ilham aliyev"])
def test_a_definition_answer_describes_the_person_asked_about_not_another(engine, question) -> None:
    """"Prime Minister Imran Khan and President Ilham Aliyev": what describes Aliyev is "President",
    not a phrase that takes in another person (the reader alone answers "Prime Minister Imran Khan and
    President" here)."""
    a = engine.ask(question).to_dict()
    assert not a["abstained"] and "President" in a["answer"] and "Imran" not in a["answer"]
    top = a["citations"][0]
    assert top["sentence"][top["answer_start"] : top["answer_end"]] == a["answer"]
    assert engine.ask("Who is Imran Khan?").answer == "Prime Minister"  # the other person's own title


def test_only_a_question_about_someone_named_is_a_definition_question() -> None:
    from qa.reading import described_person

    assert described_person("Who is Ilham Aliyev?") == "Ilham Aliyev"
    assert described_person("who was sergey lavrov") == "sergey lavrov"
    assert described_person("Who is the president of Azerbaijan?") is None
    assert described_person("Who led the talks?") is None


def test_an_answer_phrase_does_not_cut_a_name_short(engine) -> None:
    """A phrase ending inside a named entity whose rest is capitalised words takes the rest; an
    entity that goes on with a lowercase word ("the OIC Contact Group on", a tagger's slip) does not."""
    reader = engine.reader_named("neural")
    text = engine.index.sent_text

    def sid_with(words: str) -> int:
        return next(i for i in range(len(text)) if words in text[i])

    pipe = sid_with("Pakistan Stream Gas Pipeline project")
    a = text[pipe].index("Pakistan Stream Gas")
    got = reader._whole_names(pipe, a, a + len("Pakistan Stream Gas"))
    assert text[pipe][got[0] : got[1]] == "Pakistan Stream Gas Pipeline"
    assert reader._whole_names(pipe, got[0], got[1]) == got  # a whole name stays as it is
    oic = sid_with("OIC Contact Group on")
    a = text[oic].index("OIC Contact Group")
    assert reader._whole_names(oic, a, a + len("OIC Contact Group")) == (a, a + len("OIC Contact Group"))
    assert engine.ask("Which gas pipeline did Qureshi mention?").answer == "Pakistan Stream Gas Pipeline"


def test_who_question_gets_the_person(engine) -> None:
    a = engine.ask("Who led the Pakistan side at the second round of political consultations?").to_dict()
    assert "Sohail Mahmood" in (a["answer"] or "")


def test_a_question_asking_for_two_cites_both(engine) -> None:
    a = engine.ask("Which two Pakistani prime ministers are reported meeting President Ilham Aliyev?").to_dict()
    parts = a.get("answers") or []
    assert len(parts) == 2
    assert parts[0]["text"] != parts[1]["text"]
    assert any("Shehbaz Sharif" in p["text"] for p in parts)


def test_follow_up_is_resolved_against_the_previous_turn(engine) -> None:
    first = engine.ask("Who led the Pakistan side at the second round of political consultations?").to_dict()
    prev = Previous(first["question"], first["citations"][0]["doc_id"], first["answer"])
    a = engine.ask("and who led Azerbaijan's side?", previous=prev).to_dict()
    assert a["resolved_question"].startswith(first["question"])
    assert "Ramiz Hasanov" in (a["answer"] or "")
    when = engine.ask("when was that?", previous=Previous("Where did Kakar meet Aliyev?", None, None)).to_dict()
    assert when["expected_type"] == "date"
    assert when["citations"][0]["doc_id"].startswith("003_")


def test_out_of_corpus_questions_abstain_with_calibrated_numbers(engine) -> None:
    for q in ("Who won the 2022 FIFA World Cup?", "What is the boiling point of ethanol?"):
        a = engine.ask(q).to_dict()
        assert a["abstained"] and a["answer"] is None
        assert a["citations"], "the nearest passages are still cited"
        assert 0.0 <= a["confidence"] <= 1.0 and 0.0 <= a["support"] <= 1.0


def test_follow_up_detection() -> None:
    assert is_follow_up("and who led Azerbaijan's side?")
    assert is_follow_up("when was that?")
    assert is_follow_up("What about Russia?")
    assert not is_follow_up("Who led the Pakistan side at the second round of political consultations?")
    assert not resolve("when was that?", None).is_follow_up
    r = resolve("when was that?", Previous("Where did Kakar meet Aliyev?"))
    assert r.is_follow_up and r.search_text == "Where did Kakar meet Aliyev? when was that?"


def _parse(words: list[tuple[str, str, str, int, str]]) -> tuple[str, Parse]:
    """A hand-made parse: (word, pos, dep, head, entity label)."""
    text, toks, pos = "", [], 0
    for w, p, d, h, e in words:
        if text:
            text += " "
            pos += 1
        toks.append(Token(pos, pos + len(w), p, d, h, e))
        text += w
        pos += len(w)
    ents = []
    i = 0
    while i < len(toks):
        if toks[i].ent:
            j = i
            while j + 1 < len(toks) and toks[j + 1].ent == toks[i].ent:
                j += 1
            ents.append((i, j + 1, toks[i].ent))
            i = j + 1
        else:
            i += 1
    return text, Parse(tuple(toks), tuple(ents), ())


def test_span_candidates_cover_entities_subtrees_and_prepositional_objects() -> None:
    text, parse = _parse([
        ("The", "DET", "det", 1, ""), ("stadium", "NOUN", "nsubj", 2, ""), ("opened", "VERB", "ROOT", 2, ""),
        ("in", "ADP", "prep", 2, ""), ("2014", "NUM", "pobj", 3, "DATE"), (".", "PUNCT", "punct", 2, ""),
    ])
    spans = {text[c.start : c.end]: c.kind for c in span_candidates(text, parse)}
    assert spans["2014"].startswith("ent:DATE")
    assert "stadium" in spans and "The stadium" not in spans  # subtrees drop a leading determiner
    assert all(not s.endswith(".") for s in spans)
    q = analyze("When did the stadium open?")
    cands = span_candidates(text, parse)
    F, cats = span_features(q, text, parse, cands, lambda t: 2.0)
    assert F.shape == (len(cands), len(SPAN_FEATURES)) and F.dtype == np.float32 and np.isfinite(F).all()
    assert len(cats) == len(cands)
    k = [text[c.start : c.end] for c in cands].index("2014")
    assert "q:when|L:DATE" in cats[k]


@pytest.mark.parametrize("question", ["Who is Pakistan's ambassador to Azerbaijan?"])
def test_support_is_reported(engine, question: str) -> None:
    a = engine.ask(question).to_dict()
    assert "support" in a and 0.0 <= a["support"] <= 1.0
