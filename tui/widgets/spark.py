"""A one-line sparkline drawn as block characters, cheap enough to redraw every second.

Textual's `Sparkline` blends a colour per bar through `Fraction` arithmetic; three of them were
most of the dashboard's rendering cost. Here a bar is one character of one style, the newest
values are on the right, and the line shows as many values as it has columns.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

BARS = "▁▂▃▄▅▆▇█"


def spark_text(values: Sequence[float], width: int, style: str = "") -> Text:
    """The last `width` values as bars scaled from 0 to their maximum; all zero is a flat line."""
    if width <= 0:
        return Text()
    shown = list(values)[-width:]
    top = max(shown, default=0.0)
    if top <= 0:
        bars = BARS[0] * len(shown)
    else:
        last = len(BARS) - 1
        bars = "".join(BARS[min(last, max(0, round(v / top * last)))] for v in shown)
    return Text(bars.rjust(width), style=style)


class Spark(Widget):
    """Height 1, width from its container; `data` replaces the values and repaints."""

    DEFAULT_CSS = """
    Spark {
        height: 1;
        width: 1fr;
        color: $success;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._data: tuple[float, ...] = ()

    @property
    def data(self) -> tuple[float, ...]:
        """The values shown, oldest first."""
        return self._data

    @data.setter
    def data(self, values: Sequence[float]) -> None:
        values = tuple(values)
        if values != self._data:
            self._data = values
            self.refresh()

    def render(self) -> Text:
        return spark_text(self._data, self.size.width)
