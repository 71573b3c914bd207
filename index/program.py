"""What every room's command line shares (`python -m index`, `python -m web`, `python -m eval`):
the name it runs under and how it parses, runs and ends."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

PROG_ENV = "CITEQA_PROG"  # a composite command (`qa index`, `qa serve`, `qa eval`) sets it: the name for usage lines


def room_main(
    argv: Sequence[str] | None,
    prog: str,
    description: str,
    configure: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
) -> int:
    """Parse ``argv`` with the room's arguments and run it; Ctrl-C ends with 130."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(prog=os.environ.get(PROG_ENV, prog), description=description)
    configure(p)
    try:
        return run(p.parse_args(argv))
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130
