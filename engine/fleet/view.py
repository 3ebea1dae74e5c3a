"""What the dashboard and /metrics know about the fleet: each agent's latest heartbeat.

The sink fills it from the heartbeats it stores (so a dashboard beside the sink sees every
agent); an agent without a sink knows only itself. States follow the same rule as `agents_v`:
stale after the agent's `stale_after_s`, offline after its `offline_after_s`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

STATES = ("live", "stale", "offline")


@dataclass(frozen=True, slots=True)
class FleetAgent:
    """One agent as its newest heartbeat described it."""

    agent: str
    host: str
    location: str
    version: str
    role: str
    last_seen: datetime
    targets_assigned: int
    idle: bool
    spool_depth: int
    errors_total: int
    stale_after_s: float
    offline_after_s: float

    def state(self, now: datetime) -> str:
        age = (now - self.last_seen).total_seconds()
        if age > self.offline_after_s:
            return "offline"
        if age > self.stale_after_s:
            return "stale"
        return "live"

    def to_list(self) -> list[Any]:
        return [
            self.agent, self.host, self.location, self.version, self.role,
            self.last_seen.isoformat(), self.targets_assigned, self.idle, self.spool_depth,
            self.errors_total, self.stale_after_s, self.offline_after_s,
        ]  # fmt: skip

    @classmethod
    def from_list(cls, v: list[Any]) -> FleetAgent:
        return cls(
            str(v[0]), str(v[1]), str(v[2]), str(v[3]), str(v[4]), datetime.fromisoformat(v[5]),
            int(v[6]), bool(v[7]), int(v[8]), int(v[9]), float(v[10]), float(v[11]),
        )  # fmt: skip


def state_counts(agents: tuple[FleetAgent, ...], now: datetime) -> dict[str, int]:
    """How many agents are live, stale and offline (every state present, zero or more)."""
    counts = dict.fromkeys(STATES, 0)
    for a in agents:
        counts[a.state(now)] += 1
    return counts
