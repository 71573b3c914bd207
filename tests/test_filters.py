"""Asking within some documents (issue 14): the filter's rules, the engine, the API and `qa ask`.

The demo corpus has one document that answers the AZAL question (003_…, dated 2023-11-09), two
other dated ones (001_… 2023-04-13, 002_… 2023-05-27) and two without a date (000_…, 004_…)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.filters import DocFilter, FilterError
from tests.conftest import run_qa
from web.app import create_app

AZAL = "when were direct AZAL flights announced"
AZAL_DOC = "003_fdf2c5db0e68fe77.txt"
DATES = {"001_072c7506d9b82cf7.txt": "2023-04-13", "002_81bb45f291cb2277.txt": "2023-05-27", AZAL_DOC: "2023-11-09"}


@pytest.fixture(scope="module")
def client(demo_index: Path, engine) -> TestClient:
    return TestClient(create_app(demo_index, engine=engine))


# --- the rules -------------------------------------------------------------------------------
def test_a_document_without_a_date_never_matches_a_date_bound() -> None:
    f = DocFilter.make(date_from="2000-01-01")
    assert f is not None and not f.matches("x.txt", None) and f.matches("x.txt", "2023-01-01")
    assert DocFilter.make(date_to="2023-04-13").matches("a.txt", "2023-04-13")  # bounds are inclusive
    assert not DocFilter.make(date_to="2023-04-12").matches("a.txt", "2023-04-13")


def test_folder_matches_what_is_under_it_only() -> None:
    f = DocFilter.make(folder="/news/2023/")
    assert f is not None and f.folder == "news/2023"
    assert f.matches("news/2023/a.txt", None) and not f.matches("news/2023b/a.txt", None)
    assert not f.matches("news/a.txt", None)
    assert DocFilter.make(folder="") is None and DocFilter.make() is None  # the corpus itself: no filter


@pytest.mark.parametrize(("obj", "reason"), [
    ({"date_from": "2023-13-01"}, "date_from '2023-13-01' is not a date written YYYY-MM-DD"),
    ({"date_to": "2023-W01-1"}, "date_to '2023-W01-1' is not a date"),
    ({"date_to": "2023-02-29"}, "not a date"),
    ({"folder": "a/../b"}, "leaves the corpus"),
    ({"doc_ids": []}, "non-empty list"),
    ({"doc_ids": "a.txt"}, "must be a list"),
    ({"colour": "red"}, "no field 'colour'"),
])
def test_malformed_filters_say_what_is_wrong(obj: dict, reason: str) -> None:
    with pytest.raises(FilterError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        DocFilter.parse(obj)


# --- the engine: candidates come from the matching documents only -----------------------------
def test_a_date_filter_that_excludes_the_only_answering_document_abstains_and_says_why(engine) -> None:
    assert engine.ask(AZAL).citations[0].doc_id == AZAL_DOC
    ans = engine.ask(AZAL, filter=DocFilter.make(date_to="2023-11-08"))
    assert ans.abstained and ans.answer is None
    assert ans.answer_note and "matching the filter (dated up to 2023-11-08)" in ans.answer_note
    assert ans.citations and {c.doc_id for c in ans.citations} <= {d for d, iso in DATES.items() if iso <= "2023-11-08"}
    assert ans.filter == {"date_to": "2023-11-08"}


def test_a_filter_on_the_answering_document_answers_from_it_alone(engine) -> None:
    ans = engine.ask(AZAL, filter=DocFilter.make([AZAL_DOC]))
    assert not ans.abstained and "2023" in (ans.answer or "")
    assert {c.doc_id for c in ans.citations} == {AZAL_DOC}


def test_a_filter_no_document_matches_abstains_without_searching(engine) -> None:
    ans = engine.ask(AZAL, filter=DocFilter.make(date_from="2030-01-01"))
    assert ans.abstained and ans.citations == ()
    assert ans.answer_note == "no document matches the filter: dated from 2030-01-01; nothing was searched"
    inverted = engine.ask(AZAL, filter=DocFilter.make(date_from="2024-01-01", date_to="2023-01-01"))
    assert inverted.abstained and "date_from is after date_to" in (inverted.answer_note or "")
    unknown = engine.ask(AZAL, filter=DocFilter.make(["no-such.txt"]))
    assert unknown.abstained and unknown.citations == ()


def test_the_filter_is_applied_when_gathering_not_after(engine) -> None:
    """Filtering the candidates, not the citations: the 3 documents without the answer still
    yield k citations from their own sentences (dropping citations afterwards would leave few)."""
    others = [d for d in engine.index.docs if d != AZAL_DOC]
    ans = engine.ask(AZAL, k=10, filter=DocFilter.make(others))
    assert len(ans.citations) == 10 and AZAL_DOC not in {c.doc_id for c in ans.citations}


QUESTIONS = [AZAL, "Who led the Pakistan side?", "Where was the ECO summit held?", "what did the DNA test show"]


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(ids=st.sets(st.sampled_from(sorted(DATES) + ["000_78aafc7d975cfdef.txt", "004_c5abf76d8d768680.txt"]),
                   min_size=1), since=st.sampled_from([None, "2023-04-13", "2023-05-01", "2023-12-01"]),
       question=st.sampled_from(QUESTIONS))
def test_every_citation_comes_from_a_matching_document(engine, ids: set[str], since: str | None, question: str) -> None:
    f = DocFilter.make(sorted(ids), date_from=since)
    assert f is not None
    allowed = set(f.matching(engine.index))
    ans = engine.ask(question, filter=f)
    assert {c.doc_id for c in ans.citations} <= allowed
    if not allowed:
        assert ans.abstained and "no document matches" in (ans.answer_note or "")


def test_a_folder_filter(tmp_path: Path) -> None:
    """Documents in folders: the filter keeps to the folder named."""
    from index.build import build_index
    from qa.engine import Engine

    corpus = tmp_path / "corpus"
    (corpus / "ports").mkdir(parents=True)
    (corpus / "farms").mkdir()
    (corpus / "ports" / "pier.txt").write_text("Harbour report\n\nThe new pier opened on 3 May 2024 in Gwadar.\n")
    (corpus / "farms" / "wheat.txt").write_text("Farm report\n\nThe wheat harvest opened on 9 May 2024 in Multan.\n")
    build_index(corpus, tmp_path / "ix", progress=False, log=lambda m: None)
    eng = Engine.open(tmp_path / "ix")
    assert eng.ask("where did the new pier open?").citations[0].doc_id == "ports/pier.txt"
    ans = eng.ask("where did the new pier open?", filter=DocFilter.make(folder="farms"))
    assert {c.doc_id for c in ans.citations} == {"farms/wheat.txt"}
    assert eng.ask("where did the new pier open?", filter=DocFilter.make(folder="port")).citations == ()


# --- the API ---------------------------------------------------------------------------------
def test_api_ask_within_a_filter(client: TestClient) -> None:
    r = client.post("/api/ask", json={"question": AZAL, "filter": {"date_to": "2023-11-08"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["abstained"] and body["filter"] == {"date_to": "2023-11-08"}
    assert body["view"]["within"] == "dated up to 2023-11-08"
    assert "matching the filter" in body["answer_note"]
    assert AZAL_DOC not in {c["doc_id"] for c in body["citations"]}
    r = client.post("/api/ask", json={"question": AZAL, "filter": {"doc_ids": [AZAL_DOC], "date_from": "2023-11-01"}})
    assert r.status_code == 200 and not r.json()["abstained"]
    assert "filter" not in client.post("/api/ask", json={"question": AZAL}).json()


@pytest.mark.parametrize(("flt", "reason"), [
    ({"date_from": "2023-13-01"}, "filter: date_from '2023-13-01' is not a date written YYYY-MM-DD"),
    ({"date_from": 20230101}, "filter.date_from: Input should be a valid string"),
    ({"folder": "../etc"}, "filter: folder '../etc' leaves the corpus: name a folder inside it"),
    ({"doc_ids": []}, "filter.doc_ids: List should have at least 1 item after validation, not 0"),
    ({"colour": "red"}, "filter.colour: Extra inputs are not permitted"),
    ("news", 'filter must be a JSON object such as {"folder": "news", "date_from": "2023-06-01"}, or null'),
])
def test_api_malformed_filter_is_a_422_with_the_reason(client: TestClient, flt, reason: str) -> None:
    r = client.post("/api/ask", json={"question": AZAL, "filter": flt})
    assert r.status_code == 422 and r.json() == {"detail": reason}


def test_the_chat_page_without_javascript_asks_within_the_filter(client: TestClient) -> None:
    r = client.post("/", data={"question": AZAL, "f_until": "2023-11-08"}, follow_redirects=False)
    assert r.status_code == 303 and "f_until=2023-11-08" in r.headers["location"]
    page = client.get(r.headers["location"]).text
    assert "Within: dated up to 2023-11-08" in page and "The documents don't say." in page
    assert 'name="f_until" id="f-until" value="2023-11-08"' in page
    bad = client.get("/", params={"q": AZAL, "f_since": "yesterday"}).text
    assert "Date_from &#39;yesterday&#39; is not a date written YYYY-MM-DD." in bad


# --- qa ask ------------------------------------------------------------------------------------
def test_qa_ask_within_a_filter(demo_index: Path) -> None:
    r = run_qa("ask", "--index", str(demo_index), "--json", "--until", "2023-11-08", AZAL)
    assert r.returncode == 0, r.stderr
    ans = json.loads(r.stdout)
    assert ans["abstained"] and ans["filter"] == {"date_to": "2023-11-08"}
    r = run_qa("ask", "--index", str(demo_index), "--doc", AZAL_DOC, "--since", "2023-01-01", AZAL)
    assert r.returncode == 0 and r.stdout.startswith(f"(within document {AZAL_DOC}, dated from 2023-01-01)")
    assert "Answer: November 9, 2023" in r.stdout
    r = run_qa("ask", "--index", str(demo_index), "--since", "2030-01-01", AZAL)
    assert r.returncode == 0 and "no document matches the filter: dated from 2030-01-01" in r.stdout
    r = run_qa("ask", "--index", str(demo_index), "--since", "01/02/2023", AZAL)
    assert r.returncode == 2 and "--since '01/02/2023' is not a date written YYYY-MM-DD" in r.stderr
    lines = "\n".join(json.dumps(o) for o in [{"id": "a", "question": AZAL, "filter": {"date_to": "2023-11-08"}},
                                               {"id": "b", "question": AZAL},
                                               {"id": "c", "question": AZAL, "filter": {"date_to": "x"}}])
    r = run_qa("ask", "--index", str(demo_index), "--jsonl", input=lines)
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert out[0]["abstained"] and not out[1]["abstained"] and "not a date" in out[2]["error"]
