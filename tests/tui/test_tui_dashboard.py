"""The dashboard against a deterministic FakeControl: what it shows and how it refreshes."""

from __future__ import annotations

import dataclasses
import io
import re

from rich.console import Console
from textual.widgets import Static

from engine.targets import Target
from helpers.fake_control import BOLD_NAME, CLICK_NAME, FakeControl, screen_text
from helpers.waiting import wait_for_async
from tui.app import MetricTuiApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.help import HelpScreen
from tui.screens.target_form import TargetFormScreen
from tui.widgets.spark import Spark
from tui.widgets.targets_table import TargetsTable

SIZE = (120, 40)


def _table(app: MetricTuiApp) -> TargetsTable:
    return app.dashboard.query_one(TargetsTable)


async def test_dashboard_shows_pipeline_host_targets_and_errors() -> None:
    app = MetricTuiApp(FakeControl())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)

    assert "fake engine (tests)" in text
    assert "agent fake-agent" in text and "role all" in text
    assert "Kafka up" in text and "PostgreSQL up" in text
    assert "produced    1.2k ev/s" in text and "inserted  4.3k rows/s" in text
    assert "lag 14" in text and "metrics 0:4 1:8 2:0" in text
    assert "fresh 840 ms" in text and "db 12 ms" in text and "dead 1" in text
    assert "cpu   12.5%" in text and "load 0.52 0.41 0.30" in text
    assert "mem   61.3%" in text and "/home 33%" in text
    assert "rx 1.2 MB/s" in text  # loopback traffic is not counted
    for name in ("api", "blog", "shop", BOLD_NAME, CLICK_NAME):
        assert name in text
    assert "errors (17)" in text
    # newest error first
    assert text.index("kafka timeout") < text.index("dead letter: invalid JSON")


async def test_sparklines_carry_the_rate_history() -> None:
    control = FakeControl()
    app = MetricTuiApp(control)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        spark = app.dashboard.query_one("#spark-inserted", Spark)
        snapshot = control.snapshot()
        assert snapshot is not None
        assert list(spark.data) == list(snapshot.history["inserted"])


async def test_waiting_message_until_the_first_snapshot_then_the_timer_shows_it() -> None:
    control = FakeControl(waiting=True)
    app = MetricTuiApp(control, refresh_hz=10)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "waiting for the engine…" in screen_text(app)
        assert _table(app).row_count == 0
        control.waiting = False
        assert await wait_for_async(lambda: _table(app).row_count == 5, pilot=pilot)
        assert "waiting for the engine" not in screen_text(app)


async def test_unchanged_snapshots_touch_no_cells_and_a_change_touches_one() -> None:
    control = FakeControl()
    app = MetricTuiApp(control, refresh_hz=10)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = _table(app)
        updates: list[tuple[object, object]] = []
        original = table.update_cell

        def counting_update_cell(row_key: object, column_key: object, *a: object, **k: object):
            updates.append((row_key, column_key))
            return original(row_key, column_key, *a, **k)  # type: ignore[arg-type]

        table.update_cell = counting_update_cell  # type: ignore[method-assign]
        await pilot.pause(0.35)
        assert updates == []

        snapshot = control.snapshot()
        assert snapshot is not None
        targets = tuple(
            dataclasses.replace(t, status_code=503) if t.name == "api" else t
            for t in snapshot.targets
        )
        control._snapshot = dataclasses.replace(snapshot, targets=targets)
        assert await wait_for_async(lambda: bool(updates), pilot=pilot)
        await pilot.pause(0.35)
        assert updates == [("api", "status")]
        assert table.get_cell("api", "status").plain == "503"


async def test_no_redraw_while_a_modal_is_on_top() -> None:
    control = FakeControl()
    app = MetricTuiApp(control, refresh_hz=10)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await control.add_target(Target("zz-new", "https://new.example/"))
        await pilot.pause(0.35)
        assert _table(app).row_count == 5  # the dashboard underneath was left alone
        await pilot.press("escape")
        assert await wait_for_async(lambda: _table(app).row_count == 6, pilot=pilot)
        assert "zz-new" in {str(key.value) for key in _table(app).rows}


async def test_help_lists_every_dashboard_key() -> None:
    app = MetricTuiApp(FakeControl())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        # The whole list (it holds the keys of every screen now, more than one screenful).
        console = Console(width=118, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#help-keys", Static).content)
        text = "\n".join("│ " + line for line in console.export_text().splitlines())
    for key, what in (
        ("a", "Add a website target"),
        ("e", "Edit the selected target"),
        ("d", "Delete the selected target"),
        ("space", "Enable or disable the selected target"),
        ("enter", "History of the selected target"),
        ("m", "Switch metric collectors"),
        ("f", "Every agent: live, stale, offline"),
        ("?", "Show every key"),
        ("q", "Quit"),
        ("ctrl+p", "Command palette"),
    ):
        assert re.search(rf"│ {re.escape(key)} +{re.escape(what)}", text), (key, what)


async def test_footer_bindings_have_ids_and_descriptions() -> None:
    ids = {b.id for b in DashboardScreen.BINDINGS if not isinstance(b, tuple)}
    assert ids == {
        "add-target",
        "edit-target",
        "delete-target",
        "toggle-target",
        "target-detail",
        "metrics",
        "fleet",
        "help",
        "quit",
    }
    app = MetricTuiApp(FakeControl())
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for_async(
            lambda: "Quit" in screen_text(app).splitlines()[-1], pilot=pilot
        )
        footer_line = screen_text(app).splitlines()[-1]
    for label in ("Add", "Edit", "Delete", "On/off", "Detail", "Metrics", "Help", "Quit"):
        assert label in footer_line


async def test_command_palette_runs_dashboard_actions() -> None:
    app = MetricTuiApp(FakeControl())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"add target")
        assert await wait_for_async(lambda: "Add a website target" in screen_text(app), pilot=pilot)
        await pilot.press("enter")
        assert await wait_for_async(lambda: isinstance(app.screen, TargetFormScreen), pilot=pilot)


async def test_q_quits_with_exit_code_zero() -> None:
    control = FakeControl()
    app = MetricTuiApp(control)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    assert not control.closed  # closing the engine is the CLI's job, after the app returns


async def test_layout_fits_80x24() -> None:
    app = MetricTuiApp(FakeControl())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_async(
            pilot=pilot, predicate=lambda: "Help" in screen_text(app).splitlines()[-1]
        )
        text = screen_text(app)
    lines = text.splitlines()
    assert len(lines) == 24 and all(len(line) == 80 for line in lines)
    assert "Kafka up" in text and "cpu" in text
    for name in ("api", "blog", "shop"):
        assert name in text
    assert "q Quit" in lines[-1], "quitting must stay visible in the footer at 80x24"
