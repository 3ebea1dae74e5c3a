"""An attached dashboard makes a gone engine impossible to miss, even at 80x24."""

from __future__ import annotations

from helpers.fake_control import FAKE_NOW, FakeControl, screen_text
from helpers.waiting import wait_for_async
from tui.app import MetricTuiApp
from tui.widgets.targets_table import TargetsTable


class DroppingControl(FakeControl):
    """A control whose connection state can be flipped, like SocketControl's."""

    @property
    def description(self) -> str:
        return "attached to agent a (pid 1, metrictui.toml)"


def _api_age(app: MetricTuiApp) -> str:
    assert app.dashboard.query_one(TargetsTable).row_count
    return next(line for line in screen_text(app).splitlines() if "api" in line)


async def test_a_gone_engine_shows_a_banner_with_last_contact_and_ages_keep_growing() -> None:
    control = DroppingControl()
    app = MetricTuiApp(control, refresh_hz=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert "ENGINE GONE" not in screen_text(app)
        assert "5s ago" in _api_age(app)
        control.connected = False
        control.last_contact = FAKE_NOW
        assert await wait_for_async(
            pilot=pilot, predicate=lambda: "ENGINE GONE" in screen_text(app)
        )
        text = screen_text(app)
        assert "last contact 03:04:05 UTC" in text
        assert "q Quit" in text.splitlines()[-1], "quitting stays in the footer at 80x24"
        assert "5s ago" not in _api_age(app), "the age keeps growing while the engine is gone"
        assert app.dashboard.has_class("-gone")

        control.connected = True  # re-attached
        assert await wait_for_async(
            pilot=pilot, predicate=lambda: "ENGINE GONE" not in screen_text(app)
        )
        assert not app.dashboard.has_class("-gone")
