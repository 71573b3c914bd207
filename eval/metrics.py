"""Evaluation metrics as pure functions: no engine, no I/O, no global state.

Every function takes plain values (strings, lists, floats) so it can be unit-tested on
hand-made cases and reused by any report. Per-question functions return a number for one
question; ``mean`` and the aggregate functions turn lists of those into a figure.

Answer metrics follow the official SQuAD v1.1 evaluation script (normalisation, exact match,
token F1, max over the gold answers), so the SQuAD figures we publish mean what readers expect.

Example::

    >>> exact_match("The Eiffel Tower", ["eiffel tower"])
    1.0
    >>> round(f1_score("in Paris, France", ["Paris"]), 3)
    0.5
    >>> doc_hit_at_k(["b.txt", "b.txt", "a.txt"], ["a.txt"], k=2)
    True
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --- answers (SQuAD v1.1 semantics) -------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower-case, drop ASCII punctuation and the articles a/an/the, collapse whitespace.

    Identical to the official SQuAD v1.1 script; in particular Unicode punctuation (’ “ ”) is
    kept, as it is there, so our figures compare with published ones.
    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str | None, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer, else 0.0.

    ``None`` (an abstention) and an empty gold list (an unanswerable question) score 0.0.
    """
    if prediction is None or not golds:
        return 0.0
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in golds))


def _token_f1(prediction: str, gold: str) -> float:
    p = normalize_answer(prediction).split()
    g = normalize_answer(gold).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(p)
    recall = same / len(g)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str | None, golds: Sequence[str]) -> float:
    """SQuAD token F1 (bag of normalised tokens), the maximum over the gold answers."""
    if prediction is None or not golds:
        return 0.0
    return max(_token_f1(prediction, g) for g in golds)


def answer_hit(prediction: str | None, golds: Sequence[str]) -> bool:
    """True when the prediction contains a gold answer (normalised, on word boundaries).

    Lenient on purpose: it tells whether the answer *carries* the fact even when it is longer
    than the gold phrase (a whole-sentence baseline scores here, not on exact match).
    """
    if prediction is None or not golds:
        return False
    p = f" {normalize_answer(prediction)} "
    return any(f" {g} " in p for g in (normalize_answer(x) for x in golds) if g)


# --- retrieval ----------------------------------------------------------------------------------


def ranked_unique(items: Iterable[str]) -> list[str]:
    """The items in first-seen order without repeats (several citations may share a document)."""
    seen: set[str] = set()
    out: list[str] = []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def doc_rank(cited_doc_ids: Sequence[str], gold_doc_ids: Iterable[str]) -> int | None:
    """1-based rank of the first gold document among the distinct cited documents, or None."""
    gold = set(gold_doc_ids)
    for i, d in enumerate(ranked_unique(cited_doc_ids), start=1):
        if d in gold:
            return i
    return None


def doc_hit_at_k(cited_doc_ids: Sequence[str], gold_doc_ids: Iterable[str], k: int) -> bool:
    """True when a gold document is among the first ``k`` *distinct* cited documents."""
    r = doc_rank(cited_doc_ids, gold_doc_ids)
    return r is not None and r <= k


def reciprocal_rank(cited_doc_ids: Sequence[str], gold_doc_ids: Iterable[str]) -> float:
    """1 / rank of the first gold document among the distinct cited documents; 0.0 if absent."""
    r = doc_rank(cited_doc_ids, gold_doc_ids)
    return 0.0 if r is None else 1.0 / r


def mrr(ranked_lists: Sequence[Sequence[str]], gold_lists: Sequence[Iterable[str]]) -> float:
    """Mean reciprocal rank over questions (0.0 for an empty list)."""
    if len(ranked_lists) != len(gold_lists):
        raise ValueError("mrr needs one gold list per ranked list")
    return mean(reciprocal_rank(r, g) for r, g in zip(ranked_lists, gold_lists, strict=True))


# --- evidence sentences -------------------------------------------------------------------------

#: A cited sentence matches a gold one when, whitespace-normalised, they are equal or one
#: contains the other and the shorter is at least this share of the longer's length. Why not
#: equality alone: another splitter (or a later version of ours) may cut a sentence a few
#: characters differently (a closing quote, a leading list dash, two sentences glued by a
#: missing space). Why a ratio: a four-word fragment inside a long sentence is not the same
#: evidence, and a 3-sentence passage is not "the gold sentence".
EVIDENCE_MIN_RATIO = 0.8


