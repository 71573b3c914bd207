"""A real two-node Ray cluster on loopback, for tests and `python -m eval.cluster`.

The head runs on 127.0.0.2 and a worker on 127.0.0.3, each with one CPU and a small object store
(the machine is shared). Both are started with the `ray` command as a user would
(`ray start --head …`, `ray start --address …`), with their session files in a temporary folder.

Stopping ends exactly the processes of this cluster — those whose command line names its
temporary folder, and their children — never every Ray process on the machine (`ray stop` would
also end another user's cluster).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HEAD_IP = "127.0.0.2"
WORKER_IP = "127.0.0.3"
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # the smallest Ray takes is ~75 MB; the work here moves little
START_TIMEOUT = 120.0


class ClusterError(RuntimeError):
    """The cluster did not come up; the message carries the command's output."""


@dataclass
class LocalCluster:
    address: str  # HEAD_IP:PORT, what `--ray` takes
    temp_dir: Path
    nodes: int
    env: dict[str, str] = field(default_factory=dict)

    def client_env(self) -> dict[str, str]:
        """What a client (`qa index --ray`, `qa serve --ray`) needs in its environment to join."""
        return {k: self.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}

    def pids(self) -> list[int]:
        """This cluster's processes: those naming its temp folder or its address (Ray's client
        server names only the latter), and all their descendants."""
        markers = (str(self.temp_dir), f"={self.address} ")
        parent: dict[int, int] = {}
        roots: set[int] = set()
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                stat = (d / "stat").read_text()
            except OSError:
                continue
            pid = int(d.name)
            parent[pid] = int(stat.rsplit(")", 1)[1].split()[1])
            if any(m in cmd + " " for m in markers) and pid != os.getpid():
                roots.add(pid)
        found = set(roots)
        grew = True
        while grew:
            grew = False
            for pid, ppid in parent.items():
                if ppid in found and pid not in found:
                    found.add(pid)
                    grew = True
        return sorted(found)

    def stop(self, timeout: float = 20.0) -> None:
        """End every process of this cluster (TERM, then KILL what is left) and remove its files."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
            while pids and time.monotonic() < deadline:
                pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
                time.sleep(0.2)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def free_port(host: str = HEAD_IP) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


def start_cluster(nodes: int = 2, *, cpus_per_node: int = 1, timeout: float = START_TIMEOUT) -> LocalCluster:
    """Start a head (and ``nodes - 1`` workers on 127.0.0.3, …) and wait until every node is alive."""
    # Ray's socket paths must stay short (a Unix socket path has ~107 bytes): a short folder in /tmp.
    temp_dir = Path(tempfile.mkdtemp(prefix="citeqa-ray-", dir="/tmp"))
    port = free_port()
    # Token authentication, with this cluster's own token (never ~/.ray's): every node and every
    # client must present it (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH; see ``client_env``).
    token = temp_dir / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           # Ray's memory monitor would kill workers when the machine (shared with other jobs) is busy.
           "RAY_memory_monitor_refresh_ms": "0"}
    cluster = LocalCluster(f"{HEAD_IP}:{port}", temp_dir, nodes, env)
    common = [f"--num-cpus={cpus_per_node}", f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats"]
    commands = [[ray_bin(), "start", "--head", f"--node-ip-address={HEAD_IP}", f"--port={port}",
                 "--include-dashboard=false", f"--temp-dir={temp_dir}", *common]]
    for i in range(1, nodes):
        commands.append([ray_bin(), "start", f"--address={cluster.address}", f"--node-ip-address=127.0.0.{2 + i}",
                         f"--temp-dir={temp_dir}", *common])
    try:
        for cmd in commands:
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            if r.returncode != 0:
                raise ClusterError(f"{' '.join(cmd[1:3])} failed ({r.returncode}): {r.stderr[-2000:] or r.stdout[-2000:]}")
        wait_for_nodes(cluster, nodes, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_for_nodes(cluster: LocalCluster, nodes: int, timeout: float) -> None:
    """Wait until ``nodes`` nodes are alive (asked in a child process, so this one never joins Ray)."""
    probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
             "print(sum(1 for n in ray.nodes() if n['Alive']))")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        r = subprocess.run([sys.executable, "-c", probe, cluster.address], env=cluster.env, capture_output=True,
                           text=True, timeout=timeout)
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-500:]
        if r.returncode == 0 and last.isdigit() and int(last) >= nodes:
            return
        time.sleep(1.0)
    raise ClusterError(f"the cluster at {cluster.address} did not reach {nodes} nodes in {timeout:.0f} s: {last}")
