"""One fixed-size line of text that redraws itself without asking for a new layout.

The dashboard changes a dozen lines a few times a second. A plain `Static.update()` asks
Textual to lay out the whole screen again each time, which cost the in-process sink about a
sixth of its CPU while draining; a line is one row high and as wide as its container, so its
size never depends on its text and a repaint is all it needs.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class Line(Static):
    """A Static of height 1 that only repaints, and only when its text changed."""

    DEFAULT_CSS = """
    Line {
        height: 1;
        width: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._shown: Text | None = None

    @property
    def shown(self) -> Text | None:
        """The text on screen now (None before the first `show`)."""
        return self._shown

    def show(self, text: Text) -> None:
        """Show `text` if it differs from what is on screen; never relayouts."""
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)
