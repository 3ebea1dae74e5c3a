"""The top line: which engine we are looking at, its agent and role, and the snapshot time."""

from __future__ import annotations

from datetime import UTC

from rich.text import Text

from engine.records.heartbeats import state_counts
from engine.stats import StatsSnapshot
from tui.widgets.line import Line
from tui.widgets.safe_text import safe_text


class HeaderBar(Line):
    """Says where the numbers come from ("in-process engine" / "attached to <path>")."""

    DEFAULT_CSS = """
    HeaderBar {
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    """

    def __init__(self, description: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._description = description

    def show_snapshot(
        self,
        snapshot: StatsSnapshot | None,
        *,
        status: str | None = None,
        description: str | None = None,
    ) -> None:
        """Redraw only when the line actually changes.

        `description` can change while running (an attached engine that went away says so).
        """
        if description is not None:
            self._description = description
        text = Text.assemble(("metrictui", "bold"), " · ", safe_text(self._description))
        if snapshot is None:
            text.append(" · waiting for the engine…", style="italic")
        else:
            text.append(" · agent ")
            text.append_text(safe_text(snapshot.agent, "bold", max_chars=40))
            text.append(" · role ")
            text.append_text(safe_text(snapshot.role, "bold", max_chars=20))
            if snapshot.fleet:
                counts = state_counts(snapshot.fleet, snapshot.taken_at)
                text.append(" · agents ")
                text.append(f"{counts['live']} live", "green")
                text.append(f" {counts['stale']} stale", "yellow" if counts["stale"] else "dim")
                text.append(f" {counts['offline']} offline", "red" if counts["offline"] else "dim")
            text.append(f" · {snapshot.taken_at.astimezone(UTC):%H:%M:%S} UTC", style="dim")
        if status:
            text.append(f" · {status}", style="bold yellow")
        self.show(text)