def _squash(s: str) -> str:
    return " ".join(s.split())


def sentence_matches(cited: str, gold: str, min_ratio: float = EVIDENCE_MIN_RATIO) -> bool:
    """Whether a cited sentence is the gold evidence sentence (see ``EVIDENCE_MIN_RATIO``)."""
    a, b = _squash(cited), _squash(gold)
    if not a or not b:
        return False
    if a == b:
        return True
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    return short in long_ and len(short) / len(long_) >= min_ratio


def evidence_at_k(cited_sentences: Sequence[str], gold_evidence: Sequence[str], k: int) -> bool:
    """True when any of the top ``k`` cited sentences matches any gold evidence sentence."""
    return any(sentence_matches(c, g) for c in cited_sentences[:k] for g in gold_evidence)


def evidence_recall_at_k(cited_sentences: Sequence[str], gold_evidence: Sequence[str], k: int) -> float:
    """Share of the gold evidence sentences found in the top ``k`` citations.

    For questions whose answer is split across documents, evidence@k says "found some",
    this says "found all" (1.0) or how much.
    """
    if not gold_evidence:
        return 0.0
    top = cited_sentences[:k]
    return sum(any(sentence_matches(c, g) for c in top) for g in gold_evidence) / len(gold_evidence)


# --- abstention ---------------------------------------------------------------------------------


def abstention_rates(abstained: Sequence[bool], answerable: Sequence[bool]) -> dict[str, float | None]:
    """How well the system knows what it does not know.

    - ``unanswerable_abstained``: share of unanswerable questions it abstained on (want 1.0);
    - ``false_abstention``: share of answerable questions it abstained on (want 0.0);
    - ``abstained``: share of all questions abstained on.
    A rate over an empty group is None (not 0.0, which would read as a measured result).
    """
    if len(abstained) != len(answerable):
        raise ValueError("abstention_rates needs one answerable flag per question")
    unans = [a for a, ok in zip(abstained, answerable, strict=True) if not ok]
    ans = [a for a, ok in zip(abstained, answerable, strict=True) if ok]
    return {
        "unanswerable_abstained": (sum(unans) / len(unans)) if unans else None,
        "false_abstention": (sum(ans) / len(ans)) if ans else None,
        "abstained": (sum(abstained) / len(abstained)) if abstained else None,
    }


@dataclass(frozen=True)
class SweepPoint:
    """One confidence threshold: answer when confidence >= threshold, otherwise abstain."""

    threshold: float
    coverage: float  # share of all questions answered
    precision: float | None  # share of answered questions answered correctly (None: none answered)
    accuracy: float  # correct answers plus correct abstentions (on unanswerable), over all questions
    answered: int
    correct: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "coverage": self.coverage,
            "precision": self.precision,
            "accuracy": self.accuracy,
            "answered": self.answered,
            "correct": self.correct,
        }


def threshold_sweep(
    confidences: Sequence[float],
    correct: Sequence[bool],
    answerable: Sequence[bool],
    thresholds: Sequence[float] | None = None,
) -> list[SweepPoint]:
    """The precision/coverage curve of a confidence score, one point per threshold.

    ``correct[i]`` says whether question i's answer is right *if it were given*; an answer to an
    unanswerable question is never right, so pass False there. Default thresholds: every distinct
    confidence plus one above the maximum (the "answer nothing" end of the curve), ascending.
    """
    n = len(confidences)
    if not (len(correct) == len(answerable) == n):
        raise ValueError("threshold_sweep needs equally long confidences, correct and answerable")
    if thresholds is None:
        distinct = sorted(set(float(c) for c in confidences))
        thresholds = [*distinct, (distinct[-1] + 1.0) if distinct else 1.0]
    import numpy as np

    conf = np.asarray(confidences, np.float64)
    good = np.asarray([bool(o and a) for o, a in zip(correct, answerable, strict=True)], bool)
    unans = ~np.asarray(answerable, bool)
    order = np.argsort(conf, kind="stable")
    c_sorted = conf[order]
    # counts among the questions whose confidence is below each threshold
    good_below = np.concatenate([[0], np.cumsum(good[order])])
    unans_below = np.concatenate([[0], np.cumsum(unans[order])])
    points: list[SweepPoint] = []
    total_good = int(good.sum())
    for t in thresholds:
        below = int(np.searchsorted(c_sorted, float(t), side="left"))
        answered = n - below
        right = total_good - int(good_below[below])
        right_abstain = int(unans_below[below])
        points.append(
            SweepPoint(
                threshold=float(t),
                coverage=answered / n if n else 0.0,
                precision=(right / answered) if answered else None,
                accuracy=(right + right_abstain) / n if n else 0.0,
                answered=answered,
                correct=right,
            )
        )
    return points


