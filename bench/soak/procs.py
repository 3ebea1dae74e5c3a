"""The soak's own processes: feeder incarnations and real `metrictui --role consumer` sinks,
started, signalled and watched (status, RSS) from the outside, like an operator would."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.env import child_env

_STATUS = re.compile(r"status (role=\S+.*)$")


def rss_mb(pid: int) -> float | None:
    """Resident set size of `pid` in MB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class RssTrack:
    """RSS of one process over its life: the first sample after warm-up, the last, the max."""

    name: str
    pid: int
    started: float = field(default_factory=time.monotonic)
    first: float | None = None
    last: float | None = None
    peak: float = 0.0
    last_at: float = 0.0

    WARMUP_S = 30.0

    def sample(self) -> None:
        value = rss_mb(self.pid)
        if value is None:
            return
        now = time.monotonic()
        if self.first is None and now - self.started >= self.WARMUP_S:
            self.first = value
        self.last, self.peak, self.last_at = value, max(self.peak, value), now

    def report(self) -> dict[str, Any]:
        growth = None if self.first is None or self.last is None else self.last - self.first
        return {
            "name": self.name,
            "pid": self.pid,
            "seconds": round(self.last_at - self.started, 1),
            "rss_after_warmup_mb": _round(self.first),
            "rss_last_mb": _round(self.last),
            "rss_peak_mb": round(self.peak, 1),
            "rss_growth_mb": _round(growth),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass
class Child:
    """One child process of the soak, its log and its RSS track."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    rss: RssTrack

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL and reap."""
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 90.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def last_status(self) -> dict[str, str]:
        """The consumer's last headless status line, as key -> value."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return {}
        for line in reversed(lines[-200:]):
            m = _STATUS.search(line)
            if m:
                return dict(p.split("=", 1) for p in m.group(1).split() if "=" in p)
        return {}


def spawn(name: str, argv: list[str], log: Path) -> Child:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=child_env(), start_new_session=True
        )
    return Child(name, proc, log, RssTrack(name, proc.pid))


@dataclass
class Incarnation:
    """One feeder process: its agent name (in every event it made) and its files."""

    index: int
    agent: str
    marks: Path
    status: Path
    child: Child
    killed_at: float | None = None  # Unix time it was dead after its SIGKILL

    def read_status(self) -> dict[str, Any]:
        try:
            doc = orjson.loads(self.status.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def marks_list(self) -> list[tuple[int, float]]:
        """(events made so far, Unix time) per mark, in order."""
        out = []
        for line in self.marks.read_text().splitlines():
            made, at = line.split()
            out.append((int(made), float(at)))
        return out


def metrictui_bin() -> str:
    return str(Path(sys.executable).parent / "metrictui")


def spawn_feeder(workdir: Path, tag: str, index: int, config: Path, rate: float) -> Incarnation:
    agent = f"soak-{tag}-p{index}"
    folder = workdir / "feeders"
    folder.mkdir(parents=True, exist_ok=True)
    marks, status = folder / f"{agent}.marks", folder / f"{agent}.status.json"
    argv = [sys.executable, "-m", "bench.soak.feeder", str(config), agent, str(rate)]
    child = spawn(agent, [*argv, str(marks), str(status)], folder / f"{agent}.log")
    return Incarnation(index, agent, marks, status, child)


def spawn_consumer(workdir: Path, index: int, config: Path) -> Child:
    argv = [metrictui_bin(), "--config", str(config), "--headless", "--role", "consumer"]
    return spawn(f"consumer-{index}", argv, workdir / "consumers" / f"consumer-{index}.log")


def wait_until(predicate: Any, timeout: float, step: float = 0.5) -> bool:
    """Poll `predicate` until it is true (True) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
