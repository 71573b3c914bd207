"""`python -m index` (also `qa index`): index, or update the index of, a folder of documents.

    python -m index corpus/ --index .citeqa
    python -m index corpus/ --index .citeqa --rebuild --json

Exit codes: 0 ok, 1 failure (the message says what to do next), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from index.program import room_main

DEFAULT_INDEX = ".citeqa"
HELP = "index (or update the index of) a folder of documents (.txt .md .html .pdf .docx)"


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the index command's arguments to ``p`` (`qa index` calls this on its subparser)."""
    p.description = (
        "Index every .txt, .md, .html/.htm, .pdf and .docx file under CORPUS (recursively); files "
        "that cannot be read are skipped with a reason. Re-running only "
        "re-embeds new or changed files and drops deleted ones. The index is replaced atomically: "
        "an interrupted build leaves the previous index usable."
    )
    p.add_argument("corpus", type=Path, metavar="CORPUS", help="folder of documents")
    p.add_argument("--index", type=Path, default=Path(DEFAULT_INDEX), help=f"index folder (default: {DEFAULT_INDEX})")
    p.add_argument(
        "--encoder",
        choices=["minilm", "minilm-int8"],
        default=None,
        help="embedding model: minilm-int8 (int8 ONNX, no torch) or minilm (fp32 torch); "
        "default: the one the existing index uses, else minilm-int8",
    )
    p.add_argument(
        "--passage-vectors",
        choices=["encoded", "pooled"],
        default=None,
        help="how passages get their vectors: encoded (the encoder reads each passage) or pooled (the mean of "
        "their sentences' token vectors: no second encoder pass, a faster build); default: as the existing "
        "index, else encoded",
    )
    p.add_argument(
        "--shards",
        type=int,
        default=None,
        metavar="N",
        help="split the documents into N complete shard indexes (INDEX/shard-0 …) by a stable hash of their id, "
        "with the collection's statistics shared, so answers equal the unsharded index's; `qa ask` and "
        "`qa serve` answer from all shards",
    )
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="read, split, embed and annotate on a Ray cluster (HEAD_IP:PORT of `ray start --head`; `local`: a "
        "throw-away cluster on this machine) with Ray Data; this process writes and publishes the index. "
        "Needs citeqa[cluster]",
    )
    p.add_argument("--rebuild", action="store_true", help="ignore the existing index and re-embed everything")
    p.add_argument("--json", action="store_true", help="print the build report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    from index.build import BuildError, build_index, ignored_summary
    from index.documents import SUPPORTED_SUFFIXES

    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    from index.shards import shard_count

    ingest = None
    joined = False
    try:
        if args.ray is not None:
            from index.cluster import ClusterUnavailableError, RayIngest, connect, disconnect

            try:
                joined = connect(args.ray)
            except ClusterUnavailableError as e:
                print(f"qa: {e}", file=sys.stderr)
                return 1
            ingest = RayIngest(args.encoder)
        if args.shards is not None or shard_count(args.index) is not None:
            return _run_sharded(args, log, ingest)
        report = build_index(
            args.corpus, args.index, encoder_name=args.encoder, passage_vectors=args.passage_vectors, rebuild=args.rebuild,
            progress=not args.quiet, log=log, ingest=ingest,
        )
    except BuildError as e:
        print(f"qa: {e}", file=sys.stderr)
        return 1
    finally:
        if joined:
            disconnect()
    if ingest is not None:
        log(f"embedded and annotated on {len(ingest.nodes)} node(s) of the Ray cluster at {args.ray}")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(
        f"indexed {report.documents} documents ({report.sentences} sentences, {report.passages} passages) "
        f"into {args.index} in {report.seconds:.1f}s: {len(report.added)} added, {len(report.changed)} changed, "
        f"{len(report.unchanged)} unchanged, {len(report.removed)} removed, {len(report.skipped)} skipped"
    )
    if report.unsupported:
        print(ignored_summary(report.unsupported) + f" (citeqa reads {', '.join(SUPPORTED_SUFFIXES)})")
    return 0


def _run_sharded(args: argparse.Namespace, log, ingest=None) -> int:
    from index.build import BuildError
    from index.shards import build_sharded, shard_count
    from index.store import UnusableIndexError

    try:
        shards = args.shards if args.shards is not None else shard_count(args.index)
        assert shards is not None
        reports = build_sharded(args.corpus, args.index, shards, log=log, encoder_name=args.encoder,
                                passage_vectors=args.passage_vectors, rebuild=args.rebuild, progress=not args.quiet,
                                ingest=ingest)
    except (BuildError, UnusableIndexError) as e:
        print(f"qa: {e}", file=sys.stderr)
        return 1
    total = {
        "index_dir": str(args.index), "shards": [r.to_dict() for r in reports],
        "documents": sum(r.documents for r in reports), "sentences": sum(r.sentences for r in reports),
        "passages": sum(r.passages for r in reports), "seconds": sum(r.seconds for r in reports),
        "embedded_texts": sum(r.embedded_texts for r in reports),
    }
    if args.json:
        print(json.dumps(total, indent=2))
        return 0
    print(
        f"indexed {total['documents']} documents ({total['sentences']} sentences, {total['passages']} passages) "
        f"into {len(reports)} shards of {args.index} in {total['seconds']:.1f}s: "
        + ", ".join(f"shard {i}: {r.documents} documents" for i, r in enumerate(reports))
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return room_main(argv, "python -m index", HELP, configure_parser, run)

if __name__ == "__main__":
    sys.exit(main())
