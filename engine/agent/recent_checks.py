"""The last hour of check outcomes per target, kept in memory: the dashboard's history bar.

The targets table shows the last ~20 checks as up/down cells and the uptime over the last
hour. Both come from the engine's own results as they happen, so a dashboard refresh costs
no database query, and an attached dashboard gets them in each snapshot.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

RECENT_SHOWN = 20
"""Outcomes a snapshot carries per target (the cells of the history bar)."""
UPTIME_WINDOW = timedelta(hours=1)
MAX_KEPT = 3600
"""At most one outcome a second for an hour: a bound on memory, whatever the interval."""


class RecentChecks:
    """Per target name: (started_at, ok) of its recent checks, oldest first."""

    def __init__(self) -> None:
        self._by_target: dict[str, deque[tuple[datetime, bool]]] = {}

    def record(self, name: str, at: datetime, ok: bool) -> None:
        ring = self._by_target.setdefault(name, deque(maxlen=MAX_KEPT))
        ring.append((at, ok))
        while ring and at - ring[0][0] > UPTIME_WINDOW and len(ring) > RECENT_SHOWN:
            ring.popleft()

    def forget(self, name: str) -> None:
        """A deleted (or renamed) target's history goes with it."""
        self._by_target.pop(name, None)

    def last(self, name: str, count: int = RECENT_SHOWN) -> tuple[bool, ...]:
        ring = self._by_target.get(name, ())
        return tuple(ok for _, ok in list(ring)[-count:])

    def uptime_pct(self, name: str, now: datetime) -> float | None:
        """Share of successful checks in the last hour, in percent (None without checks)."""
        since = now - UPTIME_WINDOW
        outcomes = [ok for at, ok in self._by_target.get(name, ()) if at >= since]
        if not outcomes:
            return None
        return 100.0 * sum(outcomes) / len(outcomes)
