"""`python -m eval.bench`: the speed benchmark (eval/bench/speed.py)."""

import sys

from eval.bench.speed import main

if __name__ == "__main__":
    sys.exit(main())
