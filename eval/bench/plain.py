"""The plain baseline every speed figure is compared with: the script anyone could write.

sentence-transformers encodes the question (fp32 torch, all-MiniLM-L6-v2), an exact FAISS flat
index over every sentence vector finds the nearest sentence, and that sentence is the answer. It
reads the sentence vectors and texts of one of our indexes (so it does not re-encode a corpus it
would have encoded the same way), with nothing of our loading, retrieval or answer code.

    python -m eval.bench.plain INDEX_DIR "question" ["question" …]    # prints the top sentence of each
    python -m eval.bench.plain INDEX_DIR --rss "q1" "q2"               # and then its resident memory (MB)
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval.process import resident_mb

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class PlainSearch:
    """sentence-transformers + FAISS flat over sentences, top sentence."""

    def __init__(self, index_dir: Path | str, model=None) -> None:
        import faiss

        index_dir = Path(index_dir)
        gen = index_dir / (index_dir / "CURRENT").read_text().strip()
        db = sqlite3.connect(gen / "index.sqlite")
        texts = dict(db.execute("SELECT doc_id, text FROM documents"))
        self.sentences = [texts[d][s:e] for d, s, e in db.execute('SELECT doc_id, start, "end" FROM sentences ORDER BY id')]
        db.close()
        vecs = np.load(gen / "sentences.npy", mmap_mode="r")
        self.flat = faiss.IndexFlatIP(vecs.shape[1])
        for a in range(0, len(vecs), 65_536):  # in chunks: the flat index holds the only full copy
            self.flat.add(np.ascontiguousarray(vecs[a : a + 65_536]))
        if model is None:
            from sentence_transformers import SentenceTransformer

            from index.encoder import _gt_model_path

            model = SentenceTransformer(_gt_model_path(), device="cpu")
        self.model = model

    def encode(self, question: str) -> np.ndarray:
        return self.model.encode([question], normalize_embeddings=True, convert_to_numpy=True)

    def search(self, qvec: np.ndarray) -> str:
        _, ids = self.flat.search(np.asarray(qvec, dtype=np.float32).reshape(1, -1), 1)
        return self.sentences[int(ids[0, 0])]

    def ask(self, question: str) -> str:
        return self.search(self.encode(question))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    show_rss = "--rss" in args
    args = [a for a in args if a != "--rss"]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    plain = PlainSearch(args[0])
    for q in args[1:]:
        print(plain.ask(q))
    if show_rss:
        print(f"rss_mb {resident_mb():.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
