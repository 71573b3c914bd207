"""`python -m web` (also `qa serve`): serve the chat and the JSON API over an index.

    python -m web --index .citeqa --port 8000
    python -m web --index .citeqa --workers 2

Exit codes: 0 ok (stopped), 1 failure (cannot serve on that port), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from index.program import room_main

DEFAULT_INDEX = ".citeqa"
HELP = "serve the web chat and JSON API"


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the serve command's arguments to ``p``."""
    p.description = "Serve the chat on http://HOST:PORT/ and the API under /api."
    p.add_argument("--index", type=Path, default=Path(DEFAULT_INDEX), help=f"index folder (default: {DEFAULT_INDEX})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    p.add_argument("--keys", type=Path, metavar="FILE", help="require API keys from this file (qa keys add --keys FILE "
                   "--name NAME --scope read|write); without it only a loopback --host is served")
    p.add_argument("--watch", type=Path, metavar="CORPUS", help="keep the index in step with this folder: files "
                   "added, changed and deleted under it are applied within seconds (polling)")
    p.add_argument("--settle", type=float, default=1.0, metavar="SECONDS",
                   help="with --watch: how long the folder must stay unchanged before it is read (default 1.0)")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="serve a sharded index's shards as Ray Serve deployments on the cluster at ADDRESS (HEAD_IP:PORT of "
                   "`ray start --head`; `local`: a throw-away one); this process answers from their candidates. "
                   "Needs citeqa[cluster]")
    p.add_argument("--replicas", type=int, default=1, metavar="R",
                   help="with --ray: replicas of each shard (2 or more: a replica can die without losing a request)")
    p.add_argument("--shard-timeout", type=float, default=None, metavar="SECONDS",
                   help="with --ray: how long a question waits for a shard whose replicas are down before the API answers "
                   "503 with Retry-After (default 3)")
    p.add_argument("--no-auth", action="store_true", help="serve a non-loopback --host without keys (anyone who can "
                   "reach it may delete documents)")


def run(args: argparse.Namespace) -> int:
    from web.app import serve

    return serve(args.index, host=args.host, port=args.port, workers=args.workers, keys=args.keys,
                 no_auth=args.no_auth, watch=args.watch, settle=args.settle, ray=args.ray, replicas=args.replicas,
                 shard_timeout=args.shard_timeout)


def main(argv: Sequence[str] | None = None) -> int:
    return room_main(argv, "python -m web", HELP, configure_parser, run)

if __name__ == "__main__":
    sys.exit(main())
