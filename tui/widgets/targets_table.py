"""The targets table: one keyed row per target, updated cell by cell from each snapshot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from engine.stats import TargetStatus
from tui.widgets.history_bar import NARROW_CELLS, WIDE_CELLS, recent_cell
from tui.widgets.safe_text import safe_text
from tui.widgets.units import human_age, human_ms

COLUMNS = (
    ("name", "Name"),
    ("state", "State"),
    ("status", "HTTP"),
    ("total_ms", "Total"),
    ("match", "Match"),
    ("cert", "Cert"),
    ("checked", "Checked"),
    ("recent", "Recent  up 1h"),
    ("reason", "Reason"),
)
NAME_CHARS = 28
REASON_CHARS = 60


def state_cell(t: TargetStatus, by_location: Mapping[str, bool] | None = None) -> Text:
    """up / down / pending / off, coloured; with several fleet locations, 'up in k of L'."""
    if not t.enabled:
        return Text("off", "dim")
    if by_location is not None and len(by_location) > 1:
        up, total = sum(by_location.values()), len(by_location)
        style = "bold green" if up == total else "bold red" if up == 0 else "bold yellow"
        return Text(f"up in {up} of {total} locations", style)
    if t.ok is None:
        return Text("…", "dim")
    return Text("up", "bold green") if t.ok else Text("down", "bold red")


def match_cell(t: TargetStatus) -> Text:
    """Content regex result: 'yes', 'no' or '—' when the target has no regex."""
    if t.content_match is None:
        return Text("—", "dim")
    return Text("yes", "green") if t.content_match else Text("no", "red")


def cert_cell(t: TargetStatus) -> Text:
    """Whole days until the TLS certificate expires, red under a week, yellow under a month."""
    days = t.cert_days_left
    if days is None:
        return Text("—", "dim")
    style = "red" if days < 7 else "yellow" if days < 30 else ""
    return Text(f"{days:.0f}d", style)


def reason_cell(t: TargetStatus, max_chars: int = REASON_CHARS) -> Text:
    """The failure reason and, after it, the (untrusted) error message, shown literally."""
    if not t.reason and not t.error:
        return Text("")
    text = safe_text(t.reason, "red")
    if t.error:
        if t.reason:
            text.append(": ")
        text.append_text(safe_text(t.error))
    text.truncate(max(4, max_chars), overflow="ellipsis")
    return text


def row_cells(
    t: TargetStatus,
    now: datetime,
    reason_chars: int = REASON_CHARS,
    by_location: Mapping[str, bool] | None = None,
    history_cells: int = WIDE_CELLS,
) -> dict[str, Text]:
    """Every cell of target `t`'s row, keyed by column."""
    return {
        "name": safe_text(t.name, "bold" if t.enabled else "dim", max_chars=NAME_CHARS),
        "state": state_cell(t, by_location),
        "status": Text("—" if t.status_code is None else str(t.status_code)),
        "total_ms": Text(human_ms(t.total_ms), justify="right"),
        "match": match_cell(t),
        "cert": cert_cell(t),
        "checked": Text(human_age(t.last_checked, now)),
        "recent": recent_cell(t.recent, t.uptime_1h_pct, history_cells),
        "reason": reason_cell(t, reason_chars),
    }


class TargetsTable(DataTable[Text]):
    """Rows keyed by target name; `apply()` adds, removes and updates only changed cells."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.border_title = "targets"
        self._cells: dict[str, dict[str, Text]] = {}
        self._last: (
            tuple[Sequence[TargetStatus], datetime, Mapping[str, Mapping[str, bool]] | None] | None
        ) = None

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def selected_name(self) -> str | None:
        """Name of the target under the cursor, or None when the table is empty."""
        if self.row_count == 0:
            return None
        row_key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        return row_key.value

    def has_row(self, name: str) -> bool:
        return name in self._cells

    def select(self, name: str) -> None:
        """Move the cursor to target `name` if it has a row."""
        if name in self._cells:
            self.move_cursor(row=self.get_row_index(name))

    def on_resize(self) -> None:
        if self._last is not None:
            self.apply(*self._last)

    def _reason_budget(self, rows: list[dict[str, Text]]) -> int:
        """Characters left for the reason column so the table fits without scrolling sideways."""
        used = 0
        for key, label in COLUMNS:
            if key != "reason":
                widest = max(
                    (rows_cell.cell_len for rows_cell in (r[key] for r in rows)), default=0
                )
                used += max(len(label), widest) + 2 * self.cell_padding
        width = self.scrollable_content_region.width
        return REASON_CHARS if width <= 0 else min(REASON_CHARS, width - used - 2 - 1)

    def apply(
        self,
        targets: Sequence[TargetStatus],
        now: datetime,
        locations: Mapping[str, Mapping[str, bool]] | None = None,
    ) -> None:
        """Bring the rows in line with `targets`, keeping the cursor on the same target.

        `locations`: per target, per fleet location, whether its latest check there was up."""
        self._last = (targets, now, locations)
        found = locations or {}
        selected = self.selected_name
        bar = WIDE_CELLS if self.size.width >= 100 else NARROW_CELLS
        budget = self._reason_budget(
            [row_cells(t, now, by_location=found.get(t.name), history_cells=bar) for t in targets]
        )
        wanted = {t.name: row_cells(t, now, budget, found.get(t.name), bar) for t in targets}
        removed = [name for name in self._cells if name not in wanted]
        for name in removed:
            self.remove_row(name)
            del self._cells[name]
        added = False
        for name, cells in wanted.items():
            shown = self._cells.get(name)
            if shown is None:
                self.add_row(*(cells[key] for key, _ in COLUMNS), key=name)
                added = True
            else:
                for key, value in cells.items():
                    if shown[key] != value:
                        self.update_cell(name, key, value, update_width=True)
            self._cells[name] = cells
        if added:
            self.sort("name", key=lambda cell: cell.plain)
        if (added or removed) and selected is not None:
            self.select(selected)
