"""One rate definition everywhere: the 10 s mean, in the snapshot, the status line and the
dashboard (a pipeline of a few events a second must not read 0.0/s between bursts)."""

from __future__ import annotations

from engine.headless.status_line import status_line
from engine.stats import Stats, StatsSnapshot
from helpers.fake_control import screen_text


def _bursty_stats() -> StatsSnapshot:
    """Ten seconds of produced/consumed: 10 events in the first second, none after."""
    stats = Stats("all", "a")
    for rate in (stats.produced, stats.consumed, stats.inserted):
        start = rate.last_at
        for second in range(1, 11):
            rate.total += 10 if second == 1 else 0
            rate.tick(start + second)
    return stats.snapshot()


def test_snapshot_rates_are_the_mean_of_the_last_ten_seconds() -> None:
    snap = _bursty_stats()
    assert snap.produced_per_s == 1.0
    assert snap.consumed_per_s == 1.0
    assert snap.inserted_per_s == 1.0


def test_status_line_prints_the_ten_second_mean_not_the_last_second() -> None:
    line = status_line(_bursty_stats())
    assert "produced=1.0/s" in line and "consumed=1.0/s" in line, line


async def test_dashboard_shows_the_same_rate_as_the_status_line() -> None:
    from helpers.fake_control import FakeControl
    from tui.app import MetricTuiApp

    snap = _bursty_stats()

    class Bursty(FakeControl):
        def snapshot(self) -> StatsSnapshot | None:
            return snap

    app = MetricTuiApp(Bursty(), refresh_hz=10)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        text = screen_text(app)
    produced = next(line for line in text.splitlines() if "produced" in line)
    assert " 1 ev/s" in produced, produced
