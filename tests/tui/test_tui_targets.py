"""Adding, editing, deleting, toggling and inspecting targets through the TUI (FakeControl)."""

from __future__ import annotations

import asyncio

from textual.pilot import Pilot
from textual.widgets import Input, Static, Switch

from engine.db.history import TargetHistory
from engine.errors import UserError
from engine.targets import Target
from helpers.fake_control import CLICK_NAME, FakeControl, OpenTui, screen_text, settle
from helpers.waiting import wait_for_async
from tui.app import MetricTuiApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.target_detail import TargetDetailScreen
from tui.screens.target_form import TargetFormScreen, headers_to_lines
from tui.widgets.latency_chart import LatencyChart
from tui.widgets.targets_table import TargetsTable


async def fill(pilot: Pilot[int], field: str, text: str) -> None:
    """Type `text` into form field `field`, replacing what was there, as a user would."""
    field_input = pilot.app.screen.query_one(f"#field-{field}", Input)
    field_input.focus()
    field_input.value = ""
    await pilot.press(*text) if text else await pilot.pause()


def problem(app: MetricTuiApp, field: str) -> str:
    widget = app.screen.query_one(f"#problem-{field}", Static)
    return str(widget.content) if widget.has_class("-shown") else ""


def rows(app: MetricTuiApp) -> set[str]:
    return {str(key.value) for key in app.dashboard.query_one(TargetsTable).rows}


async def select(pilot: Pilot[int], app: MetricTuiApp, name: str) -> None:
    app.dashboard.query_one(TargetsTable).select(name)
    await pilot.pause()


async def test_adding_a_target_through_the_form_makes_its_row_appear(
    control: FakeControl, open_tui: OpenTui
) -> None:
    async with open_tui() as (app, pilot):
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, TargetFormScreen)
        await fill(pilot, "name", "docs")
        await fill(pilot, "url", "https://docs.example.com/")
        await fill(pilot, "interval", "20")
        await fill(pilot, "expect_status", "200, 301")
        await fill(pilot, "regex", "Welcome.*docs")
        await fill(pilot, "headers", "Accept: text/html; Cookie: a=1; b=2")
        await pilot.press("ctrl+s")
        await settle(pilot)

        assert isinstance(app.screen, DashboardScreen)
        assert "docs" in rows(app)
        assert app.dashboard.query_one(TargetsTable).selected_name == "docs"
    assert control.targets["docs"] == Target(
        "docs",
        "https://docs.example.com/",
        interval=20.0,
        expect_status=(200, 301),
        regex="Welcome.*docs",
        headers=(("Accept", "text/html"), ("Cookie", "a=1; b=2")),
    )


async def test_invalid_url_and_regex_show_problems_and_save_nothing(
    control: FakeControl, open_tui: OpenTui
) -> None:
    async with open_tui() as (app, pilot):
        await pilot.press("a")
        await pilot.pause()
        assert problem(app, "name") == ""  # nothing is flagged before the user types
        await fill(pilot, "name", "broken")
        await fill(pilot, "url", "ftp://nope")
        await fill(pilot, "regex", "(unclosed")
        await fill(pilot, "interval", "-5")
        await pilot.pause()
        assert "http:// or https://" in problem(app, "url")
        assert "RE2" in problem(app, "regex")
        assert "seconds" in problem(app, "interval")

        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, TargetFormScreen)  # still open
        assert app.screen.focused is app.screen.query_one("#field-url", Input)
    assert "broken" not in control.targets
    assert [c for c in control.calls if c[0] == "add_target"] == []


async def test_blank_required_fields_are_flagged_on_save(
    control: FakeControl, open_tui: OpenTui
) -> None:
    async with open_tui() as (app, pilot):
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert problem(app, "name") and problem(app, "url")
    assert control.calls == []


async def test_duplicate_name_is_flagged_inline(open_tui: OpenTui) -> None:
    async with open_tui() as (app, pilot):
        await pilot.press("a")
        await pilot.pause()
        await fill(pilot, "name", "api")
        assert "already" in problem(app, "name")


