"""The dashboard's refresh must stay cheap: it shares the event loop with the in-process sink.

A snapshot whose rates, sparklines, lag and freshness change on every tick must repaint the
changed lines without laying out the screen again; a relayout per refresh cost the sink about
a sixth of its CPU while draining (the performance issue's TUI-vs-headless figure).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from textual._compositor import Compositor

from engine.stats import StatsSnapshot
from helpers.fake_control import FakeControl, screen_text
from helpers.waiting import wait_for_async
from tui.app import MetricTuiApp
from tui.widgets.pipeline_pane import shown_rate
from tui.widgets.spark import BARS, spark_text


class MovingControl(FakeControl):
    """Every snapshot differs from the last in everything the pipeline pane shows."""

    def __init__(self) -> None:
        super().__init__()
        self.ticks = 0

    def snapshot(self) -> StatsSnapshot | None:
        base = super().snapshot()
        assert base is not None
        self.ticks += 1
        n = self.ticks
        history = {
            key: tuple(float((i * 37 + n * 11) % 5000) for i in range(60))
            for key in ("produced", "consumed", "inserted")
        }
        return dataclasses.replace(
            base,
            inserted_per_s=90_000.0 + 1_000 * n,
            consumed_per_s=4_000.0 + 100 * n,
            history=history,
            lag_total=100_000 - 50 * n,
            freshness_s=1.0 + n,
            spool_depth=n,
        )


async def test_changing_snapshots_repaint_without_relayout(monkeypatch: pytest.MonkeyPatch) -> None:
    control = MovingControl()
    app = MetricTuiApp(control, refresh_hz=10)
    reflows = 0
    original = Compositor.reflow

    def counting_reflow(self: Compositor, *args: Any, **kwargs: Any) -> Any:
        nonlocal reflows
        reflows += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Compositor, "reflow", counting_reflow)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.5)
        reflows, ticks = 0, control.ticks
        before = screen_text(app)
        assert await wait_for_async(lambda: control.ticks >= ticks + 8, pilot=pilot)
        await pilot.pause(0.1)
        after = screen_text(app)

    assert before != after  # the numbers did move on screen
    assert reflows == 0


def test_spark_text_scales_to_the_maximum_and_keeps_the_newest_values() -> None:
    assert spark_text([0, 5, 10], 3).plain == BARS[0] + BARS[4] + BARS[-1]
    assert spark_text([1.0] * 10, 4).plain == BARS[-1] * 4
    assert spark_text([0.0, 0.0], 4).plain == "  " + BARS[0] * 2  # right-aligned, flat
    assert spark_text(list(range(100)), 5).plain[-1] == BARS[-1]
    assert spark_text([], 3).plain == "   "
    assert spark_text([3.0], 0).plain == ""


def test_rates_shown_are_the_mean_of_the_last_ten_seconds() -> None:
    assert shown_rate(3.0, [0, 0, 3, 0, 0, 0, 3, 0, 0, 1, 0, 3]) == 1.0  # last ten: 10 / 10
    assert shown_rate(7.0, []) == 7.0  # no history yet: the latest rate
    assert shown_rate(2.0, [4.0, 2.0]) == 3.0
