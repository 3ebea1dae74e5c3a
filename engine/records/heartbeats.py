"""The heartbeat event: what an agent says about itself every `[agent] heartbeat_interval`,
and `FleetAgent`, the dashboard's and /metrics' view of an agent's latest heartbeat.

An envelope of type "heartbeat" and version 1.1 (a minor version: sinks that know 1.0 accept
the envelope and set the unknown type aside as a dead letter, so upgrade sinks before agents).
Agents build it with `Heartbeat.to_payload`; the sink reads it with `parse_heartbeat`
and keeps the latest per agent (`agents` table, `agents_v` view, `FleetAgent` in the stats).
It sits at the engine's base, like check_result, because the agent, the sink and the stats all
read it. States: stale after the agent's `stale_after_s`, offline after `offline_after_s`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

HEARTBEAT_VERSION = "1.1"
_TEXT_MAX = 200


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One agent's state as it reported it (the payload of a heartbeat event)."""

    location: str
    version: str
    role: str
    targets_assigned: int
    idle: bool
    """In a group with more agents than the targets topic has partitions: nothing to check."""
    spool_depth: int
    errors_total: int
    send_errors_total: int
    last_check_at: datetime | None
    interval_s: float
    stale_after_s: float
    offline_after_s: float

    def to_payload(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "version": self.version,
            "role": self.role,
            "targets_assigned": self.targets_assigned,
            "idle": self.idle,
            "spool_depth": self.spool_depth,
            "errors_total": self.errors_total,
            "send_errors_total": self.send_errors_total,
            "last_check_at": None if self.last_check_at is None else self.last_check_at.isoformat(),
            "interval_s": self.interval_s,
            "stale_after_s": self.stale_after_s,
            "offline_after_s": self.offline_after_s,
        }


class BadHeartbeat(ValueError):
    """A heartbeat payload that breaks the format; the text is the dead letter's reason."""


def _text(p: Mapping[str, Any], key: str) -> str:
    value = p.get(key)
    if not isinstance(value, str) or not value or len(value) > _TEXT_MAX or "\x00" in value:
        raise BadHeartbeat(f"wrong_type: {key} must be a short non-empty string")
    return value


def _count(p: Mapping[str, Any], key: str) -> int:
    value = p.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise BadHeartbeat(f"wrong_type: {key} must be a count")
    return value


def _seconds(p: Mapping[str, Any], key: str) -> float:
    value = p.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadHeartbeat(f"wrong_type: {key} must be a number of seconds")
    if not math.isfinite(value) or not 0 < value <= 86400:
        raise BadHeartbeat(f"out_of_range: {key}")
    return float(value)


def parse_heartbeat(p: Mapping[str, Any]) -> Heartbeat:
    """Validate a heartbeat payload; raises BadHeartbeat with a short reason."""
    last = p.get("last_check_at")
    last_at: datetime | None = None
    if last is not None:
        try:
            last_at = datetime.fromisoformat(last) if isinstance(last, str) else None
        except ValueError:
            last_at = None
        if last_at is None or last_at.tzinfo is None:
            raise BadHeartbeat("bad_timestamp: last_check_at")
    idle = p.get("idle", False)
    if not isinstance(idle, bool):
        raise BadHeartbeat("wrong_type: idle must be a boolean")
    return Heartbeat(
        location=_text(p, "location"),
        version=_text(p, "version"),
        role=_text(p, "role"),
        targets_assigned=_count(p, "targets_assigned"),
        idle=idle,
        spool_depth=_count(p, "spool_depth"),
        errors_total=_count(p, "errors_total"),
        send_errors_total=_count(p, "send_errors_total"),
        last_check_at=last_at,
        interval_s=_seconds(p, "interval_s"),
        stale_after_s=_seconds(p, "stale_after_s"),
        offline_after_s=_seconds(p, "offline_after_s"),
    )


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
