"""`metrictui serve` and a headless engine as real processes, for the browser tests."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from helpers.faults import free_port
from helpers.stack import Pipeline, metrictui_cmd


@dataclass
class Serve:
    """A running `metrictui serve`; `url` is the one line it printed (token included)."""

    proc: subprocess.Popen[str]
    url: str
    base: str
    stdout: list[str]
    stderr_log: Path

    def children(self) -> list[psutil.Process]:
        """Live (not zombie) dashboard processes of this serve."""
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [k for k in kids if _alive(k)]

    def fds(self) -> int:
        """Open descriptors other than TCP sockets. A tab's process leaves pipes and a pty
        behind if it leaks; the browser's own connections (keep-alive HTTP, a websocket still
        closing) come and go on their own timers and would only add noise."""
        proc = psutil.Process(self.proc.pid)
        return int(proc.num_fds()) - len(proc.net_connections(kind="tcp"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone(pids: list[int]) -> bool:
    """True once none of `pids` runs (a zombie waiting for its parent counts as ended)."""
    for pid in pids:
        try:
            if _alive(psutil.Process(pid)):
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def start_serve(p: Pipeline, tmp_path: Path, *args: str) -> Serve:
    """Start serve on a free loopback port and read its one line."""
    port = free_port()
    stderr_log = tmp_path / f"serve-{port}.log"
    proc = subprocess.Popen(
        metrictui_cmd(
            "serve", "--config", str(p.config_path), "--listen", f"127.0.0.1:{port}", *args
        ),
        stdout=subprocess.PIPE,
        stderr=stderr_log.open("w"),
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not lines:
        assert proc.poll() is None, stderr_log.read_text()
        assert time.monotonic() < deadline, "serve printed nothing"
        time.sleep(0.1)
    url = lines[0].split()[3]
    return Serve(proc, url, f"http://127.0.0.1:{port}", lines, stderr_log)


def start_engine(p: Pipeline, log: Path) -> subprocess.Popen[bytes]:
    """A headless engine (role all) on the pipeline's config; returns once its socket exists."""
    sock = p.dir / "control.sock"
    proc = subprocess.Popen(
        metrictui_cmd("--config", str(p.config_path), "--headless"),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while not sock.exists():
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.2)
    return proc


def stop_engine(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
