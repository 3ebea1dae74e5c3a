"""The fleet screen (key f): every agent the engine heard from, live, stale or offline.

Rows come from the snapshot's heartbeats (the sink's view: every agent; an agent without a
sink knows only itself). The screen refreshes from a fresh snapshot once a second, and says
when an agent sits idle because its location has more agents than the targets topic has
partitions.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from engine.control.protocol import Control
from engine.records.heartbeats import FleetAgent, state_counts
from engine.stats import StatsSnapshot
from tui.widgets.safe_text import safe_text
from tui.widgets.units import human_age

COLUMNS = ("Agent", "State", "Location", "Last seen", "Targets", "Spool", "Errors", "Host")
_STATE_STYLES = {"live": "bold green", "stale": "bold yellow", "offline": "bold red"}


def agent_cells(a: FleetAgent, now: datetime) -> tuple[Text, ...]:
    """One row of the fleet table; names come from the network and are shown literally."""
    state = a.state(now)
    targets = Text("idle", "yellow") if a.idle else Text(str(a.targets_assigned))
    return (
        safe_text(a.agent, "bold", max_chars=32),
        Text(state, _STATE_STYLES[state]),
        safe_text(a.location, max_chars=24),
        Text(human_age(a.last_seen, now)),
        targets,
        Text(str(a.spool_depth), "yellow" if a.spool_depth else ""),
        Text(str(a.errors_total), "red" if a.errors_total else ""),
        safe_text(a.host, "dim", max_chars=24),
    )


def summary_line(snapshot: StatsSnapshot | None) -> Text:
    """'3 agents: 2 live · 0 stale · 1 offline', plus this agent's own fleet status."""
    if snapshot is None or not snapshot.fleet:
        return Text("no heartbeat seen yet", "dim")
    counts = state_counts(snapshot.fleet, snapshot.taken_at)
    text = Text(f"{len(snapshot.fleet)} agents: ")
    text.append(f"{counts['live']} live", _STATE_STYLES["live"])
    text.append(" · ")
    text.append(f"{counts['stale']} stale", _STATE_STYLES["stale"])
    text.append(" · ")
    text.append(f"{counts['offline']} offline", _STATE_STYLES["offline"])
    if snapshot.fleet_idle:
        text.append(
            " · this agent is idle: its location has more agents than the targets topic "
            "has partitions",
            "yellow",
        )
    if snapshot.targets_bad_total:
        text.append(f" · {snapshot.targets_bad_total} bad target records skipped", "red")
    return text


class FleetScreen(ModalScreen[None]):
    """A table of agents, refreshed once a second; escape or f closes it."""

    BINDINGS = [Binding("escape,f", "close", "Close", id="fleet-close", tooltip="Close")]

    def __init__(self, control: Control) -> None:
        super().__init__()
        self._control = control

    def compose(self) -> ComposeResult:
        with Vertical(id="fleet-dialog", classes="dialog"):
            yield Static(Text("Fleet", "bold"), classes="dialog-title")
            yield Static("", id="fleet-summary")
            yield DataTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table: DataTable[Text] = self.query_one("#fleet-table", DataTable)
        for label in COLUMNS:
            table.add_column(label, key=label.lower())
        self.refresh_rows()
        self.set_interval(1.0, self.refresh_rows)

    def refresh_rows(self) -> None:
        snapshot = self._control.snapshot()
        self.query_one("#fleet-summary", Static).update(summary_line(snapshot))
        table: DataTable[Text] = self.query_one("#fleet-table", DataTable)
        table.clear()
        if snapshot is None:
            return
        for agent in snapshot.fleet:
            table.add_row(*agent_cells(agent, snapshot.taken_at), key=agent.agent)

    def action_close(self) -> None:
        self.dismiss(None)