def auc(scores_pos: Sequence[float], scores_neg: Sequence[float]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half)."""
    import numpy as np

    if not len(scores_pos) or not len(scores_neg):
        return None
    allv = np.concatenate([np.asarray(scores_pos, np.float64), np.asarray(scores_neg, np.float64)])
    order = np.argsort(allv, kind="stable")
    ranks = np.empty(len(allv))
    sv = allv[order]
    # average ranks over ties
    i = 0
    while i < len(sv):
        j = i
        while j + 1 < len(sv) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos = len(scores_pos)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * len(scores_neg)))


def abstained_at_false_rate(
    confidences: Sequence[float], answerable: Sequence[bool], max_false: float
) -> dict[str, float | None]:
    """Abstain below the highest threshold that keeps false abstentions (answerable questions
    abstained) at or under ``max_false``: the share of unanswerable questions then abstained."""
    import numpy as np

    conf = np.asarray(confidences, np.float64)
    able = np.asarray(answerable, bool)
    if not able.any() or able.all():
        return {"threshold": None, "unanswerable_abstained": None, "false_abstentions": None}
    ans = np.sort(conf[able])
    k = int(np.floor(max_false * len(ans)))
    t = float(ans[k])  # abstain strictly below: at most k answerable ones are under it
    return {
        "threshold": t,
        "unanswerable_abstained": float((conf[~able] < t).mean()),
        "false_abstentions": float((conf[able] < t).mean()),
    }


def best_threshold(points: Sequence[SweepPoint]) -> SweepPoint | None:
    """The sweep point with the highest accuracy (ties: the lowest threshold, i.e. most coverage)."""
    if not points:
        return None
    return max(points, key=lambda p: (p.accuracy, -p.threshold))


# --- calibration --------------------------------------------------------------------------------


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over equal-width bins.

    Bins are [0, 0.1), [0.1, 0.2), …, [0.9, 1.0]; confidences outside [0, 1] are clipped into
    the end bins (a score that is not a probability is, by this measure, badly calibrated).
    """
    if len(confidences) != len(correct):
        raise ValueError("expected_calibration_error needs one correctness flag per confidence")
    n = len(confidences)
    if n == 0:
        return 0.0
    total = [0] * bins
    conf_sum = [0.0] * bins
    right = [0] * bins
    for c, ok in zip(confidences, correct, strict=True):
        c = min(max(float(c), 0.0), 1.0)
        b = min(int(c * bins), bins - 1)
        total[b] += 1
        conf_sum[b] += c
        right[b] += bool(ok)
    return sum(abs(right[b] / total[b] - conf_sum[b] / total[b]) * total[b] / n for b in range(bins) if total[b])


# --- citations ----------------------------------------------------------------------------------


def citation_is_faithful(citation: Mapping[str, Any], doc_texts: Mapping[str, str]) -> bool:
    """The contract's invariant: the cited sentence is exactly ``text[start:end]`` of its document."""
    text = doc_texts.get(citation.get("doc_id", ""))
    start, end = citation.get("start"), citation.get("end")
    if text is None or not isinstance(start, int) or not isinstance(end, int):
        return False
    return 0 <= start <= end <= len(text) and text[start:end] == citation.get("sentence")


def citation_fidelity(citations: Iterable[Mapping[str, Any]], doc_texts: Mapping[str, str]) -> tuple[int, int]:
    """(faithful, total) citations; a tuple, not a share, so "0 of 0" is not mistaken for 100%."""
    ok = total = 0
    for c in citations:
        total += 1
        ok += citation_is_faithful(c, doc_texts)
    return ok, total


# --- latency and plain statistics ---------------------------------------------------------------


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; 0.0 for no values."""
    vals = list(values)
    return sum(vals) / len(vals) if vals else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation between ranks (NumPy's default)."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("percentile q must be within 0..100")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean / max in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "mean_ms": mean(ms) if ms else math.nan,
        "max_ms": max(ms) if ms else math.nan,
    }
