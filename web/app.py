"""The web room: a chat page over the engine and the same answers as a JSON API.

``create_app(index_dir)`` loads the index and model once and assembles the rooms of the room:
the request and response schemas (``schemas.py``), the engine holder and its watcher thread
(``holder.py``), errors and the document-id rule (``errors.py``), the view helpers and templates
(``views.py``), the API routes (``api.py``) and the page routes (``pages.py``); ``serve`` runs it.
Engine calls are CPU-bound, so the routes that call it are plain ``def``: FastAPI runs them in
its thread pool, and the engine only reads shared arrays (numpy, FAISS, torch inference), which
is safe from several threads at once.

Example::

    >>> from fastapi.testclient import TestClient          # doctest: +SKIP
    >>> client = TestClient(create_app(".citeqa"))           # doctest: +SKIP
    >>> client.post("/api/ask", json={"question": "when were direct AZAL flights announced"}).json()["answer"]
    'November 9, 2023'
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from index.documents import MAX_FILE_BYTES
from index.loaded import LoadedIndex
from index.shards import index_version, open_index
from index.watch import SETTLE_SECONDS
from qa.engine import Engine
from web import api, auth, errors, feedback, metrics, pages
from web.auth import KeyCheck
from web.errors import too_large
from web.holder import EngineHolder
from web.keys import KeyRing, KeysFileError
from web.views import HERE
from web.watching import start_watch

INDEX_ENV = "CITEQA_INDEX"  # how `serve --workers N` hands the index folder to each worker process
KEYS_ENV = "CITEQA_KEYS"  # … and the keys file
# "0" encodes each request's question on its own (to measure what batching buys: python -m eval.bench.load --no-batch).
BATCH_ENV = "CITEQA_BATCH_QUESTIONS"
# Multipart framing around the file's bytes (boundaries, part headers): generous.
UPLOAD_OVERHEAD = 64 * 1024


class UploadLimit:
    """Refuse an upload body over ``limit`` bytes before reading it (by its Content-Length), or as soon
    as a body without one passes the limit: a 200 MB file is never read to be refused. The 413 is an
    HTTPException raised from ``receive``, which FastAPI hands to the app's handler (one-line JSON)."""

    def __init__(self, app: Any, paths: tuple[str, ...], limit: int) -> None:
        self.app, self.paths, self.limit = app, paths, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        too_big = declared.isdigit() and int(declared) > self.limit
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            if too_big:
                raise HTTPException(413, too_large("the upload"))
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, too_large("the upload"))
            return message

        await self.app(scope, limited, send)


def create_app(index_dir: Path | str | None = None, *, engine: Engine | None = None,
               batch_questions: bool | None = None, keys: Path | str | None = None,
               watch: Path | str | None = None, settle: float = SETTLE_SECONDS,
               opener: Callable[[Path], LoadedIndex] | None = None) -> FastAPI:
    """The chat and API over the index at ``index_dir`` (or a ready ``engine`` for it).

    A missing index does not stop the app: pages say how to build one, the API answers 503.
    ``batch_questions`` (default: on, unless ``CITEQA_BATCH_QUESTIONS=0``) encodes the questions of
    concurrent requests together (see web/batching.py). ``keys`` (default: ``CITEQA_KEYS``, else
    none) is a keys file: every API request then needs a key (see web/auth.py). ``watch`` is a
    folder whose changes are applied to the index once they have settled for ``settle`` seconds
    (web/watching.py). ``opener`` opens the index (default: ``open_index``; ``qa serve --ray``: one whose
    shards are searched by their Ray Serve deployments, index/serving.py).
    """
    if index_dir is None:
        index_dir = os.environ.get(INDEX_ENV, ".citeqa")
    if keys is None:
        keys = os.environ.get(KEYS_ENV) or None
    if batch_questions is None:
        batch_questions = os.environ.get(BATCH_ENV, "1") != "0"
    app = FastAPI(
        title="citeqa",
        version="0.1.0",
        summary="Cited extractive question answering over a folder of documents.",
        description="Every answer is a quote from the indexed documents, with the sentences that support it; "
        "when the documents do not answer, `abstained` is true and the citations are the nearest passages.",
        docs_url=None,  # FastAPI's Swagger UI loads from a CDN; /docs is our own page (see web/pages.py)
        redoc_url=None,
    )
    app.state.holder = EngineHolder(Path(index_dir), engine, batch_questions=batch_questions,
                                    opener=opener or open_index)
    app.state.keys = KeyRing(Path(keys)) if keys is not None else None
    app.state.watch = start_watch(app.state.holder, Path(watch), settle=settle) if watch is not None else None
    app.add_middleware(UploadLimit, paths=("/api/documents", "/documents"), limit=MAX_FILE_BYTES + UPLOAD_OVERHEAD)
    app.state.metrics = metrics.Metrics(app.state.holder)
    app.add_middleware(KeyCheck, ring=app.state.keys)  # it runs before a body is read
    app.add_middleware(metrics.CountResponses, metrics=app.state.metrics)  # outermost: counts refusals too
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    errors.install(app)
    routers = (api.router, auth.router, feedback.router, metrics.router, pages.router)
    for router in routers:
        app.include_router(router)
    app.state.metrics.know_routes(routers)
    if app.state.keys is not None:
        auth.document_keys(app)
    return app


