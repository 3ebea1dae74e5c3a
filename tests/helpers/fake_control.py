"""A deterministic `Control` for TUI tests: fixed snapshot, fixed times, edits kept in memory.

Everything the dashboard shows comes from `FAKE_NOW`-relative values, so screenshots are the
same on every run. The targets include hostile names and an error message carrying a
terminal escape (OSC title change), to prove they are rendered literally. `screen_text`
reads back what the terminal would show, for assertions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.pilot import Pilot

from engine.agent.collector_names import COLLECTOR_NAMES
from engine.db.history import TargetHistory
from engine.errors import UserError
from engine.stats import ErrorEntry, LatestSample, PartitionLag, StatsSnapshot, TargetStatus
from engine.targets import Target

if TYPE_CHECKING:
    from tui.app import MetricTuiApp

FAKE_NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HOSTILE_ESCAPE = "\x1b]0;owned\x07"
BOLD_NAME = "[bold]x[/bold]"
CLICK_NAME = "[@click=app.quit]y"


def _ago(seconds: float) -> datetime:
    return FAKE_NOW - timedelta(seconds=seconds)


def fake_targets() -> list[Target]:
    """The targets the fake engine starts with (sorted by name, like the real snapshot)."""
    return sorted(
        [
            Target("api", "https://api.example.com/health", interval=15.0, regex="ok"),
            Target("blog", "https://blog.example.com/", enabled=False),
            Target(BOLD_NAME, "https://bold.example.net/"),
            Target(CLICK_NAME, "https://evil.example/[@click=app.quit]", expect_status=(200,)),
            Target("shop", "https://shop.example.com/"),
        ],
        key=lambda t: t.name,
    )


def _status(t: Target) -> TargetStatus:
    """A fixed latest result per known target; new targets have not been checked yet."""
    base = TargetStatus(name=t.name, url=t.url, enabled=t.enabled, interval=t.interval)
    results: dict[str, dict[str, object]] = {
        "api": {
            "recent": (True,) * 9 + (False,) + (True,) * 14,
            "uptime_1h_pct": 99.3,
            "ok": True,
            "status_code": 200,
            "total_ms": 123.4,
            "content_match": True,
            "cert_days_left": 42.6,
            "last_checked": _ago(5),
        },
        "blog": {"ok": True, "status_code": 200, "total_ms": 88.0, "last_checked": _ago(3600)},
        BOLD_NAME: {
            "ok": False,
            "reason": "connect_error",
            "error": f"connection refused {HOSTILE_ESCAPE}[red]boom[/red]",
            "last_checked": _ago(12),
        },
        CLICK_NAME: {
            "recent": (True, True, False, False, False),
            "uptime_1h_pct": 40.0,
            "ok": False,
            "status_code": 500,
            "total_ms": 2310.0,
            "cert_days_left": 3.2,
            "reason": "status_mismatch",
            "error": f"got 500, expected 200 {HOSTILE_ESCAPE}",
            "last_checked": _ago(75),
        },
    }
    return dataclasses.replace(base, **results.get(t.name, {}))  # type: ignore[arg-type]


def _wave(n: int, scale: float, phase: float) -> tuple[float, ...]:
    return tuple(round(scale * (1.2 + math.sin(i / 7 + phase)), 1) for i in range(n))


def _metrics() -> tuple[LatestSample, ...]:
    samples = [
        LatestSample("cpu.percent", (("cpu", "total"),), 12.5, "%"),
        LatestSample("cpu.percent", (("cpu", "0"),), 20.0, "%"),
        LatestSample("load.1m", (), 0.52, ""),
        LatestSample("load.5m", (), 0.41, ""),
        LatestSample("load.15m", (), 0.30, ""),
        LatestSample("memory.percent", (), 61.3, "%"),
        LatestSample("memory.used_bytes", (), 5.2e9, "bytes"),
        LatestSample("swap.percent", (), 2.0, "%"),
        LatestSample("disk.percent", (("device", "/dev/sda1"), ("mount", "/")), 71.0, "%"),
        LatestSample("disk.percent", (("device", "/dev/sda2"), ("mount", "/home")), 33.3, "%"),
        LatestSample("diskio.read_bytes_per_s", (("device", "sda"),), 1_500_000.0, "bytes/s"),
        LatestSample("diskio.write_bytes_per_s", (("device", "sda"),), 250_000.0, "bytes/s"),
        LatestSample("net.recv_bytes_per_s", (("interface", "eth0"),), 1_200_000.0, "bytes/s"),
        LatestSample("net.recv_bytes_per_s", (("interface", "lo"),), 9e9, "bytes/s"),
        LatestSample("net.sent_bytes_per_s", (("interface", "eth0"),), 300_000.0, "bytes/s"),
        LatestSample("processes.count", (), 312.0, "count"),
        LatestSample("uptime.seconds", (), 3 * 86400 + 4 * 3600.0, "s"),
    ]
    return tuple(sorted(samples, key=lambda s: (s.metric, s.labels)))


def fake_snapshot(targets: list[Target], metrics_enabled: dict[str, bool]) -> StatsSnapshot:
    """The fixed snapshot, with `targets` and `metrics_enabled` as the fake engine holds them."""
    lag = (
        PartitionLag("metrictui.checks", 0, 0),
        PartitionLag("metrictui.checks", 1, 2),
        PartitionLag("metrictui.metrics", 0, 4),
        PartitionLag("metrictui.metrics", 1, 8),
        PartitionLag("metrictui.metrics", 2, 0),
    )
    errors = (
        ErrorEntry(_ago(300), "sink", "dead letter: invalid JSON at metrictui.metrics/1@42"),
        ErrorEntry(_ago(120), "check", f"{BOLD_NAME}: connection refused {HOSTILE_ESCAPE}"),
        ErrorEntry(_ago(30), "producer", f"[@click=app.quit]kafka timeout{HOSTILE_ESCAPE}"),
    )
    return StatsSnapshot(
        taken_at=FAKE_NOW,
        role="all",
        agent="fake-agent",
        kafka_state="up",
        postgres_state="up",
        produced_per_s=1234.5,
        consumed_per_s=1230.0,
        inserted_per_s=4321.0,
        produced_total=987_654,
        consumed_total=987_600,
        inserted_rows_total=3_456_789,
        inserted_events_total=987_600,
        duplicates_total=3,
        dead_letters_total=1,
        send_errors_total=0,
        spool_depth=0,
        spool_bytes=0,
        spool_dropped_total=0,
        checks_total=5_432,
        lag=lag,
        lag_total=sum(p.lag for p in lag),
        db_write_ms=12.3,
        freshness_s=0.84,
        history={
            # The last ten seconds hold steady at the rate shown (the mean of them).
            "produced": _wave(110, 1000.0, 0.0) + (1234.5,) * 10,
            "consumed": _wave(110, 1000.0, 0.3) + (1230.0,) * 10,
            "inserted": _wave(110, 3500.0, 0.6) + (4321.0,) * 10,
        },
        metrics=_metrics(),
        metrics_enabled=dict(metrics_enabled),
        targets=tuple(_status(t) for t in sorted(targets, key=lambda t: t.name)),
        errors=errors,
        errors_total=17,
    )


def fake_history(name: str, since_s: float) -> TargetHistory:
    """An hour of per-minute latency with a gap and a failure mix, at fixed times."""
    start = FAKE_NOW.replace(second=0) - timedelta(minutes=59)
    series = tuple(
        (
            start + timedelta(minutes=i),
            None if 20 <= i < 24 else round(100 + 60 * math.sin(i / 6) + (i % 7) * 5, 1),
        )
        for i in range(60)
    )
    return TargetHistory(
        name=name,
        since_s=since_s,
        checks=240,
        uptime_pct=97.5,
        p50_ms=101.2,
        p95_ms=180.4,
        p99_ms=230.9,
        failures_by_reason=(("timeout", 4), ("status_mismatch", 2)),
        latency_series=series,
        cert_expires_at=FAKE_NOW + timedelta(days=42, hours=3),
    )


class FakeControl:
    """Implements `engine.control.protocol.Control` in memory; records every edit in `calls`."""

    connected = True
    last_contact: datetime | None = None

    def __init__(self, *, waiting: bool = False) -> None:
        self.targets: dict[str, Target] = {t.name: t for t in fake_targets()}
        self.metrics_enabled: dict[str, bool] = dict.fromkeys(COLLECTOR_NAMES, True)
        self.calls: list[tuple[object, ...]] = []
        self.waiting = waiting
        self.refuse: str | None = None  # when set, the next edit raises UserError(refuse)
        self.closed = False
        self._snapshot = self._build()

    @property
    def description(self) -> str:
        return "fake engine (tests)"

    def _build(self) -> StatsSnapshot:
        return fake_snapshot(list(self.targets.values()), self.metrics_enabled)

    def _edited(self, *call: object) -> None:
        self.calls.append(call)
        if self.refuse is not None:
            message, self.refuse = self.refuse, None
            raise UserError(message)

    def snapshot(self) -> StatsSnapshot | None:
        return None if self.waiting else self._snapshot

    async def get_target(self, name: str) -> Target:
        try:
            return self.targets[name]
        except KeyError:
            raise UserError(f"no target named {name!r}; it may have been deleted") from None

    async def add_target(self, target: Target) -> None:
        self._edited("add_target", target)
        if target.name in self.targets:
            raise UserError(f"a target named {target.name!r} already exists; pick another name")
        self.targets[target.name] = target
        self._snapshot = self._build()

    async def update_target(self, name: str, target: Target) -> None:
        self._edited("update_target", name, target)
        if name not in self.targets:
            raise UserError(f"no target named {name!r}; it may have been deleted")
        if target.name != name and target.name in self.targets:
            raise UserError(f"a target named {target.name!r} already exists; pick another name")
        del self.targets[name]
        self.targets[target.name] = target
        self._snapshot = self._build()

    async def delete_target(self, name: str) -> None:
        self._edited("delete_target", name)
        if self.targets.pop(name, None) is None:
            raise UserError(f"no target named {name!r}; it may have been deleted")
        self._snapshot = self._build()

    async def set_target_enabled(self, name: str, enabled: bool) -> None:
        self._edited("set_target_enabled", name, enabled)
        target = await self.get_target(name)
        self.targets[name] = dataclasses.replace(target, enabled=enabled)
        self._snapshot = self._build()

    async def set_metric_enabled(self, name: str, enabled: bool) -> None:
        self._edited("set_metric_enabled", name, enabled)
        if name not in self.metrics_enabled:
            raise UserError(f"unknown metric collector {name!r}")
        self.metrics_enabled[name] = enabled
        self._snapshot = self._build()

    async def target_history(self, name: str, since_s: float) -> TargetHistory:
        self.calls.append(("target_history", name, since_s))
        return fake_history(name, since_s)

    async def close(self) -> None:
        self.closed = True


def screen_text(app: App[Any]) -> str:
    """What the terminal would show right now, as plain text lines (for assertions)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


async def settle(pilot: Pilot[Any]) -> None:
    """Let pending messages and workers (engine calls) finish, then let the screen redraw."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


OpenTui = Callable[..., AbstractAsyncContextManager[tuple["MetricTuiApp", Pilot[int]]]]
"""The `open_tui` fixture (tests/tui/conftest.py): `async with open_tui() as (app, pilot)`."""
