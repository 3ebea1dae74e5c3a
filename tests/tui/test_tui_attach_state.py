"""An attached dashboard tells the operator when its engine goes away."""

from __future__ import annotations

from helpers.fake_control import FakeControl, screen_text


class DroppingControl(FakeControl):
    """A control whose connection state can be flipped, like SocketControl's."""

    connected = True

    @property
    def description(self) -> str:
        state = "" if self.connected else " — DISCONNECTED"
        return f"attached to /run/x.sock (agent a, pid 1){state}"


async def test_header_shows_when_the_attached_engine_disconnects() -> None:
    from tui.app import MetricTuiApp

    control = DroppingControl()
    app = MetricTuiApp(control, refresh_hz=10)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        assert "DISCONNECTED" not in screen_text(app)
        control.connected = False
        await pilot.pause(0.5)
        assert "DISCONNECTED" in screen_text(app)
