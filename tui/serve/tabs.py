"""One dashboard process per browser tab, and the guarantee that it ends with the tab.

textual-serve's `AppService` speaks the protocol with the process (its packets, the
`__GANGLION__` prelude, resize and quit). It starts the process through a shell and waits for
it without bound when asked to stop; here the process is started directly (no shell in the
way of signals) in a session of its own, and a stop that takes too long ends in SIGTERM, then
SIGKILL, of its whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from asyncio.subprocess import PIPE, Process
from collections.abc import Awaitable, Callable, Sequence

from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

log = logging.getLogger("metrictui.serve")

QUIT_GRACE_S = 1.5
"""How long a tab's dashboard may take to quit by itself before it is signalled."""
SIGNAL_GRACE_S = 1.0


class TabProcess(AppService):
    """The dashboard process behind one websocket."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        write_bytes: Callable[[bytes], Awaitable[None]],
        write_str: Callable[[str], Awaitable[None]],
        close: Callable[[], Awaitable[None]],
        download_manager: DownloadManager,
    ) -> None:
        super().__init__(
            " ".join(argv),
            write_bytes=write_bytes,
            write_str=write_str,
            close=close,
            download_manager=download_manager,
        )
        self.argv = list(argv)
        self.process: Process | None = None

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Process:
        env = self._build_environment(width=width, height=height)
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=PIPE,
            stdout=PIPE,
            stderr=PIPE,
            env=env,
            start_new_session=True,  # its own group: one signal reaches all it started
        )
        self._process = self.process
        self._stdin = self.process.stdin
        return self.process

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def stop_within(self, grace_s: float = QUIT_GRACE_S) -> None:
        """Ask the dashboard to quit; signal its group if it has not after `grace_s`."""
        try:
            async with asyncio.timeout(grace_s):
                await self.stop()
        except TimeoutError:
            log.warning("tab dashboard pid %s did not quit; terminating it", self.pid)
        await self.kill_group()

    async def kill_group(self) -> None:
        """SIGTERM, then SIGKILL, the process group until the dashboard process is reaped."""
        process = self.process
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, sig)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SIGNAL_GRACE_S):
                    await process.wait()
            if process.returncode is not None:
                break
        if process.stdin is not None:
            process.stdin.close()