async def test_engine_refusal_is_shown_in_the_form_and_it_stays_open(
    control: FakeControl, open_tui: OpenTui
) -> None:
    control.refuse = "targets file /x/targets.toml is not writable; fix its permissions"
    async with open_tui() as (app, pilot):
        await pilot.press("a")
        await pilot.pause()
        await fill(pilot, "name", "docs")
        await fill(pilot, "url", "https://docs.example.com/")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TargetFormScreen)
        assert "not writable" in screen_text(app)
    assert "docs" not in control.targets


async def test_editing_a_target_prefills_the_form_and_updates_it(
    control: FakeControl, open_tui: OpenTui
) -> None:
    async with open_tui() as (app, pilot):
        await pilot.pause()
        await select(pilot, app, "api")
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, TargetFormScreen)
        assert app.screen.query_one("#field-url", Input).value == "https://api.example.com/health"
        assert app.screen.query_one("#field-interval", Input).value == "15"
        assert app.screen.query_one("#field-regex", Input).value == "ok"
        await fill(pilot, "url", "https://api2.example.com/health")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
    assert control.targets["api"].url == "https://api2.example.com/health"
    assert control.targets["api"].interval == 15.0
    assert ("update_target", "api", control.targets["api"]) in control.calls


async def test_renaming_a_target_replaces_its_row(control: FakeControl, open_tui: OpenTui) -> None:
    async with open_tui() as (app, pilot):
        await pilot.pause()
        await select(pilot, app, "shop")
        await pilot.press("e")
        await settle(pilot)
        await fill(pilot, "name", "store")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "store" in rows(app) and "shop" not in rows(app)


async def test_delete_asks_first_and_no_keeps_the_target(
    control: FakeControl, open_tui: OpenTui
) -> None:
    async with open_tui() as (app, pilot):
        await pilot.pause()
        await select(pilot, app, "blog")
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "blog" in screen_text(app)
        await pilot.press("n")
        await settle(pilot)
        assert "blog" in rows(app)
        assert control.calls == []

        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert "blog" not in rows(app)
    assert control.calls == [("delete_target", "blog")]
    assert "blog" not in control.targets


async def test_space_toggles_the_selected_target(control: FakeControl, open_tui: OpenTui) -> None:
    async with open_tui() as (app, pilot):
        await pilot.pause()
        await select(pilot, app, "api")
        await pilot.press("space")
        await settle(pilot)
        table = app.dashboard.query_one(TargetsTable)
        assert table.get_cell("api", "state").plain == "off"
        await pilot.press("space")
        await settle(pilot)
        assert table.get_cell("api", "state").plain == "up"
    assert control.calls == [
        ("set_target_enabled", "api", False),
        ("set_target_enabled", "api", True),
    ]


async def test_refused_toggle_is_reported_and_changes_nothing(
    control: FakeControl, open_tui: OpenTui
) -> None:
    control.refuse = "engine is stopping; try again"
    async with open_tui(notifications=True) as (app, pilot):
        await pilot.pause()
        await select(pilot, app, "api")
        await pilot.press("space")
        await settle(pilot)
        assert "engine is stopping" in screen_text(app)
    assert control.targets["api"].enabled


async def test_enter_opens_the_detail_with_history_from_the_engine(
    control: FakeControl, open_tui: OpenTui
) -> None:
    async with open_tui() as (app, pilot):
        await pilot.pause()
        await select(pilot, app, "api")
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, TargetDetailScreen)
        text = screen_text(app)
        assert "uptime 97.5%" in text
        assert "p50 101 ms" in text and "p95 180 ms" in text and "p99 231 ms" in text
        assert "timeout 4, status_mismatch 2" in text
        assert "in 42 days" in text
        assert "█" in text  # the latency chart drew bars
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
    assert ("target_history", "api", 3600.0) in control.calls


