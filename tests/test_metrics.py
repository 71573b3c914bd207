"""eval.metrics on hand-made cases whose values were worked out by hand (see the comments)."""

from __future__ import annotations

import math

import pytest

from eval import metrics as m

# --- answers --------------------------------------------------------------------------------------


def test_normalize_answer_follows_squad() -> None:
    assert m.normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert m.normalize_answer("an apple, a pear") == "apple pear"
    # Articles only as whole words; Unicode punctuation kept, as in the official script.
    assert m.normalize_answer("Theatre") == "theatre"
    assert m.normalize_answer("Azerbaijan’s") == "azerbaijan’s"


def test_exact_match() -> None:
    assert m.exact_match("the Denver Broncos", ["Denver Broncos"]) == 1.0
    assert m.exact_match("Broncos", ["Denver Broncos", "Broncos"]) == 1.0
    assert m.exact_match("Denver", ["Denver Broncos"]) == 0.0
    assert m.exact_match(None, ["x"]) == 0.0  # abstained
    assert m.exact_match("x", []) == 0.0  # unanswerable


def test_f1_hand_computed() -> None:
    # pred {in, paris, france} vs gold {paris}: P = 1/3, R = 1 -> F1 = 2*(1/3)/(4/3) = 0.5
    assert m.f1_score("in Paris, France", ["Paris"]) == pytest.approx(0.5)
    # pred {foreign, secretary, sohail, mahmood} vs gold {sohail, mahmood}: P = 2/4, R = 1 -> 2/3
    assert m.f1_score("Foreign Secretary Sohail Mahmood", ["Sohail Mahmood"]) == pytest.approx(2 / 3)
    # the max over golds: 2/3 against the first, 1.0 against the second
    assert m.f1_score("Foreign Secretary Sohail Mahmood", ["Sohail Mahmood", "Foreign Secretary Sohail Mahmood"]) == 1.0
    # repeated tokens count with multiplicity: pred {x, x, y} vs gold {x, y}:
    # common = 2, P = 2/3, R = 1 -> 0.8
    assert m.f1_score("x x y", ["x y"]) == pytest.approx(0.8)
    assert m.f1_score("nothing shared", ["Paris"]) == 0.0
    assert m.f1_score(None, ["Paris"]) == 0.0


def test_answer_hit_is_containment_on_word_boundaries() -> None:
    assert m.answer_hit("It was held in Tashkent on Thursday.", ["Tashkent"])
    assert not m.answer_hit("Tashkentabad", ["Tashkent"])
    assert not m.answer_hit(None, ["Tashkent"])
    assert not m.answer_hit("anything", [])


# --- retrieval ------------------------------------------------------------------------------------


def test_doc_rank_counts_distinct_documents() -> None:
    cited = ["b", "b", "c", "a", "a"]
    # distinct order: b, c, a -> gold "a" at rank 3
    assert m.doc_rank(cited, ["a"]) == 3
    assert m.doc_hit_at_k(cited, ["a"], 3)
    assert not m.doc_hit_at_k(cited, ["a"], 2)
    assert m.reciprocal_rank(cited, ["a"]) == pytest.approx(1 / 3)
    assert m.reciprocal_rank(cited, ["z"]) == 0.0
    # any gold document counts (answers split over two documents)
    assert m.doc_rank(cited, ["c", "a"]) == 2


def test_mrr_hand_computed() -> None:
    # ranks 1, 2, absent -> (1 + 0.5 + 0) / 3 = 0.5
    assert m.mrr([["a"], ["x", "a"], ["x"]], [["a"], ["a"], ["a"]]) == pytest.approx(0.5)
    assert m.mrr([], []) == 0.0
    with pytest.raises(ValueError):
        m.mrr([["a"]], [])


# --- evidence -------------------------------------------------------------------------------------

GOLD = "The meeting took place on the sidelines of 16th Summit of Economic Cooperation Organization being held in Tashkent."


def test_sentence_matches_rules() -> None:
    assert m.sentence_matches(GOLD, GOLD)
    assert m.sentence_matches("  The meeting took place\n on the sidelines of 16th Summit of Economic Cooperation Organization being held in Tashkent.", GOLD)
    # a splitter that kept a leading dash and space: 2 extra characters of 115 -> ratio > 0.8
    assert m.sentence_matches("- " + GOLD, GOLD)
    # a fragment is not the sentence: 25 / 115 characters < 0.8
    assert not m.sentence_matches("held in Tashkent.", GOLD)
    # different sentences
    assert not m.sentence_matches("The two leaders reviewed the progress.", GOLD)
    assert not m.sentence_matches("", GOLD)


def test_sentence_matches_ratio_boundary() -> None:
    gold = "a" * 80
    assert m.sentence_matches(gold, gold + "b" * 20)  # 80 / 100 = 0.8 exactly: match
    assert not m.sentence_matches(gold, gold + "b" * 21)  # 80 / 101 < 0.8


def test_evidence_at_k_and_recall() -> None:
    cited = ["x", GOLD, "y", "Other gold sentence."]
    assert not m.evidence_at_k(cited, [GOLD], 1)
    assert m.evidence_at_k(cited, [GOLD], 2)
    assert m.evidence_recall_at_k(cited, [GOLD, "Other gold sentence."], 3) == 0.5
    assert m.evidence_recall_at_k(cited, [GOLD, "Other gold sentence."], 4) == 1.0
    assert m.evidence_recall_at_k(cited, [], 3) == 0.0


# --- abstention, sweep, calibration ---------------------------------------------------------------


