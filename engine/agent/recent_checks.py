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


class _History:
    """One target's outcomes: the last `RECENT_SHOWN` for the bar, the last hour with a running
    count of successes for the uptime, so a result costs O(1) however long the hour's list."""

    __slots__ = ("hour", "hour_ok", "recent")

    def __init__(self) -> None:
        self.recent: deque[bool] = deque(maxlen=RECENT_SHOWN)
        self.hour: deque[tuple[datetime, bool]] = deque()
        self.hour_ok = 0

    def add(self, at: datetime, ok: bool) -> None:
        self.recent.append(ok)
        if len(self.hour) >= MAX_KEPT:
            self._drop_oldest()
        self.hour.append((at, ok))
        self.hour_ok += ok

    def trim(self, now: datetime) -> None:
        """Forget outcomes older than the uptime window before `now`."""
        since = now - UPTIME_WINDOW
        while self.hour and self.hour[0][0] < since:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, ok = self.hour.popleft()
        self.hour_ok -= ok


class RecentChecks:
    """Per target name: its recent outcomes and its last hour's uptime."""

    def __init__(self) -> None:
        self._by_target: dict[str, _History] = {}

    def record(self, name: str, at: datetime, ok: bool) -> None:
        history = self._by_target.get(name)
        if history is None:
            history = self._by_target[name] = _History()
        history.add(at, ok)
        history.trim(at)

    def forget(self, name: str) -> None:
        """A deleted (or renamed) target's history goes with it."""
        self._by_target.pop(name, None)

    def last(self, name: str, count: int = RECENT_SHOWN) -> tuple[bool, ...]:
        history = self._by_target.get(name)
        if history is None:
            return ()
        return tuple(history.recent)[-count:]

    def uptime_pct(self, name: str, now: datetime) -> float | None:
        """Share of successful checks in the last hour, in percent (None without checks)."""
        history = self._by_target.get(name)
        if history is None:
            return None
        history.trim(now)
        if not history.hour:
            return None
        return 100.0 * history.hour_ok / len(history.hour)
