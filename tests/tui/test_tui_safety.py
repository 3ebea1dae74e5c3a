"""Untrusted text (target names, URLs, error messages) is shown literally and does nothing."""

from __future__ import annotations

import dataclasses

from rich.text import Text

from helpers.fake_control import BOLD_NAME, CLICK_NAME, FakeControl, screen_text, settle
from helpers.waiting import wait_for_async
from tui.app import MetricTuiApp
from tui.screens.target_detail import TargetDetailScreen
from tui.widgets.safe_text import clean_text, safe_text
from tui.widgets.targets_table import TargetsTable

SIZE = (120, 40)


def assert_no_raw_controls(app: MetricTuiApp) -> None:
    strips = app.screen._compositor.render_strips()
    for strip in strips:
        for segment in strip:
            assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in segment.text), (
                segment.text
            )


async def test_hostile_names_and_errors_render_literally_and_nothing_happens() -> None:
    control = FakeControl()
    app = MetricTuiApp(control)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert BOLD_NAME in text
        assert CLICK_NAME in text
        assert r"\x1b]0;owned\x07" in text  # the escape is shown, not sent to the terminal
        assert "[@click=app.quit]kafka timeout" in text
        assert_no_raw_controls(app)

        # Clicking the name that pretends to be an action only moves the cursor.
        table = app.dashboard.query_one(TargetsTable)
        row = table.get_row_index(CLICK_NAME)
        await pilot.click(TargetsTable, offset=(3, row + 1))
        await pilot.pause()
        assert table.selected_name == CLICK_NAME
        assert app.is_running and app.return_code is None

        # Acting on it echoes the name literally in the notice.
        await pilot.press("space")
        await settle(pilot)
        assert f"Disabled target {CLICK_NAME}" in screen_text(app)
        assert app.is_running and app.return_code is None


async def test_detail_of_a_hostile_target_is_literal() -> None:
    app = MetricTuiApp(FakeControl())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.dashboard.query_one(TargetsTable).select(BOLD_NAME)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TargetDetailScreen)
        text = screen_text(app)
        assert f"Target {BOLD_NAME}" in text
        assert r"connection refused \x1b]0;owned\x07[red]boom[/red]" in text
        assert_no_raw_controls(app)


async def test_hostile_agent_name_in_the_header_is_literal() -> None:
    control = FakeControl()
    snapshot = control.snapshot()
    assert snapshot is not None
    control._snapshot = dataclasses.replace(snapshot, agent="[blink]evil\x1b[2J")
    app = MetricTuiApp(control)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for_async(lambda: "agent [blink]evil" in screen_text(app), pilot=pilot)
        assert r"evil\x1b[2J" in screen_text(app)
        assert_no_raw_controls(app)


def test_clean_text_makes_every_control_character_visible() -> None:
    assert clean_text("a\x1b]0;owned\x07b") == r"a\x1b]0;owned\x07b"
    assert clean_text("csi\x9b31m") == r"csi\x9b31m"
    assert clean_text("line\nbreak\r") == r"line\nbreak\r"
    assert clean_text("tab\there") == "tab here"
    assert clean_text("bidi\u202egnp.exe") == r"bidi\u202egnp.exe"
    assert clean_text("nul\x00") == r"nul\x00"
    assert clean_text(None) == ""
    assert clean_text("[bold]x[/bold]") == "[bold]x[/bold]"
    assert clean_text("abcdefgh", max_chars=5) == "abcd…"


def test_safe_text_is_plain_text_not_markup() -> None:
    text = safe_text("[@click=app.quit]y", "bold")
    assert isinstance(text, Text)
    assert text.plain == "[@click=app.quit]y"
    assert not text.spans or all(span.style == "bold" for span in text.spans)
