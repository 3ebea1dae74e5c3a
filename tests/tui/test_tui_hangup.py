"""When the terminal goes away (SSH drop: the pty hangs up), the dashboard exits cleanly.

The app runs in a child process on a real pseudo-terminal; the test closes the terminal's
master side, which makes the kernel send SIGHUP, and expects the child to return from
`run_tui` (so the CLI can stop the engine) within seconds instead of spinning.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import signal, sys
sys.path[:0] = [{root!r}, {tests!r}]
if {block_hup!r}:  # as if SIGHUP never arrives (ignored or blocked by a supervisor)
    signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGHUP}})
from helpers.fake_control import FakeControl
from tui.app import run_tui
code = run_tui(FakeControl(), refresh_hz=4)
with open({result!r}, "w") as f:
    f.write(str(code))
"""


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def _wait(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.1)
    return None


def _hang_up_and_expect_exit(tmp_path: Path, *, block_hup: bool) -> None:
    result = tmp_path / "code"
    script = CHILD.format(
        root=str(ROOT), tests=str(ROOT / "tests"), result=str(result), block_hup=block_hup
    )
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    pid, master = pty.fork()
    if pid == 0:  # child: becomes the session leader with the pty as controlling terminal
        os.execve(sys.executable, [sys.executable, "-c", script], env)
    try:
        screen = _read_until(master, b"fake engine", timeout=30)
        assert b"fake engine" in screen, screen[-500:]
        time.sleep(0.5)  # let the app settle into its refresh loop
    finally:
        os.close(master)  # the terminal goes away
    status = _wait(pid, timeout=15)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError("the app kept running after its terminal hung up")
    assert result.read_text() == "0"


def test_terminal_hangup_makes_the_app_return(tmp_path: Path) -> None:
    _hang_up_and_expect_exit(tmp_path, block_hup=False)


def test_terminal_hangup_without_sighup_still_makes_the_app_return(tmp_path: Path) -> None:
    """nohup or a supervisor may keep SIGHUP away; the dead terminal is noticed anyway."""
    _hang_up_and_expect_exit(tmp_path, block_hup=True)
