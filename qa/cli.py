"""The `qa` command: `ask` and `show` are the qa room's own; the other rooms own theirs.

`qa index …` is `python -m index …` (its arguments are imported from ``index/__main__.py``, as
pyserini's composite commands import the others' definitions); `qa serve …` and `qa eval …` run
`python -m web …` and `python -m eval …` in this process's place (``os.execv``): qa sits below
web and eval, and never imports them, at any depth. Each is loaded only when it is the command.

Exit codes: 0 ok, 1 failure, 2 bad usage (including a missing index or an empty question).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qa.types import Answer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_INDEX = ".citeqa"

EXAMPLES = """\
examples:
  qa index corpus/ --index .citeqa
  qa ask --index .citeqa "when were direct AZAL flights announced"
  qa ask --index .citeqa --json "who led the Pakistan side?"
  qa ask --index .citeqa --since 2023-06-01 "when were direct AZAL flights announced"
  echo '{"id": "q1", "question": "who visited Islamabad?"}' | qa ask --index .citeqa --jsonl
  qa show --index .citeqa 003_fdf2c5db0e68fe77.txt
  qa serve --index .citeqa --port 8000
  qa feedback export --index .citeqa --out feedback.jsonl
  qa eval --gold eval/gold/demo.jsonl --index .citeqa --out reports/
