"""CPU seconds read from /proc, the same way for every tool and for PostgreSQL.

A tool's CPU is its process plus its live descendants (metrictui's check workers) plus what it
reaped (cutime/cstime), so a child that came and went still counts. PostgreSQL's CPU is its
postmaster's tree, read the same way: backends that connected and left during a run are in the
postmaster's cutime, so a run's PostgreSQL CPU is one before/after difference.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def own_cpu_s(pid: int, *, reaped: bool = True) -> float:
    """utime + stime (+ cutime + cstime when `reaped`) of one process, in seconds."""
    f = _stat_fields(pid)
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    ticks = int(f[11]) + int(f[12])
    if reaped:
        ticks += int(f[13]) + int(f[14])
    return ticks / TICKS


def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int(_stat_fields(int(entry.name))[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of `pid` and all its descendants, alive or reaped, so far."""
    tree = _children_of()
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += own_cpu_s(p)
        todo.extend(tree.get(p, ()))
    return total


def postmaster_pid(pg_data: Path) -> int:
    """The postmaster of the data directory (first line of postmaster.pid)."""
    return int((pg_data / "postmaster.pid").read_text().split()[0])


class CpuMeter:
    """CPU seconds of a process tree between `start()` and `stop()`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._at_start = 0.0
        self.seconds = 0.0

    def start(self) -> None:
        self._at_start = tree_cpu_s(self.pid)

    def stop(self) -> float:
        """Seconds used since `start()`; a tool that already exited reads as its last value."""
        with contextlib.suppress(OSError):
            self.seconds = tree_cpu_s(self.pid) - self._at_start
        return self.seconds
