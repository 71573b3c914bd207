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


class NpyAppender:
    """A ``.npy`` file written row block by row block, so a build never holds all rows in memory.

    The header is written last (its shape is known only then) into room kept for it at the start;
    until ``close`` the file is not a valid array, and a build that dies midway leaves only its
    unpublished generation folder behind.
    """

    HEADER = 128  # bytes kept for the header: magic, version, length, dict, padding (a multiple of 64)

    def __init__(self, path: Path, width: int, dtype: np.dtype | type) -> None:
        self.path = path
        self.width = width
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._f = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._f.write(b"\0" * self.HEADER)

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype).reshape(-1, self.width)
        self._f.write(block.tobytes())
        self.rows += len(block)

    def close(self) -> None:
        d = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (self.rows, self.width)}
        text = repr(d).encode("latin1")
        pad = self.HEADER - 10 - len(text) - 1
        if pad < 0:
            raise ValueError(f"{self.path}: header of shape {(self.rows, self.width)} does not fit")
        header = b"\x93NUMPY\x01\x00" + (self.HEADER - 10).to_bytes(2, "little") + text + b" " * pad + b"\n"
        self._f.seek(0)
        self._f.write(header)
        self._f.close()
