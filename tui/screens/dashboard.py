"""The main screen: pipeline, host, targets and errors, plus the keys that edit targets."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from engine.control.protocol import Control
from engine.errors import UserError
from engine.stats import StatsSnapshot, TargetStatus
from tui.screens.confirm import ConfirmScreen
from tui.screens.fleet import FleetScreen
from tui.screens.help import HelpScreen, KeySections
from tui.screens.metrics import MetricsScreen
from tui.screens.target_detail import TargetDetailScreen
from tui.screens.target_form import TargetFormScreen
from tui.widgets.engine_gone import EngineGoneBanner, engine_gone_text
from tui.widgets.errors_pane import ErrorsPane
from tui.widgets.header_bar import HeaderBar
from tui.widgets.host_pane import HostPane
from tui.widgets.palette import DashboardCommands
from tui.widgets.pipeline_pane import PipelinePane
from tui.widgets.safe_text import clean_text, safe_text
from tui.widgets.targets_table import TargetsTable


class DashboardScreen(Screen[None]):
    """Shows snapshots handed to `apply()`; edits go to the engine through `Control`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_target", "Add", id="add-target", tooltip="Add a website target"),
        Binding("e", "edit_target", "Edit", id="edit-target", tooltip="Edit the selected target"),
        Binding(
            "d", "delete_target", "Delete", id="delete-target", tooltip="Delete the selected target"
        ),
        Binding(
            "space",
            "toggle_target",
            "On/off",
            id="toggle-target",
            tooltip="Enable or disable the selected target",
        ),
        Binding(
            "enter",
            "target_detail",
            "Detail",
            id="target-detail",
            tooltip="History of the selected target",
            priority=True,
        ),
        Binding("m", "metrics", "Metrics", id="metrics", tooltip="Switch metric collectors"),
        Binding(
            "f",
            "fleet",
            "Fleet",
            id="fleet",
            tooltip="Every agent: live, stale, offline",
            show=False,  # the footer is full at 80 columns; help (?) lists it
        ),
        Binding("question_mark", "help", "Help", id="help", tooltip="Show every key"),
        Binding("q", "quit", "Quit", id="quit", tooltip="Quit (the engine flushes first)"),
    ]
    COMMANDS = {DashboardCommands}

    def __init__(self, control: Control, *, base_dir: Path) -> None:
        super().__init__()
        self._control = control
        self._base_dir = base_dir
        self._snapshot: StatsSnapshot | None = None
        self._status: str | None = None
        self._select_when_shown: str | None = None
        """A target just saved: selected as soon as a snapshot shows its row (an attached
        engine's next snapshot may arrive after the form closes)."""
        self.ready = False
        """True between mount and unmount: only then are there widgets to update."""

    def compose(self) -> ComposeResult:
        yield HeaderBar(self._control.description, id="header")
        yield EngineGoneBanner(id="engine-gone")
        with Horizontal(id="top"):
            yield PipelinePane(id="pipeline")
            yield HostPane(id="host")
        yield TargetsTable(id="targets")
        with VerticalScroll(id="errors-box"):
            yield ErrorsPane(id="errors")
        # Without the "^p palette" hint `q Quit` fits at 80 columns; ctrl+p still works and
        # the help screen lists it.
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.ready = True
        self.query_one(TargetsTable).focus()
        self.apply(self._control.snapshot())

    def on_unmount(self) -> None:
        self.ready = False

    # --- rendering ---------------------------------------------------------------------

    def apply(self, snapshot: StatsSnapshot | None) -> None:
        """Show `snapshot`; every widget compares with what it shows and redraws only changes."""
        snapshot = self._show_contact(snapshot)
        self._snapshot = snapshot
        self.query_one(HeaderBar).show_snapshot(
            snapshot, status=self._status, description=self._control.description
        )
        if snapshot is None:
            return
        self.query_one(PipelinePane).apply(snapshot)
        self.query_one(HostPane).apply(snapshot)
        table = self.query_one(TargetsTable)
        table.apply(snapshot.targets, snapshot.taken_at, snapshot.target_locations)
        if self._select_when_shown is not None and table.has_row(self._select_when_shown):
            table.select(self._select_when_shown)
            self._select_when_shown = None
        total = snapshot.errors_total
        self.query_one("#errors-box").border_title = f"errors ({total})" if total else "errors"
        self.query_one(ErrorsPane).apply(snapshot.errors, snapshot.taken_at)

    def _show_contact(self, snapshot: StatsSnapshot | None) -> StatsSnapshot | None:
        """Banner and dimmed panes while the engine is gone; its last snapshot ages on.

        The snapshot is re-dated to now, so "checked 4s ago" keeps growing instead of
        freezing at a reassuring value.
        """
        gone = not self._control.connected
        if gone != self.has_class("-gone"):
            self.set_class(gone, "-gone")
        if not gone:
            return snapshot
        now = datetime.now(UTC)
        self.query_one(EngineGoneBanner).show(engine_gone_text(self._control.last_contact, now))
        return None if snapshot is None else dataclasses.replace(snapshot, taken_at=now)

    def set_status(self, status: str | None) -> None:
        """A word for the header ("stopping…"), shown until cleared."""
        self._status = status
        self.query_one(HeaderBar).show_snapshot(self._snapshot, status=status)

    # --- helpers -----------------------------------------------------------------------

    def _selected(self) -> TargetStatus | None:
        name = self.query_one(TargetsTable).selected_name
        if name is None or self._snapshot is None:
            return None
        return next((t for t in self._snapshot.targets if t.name == name), None)

    def _need_selection(self) -> TargetStatus | None:
        target = self._selected()
        if target is None:
            self.notify("No target selected; press a to add one.", severity="warning")
        return target

    def _taken_names(self) -> list[str]:
        return [t.name for t in self._snapshot.targets] if self._snapshot else []

    def _after_form(self, name: str | None) -> None:
        if name is not None:
            self.notify(f"Saved target {clean_text(name, max_chars=40)}", markup=False)
            self._select_when_shown = name
            self.app.call_later(self.apply, self._control.snapshot())

    @work(group="edits")
    async def _edit(self, done: str, call: Awaitable[None]) -> None:
        """Run one engine call off the key handler; a refusal becomes a visible notice."""
        try:
            await call
        except UserError as exc:
            self.notify(clean_text(str(exc)), severity="error", markup=False, timeout=8)
            return
        self.notify(done, markup=False)
        self.apply(self._control.snapshot())

    # --- actions -----------------------------------------------------------------------

    def action_add_target(self) -> None:
        form = TargetFormScreen(
            self._control, base_dir=self._base_dir, taken_names=self._taken_names()
        )
        self.app.push_screen(form, self._after_form)

    @work(exclusive=True, group="open-editor")
    async def action_edit_target(self) -> None:
        selected = self._need_selection()
        if selected is None:
            return
        try:
            target = await self._control.get_target(selected.name)
        except UserError as exc:
            self.notify(clean_text(str(exc)), severity="error", markup=False)
            return
        form = TargetFormScreen(
            self._control,
            base_dir=self._base_dir,
            taken_names=self._taken_names(),
            original=target,
        )
        self.app.push_screen(form, self._after_form)

    def action_delete_target(self) -> None:
        selected = self._need_selection()
        if selected is None:
            return
        name = selected.name
        question = Text.assemble("Delete target ", safe_text(name, "bold"), "?\n")
        question.append_text(safe_text(selected.url, "dim"))
        question.append("\n\nIts checks stop and it is removed from the targets file.")

        def answered(yes: bool | None) -> None:
            if yes:
                done = f"Deleted target {clean_text(name, max_chars=40)}"
                self._edit(done, self._control.delete_target(name))

        self.app.push_screen(ConfirmScreen(question), answered)

    def action_toggle_target(self) -> None:
        selected = self._need_selection()
        if selected is None:
            return
        enable = not selected.enabled
        word = "Enabled" if enable else "Disabled"
        done = f"{word} target {clean_text(selected.name, max_chars=40)}"
        self._edit(done, self._control.set_target_enabled(selected.name, enable))

    def action_target_detail(self) -> None:
        selected = self._need_selection()
        if selected is not None:
            self.app.push_screen(TargetDetailScreen(self._control, selected.name))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """A click on a row (or enter) opens its detail."""
        event.stop()
        self.action_target_detail()

    def action_metrics(self) -> None:
        self.app.push_screen(MetricsScreen(self._control))

    def action_fleet(self) -> None:
        self.app.push_screen(FleetScreen(self._control))

    def action_help(self) -> None:
        sections: KeySections = [
            ("Dashboard", list(self.BINDINGS)),
            ("Target form", list(TargetFormScreen.BINDINGS)),
            ("Target detail", list(TargetDetailScreen.BINDINGS)),
            ("Delete confirmation", list(ConfirmScreen.BINDINGS)),
            ("Metrics", list(MetricsScreen.BINDINGS)),
            ("Fleet", list(FleetScreen.BINDINGS)),
            ("Help", list(HelpScreen.BINDINGS)),
        ]
        self.app.push_screen(HelpScreen(sections))

    def action_quit(self) -> None:
        self.set_status("stopping…")
        self.app.call_after_refresh(self.app.exit, 0)