def test_abstention_rates() -> None:
    abstained = [True, False, True, False, False]
    answerable = [False, False, True, True, True]
    r = m.abstention_rates(abstained, answerable)
    assert r["unanswerable_abstained"] == 0.5  # 1 of 2 unanswerable
    assert r["false_abstention"] == pytest.approx(1 / 3)  # 1 of 3 answerable
    assert r["abstained"] == pytest.approx(2 / 5)
    none = m.abstention_rates([False], [True])
    assert none["unanswerable_abstained"] is None


def test_threshold_sweep_hand_computed() -> None:
    conf = [0.9, 0.8, 0.6, 0.3]
    correct = [True, False, True, False]
    answerable = [True, True, True, False]
    pts = {p.threshold: p for p in m.threshold_sweep(conf, correct, answerable)}
    assert sorted(pts) == [0.3, 0.6, 0.8, 0.9, 1.9]
    # t=0.3: answer all 4, 2 right -> coverage 1, precision 0.5, accuracy 2/4
    assert (pts[0.3].coverage, pts[0.3].precision, pts[0.3].accuracy) == (1.0, 0.5, 0.5)
    # t=0.6: answer 3 (2 right), abstain on the unanswerable one (right) -> accuracy 3/4
    assert pts[0.6].coverage == 0.75
    assert pts[0.6].precision == pytest.approx(2 / 3)
    assert pts[0.6].accuracy == 0.75
    # t=0.9: answer 1 (right) + 1 right abstention -> accuracy 2/4
    assert (pts[0.9].precision, pts[0.9].accuracy) == (1.0, 0.5)
    # above the maximum: nothing answered, precision undefined
    assert pts[1.9].coverage == 0.0 and pts[1.9].precision is None and pts[1.9].accuracy == 0.25
    best = m.best_threshold(list(pts.values()))
    assert best is not None and best.threshold == 0.6


def test_threshold_sweep_wrong_answer_to_unanswerable_is_never_correct() -> None:
    (p,) = m.threshold_sweep([0.9], [True], [False], thresholds=[0.5])
    assert p.correct == 0 and p.accuracy == 0.0


def test_ece_hand_computed() -> None:
    # bin 9 [0.9, 1.0]: conf 0.9 and 1.0 (mean 0.95), 1 of 2 right -> gap 0.45, weight 2/4
    # bin 2 [0.2, 0.3): conf 0.2, 0.2 (mean 0.2), 0 of 2 right -> gap 0.2, weight 2/4
    # ECE = 0.5 * 0.45 + 0.5 * 0.2 = 0.325
    assert m.expected_calibration_error([0.9, 1.0, 0.2, 0.2], [True, False, False, False]) == pytest.approx(0.325)
    # perfectly calibrated extremes
    assert m.expected_calibration_error([1.0, 0.0], [True, False]) == 0.0
    # out-of-range scores are clipped: 5.0 -> 1.0 in the top bin, wrong -> gap 1.0
    assert m.expected_calibration_error([5.0], [False]) == 1.0
    assert m.expected_calibration_error([], []) == 0.0


# --- citations, latency ---------------------------------------------------------------------------


def test_citation_fidelity() -> None:
    texts = {"a.txt": "Hello world. Second one."}
    good = {"doc_id": "a.txt", "sentence": "Second one.", "start": 13, "end": 24}
    shifted = {**good, "start": 12}
    unknown = {**good, "doc_id": "b.txt"}
    out_of_range = {**good, "start": 13, "end": 99}
    assert m.citation_is_faithful(good, texts)
    assert m.citation_fidelity([good, shifted, unknown, out_of_range], texts) == (1, 4)
    assert m.citation_fidelity([], texts) == (0, 0)


def test_percentiles_and_latency() -> None:
    vals = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert m.percentile(vals, 50) == 3.0
    # p95: position 0.95 * 4 = 3.8 -> 4 + 0.8 * (10 - 4) = 8.8
    assert m.percentile(vals, 95) == pytest.approx(8.8)
    assert m.percentile(vals, 0) == 1.0 and m.percentile(vals, 100) == 10.0
    assert math.isnan(m.percentile([], 50))
    # The one percentile of every benchmark (eval/bench/*): order-free, a single value is every percentile.
    assert m.percentile([50.0, 40.0, 30.0, 20.0, 10.0], 25) == 20.0 and m.percentile([7.0], 99) == 7.0
    assert m.percentile([10.0, 20.0, 30.0, 40.0, 50.0], 90) == pytest.approx(46.0)
    lat = m.latency_summary([0.1, 0.2, 0.3])
    assert lat["p50_ms"] == pytest.approx(200.0)
    assert lat["max_ms"] == pytest.approx(300.0)


def test_auc_hand_computed_with_ties() -> None:
    assert m.auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert m.auc([0.1], [0.9]) == 0.0
    # one tie between 0.5 and 0.5 counts half: pairs (0.5>0.2)=1, (0.5=0.5)=0.5, (0.9>…)=2 → 3.5/4
    assert m.auc([0.5, 0.9], [0.2, 0.5]) == pytest.approx(0.875)
    assert m.auc([], [0.3]) is None


def test_abstained_at_a_false_abstention_rate() -> None:
    conf = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.05, 0.15, 0.95]
    able = [True] * 10 + [False] * 3
    r = m.abstained_at_false_rate(conf, able, 0.10)
    # 10% of 10 answerable: one may abstain → threshold 0.2; 0.05 and 0.15 are caught, 0.95 is not
    assert r["threshold"] == 0.2 and r["false_abstentions"] == pytest.approx(0.1)
    assert r["unanswerable_abstained"] == pytest.approx(2 / 3)
    assert m.abstained_at_false_rate([0.5], [True], 0.1)["threshold"] is None


def test_the_transfer_command_rejects_an_unknown_set() -> None:
    from eval.transfer import main

    with pytest.raises(SystemExit) as e:
        main(["--sets", "new_wiki,nope"])
    assert e.value.code == 2
