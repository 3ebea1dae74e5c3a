"""A block chart of per-minute latency, drawn with eighth-block characters, axis on the left."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from tui.widgets.units import human_ms

_EIGHTHS = " ▁▂▃▄▅▆▇█"
AXIS_WIDTH = 8


def resample(values: Sequence[float | None], width: int) -> list[float | None]:
    """Fit `values` into `width` columns: each column is the max of the points that fall in it."""
    if width <= 0 or not values:
        return []
    if len(values) <= width:
        return list(values)
    out: list[float | None] = []
    for column in range(width):
        start = column * len(values) // width
        end = max(start + 1, (column + 1) * len(values) // width)
        bucket = [v for v in values[start:end] if v is not None]
        out.append(max(bucket) if bucket else None)
    return out


def chart_text(values: Sequence[float | None], width: int, height: int) -> Text:
    """Rows of block characters, tallest value at the top; gaps (no data) show as a dim dot."""
    height = max(1, height)
    columns = resample(values, max(1, width - AXIS_WIDTH))
    known = [v for v in columns if v is not None]
    if not known:
        return Text("no successful checks in this period", "dim")
    top = max(known) or 1.0
    cells = height * 8
    rows: list[Text] = []
    for row in range(height):
        level_base = (height - 1 - row) * 8
        if row == 0:
            axis = human_ms(top)
        elif row == height - 1:
            axis = "0 ms"
        else:
            axis = ""
        line = Text(f"{axis:>{AXIS_WIDTH - 1}} ", "dim")
        for value in columns:
            if value is None:
                line.append("·" if row == height - 1 else " ", "dim")
                continue
            filled = max(1, round(value / top * cells))
            eighths = min(8, max(0, filled - level_base))
            line.append(_EIGHTHS[eighths], "cyan")
        rows.append(line)
    return Text("\n").join(rows)


class LatencyChart(Widget):
    """Average total latency per minute; fits itself to its size."""

    DEFAULT_CSS = """
    LatencyChart { height: 8; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._series: tuple[tuple[datetime, float | None], ...] = ()

    def set_series(self, series: tuple[tuple[datetime, float | None], ...]) -> None:
        """Replace the data (per-minute averages, oldest first)."""
        self._series = series
        self.refresh()

    def render(self) -> RenderResult:
        values = [value for _, value in self._series]
        return chart_text(values, self.content_size.width, self.content_size.height)
