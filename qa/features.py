"""What the answer step measures about a question and a candidate sentence or phrase.

Computed the same way when answering and when training (``eval/train.py`` calls these very
functions on SQuAD), so a learned weight always meets the feature it was fitted on. Three kinds:

- ``sentence_features``: one row per candidate sentence — dense similarity (sentence, passage,
  document), BM25 (sentence, passage, document), the share of the question's rare terms in the
  sentence and around it, token-level alignment with the question (each question word's best
  match in the sentence, its neighbours and the document), answer-type evidence (does the
  sentence hold a date for "when", a person for "who", …) and the ranks of these among the
  candidates; plus categorical features (question class × entity labels present).
- ``span_candidates`` / ``span_features``: the phrases of a sentence that could be the answer
  (entities, noun chunks, dependency subtrees, prepositional objects) and what fits them to the
  question (type, syntax, distance to the question's words in the sentence, overlap with the
  question, shape).
- the confidence features are assembled in ``qa.answer`` from these.

Everything is per question and touches only the candidates, so asking stays cheap whatever the
size of the collection.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from index.annotate import Parse
from index.loaded import LoadedIndex
from index.terms import STOPWORDS, content_terms, stem
from qa.analyze import TYPE_LABELS, Question
from qa.retrieve import Retriever

SENTENCE_FEATURES = (
    "dense", "dense_passage", "bm25", "bm25_passage", "overlap", "context_overlap", "bigram", "log_terms",
    "passage_rank", "rank_dense", "rank_bm25", "rank_overlap", "dense_gap", "overlap_gap", "doc_bm25", "doc_dense",
    "rank_doc_bm25", "prev_overlap", "next_overlap", "longest_run", "caps_overlap", "number_overlap", "type_ok",
    "has_expected", "rank_doc_dense", "doc_overlap_gap", "doc_not_sentence", "first_in_doc", "log_position",
    "max_missing_idf", "align", "align_low", "align_doc", "align_doc_low", "align_context", "align_context_low",
    "align_gap", "align_doc_gap",
)  # fmt: skip

SPAN_FEATURES = (
    "in_question", "all_in_question", "log_distance", "closeness", "window_mass", "log_length", "position",
    "governor_in_question", "siblings_in_question", "in_parentheses", "is_entity", "capitalised", "tree_distance",
    "tree_closeness",
)  # fmt: skip

_CAPS = re.compile(r"\b[A-Z][A-Za-z0-9]+")
_NUM = re.compile(r"\d+(?:[.,]\d+)?")
_WORD = re.compile(r"[A-Za-z0-9]+")
_YEAR = re.compile(r"(?:1[0-9]|20)[0-9]{2}s?")
_CUE_WORDS = frozenset(
    "in on by of at from as called named known to for with than about during after before since until is was are "
    "were include including such because and".split()
)
_CONTENT_POS = frozenset({"NOUN", "PROPN", "NUM", "ADJ", "VERB", "ADV", "X", "SYM"})
MAX_SPAN_TOKENS = 12  # entities, chunks and single words
MAX_PHRASE_TOKENS = 18  # subtrees and prepositional objects (lists, clauses: "energy, agriculture, …")


# --- question side -------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuestionVectors:
    """The question as the encoder sees it: pooled vector and projected token vectors."""

    vec: np.ndarray  # [dim], unit
    tokens: np.ndarray  # [n, TOKEN_DIM] unit vectors of the question's content tokens (may be empty)


# --- corpus side: per-sentence facts, computed lazily and cached ------------------------------------
_SENTENCE_CACHE = 200_000  # entries kept per cache before it is emptied
_DOC_CACHE = 50_000


class _Memo(dict):
    """A dict that makes a missing value with ``make(key)`` and keeps at most ``limit`` entries
    (emptied when full: a long-running server over a big collection sees ever new sentences)."""

    def __init__(self, make, limit: int) -> None:
        super().__init__()
        self.make = make
        self.limit = limit

    def __missing__(self, key):
        if len(self) >= self.limit:
            self.clear()
        value = self[key] = self.make(key)
        return value


class SentenceFacts:
    """Cheap per-sentence and per-document facts the features need, computed on first use."""

    def __init__(self, index: LoadedIndex, retriever: Retriever) -> None:
        self.index = index
        self.retriever = retriever
        self._seq = _Memo(self._make_seq, _SENTENCE_CACHE)
        self._terms = _Memo(lambda sid: frozenset(self._seq[sid]), _SENTENCE_CACHE)
        self._labels = _Memo(self._make_labels, _SENTENCE_CACHE)
        self._numbers = _Memo(lambda sid: frozenset(_NUM.findall(self.index.sent_text[sid])), _SENTENCE_CACHE)
        self._span_bases = _Memo(lambda sid: span_base(self.index.sent_text[sid], self.index.parse(sid)), 50_000)
        self._doc_range = _Memo(self._make_doc_range, _DOC_CACHE)
        self._doc_terms = _Memo(self._make_doc_terms, _DOC_CACHE)
        self._doc_vec = _Memo(self._make_doc_vec, _DOC_CACHE)
        self._doc_tokens: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._doc_no = {d: i for i, d in enumerate(index.docs)}

    def seq(self, sid: int) -> tuple[str, ...]:
        """The sentence's content terms in order (as BM25 indexed them)."""
        return self._seq[sid]

    def _make_seq(self, sid: int) -> tuple[str, ...]:
        # Read from the BM25 terms stored at index time (the same analyzer), not re-analyzed:
        # over a big collection most candidates are sentences no question reached before.
        return self.retriever.sentence_bm25.text_terms(sid)

    def terms(self, sid: int) -> frozenset[str]:
        return self._terms[sid]

    def doc_of(self, sid: int) -> str:
        return self.index.sent_doc[sid]

    def doc_no(self, doc_id: str) -> int:
        return self._doc_no[doc_id]

    def doc_range(self, doc_id: str) -> tuple[int, int]:
        return self._doc_range[doc_id]

    def _make_doc_range(self, doc_id: str) -> tuple[int, int]:
        sids = self.index.doc_sentences[doc_id]
        return (int(sids[0]), int(sids[-1])) if len(sids) else (0, -1)

    def position(self, sid: int) -> int:
        return sid - self.doc_range(self.doc_of(sid))[0]

    def doc_terms(self, doc_id: str) -> frozenset[str]:
        return self._doc_terms[doc_id]

    def _make_doc_terms(self, doc_id: str) -> frozenset[str]:
        first, last = self.doc_range(doc_id)
        terms: set[str] = set()
        for s in range(first, last + 1):
            terms.update(self.seq(s))
        return frozenset(terms)

    def doc_vec(self, doc_id: str) -> np.ndarray:
        return self._doc_vec[doc_id]

    def _make_doc_vec(self, doc_id: str) -> np.ndarray:
        first, last = self.doc_range(doc_id)
        v = self.retriever.sentence_vectors(slice(first, last + 1)).sum(0)
        return v / (np.linalg.norm(v) + 1e-9)

    def labels(self, sid: int) -> tuple[tuple[str, frozenset[str]], ...]:
        """(entity label, content terms) of the sentence's entities and numbers (not noun chunks)."""
        return self._labels[sid]

    def _make_labels(self, sid: int) -> tuple[tuple[str, frozenset[str]], ...]:
        terms = self.index.sentence_mention_terms(sid)  # analyzed at index time
        return tuple((m[2], t) for m, t in zip(self.index.mentions[sid], terms, strict=True) if m[2] != "NP")

    def doc_tokens(self, doc_id: str, token_store) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The document's token vectors as float32 [tokens, dim], where its non-empty sentences
        start among them, and which sentences are non-empty (cached: every question re-reads the
        documents of its candidates)."""
        got = self._doc_tokens.get(doc_id)
        if got is None:
            first, last = self.doc_range(doc_id)
            starts = np.asarray(token_store.starts[first : last + 2], np.int64)
            starts = starts - starts[0]
            nonempty = np.diff(starts) > 0
            toks = np.ascontiguousarray(token_store.span(first, last)) if last >= first else np.zeros((0, 1), np.float32)
            if len(self._doc_tokens) > 4096:  # bounded: a big collection's documents come and go
                self._doc_tokens.clear()
            got = self._doc_tokens[doc_id] = (toks, starts[:-1][nonempty], nonempty)
        return got

    def span_base(self, sid: int) -> SpanBase:
        """The sentence's candidate phrases and their question-independent features."""
        return self._span_bases[sid]

    def numbers(self, sid: int) -> frozenset[str]:
        return self._numbers[sid]


