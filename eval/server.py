"""Starting and stopping a real `qa serve` for tests and benchmarks: a subprocess on a free
loopback port, waited for until ``/healthz`` answers, stopped as a user stops it (Ctrl+C).

Example::

    server = start_server(Path(".citeqa"))        # doctest: +SKIP
    try:
        httpx.post(f"{server.url}/api/ask", json={"question": "…"})
    finally:
        stop_server(server)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(
    url: str, proc: subprocess.Popen | None = None, log: Path | None = None, timeout: float = 180.0
) -> None:
    """Wait until ``url`` answers /healthz with 200 (or ``proc`` exits: its log says why)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = log.read_text(errors="replace").strip()[-400:] if log else ""
            raise RuntimeError(f"`qa serve` exited with {proc.returncode}: {err}")
        try:
            r = httpx.get(url.rstrip("/") + "/healthz", timeout=2.0)
            if r.status_code == 200:
                return
            if r.status_code == 503 and proc is None:
                raise RuntimeError(f"{url} has no index: {r.json().get('detail')}")
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no healthy server at {url} after {timeout:.0f} s")


@dataclass
class Server:
    """A `qa serve` subprocess on a free loopback port; its stderr goes to ``log``."""

    proc: subprocess.Popen
    url: str
    log: Path


def start_server(index_dir: Path, workers: int = 1, batch: bool = True, log: Path | None = None,
                 extra: list[str] | None = None, timeout: float = 180.0) -> Server:
    """``extra``: more `qa serve` arguments (``["--keys", FILE]``, ``["--watch", CORPUS]``)."""
    port = free_port()
    qa = str(Path(sys.executable).with_name("qa"))
    cmd = [
        qa,
        "serve",
        "--index",
        str(index_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        *(extra or []),
    ]
    if log is None:
        fd, name = tempfile.mkstemp(prefix="citeqa-serve-", suffix=".log")
        os.close(fd)
        log = Path(name)
    # A file, not a pipe: a pipe nobody reads would block the server once its buffer fills.
    with log.open("w") as err:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "CITEQA_BATCH_QUESTIONS": "1" if batch else "0"},
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_healthy(server.url, proc, log, timeout)
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server: Server) -> None:
    proc = server.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down (and stops its workers) on Ctrl+C
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def build_demo_index(target: Path) -> None:
    qa = str(Path(sys.executable).with_name("qa"))
    print(f"building the demo index from {CORPUS} …", file=sys.stderr)
    subprocess.run(
        [qa, "index", str(CORPUS), "--index", str(target), "-q"], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
