"""The real `metrictui` binary in a real terminal: a detached tmux session per test.

The command runs under `sh`, which records its pid (so a test can signal it) and, after it
exits, its exit code; then the pane stays open (a `sleep`), so the test can read what the
terminal shows afterwards and ask tmux whether the alternate screen or mouse tracking is
still on.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


class Pane:
    """One tmux session running one command; `close()` kills the session."""

    def __init__(self, cmd: Sequence[str], workdir: Path, *, size: tuple[int, int] = (120, 40)):
        self.session = f"mt{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.pid_file = workdir / f"{self.session}.pid"
        self.exit_file = workdir / f"{self.session}.exit"
        # COLUMNS/LINES from the test process would pin the app's size: let tmux's pane decide.
        inner = f"echo $$ > {self.pid_file}; exec env -u COLUMNS -u LINES {shlex.join(cmd)}"
        shell = f"sh -c {shlex.quote(inner)}; echo $? > {self.exit_file}; sleep 600"
        width, height = size
        tmux("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height), shell)

    def text(self) -> str:
        return tmux("capture-pane", "-p", "-t", self.session)

    def flag(self, name: str) -> str:
        """A tmux pane format variable, e.g. `alternate_on` or `mouse_any_flag`."""
        return tmux("display", "-p", "-t", self.session, f"#{{{name}}}").strip()

    def keys(self, *keys: str) -> None:
        tmux("send-keys", "-t", self.session, *keys)

    @property
    def pid(self) -> int:
        return int(self.pid_file.read_text())

    def exit_code(self) -> int | None:
        text = self.exit_file.read_text().strip() if self.exit_file.exists() else ""
        return int(text) if text else None

    async def wait_for(self, predicate: Callable[[str], object], timeout: float, what: str) -> str:
        """The screen once `predicate(screen)` holds; fails the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.text()
            if predicate(screen):
                return screen
            await asyncio.sleep(0.5)
        pytest.fail(f"timed out after {timeout}s waiting for {what}; screen:\n{screen}")

    async def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.exit_code()
            if code is not None:
                return code
            await asyncio.sleep(0.3)
        pytest.fail(f"the command did not exit within {timeout}s; screen:\n{self.text()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)
