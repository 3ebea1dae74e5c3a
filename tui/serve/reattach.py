"""A `Control` that outlives its engine: it attaches when the engine starts, and again after
the engine goes away and comes back.

A browser tab may be opened before the engine runs, and left open across engine restarts; the
page must say which is the case and recover by itself. The header shows `description`, and
snapshots are None (the header says "waiting for the engine…") while no engine answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from pathlib import Path

from engine.control import SocketControl
from engine.db.history import TargetHistory
from engine.errors import UserError
from engine.stats import StatsSnapshot
from engine.targets import Target
from engine.tasks import cancel_and_wait

RETRY_S = 1.0
"""How often a missing engine is looked for: cheap (one connect to a Unix socket)."""


class ReattachingControl:
    """Delegates to a `SocketControl` while one is connected, and keeps reconnecting."""

    def __init__(self, path: Path, *, retry_s: float = RETRY_S) -> None:
        self.path = path
        self._retry_s = retry_s
        self._inner: SocketControl | None = None
        self._was_attached = False
        self._last_contact: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin attaching in the background (needs a running event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._keep_attached(), name="reattach")

    async def _keep_attached(self) -> None:
        while True:
            if self._inner is not None and not self._inner.connected:
                self._last_contact = self._inner.last_contact
                await self._inner.close()
                self._inner = None
            if self._inner is None:
                with contextlib.suppress(UserError, OSError):
                    self._inner = await SocketControl.connect(self.path, timeout=2.0)
                    self._was_attached = True
            await asyncio.sleep(self._retry_s)

    @property
    def attached(self) -> bool:
        return self._inner is not None and self._inner.connected

    @property
    def connected(self) -> bool:
        """False only once an engine was attached and went away (the dashboard's banner);
        before the first engine the header already says it is waiting."""
        return self.attached or not self._was_attached

    @property
    def last_contact(self) -> datetime | None:
        return self._inner.last_contact if self._inner is not None else self._last_contact

    @property
    def description(self) -> str:
        if self._inner is not None and self._inner.connected:
            return self._inner.description
        if self._was_attached:
            return f"ENGINE GONE at {self.path} — re-attaching when it is back"
        return f"NO ENGINE RUNNING at {self.path} — attaching when it starts"

    def snapshot(self) -> StatsSnapshot | None:
        return self._inner.snapshot() if self.attached and self._inner is not None else None

    def _live(self) -> SocketControl:
        if self._inner is None or not self._inner.connected:
            raise UserError(f"no engine is running at {self.path}; start it and try again")
        return self._inner

    async def get_target(self, name: str) -> Target:
        return await self._live().get_target(name)

    async def add_target(self, target: Target) -> None:
        await self._live().add_target(target)

    async def update_target(self, name: str, target: Target) -> None:
        await self._live().update_target(name, target)

    async def delete_target(self, name: str) -> None:
        await self._live().delete_target(name)

    async def set_target_enabled(self, name: str, enabled: bool) -> None:
        await self._live().set_target_enabled(name, enabled)

    async def set_metric_enabled(self, name: str, enabled: bool) -> None:
        await self._live().set_metric_enabled(name, enabled)

    async def target_history(self, name: str, since_s: float) -> TargetHistory:
        return await self._live().target_history(name, since_s)

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self._inner is not None:
            await self._inner.close()
            self._inner = None
