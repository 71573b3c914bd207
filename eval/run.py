"""`qa eval`: score citeqa, next to the BM25 and dense baselines, on a gold set and/or SQuAD.

Usage::

    qa eval                                   # the bundled demo gold set on the bundled corpus
    qa eval --gold eval/gold/demo.jsonl --index .citeqa --out reports/eval
    qa eval --squad --sample 500 --seed 13    # SQuAD v1.1 dev (bundled), 500 sampled questions
    qa eval --squad --articles 2 --sample 20  # the CI smoke run: first 2 articles only

Indexes. ``--gold`` uses the index at ``--index`` when one exists there, else builds it from
``--corpus`` (default: the bundled corpus) at ``--index`` or, without ``--index``, in the cache.
SQuAD builds its own index in the cache (``--cache``, default ``eval/cache``), incrementally, so a
second run reuses it; the "article removed" index for the abstention check is a copy of it with
the held-out articles dropped (no re-embedding).

Outputs in ``--out``: ``report.json`` (every figure and every answer), ``report.md`` (the tables,
plots and every failed question), ``*.png`` plots. The terminal gets the tables.

Exit codes: 0 done; 1 failure (index could not be built or opened, or a citation broke the
``text[start:end] == sentence`` contract); 2 bad usage (missing or malformed gold file, bad option).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval import report as rp
from eval.evaluate import METHODS, READERS, Record, ask_all, summarize
from eval.gold import DEMO_GOLD, GoldError, load_gold, validate_gold
from eval.squad import (
    BUNDLED_SQUAD,
    SquadError,
    copy_index,
    gold_items,
    load_squad,
    pick_holdout,
    sample,
    select_articles,
    unanswerable_items,
    write_corpus,
)
from index.program import PROG_ENV, room_main

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT / "corpus"
DEFAULT_CACHE = Path(__file__).resolve().parent / "cache"
DEFAULT_OUT = Path("reports/eval")
DEFAULT_SEED = 13


class UsageError(Exception):
    """Bad options or inputs (exit 2)."""


class EvalFailure(Exception):
    """The evaluation could not run (exit 1)."""


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add `qa eval`'s options to ``p`` (the lead's CLI calls this on its subparser)."""
    p.add_argument("--gold", type=Path, default=None,
                   help="gold question set, JSONL (default: the bundled demo set when --squad is not given)")
    p.add_argument("--index", type=Path, default=None,
                   help="index for --gold; built from --corpus when there is none (default: a cache index)")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                   help=f"corpus to build the --gold index from (default: {DEFAULT_CORPUS})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folder (default: {DEFAULT_OUT})")
    p.add_argument("--squad", nargs="?", const=str(BUNDLED_SQUAD), default=None, metavar="FILE",
                   help="run the SQuAD v1.1 benchmark; FILE is .json or .json.gz (default: the bundled dev set)")
    p.add_argument("--sample", type=int, default=None, help="SQuAD: ask N sampled questions (default: all)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"sampling seed (default {DEFAULT_SEED})")
    p.add_argument("--k", type=int, default=5, help="citations per answer (default 5; doc@5 needs 5)")
    p.add_argument("--articles", type=int, default=None,
                   help="SQuAD: index only the first N articles (smoke runs; default: all 48)")
    p.add_argument("--paragraphs", type=int, default=None,
                   help="SQuAD: only the first N paragraphs of each article (smoke runs; default: all)")
    p.add_argument("--holdout-articles", type=int, default=2,
                   help="SQuAD abstention check: articles left out of a second index (default 2; 0 = skip)")
    p.add_argument("--holdout-sample", type=int, default=100,
                   help="SQuAD abstention check: questions asked about the held-out articles (default 100)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"where SQuAD corpora and indexes live (default: {DEFAULT_CACHE})")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--encoder", default=None, metavar="NAME",
                   help="SQuAD: embedding model of its index (minilm or minilm-int8; default: the index default); "
                   "each encoder gets its own cached index, so runs side by side compare them")
    p.add_argument("--reader", default="neural", metavar="NAME[,NAME]",
                   help="the answer step citeqa reads candidates with: neural (the trained cross-encoder, default) or "
                   "linear (the linear models); 'neural,linear' scores both side by side on the same index (the "
                   "second as the method 'linear')")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _check_args(args: argparse.Namespace) -> list[str]:
    methods = [x.strip() for x in str(args.methods).split(",") if x.strip()]
    bad = [x for x in methods if x not in METHODS and x not in READERS]
    if bad or not methods:
        raise UsageError(f"unknown method(s) {', '.join(bad) or '(none)'}; choose from {', '.join(METHODS)}")
    readers = [x.strip() for x in str(args.reader).split(",") if x.strip()]
    bad = [x for x in readers if x not in READERS]
    if bad or not readers or len(set(readers)) != len(readers):
        raise UsageError(f"--reader takes {' or '.join(READERS)}, or both separated by a comma (got {args.reader!r})")
    args.reader = readers[0]
    for r in readers[1:]:
        if r not in methods:
            methods.insert(1 if "citeqa" in methods else 0, r)
    if not 1 <= args.k <= 50:
        raise UsageError("--k must be from 1 to 50")
    for name in ("sample", "articles", "paragraphs"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise UsageError(f"--{name} must be at least 1")
    if args.encoder is not None:
        from index.encoder import ENCODERS

        if args.encoder not in ENCODERS:
            raise UsageError(f"unknown encoder {args.encoder!r}; choose one of {', '.join(ENCODERS)}")
    if args.holdout_articles < 0 or args.holdout_sample < 0:
        raise UsageError("--holdout-articles and --holdout-sample cannot be negative")
    if args.gold is not None and not args.gold.is_file():
        raise UsageError(f"gold file {args.gold} does not exist")
    if args.squad is not None and not Path(args.squad).is_file():
        raise UsageError(f"SQuAD file {args.squad} does not exist")
    return methods


# --- indexes ------------------------------------------------------------------------------------


def _build(corpus: Path, index_dir: Path, progress: bool, encoder: str | None = None) -> None:
    from index.build import BuildError, build_index

    try:
        rep = build_index(corpus, index_dir, encoder_name=encoder, progress=progress, log=_log)
    except BuildError as e:
        raise EvalFailure(str(e)) from None
    if rep.added or rep.changed or rep.removed:
        _log(f"indexed {rep.documents} documents in {index_dir} ({rep.seconds:.1f} s)")


def _has_index(index_dir: Path) -> bool:
    from index.store import current_generation

    return current_generation(index_dir) is not None


def _open_engine(index_dir: Path, reader: str) -> Any:
    from index.store import UnusableIndexError
    from qa.engine import Engine

    try:
        return Engine.open(index_dir, reader=reader)
    except UnusableIndexError as e:
        raise EvalFailure(str(e)) from None


def gold_index(args: argparse.Namespace) -> Path:
    """The index --gold is asked of: --index if it holds one, else built from --corpus."""
    if args.index is not None and _has_index(args.index):
        return args.index
    corpus = args.corpus
    if not corpus.is_dir():
        raise UsageError(f"corpus folder {corpus} does not exist (needed to build the index)")
    if args.index is not None:
        _log(f"no index at {args.index}; building it from {corpus}")
        index_dir = args.index
    else:
        tag = hashlib.sha1(str(corpus.resolve()).encode()).hexdigest()[:10]
        index_dir = args.cache / f"gold-{tag}" / "index"
    _build(corpus, index_dir, not args.no_progress)
    return index_dir


# --- one evaluation section ---------------------------------------------------------------------


def _doc_texts(engine: Any) -> dict[str, str]:
    return {d: rec.text for d, rec in engine.index.docs.items()}


def _section(name: str, records: list[Record], methods: Sequence[str], about: dict[str, Any],
             warnings: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "about": about,
        "warnings": warnings,
        "methods": {m: summarize(records, m) for m in methods},
        "records": records,
    }


def run_gold(args: argparse.Namespace, methods: Sequence[str]) -> dict[str, Any]:
    gold_path: Path = args.gold or DEMO_GOLD
    try:
        items = load_gold(gold_path)
    except GoldError as e:
        raise UsageError(str(e)) from None
    index_dir = gold_index(args)
    engine = _open_engine(index_dir, args.reader)
    texts = _doc_texts(engine)
    warnings = validate_gold(items, texts)
    for w in warnings:
        _log(f"warning: {w}")
    records = ask_all(engine, items, texts, methods=methods, k=args.k, progress=not args.no_progress, desc="gold")
    about = {"gold": str(gold_path), "index": str(index_dir), "documents": len(texts), "questions": len(items)}
    return _section("gold", records, methods, about, warnings)


def run_squad(args: argparse.Namespace, methods: Sequence[str]) -> dict[str, Any]:
    try:
        articles = select_articles(load_squad(args.squad), args.articles, args.paragraphs)
    except SquadError as e:
        raise UsageError(str(e)) from None
    # One cache folder per data file and slice, so runs on different slices never rebuild each other.
    src = hashlib.sha1(str(Path(args.squad).resolve()).encode()).hexdigest()[:8]
    tag = ("all" if args.articles is None else f"a{args.articles}") + ("" if args.paragraphs is None else f"p{args.paragraphs}")
    tag = tag if Path(args.squad).resolve() == BUNDLED_SQUAD.resolve() else f"{tag}-{src}"
    from index.encoder import DEFAULT_ENCODER

    encoder = args.encoder or DEFAULT_ENCODER
    tag = f"{tag}-{encoder}"  # one index per encoder: the default can change, a cached index cannot
    base = args.cache / "squad" / tag
    t0 = time.perf_counter()
    n_docs = write_corpus(articles, base / "corpus")
    _build(base / "corpus", base / "index", not args.no_progress, encoder)
    build_s = time.perf_counter() - t0
    engine = _open_engine(base / "index", args.reader)
    texts = _doc_texts(engine)
    items = sample(gold_items(articles), args.sample, args.seed)
    _log(f"SQuAD: {len(items)} questions against {n_docs} paragraphs of {len(articles)} articles")
    records = ask_all(engine, items, texts, methods=methods, k=args.k, progress=not args.no_progress, desc="squad")

    held: list[str] = []
    n_held_q = 0
    if args.holdout_articles and len(articles) > 1:
        n_hold = min(args.holdout_articles, len(articles) - 1)
        held = pick_holdout(articles, n_hold, args.seed)
        hold_dir = base / f"holdout-s{args.seed}-h{n_hold}"
        write_corpus(articles, hold_dir / "corpus", exclude=held)
        if not _has_index(hold_dir / "index"):
            copy_index(base / "index", hold_dir / "index")
        _build(hold_dir / "corpus", hold_dir / "index", not args.no_progress, encoder)
        held_engine = _open_engine(hold_dir / "index", args.reader)
        held_texts = _doc_texts(held_engine)
        pool = [it for it in gold_items([a for a in articles if a.title in held])]
        held_items = unanswerable_items(sample(pool, args.holdout_sample, args.seed))
        n_held_q = len(held_items)
        _log(f"abstention check: {n_held_q} questions about {', '.join(held)}, asked of an index without them")
        records += ask_all(held_engine, held_items, held_texts, methods=methods, k=args.k, where="article removed",
                           progress=not args.no_progress, desc="article removed")
    about = {
        "data": str(args.squad),
        "articles": len(articles),
        "documents (paragraphs)": n_docs,
        "questions asked": f"{len(items)} answerable (seed {args.seed}) + {n_held_q} whose article was removed",
        "held-out articles": ", ".join(held) or "none",
        "index": str(base / "index"),
        "encoder": encoder,
        "index ready in": f"{build_s:.1f} s",
        "answer model": f"{args.reader} reader, shipped models (fitted on SQuAD train only; dev is never fitted on)",
    }
    return _section("squad", records, methods, about, [])


# --- the command --------------------------------------------------------------------------------


def _record_json(rec: Record) -> dict[str, Any]:
    return {**rec.item.to_dict(), "asked_of": rec.where, "results": {m: s.to_dict(max_citations=5) for m, s in rec.results.items()}}


def run(args: argparse.Namespace) -> int:
    """Run `qa eval`; returns the exit code (0 ok, 1 failure, 2 bad usage)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    try:
        methods = _check_args(args)
        sections: list[dict[str, Any]] = []
        if args.gold is not None or args.squad is None:
            sections.append(run_gold(args, methods))
        if args.squad is not None:
            sections.append(run_squad(args, methods))
    except UsageError as e:
        _log(f"error: {e}")
        return 2
    except (EvalFailure, SquadError) as e:
        _log(f"error: {e}")
        return 1

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        # `qa eval` runs `python -m eval` under the name it was given (CITEQA_PROG, see qa/cli.py).
        "command": " ".join([os.environ.get(PROG_ENV) or sys.argv[0], *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "k": args.k,
        "seed": args.seed,
        "methods": ", ".join(methods),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}",
        "wall time": f"{time.perf_counter() - t0:.1f} s",
    }
    md_sections: list[str] = []
    for sec in sections:
        title = {"gold": "Gold question set", "squad": "SQuAD v1.1 dev (closed corpus)"}[sec["name"]]
        rows = rp.table_rows(sec["methods"])
        print(f"\n{title}  ({', '.join(f'{k}: {v}' for k, v in sec['about'].items() if k in ('gold', 'questions asked', 'documents', 'documents (paragraphs)'))})")
        print(rp.render_text_table(rows))
        plots: list[Path] = []
        if not args.no_plots:
            plots = rp.write_plots(sec["name"], sec["records"], sec["methods"], out, log=_log)
        md_sections.append(rp.section_md(title, sec, sec["records"], plots, out))
    rp.write_json(
        out / "report.json",
        {
            "meta": meta,
            **{
                sec["name"]: {
                    "about": sec["about"],
                    "warnings": sec["warnings"],
                    "methods": sec["methods"],
                    "questions": [_record_json(r) for r in sec["records"]],
                }
                for sec in sections
            },
        },
    )
    rp.write_markdown(out / "report.md", meta, md_sections)
    print(f"\nreport: {out / 'report.md'} and {out / 'report.json'}")

    broken = [
        f"{sec['name']}/{m}: {s['citations_total'] - s['citations_faithful']} of {s['citations_total']}"
        for sec in sections
        for m, s in sec["methods"].items()
        if s["citations_faithful"] != s["citations_total"]
    ]
    if broken:
        _log("error: citations whose sentence is not text[start:end] of their document: " + "; ".join(broken))
        return 1
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "python -m eval.run") -> int:
    """``python -m eval`` (also ``qa eval``) and ``python -m eval.run``."""
    try:
        return room_main(argv, prog, "Evaluate citeqa against a gold set; writes report.json, report.md and plots.",
                         configure_parser, run)  # fmt: skip
    except BrokenPipeError:  # `qa eval … | head`
        return 0

if __name__ == "__main__":
    sys.exit(main())
