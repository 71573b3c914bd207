"""API keys with scopes: the keys file, and `python -m web.keys` (also `qa keys`) to add one.

The file holds one key per line, ``SCOPE NAME SHA256-HASH`` (``#`` starts a comment); only the
hash of a key is stored, so the file can be read by whoever runs the server without giving keys
away. Scopes: ``read`` (ask, list and show documents, feedback, metrics) and ``write`` (also
upload and delete).

    qa keys add --keys team.keys --name alice --scope write     # prints the new key once, on its last line
    qa keys list --keys team.keys                                # names and scopes (never a key)

A presented key is hashed and compared with every stored hash with ``hmac.compare_digest`` (in
constant time, and always with all of them), so its timing tells nothing about any stored key.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from index.program import room_main

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
KEY_PREFIX = "cqk_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
HELP = "manage the API keys of `qa serve --keys FILE`"


class KeysFileError(ValueError):
    """A keys file that cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Key:
    scope: Scope
    name: str
    digest: str  # SHA-256 of the key, hex

    def allows(self, scope: Scope) -> bool:
        return self.scope == "write" or scope == "read"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def parse_keys(text: str, path: Path) -> list[Key]:
    keys: list[Key] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] not in SCOPES or not _NAME.match(parts[1]) or not _HASH.match(parts[2]):
            raise KeysFileError(f"{path}, line {n}: expected 'SCOPE NAME SHA256-HASH' with SCOPE read or write; "
                                f"add keys with: qa keys add --keys {path} --name NAME --scope read")
        keys.append(Key("write" if parts[0] == "write" else "read", parts[1], parts[2]))
    return keys


def read_keys(path: Path) -> list[Key]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeysFileError(f"no keys file at {path}; create one with: qa keys add --keys {path} --name NAME "
                            "--scope write") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KeysFileError(f"cannot read the keys file {path}: {e}") from None
    return parse_keys(text, path)


class KeyRing:
    """The keys of a keys file, read again when the file changes (a key added or removed with
    `qa keys` counts from the next request, without a restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: list[Key] = []
        if not self.path.is_file():
            read_keys(self.path)  # raises, saying how to make one
        self._reload()
        if not self._keys:
            raise KeysFileError(f"the keys file {self.path} holds no key; add one with: qa keys add --keys "
                                f"{self.path} --name NAME --scope write")

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            with self._lock:  # the file is gone: no key is valid any more (fail closed)
                self._keys, self._stamp = [], None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        with self._lock:
            keys = read_keys(self.path)
            self._keys, self._stamp = keys, stamp

    def check(self, presented: str) -> Key | None:
        """The key ``presented`` is, or None. Every stored hash is compared, in constant time."""
        # A file that does not parse (being edited): the keys read last stay valid until it does.
        with contextlib.suppress(KeysFileError):
            self._reload()
        wanted = digest(presented)
        found = None
        for key in self._keys:
            if hmac.compare_digest(wanted, key.digest):
                found = key
        return found


def add_key(path: Path, name: str, scope: str) -> str:
    """Append a new key's line to ``path`` (made, readable by its owner only, if missing); returns the key."""
    if scope not in SCOPES:
        raise KeysFileError(f"unknown scope {scope!r}; choose read or write")
    if not _NAME.match(name):
        raise KeysFileError(f"invalid name {name[:40]!r}: 1-64 letters, digits, . _ @ - (no spaces)")
    existing = read_keys(path) if path.exists() else []
    if any(k.name == name for k in existing):
        raise KeysFileError(f"{path} already has a key named {name!r}; choose another name (or remove its line)")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        if f.tell() == 0:
            f.write("# citeqa API keys: SCOPE NAME SHA256-HASH (only hashes; the keys themselves are not stored)\n")
        f.write(f"{scope} {name} {digest(key)}\n")
        f.flush()
        os.fsync(f.fileno())
    return key


# --- the command line --------------------------------------------------------------------------
def configure_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pa = sub.add_parser("add", help="add a key; it is printed once, on the last line")
    pa.add_argument("--keys", type=Path, required=True, help="the keys file (created if missing)")
    pa.add_argument("--name", required=True, help="who or what uses the key (alice, grafana, ci)")
    pa.add_argument("--scope", choices=SCOPES, required=True, help="read: ask, list, show, feedback, metrics; "
                    "write: also upload and delete")
    pl = sub.add_parser("list", help="the names and scopes of the keys (never a key)")
    pl.add_argument("--keys", type=Path, required=True, help="the keys file")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "add":
            key = add_key(args.keys, args.name, args.scope)
            print(f"added a {args.scope} key named {args.name} to {args.keys}; it is shown once, here, and "
                  "only its hash is kept — send it as: Authorization: Bearer KEY")
            print(key)
            return 0
        for k in read_keys(args.keys):
            print(f"{k.scope}\t{k.name}")
        return 0
    except KeysFileError as e:
        print(f"qa: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"qa: cannot write {args.keys}: {e.strerror}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    return room_main(argv, "python -m web.keys", HELP, configure_parser, run)


if __name__ == "__main__":
    sys.exit(main())