# --- running it ---------------------------------------------------------------------------------
def _worker_app() -> FastAPI:
    """The app factory each uvicorn worker process calls (``--workers N``)."""
    return create_app(os.environ[INDEX_ENV])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(index_dir: Path | str, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          keys: Path | None = None, no_auth: bool = False, watch: Path | None = None,
          settle: float = SETTLE_SECONDS, ray: str | None = None, replicas: int = 1,
          shard_timeout: float | None = None) -> int:
    """Serve the chat and API until interrupted; returns the exit code.

    ``ray`` (a cluster's address, or ``local``) serves a sharded index's shards as Ray Serve
    deployments of ``replicas`` replicas each; this process answers from their candidates, and a
    question that a shard does not answer within ``shard_timeout`` seconds gets a 503.

    Without ``keys``, only a loopback address is served, unless ``no_auth`` says that anyone who
    can reach the server may change its documents."""
    import uvicorn

    index_dir = Path(index_dir)
    if workers < 1:
        print("qa: --workers must be at least 1", file=sys.stderr)
        return 2
    if keys is not None and no_auth:
        print("qa: --keys and --no-auth contradict each other; choose one", file=sys.stderr)
        return 2
    if keys is None and not no_auth and not is_loopback(host):
        print(f"qa: refusing to serve on {host} without keys: anyone who can reach it could delete every document. "
              "Give --keys FILE (qa keys add --keys FILE --name NAME --scope write), or --no-auth if that is "
              "really what you want", file=sys.stderr)
        return 2
    if keys is not None:
        try:
            KeyRing(keys)  # a keys file that cannot be used stops the server before it listens
        except KeysFileError as e:
            print(f"qa: {e}", file=sys.stderr)
            return 2
        os.environ[KEYS_ENV] = str(keys)
    if watch is not None:
        if workers != 1:
            print("qa: --watch runs in one server process; use --workers 1 with it", file=sys.stderr)
            return 2
        if not watch.is_dir():
            print(f"qa: the folder to watch, {watch}, does not exist or is not a folder", file=sys.stderr)
            return 2
        if not 0 <= settle <= 60:
            print("qa: --settle must be from 0 to 60 seconds", file=sys.stderr)
            return 2
    if ray is not None and (workers != 1 or watch is not None):
        print("qa: --ray serves from one server process: use it without --workers and --watch", file=sys.stderr)
        return 2
    if ray is not None and not 1 <= replicas <= 16:
        print("qa: --replicas must be from 1 to 16", file=sys.stderr)
        return 2
    if shard_timeout is not None and not 0.1 <= shard_timeout <= 300:
        print("qa: --shard-timeout must be from 0.1 to 300 seconds", file=sys.stderr)
        return 2
    os.environ[INDEX_ENV] = str(index_dir)
    _limit_torch_threads(workers)
    shards = None
    if ray is not None:
        shards = _deploy(index_dir, ray, replicas, shard_timeout)
        if shards is None:
            return 1
    if index_version(index_dir) is None and watch is not None:
        print(f"qa: no index at {index_dir} yet: building it from {watch} in the background", file=sys.stderr)
    elif index_version(index_dir) is None:
        print(f"qa: warning: no index at {index_dir} — the page will say so; build one with: "
              f"qa index corpus --index {index_dir}", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    opts: dict[str, Any] = {"host": host, "port": port, "log_level": "warning", "access_log": False}
    try:
        # One worker loads the index here, before listening; N workers each load their own copy.
        target: Any = (create_app(index_dir, watch=watch, settle=settle, opener=shards.open if shards else None)
                       if workers == 1 else "web.app:_worker_app")
        print(f"qa: serving the chat on http://{shown}:{port}/ (API docs at /docs; Ctrl+C stops)", file=sys.stderr)
        if workers == 1:
            uvicorn.run(target, **opts)
        else:
            uvicorn.run(target, factory=True, workers=workers, **opts)
    except SystemExit as e:  # uvicorn exits when it cannot bind the port
        return int(e.code) if isinstance(e.code, int) else 1
    except OSError as e:
        print(f"qa: cannot serve on {host}:{port}: {e}", file=sys.stderr)
        return 1
    finally:
        if shards is not None:
            from index.cluster import disconnect

            shards.undeploy()
            disconnect()
    return 0


def _deploy(index_dir: Path, address: str, replicas: int, timeout: float | None):
    """Join the cluster and deploy the index's shards; None (after saying why) when that fails."""
    from index.cluster import ClusterUnavailableError, connect, disconnect
    from index.serving import SHARD_TIMEOUT, RayShards
    from index.store import UnusableIndexError

    try:
        shards = RayShards(index_dir, replicas, timeout or SHARD_TIMEOUT)
    except UnusableIndexError as e:
        print(f"qa: {e}", file=sys.stderr)
        return None
    try:
        connect(address)
    except ClusterUnavailableError as e:
        print(f"qa: {e}", file=sys.stderr)
        return None
    try:
        shards.deploy(lambda m: print(f"qa: {m}", file=sys.stderr))
    except Exception as e:  # noqa: BLE001 - Ray Serve's errors are many; the user needs the one line
        print(f"qa: could not deploy the shards on the Ray cluster at {address}: {str(e).splitlines()[0]}", file=sys.stderr)
        shards.undeploy()
        disconnect()
        return None
    return shards


def _limit_torch_threads(workers: int) -> None:
    """Requests run side by side in threads (and workers): one torch thread each avoids oversubscribing."""
    cores = os.cpu_count() or 1
    # Read by torch when (and only when) an fp32 index makes the encoder import it: importing
    # torch here would cost the int8 server ~200 MB and a second of start-up for nothing.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // workers) if workers > 1 else 1))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(max(1, cores // workers) if workers > 1 else 1)
