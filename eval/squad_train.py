"""Slices of SQuAD v1.1 train by article, the same split ``eval/train_reader.py`` uses.

    python -m eval.squad_train linear OUT.json.gz     # the articles the linear ranking is fitted on
    python -m eval.squad_train heldout OUT.json.gz    # the articles no model trains on (calibration)

Parts: ``linear`` (24 articles: ``python -m eval.train --squad`` refits the linear answer step on
them), ``heldout`` (16 articles: the reader's confidence and threshold are fitted there and its
learning curve measured) and ``train`` (the other 402: the reader's training data).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from eval.benchmarks import BENCH

TRAIN_FILE = BENCH / "squad-v1.1-train" / "train-v1.1.rebuilt.json.gz"
LINEAR_ARTICLES = 24
HELDOUT_ARTICLES = 16
PARTS = ("train", "linear", "heldout")


def split_articles(titles: Sequence[str], n_linear: int = LINEAR_ARTICLES, n_heldout: int = HELDOUT_ARTICLES) -> dict[str, str]:
    """Each article's part ('train', 'linear', 'heldout'), by a stable hash of its title."""
    order = sorted(titles, key=lambda t: hashlib.sha1(t.encode()).hexdigest())
    part = dict.fromkeys(titles, "train")
    for t in order[:n_heldout]:
        part[t] = "heldout"
    for t in order[n_heldout : n_heldout + n_linear]:
        part[t] = "linear"
    return part


def load_train(path: Path = TRAIN_FILE) -> dict:
    if not path.is_file():
        raise SystemExit(f"SQuAD v1.1 train is not at {path} — set CITEQA_BENCHMARKS to the benchmarks folder")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def write_part(parts: Sequence[str], out: Path, path: Path = TRAIN_FILE) -> int:
    """Write the articles of ``parts`` as a SQuAD v1.1 file (gzipped if ``out`` ends in .gz)."""
    obj = load_train(path)
    part = split_articles([a["title"] for a in obj["data"]])
    data = [a for a in obj["data"] if part[a["title"]] in parts]
    text = json.dumps({"data": data, "version": "1.1"})
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".gz":
        with gzip.open(out, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        out.write_text(text, encoding="utf-8")
    return len(data)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or any(p not in PARTS for p in args[0].split(",")):
        print(__doc__, file=sys.stderr)
        return 2
    n = write_part(args[0].split(","), Path(args[1]))
    print(f"{n} articles → {args[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
