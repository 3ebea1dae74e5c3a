"""Start the dashboard: attached to a running headless engine, or with an in-process engine."""

from __future__ import annotations

import asyncio
import logging

from engine.config import Config
from engine.control import Control
from engine.engine import Engine, Role
from engine.errors import UserError
from engine.local_control import LocalControl

log = logging.getLogger("metrictui")


async def run_app(control: Control, refresh_hz: float) -> int:
    """Run the Textual app in the current event loop (the engine shares it)."""
    from tui.app import MetricTuiApp

    app = MetricTuiApp(control, refresh_hz=refresh_hz)
    await app.run_async()
    return app.return_code or 0


def launch(config: Config, role: Role) -> int:
    """Run the TUI with an in-process engine."""
    return asyncio.run(_run_local(config, role))


async def _run_local(config: Config, role: Role) -> int:
    engine = Engine(config, role)
    await engine.start()
    try:
        return await run_app(LocalControl(engine), config.tui.refresh_hz)
    finally:
        await engine.stop(timeout=9)


def attach(path: str) -> int:
    raise UserError(f"attaching to {path} is not available yet")
