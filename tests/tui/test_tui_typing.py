"""Keys typed right after a screen opens are not lost, and the form's hints read as hints."""

from __future__ import annotations

from textual.widgets import Input, Switch

from engine.agent.collector_names import COLLECTOR_NAMES
from engine.stats import StatsSnapshot
from engine.targets.model import Target
from helpers.fake_control import FakeControl, settle
from helpers.waiting import wait_for_async
from tui.app import MetricTuiApp
from tui.screens.target_form import TEXT_FIELDS, TargetFormScreen
from tui.widgets.targets_table import TargetsTable

SIZE = (120, 40)


async def test_keys_typed_right_after_a_land_in_the_name_field() -> None:
    app = MetricTuiApp(FakeControl())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "d", "o", "c", "s")
        await pilot.pause()
        assert isinstance(app.screen, TargetFormScreen)
        assert app.screen.query_one("#field-name", Input).value == "docs"


async def test_keys_typed_right_after_e_land_in_the_name_field() -> None:
    app = MetricTuiApp(FakeControl())
    async with app.run_test(size=SIZE) as pilot:
        selected = app.dashboard.query_one(TargetsTable).selected_name
        await pilot.press("e")
        await wait_for_async(
            pilot=pilot, predicate=lambda: isinstance(app.screen, TargetFormScreen)
        )
        await pilot.press("end", "2")
        await pilot.pause()
        assert app.screen.query_one("#field-name", Input).value == f"{selected}2"


async def test_space_right_after_m_toggles_the_first_collector() -> None:
    control = FakeControl()
    app = MetricTuiApp(control)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("m", "space")
        await settle(pilot)
        first = COLLECTOR_NAMES[0]
        assert app.screen.query_one(f"#metric-{first}", Switch).value is False
        assert ("set_metric_enabled", first, False) in control.calls


def test_every_placeholder_reads_as_a_hint_not_a_value() -> None:
    for field, _label, placeholder in TEXT_FIELDS:
        assert placeholder.startswith(("e.g.", "optional")), (field, placeholder)


class LaggingControl(FakeControl):
    """Like an attached engine: an edit shows up in the snapshot only a few refreshes later."""

    def __init__(self) -> None:
        super().__init__()
        self._shown = self._snapshot
        self._lag = 0

    async def add_target(self, target: Target) -> None:
        await super().add_target(target)
        self._lag = 3

    def snapshot(self) -> StatsSnapshot | None:
        if self._lag > 0:
            self._lag -= 1
        else:
            self._shown = self._snapshot
        return self._shown


async def test_a_target_added_while_attached_is_selected_once_its_row_arrives() -> None:
    app = MetricTuiApp(LaggingControl(), refresh_hz=10)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", *"zzz-new")
        form = app.screen
        assert isinstance(form, TargetFormScreen)
        form.query_one("#field-url", Input).value = "https://new.example.com/"
        await pilot.press("ctrl+s")
        await settle(pilot)
        table = app.dashboard.query_one(TargetsTable)
        assert await wait_for_async(
            pilot=pilot, predicate=lambda: table.selected_name == "zzz-new", timeout=15
        )
