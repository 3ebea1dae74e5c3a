"""`enter` on a target: its last hour from PostgreSQL (latency chart, uptime, percentiles).

The history query runs in a worker so a slow database never freezes the dashboard; until it
answers, the body shows Textual's loading indicator.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from engine.control.protocol import Control
from engine.db.history import TargetHistory
from engine.errors import UserError
from engine.stats import TargetStatus
from tui.widgets.latency_chart import LatencyChart
from tui.widgets.safe_text import safe_text
from tui.widgets.targets_table import state_cell
from tui.widgets.units import human_age, human_ms, human_percent, human_seconds

HISTORY_SECONDS = 3600.0


def status_text(status: TargetStatus | None, now: datetime | None) -> Text:
    """What the live snapshot says about the target (URL, state, last error), literally."""
    if status is None:
        return Text("not in the current snapshot", "dim")
    rows: list[tuple[str, Text]] = [
        ("url", safe_text(status.url)),
        ("state", state_cell(status)),
        ("status", Text("—" if status.status_code is None else str(status.status_code))),
        ("total", Text(human_ms(status.total_ms))),
        ("every", Text(human_seconds(status.interval))),
        ("checked", Text(human_age(status.last_checked, now) if now else "—")),
    ]
    if status.reason or status.error:
        rows.append(
            ("failure", safe_text(status.reason, "red") + Text(": ") + safe_text(status.error))
        )
    lines = [Text.assemble((f"{label:<9}", "bold"), value) for label, value in rows]
    return Text("\n").join(lines)


def summary_text(history: TargetHistory, now: datetime | None) -> Text:
    """Uptime, latency percentiles, failures by reason and certificate expiry."""
    minutes = history.since_s / 60
    lines = [
        Text.assemble(
            (f"last {minutes:.0f} min  ", "bold"),
            f"{history.checks} checks   uptime ",
            (human_percent(history.uptime_pct), "bold"),
        ),
        Text.assemble(
            ("latency  ", "bold"),
            f"p50 {human_ms(history.p50_ms)}   p95 {human_ms(history.p95_ms)}"
            f"   p99 {human_ms(history.p99_ms)}",
        ),
    ]
    if history.failures_by_reason:
        failures = Text.assemble(("failures ", "bold"))
        for index, (reason, count) in enumerate(history.failures_by_reason):
            if index:
                failures.append(", ")
            failures.append_text(safe_text(reason, "red", max_chars=30))
            failures.append(f" {count}")
        lines.append(failures)
    else:
        lines.append(Text.assemble(("failures ", "bold"), ("none", "green")))
    if history.cert_expires_at is not None:
        expiry = Text.assemble(("cert     ", "bold"), f"expires {history.cert_expires_at:%Y-%m-%d}")
        if now is not None:
            days = (history.cert_expires_at - now).total_seconds() / 86400
            expiry.append(f" (in {days:.0f} days)", "red" if days < 7 else "")
        lines.append(expiry)
    return Text("\n").join(lines)


class TargetDetailScreen(ModalScreen[None]):
    """History of one target; closes with escape, enter or q."""

    BINDINGS = [
        Binding("escape,enter,q", "close", "Close", id="detail-close", tooltip="Close"),
        Binding("r", "reload", "Reload", id="detail-reload", tooltip="Query the history again"),
    ]

    def __init__(self, control: Control, name: str) -> None:
        super().__init__()
        self._control = control
        self._target = name

    def _now_and_status(self) -> tuple[datetime | None, TargetStatus | None]:
        snapshot = self._control.snapshot()
        if snapshot is None:
            return None, None
        status = next((t for t in snapshot.targets if t.name == self._target), None)
        return snapshot.taken_at, status

    def compose(self) -> ComposeResult:
        now, status = self._now_and_status()
        with Vertical(id="detail-dialog", classes="dialog"):
            title = Text.assemble(("Target ", "bold"), safe_text(self._target, "bold"))
            yield Static(title, classes="dialog-title")
            with VerticalScroll(id="detail-body"):
                yield Static(status_text(status, now), id="detail-status")
                yield Static(Text("latency, average per minute", "bold"), classes="section")
                yield LatencyChart(id="detail-chart")
                yield Static("", id="detail-summary")
            yield Static(Text("r reloads · escape closes", "dim"), classes="dialog-hint")
        yield Footer()

    def on_mount(self) -> None:
        self.load_history()

    def action_reload(self) -> None:
        self.load_history()

    def action_close(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="target-history")
    async def load_history(self) -> None:
        """Fetch the history off the UI path; show it, or say why it is not available."""
        body = self.query_one("#detail-body")
        summary = self.query_one("#detail-summary", Static)
        body.loading = True
        try:
            history = await self._control.target_history(self._target, HISTORY_SECONDS)
        except UserError as exc:
            summary.update(safe_text(f"history unavailable: {exc}", "red"))
        except Exception as exc:  # a failed query must not take the dashboard down with it
            summary.update(safe_text(f"history unavailable: {type(exc).__name__}: {exc}", "red"))
        else:
            now, _ = self._now_and_status()
            self.query_one("#detail-chart", LatencyChart).set_series(history.latency_series)
            summary.update(summary_text(history, now))
        # Not in `finally`: when the screen closes mid-query the worker is cancelled and the
        # widgets are gone.
        body.loading = False
