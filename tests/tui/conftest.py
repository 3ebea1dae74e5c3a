"""The dashboard (Textual) tests: a scripted engine (`control`) and the app running on it.

    async def test_something(control: FakeControl, open_tui: OpenTui) -> None:
        control.refuse = "..."  # script the engine first, if needed
        async with open_tui() as (app, pilot):
            ...

`open_tui(other_control)` runs the app on another engine instead (e.g. a FakeControl subclass).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from textual.pilot import Pilot

from helpers.fake_control import FakeControl, OpenTui
from tui.app import MetricTuiApp

SIZE = (120, 40)


@pytest.fixture
def control() -> FakeControl:
    """A fresh scripted engine with its demo targets."""
    return FakeControl()


@pytest.fixture
def open_tui(control: FakeControl) -> OpenTui:
    """Run the app under Pilot on `control` (or the engine given) at 120x40."""

    @asynccontextmanager
    async def run(
        engine: FakeControl | None = None,
        *,
        size: tuple[int, int] = SIZE,
        notifications: bool = False,
    ) -> AsyncIterator[tuple[MetricTuiApp, Pilot[int]]]:
        app = MetricTuiApp(control if engine is None else engine)
        async with app.run_test(size=size, notifications=notifications) as pilot:
            yield app, pilot

    return run
