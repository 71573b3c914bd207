"""Shared fixtures: the demo index is built once per test session with the real packaged model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.makers import CHROMIUM

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
QA = str(Path(sys.executable).with_name("qa"))


def run_qa(*args: str, input: str | None = None, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `qa` command as a user would."""
    return subprocess.run(
        [QA, *args], input=input, capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled corpus indexed once for the session (read-only for tests: copy it to mutate)."""
    index_dir = tmp_path_factory.mktemp("demo") / "index"
    from index.build import build_index

    build_index(CORPUS, index_dir, progress=False, log=lambda m: None)
    return index_dir


@pytest.fixture(scope="session")
def engine(demo_index: Path):
    from qa.engine import Engine

    return Engine.open(demo_index)


@pytest.fixture()
def corpus_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "corpus"
    shutil.copytree(CORPUS, dst)
    return dst


@pytest.fixture(scope="session")
def live_server(demo_index: Path, tmp_path_factory: pytest.TempPathFactory):
    """`qa serve` over the demo index as a subprocess on a free loopback port; yields its base URL."""
    from eval.server import start_server, stop_server

    log = tmp_path_factory.mktemp("serve") / "serve.log"
    server = start_server(demo_index, log=log)
    try:
        yield server.url
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (one per test module; the browser tests
    skip themselves when /usr/bin/chromium is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (make install)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
        )
        yield b
        b.close()


@pytest.fixture(scope="session")
def ray_cluster():
    """A real two-node Ray cluster on loopback (head 127.0.0.2, worker 127.0.0.3, one CPU each),
    started with `ray start` and stopped (its processes only) at the end of the session."""
    pytest.importorskip("ray", reason="ray is not installed (the citeqa[cluster] extra: make install)")
    from eval.raycluster import start_cluster

    cluster = start_cluster(2)
    saved = {k: os.environ.get(k) for k in cluster.client_env()}
    os.environ.update(cluster.client_env())  # `qa … --ray` subprocesses present the cluster's token
    try:
        yield cluster
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        cluster.stop()