"""


def _err(msg: str) -> None:
    print(f"qa: {msg}", file=sys.stderr)


# Commands that are another program: their room's `python -m` module, run in place of `qa`.
ROOM_PROGRAMS = {"serve": "web", "eval": "eval", "keys": "web.keys"}
ROOM_HELP = {
    "serve": "serve the web chat and JSON API",
    "eval": "score answers against a gold question set (and SQuAD)",
    "keys": "add API keys for `qa serve --keys FILE` (qa keys add --keys FILE --name NAME --scope read|write)",
}


def build_parser() -> argparse.ArgumentParser:
    """The `qa` parser: ask and show, index's arguments from its room, serve and eval listed."""
    from index.__main__ import HELP as INDEX_HELP
    from index.__main__ import configure_parser as configure_index

    p = argparse.ArgumentParser(
        prog="qa",
        description="Ask questions of a folder of documents; every answer is a cited quote.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    configure_index(sub.add_parser("index", help=INDEX_HELP))

    pa = sub.add_parser(
        "ask",
        help="ask a question (or many with --jsonl)",
        description="Answer a question from the indexed documents with cited sentences, or say "
        "that the documents do not answer it.",
    )
    pa.add_argument("question", nargs="?", help="the question (omit with --jsonl)")
    pa.add_argument("--index", type=Path, default=Path(DEFAULT_INDEX), help=f"index folder (default: {DEFAULT_INDEX})")
    pa.add_argument("-k", type=int, default=5, help="number of citations (1-50, default 5)")
    fmt = pa.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object (the answer contract)")
    pa.add_argument("--after", metavar="QUESTION",
                    help='the question asked just before, for a follow-up such as "when was that?" '
                    '(in --jsonl, a line may carry {"previous": {"question": …, "doc_id": …, "answer": …}})')
    fmt.add_argument("--jsonl", action="store_true",
                     help='read {"id","question"} lines from stdin, write one answer object per line, same order')
    within = pa.add_argument_group("asking within some documents (citations come only from those)")
    within.add_argument("--doc", action="append", metavar="DOC_ID", dest="doc_ids",
                        help="only this document (repeat for several)")
    within.add_argument("--folder", metavar="F", help="only documents under this folder of the corpus")
    within.add_argument("--since", metavar="YYYY-MM-DD", help="only documents dated on or after this day "
                        "(a document without a date never matches)")
    within.add_argument("--until", metavar="YYYY-MM-DD", help="only documents dated on or before this day")
    pa.add_argument("--reader", choices=["neural", "linear"], default="neural",
                    help="the answer step: neural (the trained cross-encoder, default) or linear (the linear models)")

    ps = sub.add_parser("show", help="print a stored document's text",
                        description="Print the text of DOC_ID exactly as stored (citation offsets point into it).")
    ps.add_argument("doc_id", metavar="DOC_ID")
    ps.add_argument("--index", type=Path, default=Path(DEFAULT_INDEX), help=f"index folder (default: {DEFAULT_INDEX})")

    pf = sub.add_parser("feedback", help="turn the chat's right/wrong verdicts into a gold question set",
                        description="The verdicts users gave in the chat (POST /api/feedback), kept in "
                        "INDEX/feedback.jsonl, written as a gold file that `qa eval --gold` reads.")
    fsub = pf.add_subparsers(dest="feedback_action", metavar="ACTION", required=True)
    pe = fsub.add_parser("export", help="write the verdicts as a gold file (eval/gold/*.jsonl's format)")
    pe.add_argument("--index", type=Path, default=Path(DEFAULT_INDEX), help=f"index folder (default: {DEFAULT_INDEX})")
    pe.add_argument("--out", type=Path, default=None, help="the gold file to write (default: standard output)")

    for name, helptext in ROOM_HELP.items():
        sub.add_parser(name, help=helptext, add_help=False)  # parsed by the room's own program
    return p


# --- ask ------------------------------------------------------------------------------------
def _open_engine(index_dir: Path, reader: str = "neural"):
    from index.store import UnusableIndexError
    from qa.engine import Engine
    from qa.reader import ReaderUnavailableError

    try:
        return Engine.open(index_dir, reader=reader), 0
    except ReaderUnavailableError as e:
        _err(str(e))
        return None, 1
    except UnusableIndexError as e:
        _err(str(e))
        return None, e.exit_code


_BOLD_YELLOW = "\033[1;33m"
_DIM = "\033[2m"
_RESET = "\033[0m"


def render_human(ans: Answer, color: bool) -> str:
    """The answer for a person, from the same view the chat shows (``qa.view``)."""
    from qa.view import ANSWER_JOIN, answer_view

    view = answer_view(ans)

    def hl(s: str, ranges: tuple[tuple[int, int], ...]) -> str:
        mark = (_BOLD_YELLOW, _RESET) if color else ("«", "»")
        for a, b in sorted(ranges, reverse=True):
            s = s[:a] + mark[0] + s[a:b] + mark[1] + s[b:]
        return s

    lines = []
    if view.within:
        lines.append(f"(within {view.within})")
    if ans.abstained:
        lines.append(f"The documents don't say. (confidence {round(ans.confidence, 4):.2f})")
        if ans.answer_note:
            lines.append(f"  ({ans.answer_note})")
        if ans.citations:
            lines.append("Nearest passages (not an answer):")
    else:
        parts = ans.answers if ans.answers is not None and len(ans.answers) > 1 else None
        if color:  # each part of a two-part answer highlighted on its own, the join not
            lines.append(ANSWER_JOIN.join(f"{_BOLD_YELLOW}{t}{_RESET}" for t in ([p.text for p in parts] if parts else [view.phrase])))
        else:
            lines.append(f"{'Answers' if parts else 'Answer'}: {view.phrase}")
        if ans.answer_note:
            lines.append(f"  ({ans.answer_note})")
        lines.append(f"  confidence {round(ans.confidence, 4):.2f}")
    for i, (c, marks) in enumerate(zip(ans.citations, view.marks, strict=True), 1):
        meta = (c.title[:80] + (f" — {c.date}" if c.date else "") + f" — {c.doc_id}"
                + (f" p. {c.page}" if c.page else "") + f" [{c.start}:{c.end}]")
        lines.append(f"[{i}] {hl(c.sentence, marks)}")
        lines.append(f"    {_DIM}{meta}{_RESET}" if color else f"    {meta}")
    return "\n".join(lines)


def _previous(obj):
    """The ``previous`` of a --jsonl line: {"question", "doc_id"?, "answer"?} or a bare question string."""
    from qa.engine import QuestionError
    from qa.followup import Previous

    if obj is None:
        return None
    if isinstance(obj, str):
        return Previous(obj)
    if not isinstance(obj, dict) or not isinstance(obj.get("question"), str):
        raise QuestionError('"previous" must be {"question": "…", "doc_id": "…", "answer": "…"} or a string')
    doc_id, answer = obj.get("doc_id"), obj.get("answer")
    return Previous(obj["question"], doc_id if isinstance(doc_id, str) else None, answer if isinstance(answer, str) else None)


def cmd_ask(args: argparse.Namespace) -> int:
    from qa.engine import MAX_K, QuestionError
    from qa.followup import Previous

    if not 1 <= args.k <= MAX_K:
        _err(f"-k must be from 1 to {MAX_K}")
        return 2
    if args.jsonl:
        if args.question:
            _err("--jsonl reads questions from stdin; do not also pass a question")
            return 2
    elif args.question is None or not args.question.strip():
        _err('the question is empty — usage: qa ask --index DIR "QUESTION"')
        return 2
    from qa.filters import DocFilter, FilterError

    try:
        doc_filter = DocFilter.make(args.doc_ids, args.folder, args.since, args.until)
    except FilterError as e:
        _err(str(e).replace("date_from", "--since").replace("date_to", "--until").replace("doc_ids", "--doc"))
        return 2
    engine, code = _open_engine(args.index, args.reader)
    if engine is None:
        return code
    if not args.jsonl:
        try:
            prev = Previous(args.after) if args.after else None
            ans = engine.ask(args.question, k=args.k, previous=prev, filter=doc_filter)
        except QuestionError as e:
            _err(str(e))
            return 2
        if args.json:
            print(json.dumps(ans.to_dict(), ensure_ascii=False))
        else:
            print(render_human(ans, color=sys.stdout.isatty()))
        return 0
    failures = 0
    for lineno, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        qid = None
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or not isinstance(obj.get("question"), str):
                raise QuestionError('each line must be a JSON object with a "question" string')
            qid = obj.get("id")
            line_filter = DocFilter.parse(obj["filter"]) if obj.get("filter") is not None else doc_filter
            out = engine.ask(obj["question"], k=args.k, id=None if qid is None else str(qid),
                             previous=_previous(obj.get("previous")), filter=line_filter).to_dict()
        except (json.JSONDecodeError, QuestionError, FilterError) as e:
            failures += 1
            out = {"id": qid, "error": f"line {lineno}: {e}"}
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return 1 if failures else 0


# --- show -----------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    from index.shards import open_index
    from index.store import UnusableIndexError

    try:
        idx = open_index(args.index)
    except UnusableIndexError as e:
        _err(str(e))
        return e.exit_code
    doc = idx.docs.get(args.doc_id)
    if doc is None:
        _err(f"no document {args.doc_id!r} in {args.index} — list them with: qa ask --index {args.index} …, or see /api/documents")
        return 2
    sys.stdout.write(doc.text)
    if not doc.text.endswith("\n"):
        sys.stdout.write("\n")
    return 0


# --- feedback -------------------------------------------------------------------------------
def cmd_feedback(args: argparse.Namespace) -> int:
    from index.loaded import LoadedIndex
    from index.store import UnusableIndexError
    from qa.feedback import feedback_path, read_feedback, to_gold

    try:
        idx = LoadedIndex.open(args.index)
    except UnusableIndexError as e:
        _err(str(e))
        return e.exit_code
    entries = read_feedback(args.index)
    if not entries:
        _err(f"no feedback in {feedback_path(args.index)} yet: verdicts come from the chat's right/wrong buttons "
             "(POST /api/feedback)")
        return 1
    export = to_gold(entries, idx)
    for why in export.skipped:
        _err(f"skipped {why}")
    text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in export.items)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    n_ans = sum(1 for i in export.items if i["answerable"])
    _err(f"wrote {len(export.items)} gold questions ({n_ans} answerable, {len(export.items) - n_ans} unanswerable) "
         f"from {len(entries)} verdicts to {args.out or 'standard output'}"
         + (f"; score them with: qa eval --gold {args.out} --index {args.index}" if args.out else ""))
    return 0 if export.items else 1


