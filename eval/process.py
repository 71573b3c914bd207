"""What Linux's /proc says of a process and its descendants: resident memory and CPU time.

The one resident-memory reader of the benchmarks (``VmRSS``/``VmHWM`` of ``/proc/PID/status``, in
MiB), so figures from different benchmarks are comparable.
"""

from __future__ import annotations

import os
from pathlib import Path


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def resident_mb(pid: int | None = None) -> float:
    """Resident memory (MiB) of one process, this one by default."""
    return _status_kb(os.getpid() if pid is None else pid, "VmRSS") / 1024


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) MiB of the process tree, summed over processes."""
    procs = tree(pid)
    return (sum(_status_kb(p, "VmRSS") for p in procs) / 1024, sum(_status_kb(p, "VmHWM") for p in procs) / 1024)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the process tree so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick
