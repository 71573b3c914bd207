"""`python -m eval` (also `qa eval`): score citeqa against a gold set and/or SQuAD (see eval/run.py)."""

from __future__ import annotations

import sys

from eval.run import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m eval"))
