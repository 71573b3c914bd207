"""Reading: candidates in, a decision out (ranked sentences, the answer phrase, a calibrated
probability, abstain or not). Two implementations of one ``Reader`` protocol:

- ``LinearReader``: the linear models over hand-made features (``qa/answer.py``, fitted by
  ``python -m eval.train``);
- ``NeuralReader``: the trained cross-encoder (``qa/reader.py``, trained by
  ``python -m eval.train_reader``) reads the top ``depth`` sentences of the linear sentence
  ranking (the first alone, then the rest in one batch unless the first clears the calibrated
  ``exit_logit`` and the question does not ask for two things); the sentence it finds most likely to answer (its answerability logit,
  plus ``prior_weight`` × the log-probability the first ranking gave it) is cited first, its
  phrase is the answer, and a logistic model over what it read, calibrated (isotonic) on SQuAD
  train articles no model trained on, is the confidence. citeqa abstains under the threshold
  chosen there to keep false abstentions at 5% (``python -m eval.calibrate_reader``).

Gathering candidates (``AnswerStep.gather``) comes before, citation assembly (``qa/cite.py``) after.

Example::

    >>> engine = Engine.open(".citeqa", reader="neural")                    # doctest: +SKIP
    >>> engine.ask("when were direct AZAL flights announced").confidence   # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from qa.analyze import TYPE_LABELS, Question, wants_several
from qa.answer import AnswerStep, Candidates, Decision, _norm
from qa.features import QuestionVectors, SpanCandidate
from qa.model import Calibration
from qa.reader import MODEL_FILE, ReaderUnavailableError, Reading
from qa.reader import NeuralReader as OnnxReader

DEFAULT_READER = "neural"
CALIBRATION_FILE = Path(__file__).resolve().parent / "models" / "reader-calibration.json"
READERS = ("neural", "linear")
READER_FEATURES = ("top_logit", "top_combined", "margin", "span_score", "log_prior", "second_logit", "read")
CONFIDENCE_FEATURES = (
    *READER_FEATURES,
    # what the first ranking measured of the cited sentence: how much of the question it and its
    # neighbours hold, and the rarest question word its whole document lacks (a near-miss
    # question often names something the document never mentions)
    "overlap", "context_overlap", "dense", "doc_missing_idf",
    # whether the question expects a typed answer (a date, a person, a place, a number ...) and
    # whether the phrase is an entity of that type
    "typed_question", "phrase_typed",
)  # fmt: skip
# columns of qa.features.SENTENCE_FEATURES the confidence reads, in the order above
_FIRST_RANKING_COLUMNS = ("overlap", "context_overlap", "dense", "max_missing_idf")


class Reader(Protocol):
    """Reads one question's candidates and decides."""

    name: str

    def read(self, q: Question, qv: QuestionVectors, cand: Candidates, *, avoid: str | None = None) -> Decision: ...


class LinearReader:
    """Today's linear answer step as a ``Reader``."""

    name = "linear"

    def __init__(self, step: AnswerStep) -> None:
        self.step = step

    def read(self, q: Question, qv: QuestionVectors, cand: Candidates, *, avoid: str | None = None) -> Decision:
        return self.step.decide(q, qv, cand, avoid=avoid)


@dataclass(frozen=True)
class ReaderCalibration:
    """What ``python -m eval.calibrate_reader`` fitted on held-out SQuAD train articles."""

    depth: int  # sentences of the first ranking read per question
    prior_weight: float
    coef: np.ndarray  # logistic model over CONFIDENCE_FEATURES
    intercept: float
    calibration: Calibration
    threshold: float  # abstain when the calibrated confidence is below it
    info: dict[str, Any] = field(default_factory=dict)
    # Read the first sentence alone, and the rest only when its answerability logit is below
    # this (None: always read ``depth``). Chosen on the same held-out articles so that the
    # answers barely change; the confidence model sees how many sentences were read.
    exit_logit: float | None = None

    def confidence(self, feats: np.ndarray) -> float:
        raw = float(feats @ self.coef + self.intercept)
        return self.calibration(1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, raw)))))

    def to_json(self) -> dict[str, Any]:
        return {
            "depth": self.depth, "prior_weight": self.prior_weight, "features": list(CONFIDENCE_FEATURES),
            "coef": [float(c) for c in self.coef], "intercept": self.intercept,
            "calibration": self.calibration.to_json(), "threshold": self.threshold, "exit_logit": self.exit_logit,
            "info": self.info,
        }  # fmt: skip

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ReaderCalibration:
        if list(obj["features"]) != list(CONFIDENCE_FEATURES):
            raise ValueError("reader calibration was fitted on other features — rerun: python -m eval.calibrate_reader")
        return cls(int(obj["depth"]), float(obj["prior_weight"]), np.asarray(obj["coef"], np.float64),
                   float(obj["intercept"]), Calibration.from_json(obj["calibration"]), float(obj["threshold"]),
                   dict(obj.get("info", {})),
                   None if obj.get("exit_logit") is None else float(obj["exit_logit"]))  # fmt: skip


