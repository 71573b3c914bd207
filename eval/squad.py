"""SQuAD v1.1 as a closed-corpus benchmark: every paragraph a document, every question asked
against the whole collection.

The data: the official dev set (48 articles, 2,067 paragraphs, 10,570 questions), bundled as
``eval/data/squad-dev-v1.1.json.gz`` under CC BY-SA 4.0 (see ``eval/data/SQUAD-LICENSE.md``).

Documents. Each paragraph becomes ``<article-title>/<paragraph-index:03d>.txt`` whose content
is the paragraph text exactly as SQuAD gives it, nothing prepended: the gold ``answer_start``
offsets then point into the stored document unchanged, and nothing that SQuAD does not contain
is searched. (The document's title, by our loader's rule the first line, is therefore the
paragraph's start; the article is in the doc_id.)

Gold evidence. A question's gold sentences are the sentences, cut by the index's own splitter,
that hold the start of one of its gold answers, so a cited sentence can be compared with them
directly.

Abstention check ("article removed"). A few articles are held out: their paragraphs are left out
of a second index, and their questions asked there. Nothing in that index answers them, so the
right behaviour is to abstain.

Example::

    python -m eval.squad export /tmp/squad --articles 2   # corpus/ and gold.jsonl to look at
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.gold import GoldItem
from index.split import split_sentences

DATA_DIR = Path(__file__).resolve().parent / "data"
BUNDLED_SQUAD = DATA_DIR / "squad-dev-v1.1.json.gz"


class SquadError(ValueError):
    """A SQuAD file that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    question: str
    answers: tuple[str, ...]  # distinct answer texts, in annotation order
    answer_starts: tuple[int, ...]  # one per annotation (may repeat)


@dataclass(frozen=True)
class SquadParagraph:
    article: str
    index: int
    context: str
    questions: tuple[SquadQuestion, ...]

    @property
    def doc_id(self) -> str:
        return paragraph_doc_id(self.article, self.index)


@dataclass(frozen=True)
class SquadArticle:
    title: str
    paragraphs: tuple[SquadParagraph, ...]

    @property
    def n_questions(self) -> int:
        return sum(len(p.questions) for p in self.paragraphs)


_UNSAFE = re.compile(r"[^\w.,()'&+-]+")


def safe_title(title: str) -> str:
    """A folder name for an article: SQuAD titles are already underscored; strip what a path can't hold."""
    name = _UNSAFE.sub("_", title).strip("._") or "untitled"
    return name[:120]


def paragraph_doc_id(article: str, index: int) -> str:
    """``<article-title>/<paragraph-index>.txt``: the doc_id the index gives the paragraph's file."""
    return f"{safe_title(article)}/{index:03d}.txt"


