"""The one interface a dashboard uses to read and steer an engine, local or attached.

`LocalControl` (engine/control/local.py) wraps an in-process `Engine`; `SocketControl`
(engine/control/client.py) talks to a headless engine over its control socket. The TUI only
ever sees this protocol, so attaching over SSH and running in-process behave the same.
"""

from __future__ import annotations

from typing import Protocol

from engine.db.history import TargetHistory
from engine.stats import StatsSnapshot
from engine.targets import Target


class Control(Protocol):
    """Read snapshots and apply target/metric edits. Edits raise `UserError` when refused."""

    @property
    def description(self) -> str:
        """One line for the header: "in-process engine" or "attached to <path>"."""
        ...

    def snapshot(self) -> StatsSnapshot | None:
        """The newest snapshot, or None before the first one arrives. Never blocks."""
        ...

    async def get_target(self, name: str) -> Target: ...

    async def add_target(self, target: Target) -> None: ...

    async def update_target(self, name: str, target: Target) -> None:
        """Replace target `name` (the new one may be renamed)."""
        ...

    async def delete_target(self, name: str) -> None: ...

    async def set_target_enabled(self, name: str, enabled: bool) -> None: ...

    async def set_metric_enabled(self, name: str, enabled: bool) -> None: ...

    async def target_history(self, name: str, since_s: float) -> TargetHistory:
        """History of one target from PostgreSQL through the public views."""
        ...

    async def close(self) -> None: ...
