"""`python -m eval` (also `qa eval`): score citeqa against a gold set and/or SQuAD (see eval/run.py)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from eval.run import configure_parser, run

PROG_ENV = "CITEQA_PROG"  # the name a composite command (`qa eval`) runs this as, for usage lines


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(
        prog=os.environ.get(PROG_ENV, "python -m eval"),
        description="Evaluate citeqa against a gold set; writes report.json, report.md and plots.",
    )
    configure_parser(p)
    try:
        return run(p.parse_args(argv))
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
