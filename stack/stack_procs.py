"""Processes and ports: pid files, liveness, detached servers, readiness waits and stopping.

Also short helper commands (with their output on failure) and apt-get installs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stack_files import log_tail, rotate_log
from stack_settings import HOST, READY_TIMEOUT_S, STOP_TIMEOUT_S, StackError, say


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def pid_alive(pid: int | None, marker: str) -> bool:
    """True when `pid` is a live (not zombie) process whose command line contains `marker`.

    The marker guards against pid reuse after a reboot or a container restart.
    """
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state in ("Z", "X"):
        return False
    return marker.encode() in cmdline


def port_free(port: int) -> bool:
    """Can a server bind 127.0.0.1:port? (SO_REUSEADDR: TIME_WAIT leftovers do not count.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def spawn_daemon(argv: Sequence[str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start a detached server: own session, no terminal, output appended to `log_path`.

    It survives this script exiting (and a Ctrl-C in the terminal that ran `make`).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rotate_log(log_path)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )


def wait_for(
    what: str,
    ready: Callable[[], bool],
    *,
    alive: Callable[[], bool],
    log_path: Path,
    timeout: float = READY_TIMEOUT_S,
) -> float:
    """Poll `ready` with a progress line; fail with the server log's tail if it dies or stalls."""
    start = time.monotonic()
    if ready():
        return 0.0
    print(f"waiting for {what} ...", end="", flush=True)
    while True:
        time.sleep(0.2)
        elapsed = time.monotonic() - start
        if ready():
            print(f" ready ({elapsed:.1f} s)", flush=True)
            return elapsed
        if not alive():
            print(" failed", flush=True)
            raise StackError(f"{what}: the server exited; log: {log_path}", log_tail(log_path))
        if elapsed > timeout:
            print(" timed out", flush=True)
            raise StackError(
                f"{what}: not ready after {timeout:.0f} s; log: {log_path}", log_tail(log_path)
            )


def wait_gone(pid: int, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, marker):
            return True
        time.sleep(0.1)
    return not pid_alive(pid, marker)


def terminate(
    pid: int, marker: str, *, kill: bool = False, timeout: float = STOP_TIMEOUT_S
) -> None:
    """SIGTERM (or SIGKILL when `kill`), escalating to SIGKILL after `timeout`; waits for exit."""
    if not pid_alive(pid, marker):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    if wait_gone(pid, marker, 5.0 if kill else timeout):
        return
    say(f"pid {pid} ignored SIGTERM for {timeout:.0f} s; sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_gone(pid, marker, 10.0):
        raise StackError(f"pid {pid} does not exit even after SIGKILL")


def run(
    argv: Sequence[str],
    *,
    what: str,
    cwd: Path | None = None,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> str:
    """Run a short helper command; on failure raise with its output as the tail."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise StackError(f"{what}: {argv[0]} not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what}: no answer after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        raise StackError(f"{what} failed (exit {proc.returncode})", output[-4000:])
    return proc.stdout


def apt_install(packages: Sequence[str], why: str) -> None:
    """Install Debian packages non-interactively (CI machines may lack them)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise StackError(f"{why}: install {' '.join(packages)} (not root or no apt-get here)")
    say(f"{why}: installing {' '.join(packages)} with apt-get ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], what="apt-get update", env=env)
    run(
        [
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            *packages,
        ],
        what=f"apt-get install {' '.join(packages)}",
        env=env,
    )


@dataclass
class Launch:
    """A server this run started (or found running), for the readiness wait and the summary."""

    name: str
    action: str  # "started" | "reused" | "restarted"
    pid: int | None
    wait: Callable[[], float]