def _open_text(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return f.read()
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise SquadError(f"cannot read SQuAD file {path}: {e.strerror or e}") from None


def _title_of(art: dict[str, Any], position: int) -> str:
    """The article's title; sets without one (COVID-QA: whole papers) name it by its paper's
    ``document_id``, else by its position."""
    if "title" in art:
        return str(art["title"])
    first = (art.get("paragraphs") or [{}])[0]
    return f"document_{first['document_id']}" if "document_id" in first else f"article_{position:03d}"


def parse_squad(obj: Any, source: str = "<data>") -> list[SquadArticle]:
    """Articles from the decoded SQuAD JSON (``{"data": [{"title", "paragraphs": …}]}``)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise SquadError(f"{source}: not SQuAD JSON (expected an object with a 'data' list)")
    articles: list[SquadArticle] = []
    try:
        for ai, art in enumerate(obj["data"]):
            paragraphs = []
            title = _title_of(art, ai)
            for pi, p in enumerate(art["paragraphs"]):
                context = p["context"]
                qs = []
                for q in p["qas"]:
                    texts = tuple(dict.fromkeys(a["text"] for a in q["answers"]))
                    starts = tuple(int(a["answer_start"]) for a in q["answers"])
                    qs.append(SquadQuestion(str(q["id"]), q["question"].strip(), texts, starts))
                paragraphs.append(SquadParagraph(title, pi, context, tuple(qs)))
            articles.append(SquadArticle(title, tuple(paragraphs)))
    except (KeyError, TypeError, ValueError) as e:
        raise SquadError(f"{source}: malformed SQuAD record ({type(e).__name__}: {e})") from None
    return articles


def load_squad(path: Path | str) -> list[SquadArticle]:
    """Read SQuAD v1.1 JSON, plain or gzipped (chosen by the ``.gz`` suffix)."""
    path = Path(path)
    try:
        obj = json.loads(_open_text(path))
    except json.JSONDecodeError as e:
        raise SquadError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    return parse_squad(obj, str(path))


def select_articles(
    articles: Sequence[SquadArticle], n: int | None, paragraphs: int | None = None
) -> list[SquadArticle]:
    """The first ``n`` articles (all when None), each cut to its first ``paragraphs`` paragraphs
    (all when None): a small, stable slice for smoke runs that must index in seconds."""
    chosen = articles if n is None else articles[:n]
    if paragraphs is None:
        return list(chosen)
    return [SquadArticle(a.title, a.paragraphs[:paragraphs]) for a in chosen]


def gold_sentences(context: str, starts: Iterable[int]) -> tuple[str, ...]:
    """The splitter's sentences holding the given answer starts, in text order, without repeats.

    A start that falls in the whitespace between two sentences belongs to the next one.
    """
    spans = split_sentences(context)
    picked: list[int] = []
    for a in starts:
        for i, s in enumerate(spans):
            if a < s.end:
                if i not in picked:
                    picked.append(i)
                break
    return tuple(context[spans[i].start : spans[i].end] for i in sorted(picked))


def gold_items(articles: Iterable[SquadArticle]) -> list[GoldItem]:
    """Every question as a gold record (gold document = its paragraph). A question without
    answers (SQuAD 2.0's ``is_impossible``: written against the paragraph, not answered by it) is
    an unanswerable record: the right behaviour is to abstain."""
    items: list[GoldItem] = []
    for art in articles:
        for p in art.paragraphs:
            for q in p.questions:
                able = bool(q.answers)
                items.append(
                    GoldItem(
                        id=q.id,
                        question=q.question,
                        answers=q.answers,
                        doc_ids=(p.doc_id,) if able else (),
                        evidence=gold_sentences(p.context, q.answer_starts) if able else (),
                        answerable=able,
                    )
                )
    return items


def sample(items: Sequence[GoldItem], n: int | None, seed: int) -> list[GoldItem]:
    """``n`` items drawn without replacement with a fixed seed, kept in dataset order."""
    if n is None or n >= len(items):
        return list(items)
    rng = random.Random(seed)
    keep = sorted(rng.sample(range(len(items)), n))
    return [items[i] for i in keep]


def pick_holdout(articles: Sequence[SquadArticle], n: int, seed: int) -> list[str]:
    """Titles of ``n`` articles to leave out for the abstention check (seeded, stable)."""
    if n <= 0 or not articles:
        return []
    if n >= len(articles):
        raise SquadError(f"cannot hold out {n} of {len(articles)} articles: at least one must stay indexed")
    rng = random.Random(seed)
    return sorted(rng.sample([a.title for a in articles], n))


def unanswerable_items(items: Sequence[GoldItem]) -> list[GoldItem]:
    """The same questions marked unanswerable: asked of an index that lacks their article."""
    return [GoldItem(it.id, it.question, (), (), (), False) for it in items]


def write_corpus(articles: Iterable[SquadArticle], out_dir: Path | str, exclude: Iterable[str] = ()) -> int:
    """Write one ``.txt`` per paragraph under ``out_dir`` (articles in ``exclude`` left out).

    Idempotent: unchanged files are not rewritten (their mtime and the index's content hashes
    stay), and files of paragraphs no longer selected are deleted, so the folder always equals
    the selection. Returns the number of documents.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skip = set(exclude)
    wanted: set[Path] = set()
    for art in articles:
        if art.title in skip:
            continue
        for p in art.paragraphs:
            path = out_dir / p.doc_id
            wanted.add(path)
            data = p.context.encode("utf-8")
            if path.is_file() and path.read_bytes() == data:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    for path in sorted(out_dir.rglob("*"), reverse=True):
        if path.is_file() and path not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return len(wanted)


def copy_index(src: Path, dst: Path) -> None:
    """Copy the live generation of index ``src`` to ``dst`` so an incremental build there only
    drops documents (no re-embedding): how the "article removed" index is made cheaply."""
    from index.store import current_generation

    gen = current_generation(src)
    if gen is None:
        raise SquadError(f"no index at {src} to copy")
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    shutil.copytree(gen, dst / gen.name)
    (dst / "CURRENT").write_text(gen.name + "\n")


# --- `python -m eval.squad export`: the benchmark as files, for looking at or `qa index` ----------


def _export(args: argparse.Namespace) -> int:
    articles = select_articles(load_squad(args.squad), args.articles, args.paragraphs)
    out = Path(args.out)
    n_docs = write_corpus(articles, out / "corpus")
    items = sample(gold_items(articles), args.sample, args.seed)
    with open(out / "gold.jsonl", "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it.to_dict(), ensure_ascii=False) + "\n")
    print(f"wrote {n_docs} documents to {out / 'corpus'} and {len(items)} questions to {out / 'gold.jsonl'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.squad", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="write the paragraphs as a corpus folder and the questions as gold JSONL")
    e.add_argument("out", help="output folder (corpus/ and gold.jsonl are written inside)")
    e.add_argument("--squad", default=str(BUNDLED_SQUAD), help="SQuAD v1.1 JSON or .json.gz (default: bundled dev set)")
    e.add_argument("--articles", type=int, default=None, help="only the first N articles")
    e.add_argument("--paragraphs", type=int, default=None, help="only the first N paragraphs of each article")
    e.add_argument("--sample", type=int, default=None, help="only N questions (seeded)")
    e.add_argument("--seed", type=int, default=13)
    args = p.parse_args(argv)
    try:
        return _export(args)
    except SquadError as err:
        print(f"error: {err}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