UNCALIBRATED = ReaderCalibration(4, 0.5, np.eye(len(CONFIDENCE_FEATURES))[0], 0.0, Calibration(np.zeros(0), np.zeros(0)), 0.5)


@functools.cache
def load_calibration(path: Path = CALIBRATION_FILE) -> ReaderCalibration:
    try:
        return ReaderCalibration.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ReaderUnavailableError(f"no reader calibration at {path} — make it: python -m eval.calibrate_reader") from None


@functools.cache
def _columns() -> list[int]:
    from qa.features import SENTENCE_FEATURES

    return [SENTENCE_FEATURES.index(c) for c in _FIRST_RANKING_COLUMNS]


_WHO_IS = re.compile(r"^\s*who\s+(?:is|was)\s+(?!(?:the|a|an|this|that|his|her|their|its|our|your|my)\b)([\w.'’ -]+?)\s*\??\s*$", re.I)
# the rest of a name: capitalised words only (no possessive, no "of", no lowercase word)
_NAME_REST = re.compile(r"(?:[\s-]+[A-Z][\w.]*)+$")
_LINKING = re.compile(r"^(?:[\s,;:&]|\band\b|\bor\b)+", re.I)


def described_person(question: str) -> str | None:
    """What a definition question asks about ("Who is Ilham Aliyev?" → "Ilham Aliyev"), or None;
    ``_describing`` treats it as a person only where a person of that name is in the sentence."""
    m = _WHO_IS.match(question)
    return m.group(1) if m else None


DATELINE = "On "  # the document's date read before a sentence: "On {date}, {sentence}"


def _picks_date(reading: Reading, date: str) -> bool:
    """Does ``reading`` (of "On {date}, {sentence}") put its phrase on the date and nothing after it?"""
    begin, stop = len(DATELINE), len(DATELINE) + len(date)
    return reading.end > reading.start and reading.start < stop and begin < reading.end <= stop + 1


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@dataclass(frozen=True)
class ReadCandidates:
    """What the neural reader read for one question (kept for calibration and evaluation)."""

    sids: np.ndarray  # the sentences read, in first-ranking order
    log_prior: np.ndarray  # their log-probabilities under the first ranking
    readings: tuple[Reading, ...]
    rest: np.ndarray  # the other candidates, in first-ranking order
    measured: np.ndarray = field(default_factory=lambda: np.zeros((0, len(_FIRST_RANKING_COLUMNS))))  # [read, 4]
    expected: frozenset[str] = frozenset()  # entity labels that fit the question's expected answer type
    subject: str | None = None  # the person a "who is X?" question asks about (``described_person``)


