"""A sharded index (`qa index --shards N`): documents split by a stable hash of their id, BM25
statistics of the whole collection in every shard, and `qa ask` / `qa serve` answering from all
shards in one process with the unsharded index's answers (index/shards.py)."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from eval.gold import DEMO_GOLD, load_gold
from index.loaded import LoadedIndex
from index.shards import ShardedIndex, shard_count, shard_dir, shard_of
from index.terms import content_terms
from index.uploads import upload_path
from tests.conftest import CORPUS, run_qa

HARBOUR = (
    "Port of Tidewater annual report\n\n"
    "Tidewater, 3 May 2024: The harbour crane known as Big Bertha lifted a record load of 840 tonnes on Friday. "
    "The harbour master, Ingrid Solberg, said the lift took eleven hours.\n"
)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo corpus in 2 shards, built through the command line."""
    index = tmp_path_factory.mktemp("sharded") / "index"
    r = run_qa("index", str(CORPUS), "--index", str(index), "--shards", "2", "-q", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["documents"] == 5 and len(out["shards"]) == 2
    return index


def test_a_document_s_shard_is_a_stable_hash_of_its_id() -> None:
    # SHA-1 of the id, first 8 bytes, modulo N: the same on every machine and run.
    assert [shard_of(d, 2) for d in ("a.txt", "b.txt", "notes/x.md", "ünï.txt")] == [
        int.from_bytes(__import__("hashlib").sha1(d.encode()).digest()[:8], "big") % 2
        for d in ("a.txt", "b.txt", "notes/x.md", "ünï.txt")
    ]
    assert shard_of("003_fdf2c5db0e68fe77.txt", 2) == 0 and shard_of("000_78aafc7d975cfdef.txt", 2) == 1
    counts = np.bincount([shard_of(f"doc-{i}.txt", 4) for i in range(4000)], minlength=4)
    assert counts.min() > 900  # spread evenly


def test_each_shard_is_a_complete_index_of_its_documents(sharded: Path) -> None:
    assert shard_count(sharded) == 2
    seen: list[str] = []
    for i in range(2):
        part = LoadedIndex.open(shard_dir(sharded, i))  # each shard opens on its own
        assert part.docs and all(shard_of(d, 2) == i for d in part.docs)
        seen += list(part.docs)
    assert sorted(seen) == sorted(p.name for p in CORPUS.iterdir())


def test_bm25_scores_and_vectors_equal_the_unsharded_index(sharded: Path, demo_index: Path) -> None:
    one, many = LoadedIndex.open(demo_index), ShardedIndex.open(sharded)
    assert many.n_sentences() == one.n_sentences() and many.n_passages() == one.n_passages()
    where = {(many.sent_doc[i], int(many.sent_start[i])): i for i in range(many.n_sentences())}
    perm = np.array([where[(one.sent_doc[i], int(one.sent_start[i]))] for i in range(one.n_sentences())])
    assert [many.sent_text[int(j)] for j in perm] == list(one.sent_text)
    for q in ("when were direct AZAL flights announced", "Who headed Pakistan's team?", "OIC contact group Kashmir"):
        terms = content_terms(q)
        assert np.allclose(many.sentence_bm25.scores(terms)[perm], one.sentence_bm25.scores(terms), atol=1e-6)
        assert all(many.passage_bm25.term_idf(t) == pytest.approx(one.passage_bm25.term_idf(t)) for t in terms)
        ids, scores = many.sentence_bm25.top(terms, 5)
        want_ids, want_scores = one.sentence_bm25.top(terms, 5)
        assert np.allclose(scores, want_scores, atol=1e-6)
        assert [many.sent_text[int(i)] for i in ids] == [one.sent_text[int(i)] for i in want_ids] or np.unique(
            np.round(want_scores, 5)).size < len(want_scores)  # ties may come in another order
    assert np.array_equal(many.sentence_vectors.vectors(perm), one.sentence_vectors.vectors(slice(None)))
    q = one.sentence_vectors.vectors([7])
    _, got = many.sentence_vectors.search(q, 3)
    _, want = one.sentence_vectors.search(q, 3)
    assert [many.sent_text[int(i)] for i in got[0]] == [one.sent_text[int(i)] for i in want[0]]


def test_qa_ask_on_shards_gives_the_unsharded_answers(sharded: Path, demo_index: Path, tmp_path: Path) -> None:
    """Every demo gold question through `qa ask --jsonl`: the same answer and top citation."""
    qs = tmp_path / "q.jsonl"
    qs.write_text("".join(json.dumps({"id": str(i), "question": it.question}) + "\n"
                          for i, it in enumerate(load_gold(DEMO_GOLD))))
    outs = []
    for index in (demo_index, sharded):
        r = run_qa("ask", "--index", str(index), "--jsonl", input=qs.read_text(), timeout=600)
        assert r.returncode == 0, r.stderr
        outs.append([json.loads(line) for line in r.stdout.splitlines()])
    one, many = outs
    assert len(one) == len(many) == len(load_gold(DEMO_GOLD))
    same = sum(
        (a["answer"], a["abstained"], a["citations"][0]["doc_id"], a["citations"][0]["start"])
        == (b["answer"], b["abstained"], b["citations"][0]["doc_id"], b["citations"][0]["start"])
        for a, b in zip(one, many, strict=True)
    )
    assert same == len(one)
    shown = run_qa("show", "--index", str(sharded), "003_fdf2c5db0e68fe77.txt")
    assert shown.returncode == 0 and "AZAL" in shown.stdout


def test_building_again_is_incremental_and_the_layout_is_kept(sharded: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(sharded, index)
    r = run_qa("index", str(CORPUS), "--index", str(index), "-q", "--json")  # no --shards: as it is
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["embedded_texts"] == 0
    r = run_qa("index", str(CORPUS), "--index", str(index), "--shards", "3")
    assert r.returncode == 1 and "split into 2 shards, not 3" in r.stderr
    r = run_qa("index", str(CORPUS), "--index", str(tmp_path / "many"), "--shards", "8")
    assert r.returncode == 1 and "5 documents cannot fill 8 shards" in r.stderr
    assert not (tmp_path / "many" / "shards.json").exists()
    plain = tmp_path / "plain"
    assert run_qa("index", str(CORPUS), "--index", str(plain), "-q").returncode == 0
    r = run_qa("index", str(CORPUS), "--index", str(plain), "--shards", "2")
    assert r.returncode == 1 and "not sharded" in r.stderr


@pytest.mark.slow
def test_qa_serve_on_shards_answers_uploads_and_deletes_through_http(sharded: Path, tmp_path: Path) -> None:
    from eval.server import start_server, stop_server

    index = tmp_path / "index"
    shutil.copytree(sharded, index)
    server = start_server(index, log=tmp_path / "serve.log")

    def call(method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(server.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def ask(q: str) -> dict:
        status, out = call("POST", "/api/ask", json.dumps({"question": q}).encode(), {"Content-Type": "application/json"})
        assert status == 200, out
        return out

    try:
        assert ask("when were direct AZAL flights announced")["citations"][0]["doc_id"] == "003_fdf2c5db0e68fe77.txt"
        status, health = call("GET", "/healthz")
        assert status == 200 and health["documents"] == 5
        boundary = "citeqa-test"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"harbour.txt\"\r\n"
                f"Content-Type: text/plain\r\n\r\n{HARBOUR}\r\n--{boundary}--\r\n").encode()
        status, out = call("POST", "/api/documents", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert status == 201, out
        home = shard_dir(index, shard_of("harbour.txt", 2))
        assert upload_path(home, "harbour.txt").read_text() == HARBOUR  # kept in its shard's folder
        ans = ask("Who is the harbour master of Tidewater?")
        assert ans["answer"] == "Ingrid Solberg" and ans["citations"][0]["doc_id"] == "harbour.txt"
        with urllib.request.urlopen(server.url + "/documents", timeout=60) as r:  # the documents page marks it
            page = r.read().decode()
        assert '<span class="doc-id">harbour.txt</span> <span class="badge">uploaded</span>' in page
        # The collection's statistics follow the upload: every shard counts 6 documents' texts.
        many = ShardedIndex.open(index)
        assert {s.sentence_bm25.collection[0] for s in many.shards} == {many.n_sentences()}
        status, out = call("DELETE", "/api/documents/harbour.txt")
        assert status == 200, out
        ans = ask("Who is the harbour master of Tidewater?")
        assert all(c["doc_id"] != "harbour.txt" for c in ans["citations"])
        status, out = call("DELETE", "/api/documents/nope.txt")
        assert status == 404
    finally:
        stop_server(server)


def test_shards_without_the_collection_s_statistics_are_refused_until_indexed_again(
    sharded: Path, tmp_path: Path
) -> None:
    """What a build killed between building a shard and writing the statistics leaves: `qa ask`
    says what to do (never answers with one shard's own statistics), and `qa index` repairs it."""
    from index.build import build_index

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    index = tmp_path / "index"
    shutil.copytree(sharded, index)
    target = corpus / "003_fdf2c5db0e68fe77.txt"  # shard 0
    target.write_text(target.read_text() + "\nThe envoy later visited Lahore to open a trade office.\n")
    build_index(corpus, shard_dir(index, 0), select=lambda d: shard_of(d, 2) == 0, progress=False, log=lambda m: None)
    r = run_qa("ask", "--index", str(index), "who visited Lahore?")
    assert r.returncode == 1 and "do not share the collection's statistics" in r.stderr and "qa index" in r.stderr
    assert run_qa("index", str(corpus), "--index", str(index), "-q").returncode == 0
    r = run_qa("ask", "--index", str(index), "--json", "Which city did the envoy visit to open a trade office?")
    assert r.returncode == 0, r.stderr
    assert "Lahore" in json.loads(r.stdout)["citations"][0]["sentence"]


def test_a_filtered_question_on_shards_answers_from_the_matching_documents_as_unsharded(
    sharded: Path, demo_index: Path
) -> None:
    """Filters work on a sharded index too (its rows are the shards' in turn), with the unsharded answers."""
    q = "when were direct AZAL flights announced"
    for flags in (["--doc", "003_fdf2c5db0e68fe77.txt"], ["--until", "2023-11-08"],
                  ["--doc", "000_78aafc7d975cfdef.txt", "--doc", "004_c5abf76d8d768680.txt"]):  # fmt: skip
        got = []
        for index in (demo_index, sharded):
            r = run_qa("ask", "--index", str(index), "--json", *flags, q, timeout=300)
            assert r.returncode == 0, r.stderr
            got.append(json.loads(r.stdout))
        one, many = got
        assert (one["answer"], one["abstained"]) == (many["answer"], many["abstained"])
        assert [(c["doc_id"], c["start"]) for c in one["citations"]] == [(c["doc_id"], c["start"]) for c in many["citations"]]
        if flags[0] == "--doc":
            assert {c["doc_id"] for c in many["citations"]} <= set(flags[1::2])
