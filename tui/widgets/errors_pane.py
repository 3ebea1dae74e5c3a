"""Recent errors, newest first, bounded; messages are untrusted and shown literally."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from engine.stats import ErrorEntry
from tui.widgets.safe_text import safe_text
from tui.widgets.units import human_age

ERRORS_SHOWN = 20
MESSAGE_CHARS = 300


def errors_text(errors: Sequence[ErrorEntry], now: datetime) -> Text:
    """One line per error: age, source, message; newest first, at most ERRORS_SHOWN."""
    if not errors:
        return Text("no errors", "dim")
    lines = []
    for entry in list(reversed(errors))[:ERRORS_SHOWN]:
        line = Text.assemble((f"{human_age(entry.at, now):>8} ", "dim"))
        line.append_text(safe_text(entry.source, "yellow", max_chars=16))
        line.append(" ")
        line.append_text(safe_text(entry.message, max_chars=MESSAGE_CHARS))
        lines.append(line)
    return Text("\n").join(lines)


class ErrorsPane(Static):
    """Bottom pane of the dashboard (inside a scrolling box that carries the title)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: Text | None = None

    def apply(self, errors: Sequence[ErrorEntry], now: datetime) -> None:
        """Show the newest errors."""
        text = errors_text(errors, now)
        if text != self._shown:
            # Only a change in the number of lines moves anything (the scroll box's extent);
            # the ages tick every second and need a repaint alone.
            grew = self._shown is None or len(text.split()) != len(self._shown.split())
            self._shown = text
            self.update(text, layout=grew)
