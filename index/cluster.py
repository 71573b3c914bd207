"""Ingest on a Ray cluster (`qa index CORPUS --index DIR --ray ADDRESS`): Ray Data reads, extracts,
splits, embeds and annotates on every node; one writer here publishes the generation.

Two Ray Data stages:

1. **read, extract, split** (``map_batches`` over the files, Ray tasks): each file's bytes are read
   and hashed where the task runs; a file whose hash is the one in the live index is reused as it
   is (its vectors are copied, not computed again); any other is extracted (``load_bytes``) and
   split (``prepare_document``). Unreadable files come back as skipped, with their reason.
2. **embed and annotate** (``map_batches`` with an actor class, a pool of one actor per free
   CPU of the cluster): each actor loads the encoder and spaCy once, then takes batches of about
   ``RAY_CHUNK_SENTENCES`` new sentences. The results stream back in order (``preserve_order``)
   to ``write_generation``, the same writer the local build uses: it writes each batch as it
   arrives and publishes the generation atomically, under the index folder's lock, so a ``kill -9``
   leaves the previous generation live and an unchanged file is never embedded twice.

The cluster's nodes read the corpus and the writer writes the index by path: on several
machines both folders must be on storage every node sees at the same path (NFS, a shared disk).

Ray is imported here only: a build without ``--ray`` never loads it.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from index.annotate import Annotation
from index.build import (
    BuildReport,
    PreparedDocument,
    _embed,
    _Embedded,
    annotate_batch,
    prepare_document,
)
from index.documents import Document, DocumentError, Skipped, content_hash, load_bytes, read_file
from index.encoder import DEFAULT_ENCODER, ENCODERS
from index.loaded import LoadedIndex

# Smaller batches than a local build's (1,024): a corpus of a few hundred sentences still gives
# every actor of the cluster work, and a batch's round trip through the object store stays small
# (the encoder reads 64 texts at a time anyway).
RAY_CHUNK_SENTENCES = 64
READ_BATCH_FILES = 8
FREE_CPU_WAIT_S = 5.0  # how long the embed stage waits for the read stage's CPUs to come back
LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024


class ClusterUnavailableError(RuntimeError):
    """The Ray cluster cannot be reached (or Ray is not installed); the message says what to do."""


def connect(address: str) -> bool:
    """Join the cluster at ``address`` (``local``: start a throw-away one in this process's
    machine); True if this call connected (the caller then disconnects with ``disconnect``)."""
    try:
        import ray
    except ImportError:
        raise ClusterUnavailableError("--ray needs Ray: pip install 'citeqa[cluster]'") from None
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # the driver's C++ notes are not the user's business
    for name in ("ray.data", "ray.serve"):  # their progress notes are not the user's business
        logging.getLogger(name).setLevel(logging.WARNING)
    env = {"env_vars": {"HF_HUB_OFFLINE": "1"}}
    try:
        if address == "local":
            _own_token()
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                     logging_level=logging.ERROR, log_to_driver=False, runtime_env=env)
        else:
            _reachable(address)
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, runtime_env=env)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ClusterUnavailableError(
            f"cannot reach the Ray cluster at {address} ({str(e).splitlines()[0] if str(e) else type(e).__name__}) — "
            "start one with: ray start --head, or use --ray local") from None
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.execution_options.preserve_order = True  # the writer takes batches in corpus order
    ctx.enable_progress_bars = False
    return True


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after Ray's minute of retries, when nothing listens at ``address``."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnavailableError(f"--ray takes HEAD_IP:PORT (as printed by `ray start --head`) or local, not {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ClusterUnavailableError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}) — start one with: "
                                      "ray start --head, or use --ray local") from None


def _own_token() -> None:
    """A throw-away cluster gets a throw-away token (Ray would otherwise write ~/.ray/auth_token,
    which turns token authentication on for every later `ray start` of this user)."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    import secrets
    import tempfile

    fd, path = tempfile.mkstemp(prefix="citeqa-ray-token-")
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = path
    import atexit
    import contextlib

    def remove() -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)

    atexit.register(remove)


def disconnect() -> None:
    import ray

    ray.shutdown()


