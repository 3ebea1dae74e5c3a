"""The Textual app: a timer pulls snapshots from a `Control` and the dashboard diffs them in.

Rendering never follows engine events: `refresh_hz` times a second the app asks
`control.snapshot()` (which never blocks) and hands it to the dashboard inside one
`batch_update()`. While a modal (form, detail, help, metrics) is on top nothing is redrawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from textual.app import App
from textual.css.query import NoMatches
from textual.screen import Screen

from engine.control.protocol import Control
from tui.screens.dashboard import DashboardScreen

MIN_REFRESH_HZ = 0.5
MAX_REFRESH_HZ = 20.0


class MetricTuiApp(App[int]):
    """Live pipeline dashboard over any `Control` (in-process engine or control socket)."""

    CSS_PATH = "app.tcss"
    TITLE = "metrictui"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]

    def __init__(
        self,
        control: Control,
        *,
        refresh_hz: float = 3.0,
        targets_file_hint: str | None = None,
    ) -> None:
        super().__init__()
        self.control = control
        self.refresh_hz = min(MAX_REFRESH_HZ, max(MIN_REFRESH_HZ, refresh_hz))
        base_dir = Path(targets_file_hint).parent if targets_file_hint else Path.cwd()
        self.dashboard = DashboardScreen(control, base_dir=base_dir)
        self._hangup_installed = False
        self._terminal_fd: int | None = None

    def get_default_screen(self) -> Screen[None]:
        return self.dashboard

    def on_mount(self) -> None:
        self.set_interval(1.0 / self.refresh_hz, self.refresh_snapshot, name="snapshot")
        self._install_hangup_handler()
        self._watch_terminal()

    def on_unmount(self) -> None:
        if self._hangup_installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    def refresh_snapshot(self) -> None:
        """Pull the newest snapshot and show it, unless a modal screen covers the dashboard."""
        if self._terminal_gone():
            self.exit(0)
            return
        if self.screen is not self.dashboard or not self.dashboard.ready:
            return
        snapshot = self.control.snapshot()
        with self.batch_update():
            try:
                self.dashboard.apply(snapshot)
            except NoMatches:
                # Only while the app shuts down: the dashboard's widgets are already removed
                # and there is nothing left to draw on.
                return

    def _install_hangup_handler(self) -> None:
        """Exit (so the engine can flush) when the terminal goes away, e.g. an SSH drop."""
        if self.is_headless:
            return
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hangup)
            self._hangup_installed = True

    def _watch_terminal(self) -> None:
        """Remember the terminal, so each refresh can notice when it is gone."""
        if self.is_headless:
            return
        with contextlib.suppress(AttributeError, ValueError, OSError):
            fd = sys.__stdin__.fileno() if sys.__stdin__ is not None else -1
            if fd >= 0 and os.isatty(fd):
                self._terminal_fd = fd

    def _terminal_gone(self) -> bool:
        """True once the terminal hung up, whether or not SIGHUP arrived.

        SIGHUP can be ignored or blocked (nohup, some supervisors), and after a hangup Textual's
        input thread reads EOF forever: the process would spin instead of exiting. A hung-up
        terminal stops being a tty (isatty fails with EIO); checking costs one ioctl a refresh.
        """
        if self._terminal_fd is None or os.isatty(self._terminal_fd):
            return False
        # Textual's output thread dies on the first write that fails with EIO, and then every
        # further write blocks on its full queue, shutdown included. Output to /dev/null
        # instead, so the app can still exit and the engine flush.
        with contextlib.suppress(AttributeError, ValueError, OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
            os.close(devnull)
        return True

    def _hangup(self) -> None:
        self._terminal_gone()
        self.exit(0)


def exit_code(app: MetricTuiApp, result: int | None) -> int:
    """The process exit code: non-zero if the app crashed, else what it exited with (0)."""
    if app.return_code:
        return app.return_code
    return 0 if result is None else result


def run_tui(control: Control, *, refresh_hz: float, targets_file_hint: str | None = None) -> int:
    """Run the dashboard in this thread until the user quits; returns the exit code (0)."""
    app = MetricTuiApp(control, refresh_hz=refresh_hz, targets_file_hint=targets_file_hint)
    return exit_code(app, app.run())


async def run_tui_async(
    control: Control, *, refresh_hz: float, targets_file_hint: str | None = None
) -> int:
    """Like `run_tui`, on the running event loop (for an in-process engine on the same loop)."""
    app = MetricTuiApp(control, refresh_hz=refresh_hz, targets_file_hint=targets_file_hint)
    return exit_code(app, await app.run_async())
