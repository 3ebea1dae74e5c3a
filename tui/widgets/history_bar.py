"""The heartbeat bar of a target: its last checks as cells, newest on the right.

Colour plus a glyph, so the bar still reads in a terminal without colour (`NO_COLOR`) or to a
colour-blind operator: a filled block is a check that passed, a hollow one a check that failed.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

UP_GLYPH = "▮"
DOWN_GLYPH = "▯"
WIDE_CELLS = 20
NARROW_CELLS = 8
"""Cells shown below 100 columns, so that the table still fits at 80x24."""


def history_bar(recent: Sequence[bool], cells: int) -> Text:
    """The last `cells` outcomes, right-aligned (blank where there were fewer checks)."""
    shown = list(recent)[-cells:]
    text = Text(" " * (cells - len(shown)))
    for ok in shown:
        text.append(UP_GLYPH if ok else DOWN_GLYPH, "green" if ok else "bold red")
    return text


def uptime_text(pct: float | None, *, narrow: bool = False) -> Text:
    """'99.5%' over the last hour ('99%' when narrow, never rounded up to 100); '—' before
    the first check. Coloured like the state."""
    if pct is None:
        return Text("—", "dim")
    style = "green" if pct >= 99 else "yellow" if pct >= 90 else "red"
    if pct >= 100:
        return Text("100%", style)
    return Text(f"{int(pct)}%" if narrow else f"{pct:.1f}%", style)


def recent_cell(recent: Sequence[bool], pct: float | None, cells: int) -> Text:
    """The bar, then the uptime of the last hour: one column, so it fits at 80 columns."""
    narrow = cells < WIDE_CELLS
    return history_bar(recent, cells) + Text(" ") + uptime_text(pct, narrow=narrow)