# --- index, serve, eval: the other rooms' command lines ----------------------------------------
def run_room_program(command: str, argv: list[str]) -> int:
    """Run `python -m ROOM ARGV` in place of this process (same pid, streams and exit code)."""
    from index.program import PROG_ENV

    sys.stdout.flush()
    sys.stderr.flush()
    os.environ[PROG_ENV] = f"qa {command}"
    module = ROOM_PROGRAMS[command]
    try:
        # -P: the room is the installed one, never a folder of the same name where `qa` was run.
        os.execv(sys.executable, [sys.executable, "-P", "-m", module, *argv])
    except OSError as e:
        _err(f"cannot run {module}: {e}")
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in ROOM_PROGRAMS:
        return run_room_program(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "index":
        from index.__main__ import run as run_index

        handler = run_index
    else:
        handler = {"ask": cmd_ask, "show": cmd_show, "feedback": cmd_feedback}[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        return 0


def entry() -> None:
    """The `qa` console script. After `qa ask` the process ends without the interpreter's
    clean-up (unloading onnxruntime, FAISS and numpy took ~0.35 s of a ~2 s cold question on the
    shared machine): an answer reads the index and writes nothing but stdout, which is flushed."""
    argv = sys.argv[1:]
    code = main(argv)
    if argv[:1] == ["ask"]:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
