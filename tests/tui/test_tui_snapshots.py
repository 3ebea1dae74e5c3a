"""Screenshots (pytest-textual-snapshot) of each screen at 80x24 and 120x40 from FakeControl.

Baselines live in tests/tui/__snapshots__/; after an intended visual change, review and refresh
them with `pytest tests/tui/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from helpers.fake_control import BOLD_NAME, FakeControl, settle
from tui.app import MetricTuiApp
from tui.screens.target_detail import TargetDetailScreen
from tui.screens.target_form import TargetFormScreen
from tui.widgets.targets_table import TargetsTable

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
SnapCompare = Callable[..., bool]


def steady_cursors(pilot: Pilot[Any]) -> None:
    """A blinking cursor would make screenshots differ run to run."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)

    assert snap_compare(MetricTuiApp(FakeControl()), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_waiting_for_engine_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    app = MetricTuiApp(FakeControl(waiting=True))
    assert snap_compare(app, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_target_form_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(pilot.app.screen, TargetFormScreen)
        steady_cursors(pilot)
        for field, text in (("name", "docs"), ("url", "ftp://docs.example"), ("regex", "(x")):
            widget = pilot.app.screen.query_one(f"#field-{field}", Input)
            widget.focus()
            await pilot.press(*text)
        await settle(pilot)

    assert snap_compare(MetricTuiApp(FakeControl()), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_target_detail_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        pilot.app.screen.query_one(TargetsTable).select(BOLD_NAME)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, TargetDetailScreen)

    assert snap_compare(MetricTuiApp(FakeControl()), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_help_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(MetricTuiApp(FakeControl()), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_metrics_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.press("m")
        await settle(pilot)

    assert snap_compare(MetricTuiApp(FakeControl()), terminal_size=size, run_before=run_before)