def _read_and_split(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Stage 1 (a Ray task per batch of files): read, hash, extract and split each file."""
    kinds, payloads = [], []
    for path, doc_id, old_hash in zip(batch["path"], batch["doc_id"], batch["old_hash"], strict=True):
        try:
            data = read_file(Path(str(path)))
            h = content_hash(data)
            if h == str(old_hash):
                kinds.append("reused")
                payloads.append(b"")
                continue
            doc = load_bytes(data, str(doc_id), content_hash_=h)
            kinds.append("new")
            payloads.append(pickle.dumps(prepare_document(doc), protocol=pickle.HIGHEST_PROTOCOL))
        except DocumentError as e:
            kinds.append("skipped")
            payloads.append(str(e).encode("utf-8"))
    return {"i": batch["i"], "kind": np.array(kinds, dtype=object), "payload": np.array(payloads, dtype=object)}


class _EmbedAnnotate:
    """Stage 2 (a Ray Data actor): holds the encoder and spaCy; embeds and annotates batches."""

    def __init__(self, encoder_name: str, pooled_passages: bool) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from index.encoder import load_encoder

        self.encoder = load_encoder(encoder_name)
        self.pooled = pooled_passages
        import ray

        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for blob in batch["chunk"]:
            prepared: list[PreparedDocument] = pickle.loads(blob)
            emb = _embed(self.encoder, prepared, self.pooled)
            out.append(pickle.dumps((emb, annotate_batch(prepared)), protocol=pickle.HIGHEST_PROTOCOL))
        return {"i": batch["i"], "out": np.array(out, dtype=object),
                "node": np.array([self.node] * len(out), dtype=object)}


class RayIngest:
    """Reads and computes on the cluster this process is connected to (``connect``)."""

    chunk_sentences = RAY_CHUNK_SENTENCES

    def __init__(self, encoder_name: str | None = None) -> None:
        self.encoder_name = encoder_name or DEFAULT_ENCODER
        self.nodes: set[str] = set()  # the nodes whose actors embedded something

    def for_encoder(self, name: str) -> RayIngest:
        """This ingest with the encoder the build settled on (the index's own, by default)."""
        self.encoder_name = name
        return self

    @property
    def dim(self) -> int:
        return int(getattr(ENCODERS[self.encoder_name], "dim"))  # noqa: B009 - a class attribute of each encoder

    def read(self, files: list[tuple[Path, str]], old: LoadedIndex | None
             ) -> tuple[list[Document], list[Skipped], set[str], dict[str, PreparedDocument]]:
        """Every file as a Document (in ``files``' order), the skipped, the ids reused from ``old``,
        and the new documents already split."""
        import ray.data

        if not files:
            return [], [], set(), {}
        hashes = {d: r.content_hash for d, r in old.docs.items()} if old is not None else {}
        items = [{"i": i, "path": str(p), "doc_id": d, "old_hash": hashes.get(d, "")} for i, (p, d) in enumerate(files)]
        ds = ray.data.from_items(items).map_batches(_read_and_split, batch_size=READ_BATCH_FILES, batch_format="numpy")
        rows = sorted(ds.take_all(), key=lambda r: int(r["i"]))
        docs: list[Document] = []
        skipped: list[Skipped] = []
        reused: set[str] = set()
        prepared: dict[str, PreparedDocument] = {}
        for r in rows:
            doc_id = files[int(r["i"])][1]
            if r["kind"] == "reused":
                assert old is not None
                reused.add(doc_id)
                docs.append(old.docs[doc_id].as_document())
            elif r["kind"] == "skipped":
                skipped.append(Skipped(doc_id, bytes(r["payload"]).decode("utf-8")))
            else:
                nd: PreparedDocument = pickle.loads(r["payload"])
                prepared[doc_id] = nd
                docs.append(nd.doc)
        return docs, skipped, reused, prepared

    def __call__(self, batches: list[list[PreparedDocument]], pooled_passages: bool,
                 report: BuildReport) -> Iterator[tuple[_Embedded, list[Annotation]]]:
        import ray
        import ray.data

        if not batches:
            return
        # A fixed pool of one actor per CPU free now (at least one): a pool sized by the cluster's
        # total would wait forever for CPUs another job holds; an autoscaling one started only one.
        # The read stage's workers hand their CPUs back a moment after it ends: wait for them (a few
        # seconds at most) so that a pool sized now is not one actor on one node by a race.
        total = int(ray.cluster_resources().get("CPU", 1))
        deadline = time.monotonic() + FREE_CPU_WAIT_S
        free = int(ray.available_resources().get("CPU", 0))
        while free < total and time.monotonic() < deadline:
            time.sleep(0.25)
            free = int(ray.available_resources().get("CPU", 0))
        actors = max(1, min(free or 1, total, len(batches)))
        items = [{"i": i, "chunk": pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL)} for i, b in enumerate(batches)]
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _EmbedAnnotate, fn_constructor_args=(self.encoder_name, pooled_passages), batch_size=1,
            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1)
        waiting: dict[int, Any] = {}
        want = 0
        for row in ds.iter_rows():
            waiting[int(row["i"])] = row
            while want in waiting:
                r = waiting.pop(want)
                self.nodes.add(str(r["node"]))
                emb, mentions = pickle.loads(r["out"])
                report.embedded_texts += emb.texts
                report.timings["embed (beside annotating)"] += emb.seconds
                yield emb, mentions
                want += 1
