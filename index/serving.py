"""A sharded index's searches served by Ray Serve (`qa serve --index DIR --ray ADDRESS --replicas R`).

Each shard of ``DIR`` is a Ray Serve deployment with R replicas (``ShardReplica``): a replica
holds that shard's vector indexes and BM25 postings, and returns its best candidates for a
question (dense: ``search``; BM25: ``top``, ``scores``). The server's process keeps the rest of
the index (texts, offsets, token vectors, parses: memory-mapped) and the models, and merges the
shards' candidates exactly as the in-process ``ShardedIndex`` does: the remote shard is one more
implementation of its parts (``RemoteVectors`` is a ``VectorSearch``, ``RemoteTerms`` a BM25
index), put in through ``ShardedIndex.searched_by``.

**Generations.** Every call names the generation the server is answering from (its ids are that
generation's rows); a replica opens that generation of its shard on first use and keeps the last
few, so an upload or a deletion (written to the document's shard, atomically, as without Ray) is
searched by the replicas from the first request that asks for the new generation.

**Faults.** A call that fails because its replica died (``kill -9``) is sent again, and Ray Serve
routes it to another replica and starts a new one; a shard that no replica answers within
``SHARD_TIMEOUT`` seconds raises ``ShardUnavailableError``, which the API answers with 503 and
``Retry-After``: an answer never silently leaves a shard out.

The folders are opened by path: on several machines the index folder must be on storage every
node sees at the same path. Ray is imported only here (and only by ``qa serve --ray``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from index.arrays import load_array
from index.bm25 import Bm25Index
from index.loaded import LoadedIndex
from index.shards import ShardedIndex, shard_count, shard_dir
from index.store import NoIndexError, current_generation
from index.vectors import VectorSearch

SHARD_TIMEOUT = 3.0  # seconds a question waits for a shard (all tries together) before 503
RETRY_AFTER_SECONDS = 5
KEEP_GENERATIONS = 2  # a replica keeps the generations last asked for (requests in flight use the older)
REPLICA_CPUS = 0  # a replica reserves no CPU: its searches take milliseconds, and a build on the same cluster
# (one actor per CPU, index/cluster.py) must not wait for CPUs that idle replicas hold
KINDS = ("sentences", "passages")


class ShardUnavailableError(RuntimeError):
    """No replica of a shard answered in time: the question cannot be answered from every shard."""

    def __init__(self, shard: int, why: str) -> None:
        super().__init__(f"shard {shard} of the index did not respond ({why}); try again in a few seconds")
        self.shard = shard


class _Searchers:
    """What a replica holds of one generation of its shard: the vector indexes and BM25 postings."""

    def __init__(self, gen: Path) -> None:
        from index import vectors as vector_index

        self.vectors = {k: vector_index.load(gen / f"{k}.faiss", load_array(gen / f"{k}.npy")) for k in KINDS}
        self.terms = {k: Bm25Index.load(gen, k) for k in KINDS}


class ShardReplica:
    """One replica of one shard (the body of its Ray Serve deployment)."""

    def __init__(self, shard_folder: str) -> None:
        self.folder = Path(shard_folder)
        self._gens: OrderedDict[str, _Searchers] = OrderedDict()
        self._lock = threading.Lock()
        if not self.folder.is_dir():
            raise NoIndexError(f"no shard at {self.folder}")
        live = current_generation(self.folder)
        if live is not None:  # opened now, so the deployment is ready when it reports healthy: at 1M
            self._at(live.name)  # passages opening takes seconds, longer than a question waits for a shard

    def _at(self, generation: str) -> _Searchers:
        with self._lock:
            got = self._gens.get(generation)
            if got is None:
                gen = self.folder / generation
                if gen.parent != self.folder or not gen.is_dir():
                    raise NoIndexError(f"no generation {generation!r} in {self.folder}")
                got = self._gens[generation] = _Searchers(gen)
                while len(self._gens) > KEEP_GENERATIONS:
                    self._gens.popitem(last=False)
            self._gens.move_to_end(generation)
            return got

    def search(self, generation: str, kind: str, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._at(generation).vectors[kind].search(queries, k)

    def top(self, generation: str, kind: str, terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._at(generation).terms[kind].top(terms, k)

    def scores(self, generation: str, kind: str, terms: list[str]) -> np.ndarray:
        return self._at(generation).terms[kind].scores(terms)

    def pid(self) -> int:
        return os.getpid()

    def check_health(self) -> None:
        if not self.folder.is_dir():
            raise RuntimeError(f"the shard folder {self.folder} is gone")


class RemoteShard:
    """Calls to one shard's deployment for one generation, retried while replicas restart."""

    def __init__(self, handle: Any, shard: int, generation: str, timeout: float = SHARD_TIMEOUT) -> None:
        self.handle = handle
        self.shard = shard
        self.generation = generation
        self.timeout = timeout

    def start(self, method: str, *args: Any) -> Callable[[], Any]:
        """Send the call now; the returned function waits for its result (retrying as ``call``)."""
        import ray.exceptions

        deadline = time.monotonic() + self.timeout
        try:
            response = getattr(self.handle, method).remote(self.generation, *args)
        except ray.exceptions.RayError:
            return lambda: self.call(method, *args, deadline=deadline)

        def result() -> Any:
            try:
                return response.result(timeout_s=max(0.0, deadline - time.monotonic()))
            except (TimeoutError, ray.exceptions.RayError):
                return self.call(method, *args, deadline=deadline)

        return result

    def call(self, method: str, *args: Any, deadline: float | None = None) -> Any:
        import ray.exceptions

        deadline = time.monotonic() + self.timeout if deadline is None else deadline
        why = f"no replica answered within {self.timeout:g} s"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ShardUnavailableError(self.shard, why)
            try:
                return getattr(self.handle, method).remote(self.generation, *args).result(timeout_s=left)
            except (TimeoutError, ray.exceptions.GetTimeoutError):
                why = f"no replica answered within {self.timeout:g} s"
            except ray.exceptions.RayError as e:  # the replica died mid-call, or is being replaced: try another
                why = f"{type(e).__name__}"
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


