"""The agent's heartbeat: every `[agent] heartbeat_interval`, one small event about itself.

Sent like any other event (through the shipper, so it waits in the spool while Kafka is away;
a late one never overwrites a newer one in the sink). File-based agents send it too: the fleet
screen and `agents_v` list every agent, whatever its targets source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from engine import __version__
from engine.config.model import AgentConfig
from engine.envelope import encode_heartbeat
from engine.records.heartbeats import FleetAgent, Heartbeat
from engine.stats import Stats


def build_heartbeat(cfg: AgentConfig, stats: Stats, last_check_at: datetime | None) -> Heartbeat:
    """This agent's heartbeat now, from its config and its stats."""
    return Heartbeat(
        location=cfg.location,
        version=__version__,
        role=stats.role,
        targets_assigned=stats.targets_assigned,
        idle=stats.fleet_idle,
        spool_depth=stats.spool_depth,
        errors_total=stats.errors_total,
        send_errors_total=stats.send_errors_total,
        last_check_at=last_check_at,
        interval_s=cfg.heartbeat_interval,
        stale_after_s=cfg.stale_after_s,
        offline_after_s=cfg.offline_after,
    )


async def heartbeat_loop(
    cfg: AgentConfig,
    stats: Stats,
    host: str,
    last_check_at: Callable[[], datetime | None],
    send: Callable[[bytes], None],
) -> None:
    """Send a heartbeat now and then every interval (fixed rate), forever."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        now = datetime.now(UTC)
        beat = build_heartbeat(cfg, stats, last_check_at())
        send(encode_heartbeat(stats.agent, host, now, beat))
        stats.fleet[stats.agent] = _self_view(stats.agent, host, now, beat)  # itself, at once
        next_at += cfg.heartbeat_interval
        await asyncio.sleep(max(0.0, next_at - loop.time()))


def _self_view(agent: str, host: str, now: datetime, b: Heartbeat) -> FleetAgent:
    return FleetAgent(
        agent, host, b.location, b.version, b.role, now, b.targets_assigned, b.idle,
        b.spool_depth, b.errors_total, b.stale_after_s, b.offline_after_s,
    )  # fmt: skip
