"""`Control` for an engine running in this process (the default `metrictui`)."""

from __future__ import annotations

from datetime import datetime

import psycopg

from engine.db.history import TargetHistory, fetch_target_history
from engine.engine import Engine
from engine.errors import UserError, first_line
from engine.stats import StatsSnapshot
from engine.targets import Target


async def history_from_postgres(engine: Engine, name: str, since_s: float) -> TargetHistory:
    """Read one target's history through the public views with the engine's DSN."""
    dsn = engine.config.postgres.dsn
    if dsn is None:
        raise UserError("no [postgres] dsn configured: history needs PostgreSQL")
    try:
        async with await psycopg.AsyncConnection.connect(dsn.reveal(), connect_timeout=5) as conn:
            return await fetch_target_history(conn, engine.config.postgres.schema, name, since_s)
    except psycopg.Error as exc:
        first = first_line(exc) or type(exc).__name__
        raise UserError(f"cannot read history from PostgreSQL: {first}") from None


class LocalControl:
    """Thin adapter: the TUI calls these, the engine does the work in the same event loop."""

    connected = True
    last_contact: datetime | None = None

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def description(self) -> str:
        return "in-process engine"  # the header adds the agent and role from each snapshot

    def snapshot(self) -> StatsSnapshot | None:
        return self.engine.snapshot()

    async def get_target(self, name: str) -> Target:
        return self.engine.get_target(name)

    async def add_target(self, target: Target) -> None:
        await self.engine.add_target(target)

    async def update_target(self, name: str, target: Target) -> None:
        await self.engine.update_target(name, target)

    async def delete_target(self, name: str) -> None:
        await self.engine.delete_target(name)

    async def set_target_enabled(self, name: str, enabled: bool) -> None:
        await self.engine.set_target_enabled(name, enabled)

    async def set_metric_enabled(self, name: str, enabled: bool) -> None:
        await self.engine.set_metric_enabled(name, enabled)

    async def target_history(self, name: str, since_s: float) -> TargetHistory:
        return await history_from_postgres(self.engine, name, since_s)

    async def close(self) -> None:
        """Nothing to release: the CLI owns the engine's lifetime."""