class RemoteVectors:
    """A ``VectorSearch`` whose search runs in the shard's replicas; stored vectors are read here
    (memory-mapped, only the rows asked for)."""

    def __init__(self, shard: RemoteShard, kind: str, stored: VectorSearch) -> None:
        self.shard = shard
        self.kind = kind
        self.stored = stored

    @property
    def ntotal(self) -> int:
        return self.stored.ntotal

    @property
    def dim(self) -> int:
        return self.stored.dim

    def describe(self) -> str:
        return f"shard {self.shard.shard} on Ray Serve"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.start_search(queries, k)()

    def start_search(self, queries: np.ndarray, k: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        get = self.shard.start("search", self.kind, np.ascontiguousarray(queries, np.float32), int(k))
        return lambda: tuple(np.asarray(x) for x in get())  # type: ignore[return-value]

    def vectors(self, ids: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        return self.stored.vectors(ids)


class RemoteTerms:
    """A shard's BM25 whose ranking runs in its replicas (``top``, ``scores``); what reads one text
    (its terms, a term's idf, the scores of a few rows) is answered here."""

    def __init__(self, shard: RemoteShard, kind: str, local: Bm25Index) -> None:
        self.shard = shard
        self.kind = kind
        self.local = local

    def __getattr__(self, name: str) -> Any:
        return getattr(self.local, name)

    def top(self, terms: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.start_top(terms, k)()

    def start_top(self, terms: Sequence[str], k: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        get = self.shard.start("top", self.kind, list(terms), int(k))
        return lambda: tuple(np.asarray(x) for x in get())  # type: ignore[return-value]

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        return self.start_scores(terms)()

    def start_scores(self, terms: Sequence[str]) -> Callable[[], np.ndarray]:
        get = self.shard.start("scores", self.kind, list(terms))
        return lambda: np.asarray(get())


class RayShards:
    """The deployments of one sharded index on the Ray cluster this process is connected to."""

    def __init__(self, index_dir: Path, replicas: int = 1, timeout: float = SHARD_TIMEOUT) -> None:
        self.index_dir = Path(index_dir).resolve()
        n = shard_count(self.index_dir)
        if n is None:
            raise NoIndexError(f"{index_dir} is not a sharded index — index it with: qa index CORPUS --index {index_dir} "
                               "--shards N")
        self.shards = n
        self.replicas = replicas
        self.timeout = timeout
        key = hashlib.sha1(str(self.index_dir).encode()).hexdigest()[:8]
        self.apps = [f"citeqa-{key}-shard-{i}" for i in range(n)]
        self.handles: list[Any] = []

    def deploy(self, log: Callable[[str], None] = print) -> None:
        """Start (or update) every shard's deployment and wait until each has its replicas."""
        from ray import serve

        serve.start(http_options={"location": "NoServer"})  # the qa serve process is the only HTTP server
        deployment = serve.deployment(
            name="shard", num_replicas=self.replicas, ray_actor_options={"num_cpus": REPLICA_CPUS},
            health_check_period_s=2, health_check_timeout_s=10, max_ongoing_requests=16)(ShardReplica)
        for i, app in enumerate(self.apps):
            log(f"deploying shard {i} ({self.replicas} replica{'s' if self.replicas != 1 else ''}) as {app}")
            self.handles.append(serve.run(deployment.bind(str(shard_dir(self.index_dir, i))), name=app,
                                          route_prefix=None))

    def open(self, index_dir: Path | str | None = None) -> LoadedIndex:
        """The sharded index, its searches sent to the deployments (an opener for ``Engine.open``)."""
        index = ShardedIndex.open(self.index_dir)
        remotes = [RemoteShard(h, i, gen.name, self.timeout) for i, (h, gen) in
                   enumerate(zip(self.handles, index.generations, strict=True))]
        return index.searched_by(
            [RemoteVectors(r, "sentences", s.sentence_vectors) for r, s in zip(remotes, index.shards, strict=True)],
            [RemoteVectors(r, "passages", s.passage_vectors) for r, s in zip(remotes, index.shards, strict=True)],
            [cast(Bm25Index, RemoteTerms(r, "sentences", s.sentence_bm25)) for r, s in zip(remotes, index.shards,
                                                                                        strict=True)],
            [cast(Bm25Index, RemoteTerms(r, "passages", s.passage_bm25)) for r, s in zip(remotes, index.shards,
                                                                                       strict=True)],
        )

    def replica_pids(self) -> dict[str, list[int]]:
        """The process ids of each shard's replicas (for measuring and for the fault tests)."""
        import ray
        from ray.util.state import list_actors

        out: dict[str, list[int]] = {}
        for a in list_actors(filters=[("state", "=", "ALIVE")], detail=True, limit=1000):
            name = getattr(a, "name", "") or ""
            for app in self.apps:
                if name.startswith(f"SERVE_REPLICA::{app}#"):
                    out.setdefault(app, []).append(int(a.pid or 0))
        del ray
        return out

    def undeploy(self) -> None:
        from ray import serve

        for app in self.apps:
            with contextlib.suppress(Exception):  # shutting down: the cluster may be gone already
                serve.delete(app, _blocking=True)