def _longest_run(qterms: Sequence[str], seq: Sequence[str]) -> int:
    """Length of the longest run of consecutive question terms found consecutively in ``seq``."""
    pos: dict[str, list[int]] = {}
    for i, t in enumerate(seq):
        pos.setdefault(t, []).append(i)
    best = 0
    for a in range(len(qterms)):
        for p in pos.get(qterms[a], ()):
            n = 1
            while a + n < len(qterms) and p + n < len(seq) and seq[p + n] == qterms[a + n]:
                n += 1
            best = max(best, n)
    return best


def _rank_feature(x: np.ndarray) -> np.ndarray:
    """1 / (1 + rank) of each value among the candidates (rank 0 = largest)."""
    r = np.empty(len(x))
    r[np.argsort(-x, kind="stable")] = np.arange(len(x))
    return 1.0 / (1.0 + r)


def _alignment_stats(best: np.ndarray) -> tuple[float, float]:
    """(mean, mean of the weakest third) over question tokens of their best match."""
    if len(best) == 0 or not np.isfinite(best).all():
        return 0.0, 0.0
    k = max(1, len(best) // 3)
    return float(best.mean()), float(np.sort(best)[:k].mean())


def _alignment_columns(best: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_alignment_stats`` of every column of ``best`` [question tokens, m] at once."""
    ok = np.isfinite(best).all(0)
    safe = np.where(ok[None, :], best, 0.0)
    k = max(1, best.shape[0] // 3)
    mean = safe.mean(0)
    low = np.sort(safe, axis=0)[:k].mean(0)
    return np.where(ok, mean, 0.0), np.where(ok, low, 0.0)


def _alignments(qtok: np.ndarray, token_store, facts: SentenceFacts, sids: list[int], docs: list[str]) -> np.ndarray:
    """Token alignment of the question with each candidate sentence, its neighbours and its
    document: [n, 6] = (mean, weakest third) × (sentence, document, sentence ± 1).

    One matrix product per document: question tokens × the document's tokens, reduced to each
    sentence's best match per question token (a document's sentences are contiguous rows).
    """
    out = np.zeros((len(sids), 6), np.float32)
    by_doc: dict[str, list[int]] = {}
    for j, d in enumerate(docs):
        by_doc.setdefault(d, []).append(j)
    for d, js in by_doc.items():
        first, last = facts.doc_range(d)
        if last < first:
            continue
        toks, cuts, nonempty = facts.doc_tokens(d, token_store)
        if len(toks) == 0:
            continue
        sims = qtok @ toks.T  # [question tokens, document tokens]
        best = np.full((len(qtok), last - first + 1), -np.inf, np.float32)  # per sentence
        best[:, nonempty] = np.maximum.reduceat(sims, cuts, axis=1)
        doc_stats = _alignment_stats(best.max(1))
        cols = np.fromiter((sids[j] - first for j in js), np.int64, count=len(js))
        n_cols = best.shape[1]
        window = np.maximum(
            np.maximum(best[:, np.maximum(cols - 1, 0)], best[:, cols]), best[:, np.minimum(cols + 1, n_cols - 1)]
        )
        rows = np.asarray(js, np.int64)
        out[rows, 0], out[rows, 1] = _alignment_columns(best[:, cols])
        out[rows, 2], out[rows, 3] = doc_stats
        out[rows, 4], out[rows, 5] = _alignment_columns(window)
    return out


def type_labels_present(facts: SentenceFacts, sid: int, qterms: frozenset[str]) -> set[str]:
    """Entity labels of the sentence's mentions that the question does not already name."""
    return {label for label, terms in facts.labels(sid) if not (terms and terms <= qterms)}


def sentence_features(
    facts: SentenceFacts,
    q: Question,
    qv: QuestionVectors,
    sids: np.ndarray,
    passage_rank: np.ndarray,
    token_store,
) -> tuple[np.ndarray, list[list[str]]]:
    """Features of each candidate sentence ``sids`` for question ``q``: (numeric [n, k], categorical)."""
    index, retriever = facts.index, facts.retriever
    terms = list(q.terms)
    qset = frozenset(terms)
    idf = retriever.passage_bm25.term_idf
    w = {t: idf(t) for t in terms}
    tot = sum(w.values()) or 1.0
    n = len(sids)
    F = np.zeros((n, len(SENTENCE_FEATURES)), np.float32)
    if n == 0:
        return F, []
    v = qv.vec
    F[:, 0] = retriever.sentence_vectors(sids) @ v
    pids = np.asarray(index.sent_passage[sids], np.int64)
    F[:, 1] = retriever.passage_vectors(pids) @ v
    F[:, 2] = retriever.sentence_bm25.scores_for(terms, sids) / tot
    F[:, 3] = retriever.passage_bm25.scores_for(terms, pids) / tot
    docs = [facts.doc_of(int(s)) for s in sids]
    uniq_docs = sorted(set(docs))
    doc_bm25 = dict(zip(uniq_docs, _doc_bm25(facts, terms, uniq_docs), strict=True))
    doc_dot = {d: float(facts.doc_vec(d) @ v) for d in uniq_docs}
    qb = set(zip(terms, terms[1:], strict=False))
    qcaps = {stem(x) for x in _CAPS.findall(q.text[1:])}
    qnums = set(_NUM.findall(q.text))
    labels_ok = _expected_labels(q)
    # Which question terms each sentence (candidates and their neighbours) and each document holds:
    # one boolean matrix, so the idf-weighted overlaps are matrix products.
    sid_list = sids.tolist()
    wv = np.array([w[x] for x in terms], np.float64) / tot
    ranges = [facts.doc_range(d) for d in docs]
    prev_ok = np.array([r[0] <= sid - 1 for sid, r in zip(sid_list, ranges, strict=True)], bool)
    next_ok = np.array([sid + 1 <= r[1] for sid, r in zip(sid_list, ranges, strict=True)], bool)
    need = sorted(set(sid_list) | {s - 1 for s, ok in zip(sid_list, prev_ok, strict=True) if ok}
                  | {s + 1 for s, ok in zip(sid_list, next_ok, strict=True) if ok})
    row = {s: i for i, s in enumerate(need)}
    PM = np.array([[x in facts.terms(s) for x in terms] for s in need], bool).reshape(len(need), len(terms))
    P = PM[[row[s] for s in sid_list]]
    PL = PM[[row.get(s - 1, 0) for s in sid_list]] & prev_ok[:, None]
    PR = PM[[row.get(s + 1, 0) for s in sid_list]] & next_ok[:, None]
    doc_pres = {d: np.array([x in facts.doc_terms(d) for x in terms], bool) for d in uniq_docs}
    PD = np.array([doc_pres[d] for d in docs], bool).reshape(n, len(terms))
    F[:, 4] = P @ wv
    F[:, 17] = PL @ wv
    F[:, 18] = PR @ wv
    F[:, 5] = (P | PL | PR) @ wv
    F[:, 25] = PD @ wv
    F[:, 26] = (PD & ~P) @ wv
    doc_missing = {}
    for d in uniq_docs:
        missing = [w[x] for x, present in zip(terms, doc_pres[d].tolist(), strict=True) if not present]
        doc_missing[d] = max(missing) / 10.0 if missing else 0.0
    any_term = cast(list[bool], np.asarray(P).any(1).tolist())
    cats: list[list[str]] = []
    for j, sid in enumerate(sid_list):
        seq = facts.seq(sid)
        st = facts.terms(sid)
        doc = docs[j]
        first = ranges[j][0]
        shared = qb & set(zip(seq, seq[1:], strict=False))
        F[j, 6] = len(shared) / max(1, len(qb))
        F[j, 7] = math.log1p(len(st))
        F[j, 8] = 1.0 / (1.0 + passage_rank[j])
        F[j, 14] = doc_bm25[doc] / tot
        F[j, 15] = doc_dot[doc]
        # A run of two or more question words needs a shared bigram; without one it is 1 or 0.
        run = _longest_run(terms, seq) if shared else int(any_term[j])
        F[j, 19] = run / max(1, len(terms))
        if qcaps:
            F[j, 20] = len(qcaps & st) / len(qcaps)
        if qnums:
            F[j, 21] = len(qnums & facts.numbers(sid)) / len(qnums)
        present = type_labels_present(facts, sid, qset)
        if labels_ok:
            F[j, 22] = 1.0 if present & labels_ok else 0.0
            F[j, 23] = 1.0
        pos = sid - first
        F[j, 27] = 1.0 if pos == 0 else 0.0
        F[j, 28] = math.log1p(pos)
        F[j, 29] = doc_missing[doc]
        cats.append(_sentence_categories(q, present))
    F[:, 9] = _rank_feature(F[:, 0])
    F[:, 10] = _rank_feature(F[:, 2])
    F[:, 11] = _rank_feature(F[:, 4])
    F[:, 12] = F[:, 0] - F[:, 0].max()
    F[:, 13] = F[:, 4] - F[:, 4].max()
    F[:, 16] = _rank_feature(F[:, 14])
    F[:, 24] = _rank_feature(F[:, 15])
    F[:, 25] -= F[:, 25].max()
    if token_store is not None and len(qv.tokens):
        F[:, 30:36] = _alignments(qv.tokens, token_store, facts, sids.tolist(), docs)
        F[:, 36] = F[:, 30] - F[:, 30].max()
        F[:, 37] = F[:, 32] - F[:, 32].max()
    return F, cats


def _doc_bm25(facts: SentenceFacts, terms: list[str], docs: list[str]) -> list[float]:
    """BM25 of whole documents, scored as the sum over a document's passages' best matches.

    Documents can be long (a news article) or short (a SQuAD paragraph); a document's score is
    the BM25 of its passages combined (max + 0.5·mean), so a long document is not favoured for
    repeating a word and a short one is not lost.
    """
    bm = facts.retriever.passage_bm25
    ranges = [facts.index.doc_passages[d] for d in docs]
    pids = np.concatenate([np.arange(r.start, r.stop, dtype=np.int64) for r in ranges]) if docs else np.zeros(0, np.int64)
    scores = bm.scores_for(terms, pids)  # one pass over each term's postings for all the documents
    out, at = [], 0
    for r in ranges:
        s = scores[at : at + len(r)]
        at += len(r)
        out.append(float(s.max() + 0.5 * s.mean()) if len(s) else 0.0)
    return out


def _expected_labels(q: Question) -> frozenset[str]:
    return TYPE_LABELS.get(q.expected or "", frozenset())


def _sentence_categories(q: Question, present: set[str]) -> list[str]:
    out = []
    for label in sorted(present):
        out.append(f"q:{q.qclass}|L:{label}")
        if q.head:
            out.append(f"hc:{q.head_class}|L:{label}")
            out.append(f"h:{q.head}|L:{label}")
    if not present:
        out.append(f"q:{q.qclass}|none")
    return out


# --- answer phrases --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpanCandidate:
    start: int  # characters, inside the sentence
    end: int
    first: int  # tokens [first, last)
    last: int
    kind: str  # "ent:DATE", "nc", "sub:PROPN:nsubj", "tok:NOUN", "pobj:prep"


def span_candidates(text: str, parse: Parse) -> list[SpanCandidate]:
    """Phrases of a sentence that could answer a question, without duplicates (by characters)."""
    toks = parse.tokens
    n = len(toks)
    seen: dict[tuple[int, int], SpanCandidate] = {}

    def add(ta: int, tb: int, kind: str) -> None:
        if kind.startswith("sub"):
            while tb - ta > 1 and toks[ta].pos in ("DET", "PUNCT", "CCONJ", "ADP"):
                ta += 1
        while ta < tb and toks[ta].pos == "PUNCT":
            ta += 1
        while tb > ta and toks[tb - 1].pos == "PUNCT":
            tb -= 1
        limit = MAX_PHRASE_TOKENS if kind.startswith(("sub", "pobj")) else MAX_SPAN_TOKENS
        if ta >= tb or tb - ta > limit:
            return
        key = (toks[ta].start, toks[tb - 1].end)
        if key not in seen:
            seen[key] = SpanCandidate(key[0], key[1], ta, tb, kind)

    for ta, tb, label in parse.entities:
        add(ta, tb, "ent:" + label)
    for ta, tb in parse.chunks:
        add(ta, tb, "nc")
    left = list(range(n))
    right = list(range(n))
    for i in sorted(range(n), key=lambda i: _depth(parse, i), reverse=True):
        h = toks[i].head
        if h != i and 0 <= h < n:
            left[h] = min(left[h], left[i])
            right[h] = max(right[h], right[i])
    for i, t in enumerate(toks):
        if t.pos in _CONTENT_POS:
            add(left[i], right[i] + 1, f"sub:{t.pos}:{t.dep}")
            add(i, i + 1, f"tok:{t.pos}")
        if t.pos == "ADP" and right[i] > i:
            add(i + 1, right[i] + 1, f"pobj:{t.dep}")
    return list(seen.values())


def _depth(parse: Parse, i: int) -> int:
    d = 0
    toks = parse.tokens
    while toks[i].head != i and d < 64:
        i = toks[i].head
        d += 1
    return d


@dataclass
class SpanBase:
    """What the phrase features need of one sentence that no question changes (cached per sentence)."""

    text: str
    parse: Parse
    cands: list[SpanCandidate]
    tok_stem: list[str | None]  # each token's content term (None: a stopword or punctuation)
    adj: list[list[int]]  # the dependency tree, undirected
    span_terms: list[list[str]]  # per candidate: its tokens' content terms
    head: list[int]  # per candidate: its head token
    gov: list[int]  # per candidate: the head's governor (-1: none)
    siblings: list[list[int]]  # per candidate: other dependants of the governor, outside the phrase
    static: np.ndarray  # per candidate: the question-independent numeric features
    first: np.ndarray  # per candidate: first token (int64)
    last: np.ndarray  # per candidate: one past its last token
    head_arr: np.ndarray  # ``head`` as an array
    gov_arr: np.ndarray  # ``gov`` as an array
    n_terms: np.ndarray  # per candidate: how many of its tokens have a content term
    sib_flat: np.ndarray  # ``siblings`` flattened (token ids) …
    sib_owner: np.ndarray  # … and the candidate each belongs to
    facts: list[tuple[str, str, str, str, str, str, str, bool, str, str]]
    # per candidate: label, head POS, head dep, length bucket, previous word cue, governor POS,
    # shape, has a list, kind prefix, kind
    _names: dict = field(default_factory=dict)  # (question class, head class, head) → static names

    def static_names(self, qc: str, hc: str | None, head: str | None) -> list[tuple]:
        key = (qc, hc, head)
        got = self._names.get(key)
        if got is None:
            if len(self._names) > 64:
                self._names.clear()
            got = self._names[key] = _static_names(self, qc, hc, head)
        return got


def _static_names(base: SpanBase, qc: str, hc: str | None, head: str | None) -> list[tuple]:
    """The categorical names of each candidate that depend only on the question's class and head
    noun (the rest depend on where the question's words are): made once per sentence and kind of
    question."""
    out = []
    for label, hpos, hdep, lb, prev, govpos, shape, has_list, kind0, kind in base.facts:
        a = (f"k:{kind0}", f"q:{qc}|L:{label}", f"q:{qc}|p:{hpos}", f"q:{qc}|d:{hdep}", f"q:{qc}|n:{lb}",
             f"q:{qc}|prev:{prev}", f"q:{qc}|k:{kind}")  # fmt: skip
        heads = (
            (f"hc:{hc}|L:{label}", f"h:{head}|L:{label}", f"hc:{hc}|p:{hpos}", f"hc:{hc}|n:{lb}", f"hc:{hc}|shape:{shape}")
            if head else ()
        )
        out.append((a, f"q:{qc}|gp:{govpos}|d:{hdep}", f"q:{qc}|shape:{shape}", f"q:{qc}|list:{int(has_list)}",
                    heads, hdep, label))
    return out


def span_base(text: str, parse: Parse, cands: Sequence[SpanCandidate] | None = None) -> SpanBase:
    toks = parse.tokens
    n = len(toks)
    cands = list(span_candidates(text, parse) if cands is None else cands)
    tok_stem: list[str | None] = []
    for t in toks:
        ct = content_terms(text[t.start : t.end])
        tok_stem.append(ct[0] if ct else None)
    adj: list[list[int]] = [[] for _ in range(n)]
    for i, t in enumerate(toks):
        if t.head != i and 0 <= t.head < n:
            adj[i].append(t.head)
            adj[t.head].append(i)
    dependants: dict[int, list[int]] = {}
    for i, t in enumerate(toks):
        dependants.setdefault(t.head, []).append(i)
    ent_label = {(a, b): lab for a, b, lab in parse.entities}
    static = np.zeros((len(cands), len(SPAN_FEATURES)), np.float32)
    span_terms, heads, govs, sibs, facts = [], [], [], [], []
    for j, c in enumerate(cands):
        ta, tb = c.first, c.last
        span_terms.append([ts for i in range(ta, tb) if (ts := tok_stem[i]) is not None])
        length = tb - ta
        static[j, 5] = math.log(length)
        static[j, 6] = ta / max(1, n)
        hd = ta
        for i in range(ta, tb):
            if not (ta <= toks[i].head < tb) or toks[i].head == i:
                hd = i
                break
        gov = toks[hd].head
        has_gov = gov != hd and 0 <= gov < n
        heads.append(hd)
        govs.append(gov if has_gov else -1)
        sibs.append([i for i in dependants.get(gov, ()) if i != hd and not ta <= i < tb])
        static[j, 9] = 1.0 if ta > 0 and text[toks[ta - 1].start : toks[ta - 1].end] == "(" else 0.0
        static[j, 10] = 1.0 if c.kind.startswith("ent:") else 0.0
        stext = text[c.start : c.end]
        static[j, 11] = 1.0 if stext[:1].isupper() else 0.0
        label = ent_label.get((ta, tb))
        if label is None:
            inner = sorted({toks[i].ent for i in range(ta, tb) if toks[i].ent})
            label = ("part:" + inner[0]) if inner else "none"
        prev = text[toks[ta - 1].start : toks[ta - 1].end].lower() if ta > 0 else "^"
        prev = prev if prev in _CUE_WORDS else "o"
        govpos = toks[gov].pos if has_gov else "ROOT"
        words = _WORD.findall(stext)
        if _YEAR.fullmatch(stext):
            shape = "year"
        elif any(ch.isdigit() for ch in stext):
            shape = "num"
        elif words and all(x[:1].isupper() for x in words if x.lower() not in STOPWORDS):
            shape = "cap"
        else:
            shape = "low"
        has_list = "," in stext or " and " in stext
        facts.append((label, toks[hd].pos, toks[hd].dep, str(min(length, 6)), prev, govpos, shape, has_list,
                      c.kind.split(":")[0], c.kind))
    first = np.array([c.first for c in cands], np.int64)
    last = np.array([c.last for c in cands], np.int64)
    return SpanBase(text, parse, cands, tok_stem, adj, span_terms, heads, govs, sibs, static,
                    first, last, np.array(heads, np.int64), np.array(govs, np.int64),
                    np.array([len(t) for t in span_terms], np.int64),
                    np.array([i for sib in sibs for i in sib], np.int64),
                    np.array([j for j, sib in enumerate(sibs) for _ in sib], np.int64), facts)


def _hops_from(adj: list[list[int]], sources: Sequence[int]) -> dict[int, list[int]]:
    """For each source token, the number of dependency edges to every token (undirected)."""
    n = len(adj)
    out: dict[int, list[int]] = {}
    for src in sources:
        dist = [n + 1] * n
        dist[src] = 0
        frontier = [src]
        while frontier:
            nxt = []
            for u in frontier:
                for v in adj[u]:
                    if dist[v] > dist[u] + 1:
                        dist[v] = dist[u] + 1
                        nxt.append(v)
            frontier = nxt
        out[src] = dist
    return out


def span_features(
    q: Question, text: str, parse: Parse, cands: Sequence[SpanCandidate], idf, base: SpanBase | None = None
) -> tuple[np.ndarray, list[list[str]]]:
    """Features of each candidate phrase of one sentence for question ``q`` (``base``: the
    sentence's cached question-independent part, built here when not given). Array arithmetic
    over candidates × question words; only the categorical names are made one by one."""
    if base is None:
        base = span_base(text, parse, cands)
    tok_stem = base.tok_stem
    qset = set(q.terms)
    qc = q.qclass
    hc = q.head_class
    C = len(base.cands)
    F = base.static.copy()
    if C == 0:
        return F, []
    match = np.fromiter((st is not None and st in qset for st in tok_stem), bool, count=len(tok_stem))
    mpos = np.flatnonzero(match)
    totw = sum(idf(x) for x in qset) or 1.0
    ta, tb, hd = base.first, base.last, base.head_arr
    cm = np.concatenate([[0], np.cumsum(match)])
    inq = cm[tb] - cm[ta]
    nt = base.n_terms
    F[:, 0] = inq / np.maximum(1, nt)
    full = (nt > 0) & (inq == nt)
    F[:, 1] = full
    gov = base.gov_arr
    gov_in_q = (gov >= 0) & match[np.maximum(gov, 0)]
    F[:, 7] = gov_in_q
    sib_hits = np.bincount(base.sib_owner, weights=match[base.sib_flat], minlength=C) if len(base.sib_flat) else 0.0
    F[:, 8] = np.minimum(sib_hits, 3) / 3
    tree: list[int | None] = [None] * C
    side = ["none"] * C
    if len(mpos):
        mw = np.array([idf(tok_stem[i]) for i in mpos], np.float64)
        P = mpos[None, :]
        outside = (ta[:, None] > P) | (tb[:, None] <= P)  # [C, M]: question words outside the phrase
        d = np.minimum(np.abs(P - ta[:, None]), np.abs(P - (tb[:, None] - 1)))
        has_out = np.asarray(outside.any(1))
        big = 1 << 30
        F[:, 2] = np.where(has_out, np.log1p(np.where(outside, d, big).min(1)), 3.0)
        F[:, 3] = (outside * mw * np.exp(-d / 4.0)).sum(1) / totw
        F[:, 4] = (outside * mw * (d <= 6)).sum(1) / totw
        hops = _hops_from(base.adj, mpos.tolist())
        H = np.array([hops[p] for p in mpos.tolist()], np.int64)[:, hd].T  # [C, M]: hops from each head
        tmin = np.where(outside, H, big).min(1)
        F[:, 12] = np.where(has_out, np.log1p(np.minimum(tmin, big - 1)), 3.0)
        F[:, 13] = (outside * mw * 0.5 ** H).sum(1) / totw
        near = mpos[d.argmin(1)]
        tree = [int(t) if h else None for t, h in zip(tmin.tolist(), has_out.tolist(), strict=True)]
        side = ["L" if n < a else ("R" if n >= b else "in") for n, a, b in zip(near.tolist(), ta.tolist(), tb.tolist(), strict=True)]
    else:
        F[:, 2] = 3.0
        F[:, 12] = 3.0
    cats: list[list[str]] = []
    inq_l, full_l, gq_l = inq.tolist(), full.tolist(), gov_in_q.tolist()
    static = base.static_names(qc, hc, q.head)
    for j in range(C):
        a, gp, shape, lst, heads, hdep, label = static[j]
        t, sd = tree[j], side[j]
        cats.append([
            *a, f"q:{qc}|gq:{int(gq_l[j])}|d:{hdep}", gp, f"q:{qc}|inq:{int(full_l[j])}",
            f"L:{label}|inq:{min(inq_l[j], 2)}", shape, f"q:{qc}|side:{sd}", lst, f"q:{qc}|side:{sd}|d:{hdep}",
            f"q:{qc}|tree:{min(t, 4) if t is not None else 'none'}", *heads,
        ])  # fmt: skip
    return F, cats
