"""Loading a generation's NumPy arrays: small ones into memory, big ones memory-mapped.

Slicing a memory-mapped array costs a Python-level subclass round trip (``memmap.__getitem__``
and ``__array_finalize__``) on every access; a question touches such arrays a few hundred times
(BM25 postings, token vectors, mentions), which measured ~0.5 ms a question on the demo corpus.
Arrays up to ``MMAP_ABOVE`` bytes are therefore read into memory (the demo corpus and SQuAD's
2,067 paragraphs stay far below it), and only a big collection's are mapped, so that opening
one does not read gigabytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MMAP_ABOVE = 256 << 20  # bytes


def load_array(path: Path) -> np.ndarray:
    """The .npy file at ``path``: in memory when small, memory-mapped (read-only) when big."""
    if path.stat().st_size <= MMAP_ABOVE:
        return np.load(path)
    return np.load(path, mmap_mode="r")