class SlowHistory(FakeControl):
    """History that answers only when the test says so, or fails."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.fail = fail

    async def target_history(self, name: str, since_s: float) -> TargetHistory:
        if self.fail:
            raise UserError("PostgreSQL is not reachable; check [postgres] dsn")
        await self.release.wait()
        return await super().target_history(name, since_s)


async def test_detail_loads_in_the_background_and_the_ui_stays_responsive(
    open_tui: OpenTui,
) -> None:
    control = SlowHistory()
    async with open_tui(control) as (app, pilot):
        await pilot.pause()
        await select(pilot, app, "api")
        await pilot.press("enter")
        assert await wait_for_async(lambda: isinstance(app.screen, TargetDetailScreen), pilot=pilot)
        assert app.screen.query_one("#detail-body").loading
        await pilot.press("r")  # keys still work while the query is out
        assert app.screen.query_one("#detail-body").loading
        control.release.set()
        await settle(pilot)
        assert not app.screen.query_one("#detail-body").loading
        assert app.screen.query_one(LatencyChart)._series


async def test_detail_closes_while_history_is_still_loading(open_tui: OpenTui) -> None:
    control = SlowHistory()
    async with open_tui(control) as (app, pilot):
        await pilot.pause()
        await pilot.press("enter")
        assert await wait_for_async(lambda: isinstance(app.screen, TargetDetailScreen), pilot=pilot)
        await pilot.press("escape")
        assert await wait_for_async(lambda: isinstance(app.screen, DashboardScreen), pilot=pilot)
        control.release.set()
        await settle(pilot)  # the cancelled query leaves no error behind
        assert app.is_running


async def test_detail_says_why_history_is_unavailable(open_tui: OpenTui) -> None:
    async with open_tui(SlowHistory(fail=True)) as (app, pilot):
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "history unavailable: PostgreSQL is not reachable" in screen_text(app)
        assert app.is_running


async def test_metrics_screen_switches_collectors_in_the_engine(
    control: FakeControl, open_tui: OpenTui
) -> None:
    async with open_tui() as (app, pilot):
        await pilot.press("m")
        await pilot.pause()
        switch = app.screen.query_one("#metric-swap", Switch)
        assert switch.value
        switch.focus()
        await pilot.press("space")
        await settle(pilot)
        assert control.metrics_enabled["swap"] is False
        assert "off" in screen_text(app)
        await pilot.press("escape")
        assert await wait_for_async(
            lambda: "swap off" in screen_text(app), pilot=pilot
        )  # host pane no longer shows a stale value
    assert control.calls == [("set_metric_enabled", "swap", False)]


async def test_refused_metric_switch_flips_back_and_says_why(
    control: FakeControl, open_tui: OpenTui
) -> None:
    control.refuse = "unknown metric collector 'swap'"
    async with open_tui() as (app, pilot):
        await pilot.press("m")
        await pilot.pause()
        switch = app.screen.query_one("#metric-swap", Switch)
        switch.focus()
        await pilot.press("space")
        await settle(pilot)
        assert switch.value is True
        assert "unknown metric collector" in screen_text(app)


async def test_keys_that_need_a_selection_say_so_on_an_empty_table(
    control: FakeControl, open_tui: OpenTui
) -> None:
    control.targets.clear()
    control._snapshot = control._build()
    async with open_tui(notifications=True) as (app, pilot):
        await pilot.pause()
        for key in ("e", "d", "space", "enter"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, DashboardScreen)
        assert "No target selected" in screen_text(app)
    assert control.calls == []


def test_headers_field_splits_on_semicolons_before_header_names_only() -> None:
    assert headers_to_lines("A: 1; B: 2") == "A: 1\nB: 2"
    assert headers_to_lines("Cookie: a=1; b=2") == "Cookie: a=1; b=2"
    assert headers_to_lines("") == ""


async def test_hostile_target_can_be_edited_and_deleted(
    control: FakeControl, open_tui: OpenTui
) -> None:
    async with open_tui() as (app, pilot):
        await pilot.pause()
        await select(pilot, app, CLICK_NAME)
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert app.is_running
    assert CLICK_NAME not in control.targets