class NeuralReader:
    """The trained cross-encoder as a ``Reader``."""

    name = "neural"

    def __init__(self, step: AnswerStep, onnx: OnnxReader | None = None, calibration: ReaderCalibration | None = None,
                 depth: int | None = None) -> None:  # fmt: skip
        self.step = step
        self.onnx = onnx or _shared_onnx()
        self.calibration = calibration or load_calibration()
        self.depth = depth or self.calibration.depth

    def first_ranking(self, cand: Candidates) -> tuple[np.ndarray, np.ndarray]:
        """Candidates in the linear sentence model's order, and their log-probabilities."""
        model = self.step.model
        assert model is not None
        s1 = model.sentence.score(cand.numeric, cand.cats)
        order = np.argsort(-s1, kind="stable")
        logp = s1 - s1.max() - math.log(float(np.exp(s1 - s1.max()).sum()))
        return order, logp

    def read_candidates(self, q: Question, cand: Candidates, depth: int | None = None,
                        before: ReadCandidates | None = None) -> ReadCandidates:  # fmt: skip
        """The first ``depth`` sentences of the first ranking, read in one batch; with ``before``
        (what an earlier call read of the same candidates), only the ones it did not read."""
        order, logp = self.first_ranking(cand)
        done = len(before.sids) if before is not None else 0
        top = order[: max(done, depth or self.depth)]
        rc = self._read_sids(q, cand.sids[top[done:]])
        readings = (before.readings if before is not None else ()) + rc
        measured = cand.numeric[top][:, _columns()] if len(cand.numeric) else np.zeros((len(top), len(_FIRST_RANKING_COLUMNS)))
        return ReadCandidates(cand.sids[top], logp[top], readings, cand.sids[order[len(top) :]], measured,
                              TYPE_LABELS.get(q.expected or "", frozenset()), described_person(q.text))  # fmt: skip

    def _read_sids(self, q: Question, sids: np.ndarray) -> tuple[Reading, ...]:
        if len(sids) == 0:
            return ()
        idx = self.step.index
        pairs = [(idx.docs[idx.sent_doc[int(s)]].title, idx.sent_text[int(s)]) for s in sids]
        # A "when" question about a sentence that gives no date is answered by the document's own
        # date (qa/cite.py says so); the reader judges that sentence with the date put before it,
        # as the dateline of a news article stands before its first sentence.
        dated: list[tuple[int, str]] = []
        for i, s in enumerate(sids.tolist()):
            doc = self.step.document_date_fallback(q, int(s), None)
            if doc is not None:
                date = doc.text[doc.date_start : doc.date_end]
                dated.append((i, date))
                pairs.append((pairs[i][0], f"{DATELINE}{date}, {pairs[i][1]}"))
        read = self.onnx.read(q.text, pairs, phrases=4)
        readings = read[: len(sids)]
        for k, (i, date) in enumerate(dated):
            with_date = read[len(sids) + k]
            if _picks_date(with_date, date):
                # the reader's phrase is that date: the answer given is the document's date, so its
                # phrase score (and its type, a date) is what the confidence should weigh, not the
                # score of a phrase inside the sentence that is not the answer
                readings[i] = Reading(max(with_date.logit, readings[i].logit), 0, 0, with_date.span_score, date,
                                      document_date=True)  # fmt: skip
            elif with_date.logit > readings[i].logit:
                readings[i] = replace(readings[i], logit=with_date.logit)
        return tuple(readings)

    def decide(self, read: ReadCandidates, avoid: str | None = None, calibration: ReaderCalibration | None = None,
               depth: int | None = None) -> Decision:  # fmt: skip
        """The decision from what was read; ``depth`` < what was read uses only the first ones."""
        cal = calibration or self.calibration
        n = min(len(read.sids), depth or len(read.sids))
        if n == 0:
            return Decision([], None, 0.0, True, np.zeros(len(CONFIDENCE_FEATURES)))
        readings = read.readings[:n]
        logits = np.array([r.logit for r in readings])
        combined = logits + cal.prior_weight * read.log_prior[:n]
        order = np.argsort(-combined, kind="stable")
        best = int(order[0])
        r = readings[best]
        start, end, span_score = r.start, r.end, r.span_score
        if avoid and _norm(r.phrase) == _norm(avoid):
            text = self.step.index.sent_text[int(read.sids[best])]
            for a, b, sc in r.others:
                if _norm(text[a:b]) != _norm(avoid):
                    start, end, span_score = a, b, sc
                    break
        if end > start:
            start, end = self._whole_names(int(read.sids[best]), start, end)
        if read.subject and end > start:
            start, end = self._describing(int(read.sids[best]), start, end, read.subject)
        span = SpanCandidate(start, end, 0, 0, "neural") if end > start else None
        p = _softmax(combined)
        ranked = [(int(read.sids[i]), float(p[i])) for i in order]
        ranked += [(int(s), 0.0) for s in read.sids[n:]] + [(int(s), 0.0) for s in read.rest]
        feats = self.features(logits, combined, order, span_score, read.log_prior[:n], n)
        feats = np.concatenate([feats, self.evidence_features(read, best, start, end)])
        conf = cal.confidence(feats)
        alternatives = []
        best_text = self.step.index.sent_text[int(read.sids[best])]
        for rank, i in enumerate(order.tolist()):
            rd = readings[i]
            sid = int(read.sids[i])
            if rank == 0:
                for a, b, sc in rd.others:
                    w = float(p[i] / (1.0 + math.exp(-(sc - rd.span_score + 3))))
                    alternatives.append((sid, SpanCandidate(a, b, 0, 0, "neural"), w))
            elif rd.end > rd.start and _norm(rd.phrase) != _norm(best_text[start:end]):
                alternatives.append((sid, SpanCandidate(rd.start, rd.end, 0, 0, "neural"), float(p[i])))
        alternatives.sort(key=lambda x: -x[2])
        return Decision(ranked, span, conf, conf < cal.threshold, feats, tuple(alternatives), conf)

    def _whole_names(self, sid: int, start: int, end: int) -> tuple[int, int]:
        """The phrase ``start:end`` of sentence ``sid`` without cutting a name short: extended to the
        end of a named entity it ends inside when the rest of the entity is capitalised words
        ("Pakistan Stream Gas" → "Pakistan Stream Gas Pipeline").

        Only that: extending a phrase back over the capitalised words before it ("Economic
        Corridor" → "China-Pakistan Economic Corridor"), or to an entity's end over lowercase words
        ("Charlesfort" → "Charlesfort on Parris Island"), cost more answers than it won on 1,000
        SQuAD v1.1 dev questions (9 exact matches lost, 2 won)."""
        text = self.step.index.sent_text[sid]
        for a, b, label, _value in self.step.index.mentions[sid]:
            if label != "NP" and a <= start < end < b and _NAME_REST.match(text[end:b]):
                end = b
        return start, end

    def _describing(self, sid: int, start: int, end: int, subject: str) -> tuple[int, int]:
        """The phrase ``start:end`` of sentence ``sid`` as an answer to "who is ``subject``?": what it
        says of that person, never another one. A phrase that takes in another person's name ("Prime
        Minister Imran Khan and President" before "Ilham Aliyev") keeps what follows the last such
        name and its conjunction ("President"); nothing is left (0, 0) when nothing follows."""
        text = self.step.index.sent_text[sid]
        own = set(_norm(subject).split())
        people = [(a, b, bool(own & set(_norm(text[a:b]).split())))
                  for a, b, label, _value in self.step.index.mentions[sid] if label == "PERSON"]  # fmt: skip
        if not any(is_subject for *_, is_subject in people):
            return start, end  # the sentence does not name that person: nothing to tell apart
        cut = start
        for a, b, is_subject in people:
            if a < end and b > start and not is_subject:
                cut = max(cut, b)
        if cut == start:
            return start, end
        rest = _LINKING.sub("", text[cut:end])
        if not rest.strip():
            return 0, 0
        return end - len(rest), end

    @staticmethod
    def features(logits, combined, order, span_score, log_prior, n) -> np.ndarray:
        best = int(order[0])
        margin = float(combined[best] - combined[int(order[1])]) if n > 1 else 5.0
        second = float(np.sort(logits)[-2]) if n > 1 else -10.0
        return np.array([float(logits[best]), float(combined[best]), min(margin, 10.0), float(span_score) / 10.0,
                         float(log_prior[best]), second, math.log(n)])  # fmt: skip

    def evidence_features(self, read: ReadCandidates, best: int, start: int, end: int) -> np.ndarray:
        measured = read.measured[best] if len(read.measured) > best else np.zeros(len(_FIRST_RANKING_COLUMNS))
        typed = 0.0
        if read.expected and read.readings[best].document_date:
            typed = 1.0  # the document's date, for a question that expects one
        elif read.expected and end > start:
            mentions = self.step.index.mentions[int(read.sids[best])]
            typed = float(any(lab in read.expected and a < end and b > start for a, b, lab, *_ in mentions))
        return np.concatenate([measured, [float(bool(read.expected)), typed]])

    def read(self, q: Question, qv: QuestionVectors, cand: Candidates, *, avoid: str | None = None) -> Decision:
        if len(cand.sids) == 0:
            return Decision([], None, 0.0, True, np.zeros(len(CONFIDENCE_FEATURES)))
        exit_logit = self.calibration.exit_logit
        # a question asking for two things ("which two …", "each side") needs more than the first
        # sentence even when that one clearly answers: its second part is often in another
        if exit_logit is None or self.depth <= 1 or wants_several(q.text):
            return self.decide(self.read_candidates(q, cand), avoid)
        first = self.read_candidates(q, cand, depth=1)
        if first.readings and first.readings[0].logit >= exit_logit:
            return self.decide(first, avoid)
        return self.decide(self.read_candidates(q, cand, before=first), avoid)



@functools.cache
def _shared_onnx() -> OnnxReader:
    return OnnxReader(MODEL_FILE)


def make_reader(name: str, step: AnswerStep) -> Reader:
    """The reader called ``name`` ("neural" or "linear") over ``step``'s index and linear models."""
    if name == "linear":
        return LinearReader(step)
    if name == "neural":
        return NeuralReader(step)
    raise ValueError(f"unknown reader {name!r}; choose one of {', '.join(READERS)}")
