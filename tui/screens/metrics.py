"""Switch host metric collectors on and off in the running engine (the engine saves it)."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, Switch

from engine.agent.collector_names import COLLECTOR_NAMES
from engine.control.protocol import Control
from engine.errors import UserError
from tui.widgets.on_off_switch import OnOffSwitch
from tui.widgets.safe_text import safe_text

DESCRIPTIONS = {
    "cpu": "cpu % total, per core and per mode",
    "load": "load average 1m / 5m / 15m",
    "memory": "memory used / available",
    "swap": "swap used",
    "disk": "disk usage per mount",
    "diskio": "disk read / write bytes and ops per second",
    "net": "network bytes, errors, drops per second per interface",
    "processes": "number of processes",
    "uptime": "seconds since boot",
}


class MetricsScreen(ModalScreen[None]):
    """One switch per collector; a refused change flips the switch back and says why."""

    BINDINGS = [Binding("escape,m", "close", "Close", id="metrics-close", tooltip="Close")]
    AUTO_FOCUS = "Switch"
    """`space` toggles the first collector at once, without a Tab first."""

    def __init__(self, control: Control) -> None:
        super().__init__()
        self._control = control

    def compose(self) -> ComposeResult:
        snapshot = self._control.snapshot()
        enabled = snapshot.metrics_enabled if snapshot is not None else {}
        with Vertical(id="metrics-dialog", classes="dialog"):
            yield Static(Text("Metric collectors", "bold"), classes="dialog-title")
            with VerticalScroll():
                for name in COLLECTOR_NAMES:
                    with Horizontal(classes="metric-row"):
                        yield OnOffSwitch(enabled.get(name, True), switch_id=f"metric-{name}")
                        yield Static(
                            Text.assemble((f"{name:<10}", "bold"), DESCRIPTIONS.get(name, "")),
                            classes="metric-label",
                        )
            yield Static("", id="metrics-error", classes="form-error")
            yield Static(
                Text("space toggles · changes apply at once and are saved · escape closes", "dim"),
                classes="dialog-hint",
            )
        yield Footer()

    def on_switch_changed(self, event: Switch.Changed) -> None:
        switch_id = event.switch.id or ""
        if switch_id.startswith("metric-"):
            self._apply(switch_id.removeprefix("metric-"), event.value)

    @work(group="metric-switch")
    async def _apply(self, name: str, enabled: bool) -> None:
        error = self.query_one("#metrics-error", Static)
        try:
            await self._control.set_metric_enabled(name, enabled)
        except UserError as exc:
            switch = self.query_one(f"#metric-{name}", Switch)
            with switch.prevent(Switch.Changed):
                switch.value = not enabled
            error.update(safe_text(str(exc), "red"))
        else:
            error.update("")

    def action_close(self) -> None:
        self.dismiss(None)
