"""The help screen lists the keys of every screen; the detail's `r` refreshes its status."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from engine.stats import StatsSnapshot
from helpers.fake_control import FakeControl, screen_text, settle
from helpers.waiting import wait_for_async
from tui.app import MetricTuiApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.help import HelpScreen
from tui.screens.metrics import MetricsScreen
from tui.screens.target_detail import TargetDetailScreen
from tui.screens.target_form import TargetFormScreen
from tui.widgets.targets_table import TargetsTable

SCREENS = (DashboardScreen, TargetFormScreen, TargetDetailScreen, ConfirmScreen, MetricsScreen)


async def test_help_lists_every_key_of_every_screen() -> None:
    app = MetricTuiApp(FakeControl())
    async with app.run_test(size=(120, 80)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
    for screen in SCREENS:
        for binding in screen.BINDINGS:
            assert binding.tooltip in text, (screen.__name__, binding.key)  # type: ignore[union-attr]
    for needle in ("Target detail", "Delete confirmation", "Confirm", "n, escape"):
        assert needle in text, needle


class MovingClock(FakeControl):
    """A control whose snapshots can be moved forward in time."""

    def __init__(self) -> None:
        super().__init__()
        self.later = timedelta(0)

    def snapshot(self) -> StatsSnapshot | None:
        snap = super().snapshot()
        assert snap is not None
        return dataclasses.replace(snap, taken_at=snap.taken_at + self.later)


async def test_r_in_the_detail_refreshes_checked_ago() -> None:
    control = MovingClock()
    app = MetricTuiApp(control)
    async with app.run_test(size=(120, 40)) as pilot:
        app.dashboard.query_one(TargetsTable).select("api")
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TargetDetailScreen)
        assert "5s ago" in screen_text(app)
        control.later = timedelta(minutes=2)
        await pilot.press("r")
        assert await wait_for_async(pilot=pilot, predicate=lambda: "2m ago" in screen_text(app))
