"""Dashboard edits with the topic as the source: the engine publishes them, the table (and so
every agent and dashboard) sees them. The real engine on the real stack, no TUI needed: the TUI
reaches these same engine methods in-process or over the control socket."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.fleet_rig import FleetRig
from engine.config import load_config
from engine.engine import Engine
from engine.fleet.table import read_table
from engine.targets import Target
from helpers.stack import StackInfo


async def _until(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_dashboard_edits_publish_to_the_topic_and_every_reader_sees_them(
    stack: StackInfo, tmp_path: Path
) -> None:
    rig = FleetRig(stack.bootstrap, stack.dsn, str(stack.env["web_url"]), tmp_path,
                   targets_partitions=6)  # fmt: skip
    config = load_config(rig.write_config("editor", rig.location("eu")), {})
    engine = Engine(config, role="producer")
    await engine.start()
    try:
        assert engine.fleet is not None
        await _until(engine.fleet.table.caught_up.is_set)
        shop = Target("shop", f"{rig.web_url}?t=shop", interval=2.0)
        await engine.add_target(shop)
        await _until(lambda: engine.fleet is not None and "shop" in engine.fleet.targets)
        await engine.set_target_enabled("shop", False)
        await _until(lambda: engine.fleet is not None and not engine.fleet.targets["shop"].enabled)
        await engine.add_target(Target("blog", f"{rig.web_url}?t=blog", interval=2.0))
        await engine.delete_target("shop")
        await _until(lambda: engine.fleet is not None and set(engine.fleet.targets) == {"blog"})
        # Another reader (another agent or dashboard) sees the same table.
        table = await read_table(config.kafka, tmp_path)
        assert set(table.targets) == {"blog"}
        assert table.targets["blog"] == Target("blog", f"{rig.web_url}?t=blog", 2.0)
    finally:
        await engine.stop()
        await asyncio.to_thread(rig.drop_schema)
