"""Where the shared benchmark data lives (``../shared/benchmarks``; what each set may be used for:
its ``SOURCES.md``). Training code reads SQuAD train from it, measuring code the rest."""

from __future__ import annotations

import os
from pathlib import Path


def _benchmarks() -> Path:
    """The shared benchmarks folder: $CITEQA_BENCHMARKS, else ``../shared/benchmarks`` beside the
    checkout, else the project machines' ``/work/shared/benchmarks``."""
    env = os.environ.get("CITEQA_BENCHMARKS")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "benchmarks", Path("/work/shared/benchmarks")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


BENCH = _benchmarks()
