"""Pipeline health: Kafka/PostgreSQL state, rates with sparklines, lag, spool, freshness."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from engine.stats import PartitionLag, StatsSnapshot
from tui.widgets.line import Line
from tui.widgets.safe_text import safe_text
from tui.widgets.spark import Spark
from tui.widgets.units import human_bytes, human_count, human_ms, human_seconds

RATES = (
    ("produced", "produced", "ev/s"),
    ("consumed", "consumed", "ev/s"),
    ("inserted", "inserted", "rows/s"),
)
"""Key, label and unit of each rate line: Kafka counts events, PostgreSQL rows (a metrics event
carries dozens of samples)."""
_GOOD_STATES = frozenset({"up", "ok", "connected", "ready", "running"})
_IDLE_STATES = frozenset({"off", "disabled", "idle", "n/a"})


def state_text(label: str, state: str) -> Text:
    """'Kafka up' with the state coloured: green when healthy, dim when off, red otherwise.

    Every healthy state reads "up", so both states and the freshness fit on one line at 80x24.
    """
    word = state.lower()
    if word in _GOOD_STATES:
        style, state = "bold green", "up"
    elif word in _IDLE_STATES:
        style = "dim"
    else:
        style = "bold red"
    return Text.assemble((f"{label} ", "bold"), safe_text(state, style, max_chars=24))


def lag_text(lag: Sequence[PartitionLag], total: int | None) -> Text:
    """'lag 12 (metrics 0:4 1:8 · checks 0:0)': the total first, then per topic and partition."""
    text = Text.assemble(("lag ", "bold"), "—" if total is None else human_count(total))
    if not lag:
        return text
    by_topic: dict[str, list[PartitionLag]] = {}
    for part in lag:
        by_topic.setdefault(part.topic, []).append(part)
    text.append("  ")
    for index, (topic, parts) in enumerate(by_topic.items()):
        if index:
            text.append(" · ")
        text.append_text(safe_text(topic.rsplit(".", 1)[-1], "dim", max_chars=20))
        for part in parts:
            text.append(f" {part.partition}:{human_count(part.lag)}")
    return text


def _figure(label: str, value: str, alert: bool = False) -> Text:
    return Text.assemble((f"{label} ", "bold"), (value, "bold red" if alert else ""))


def header_text(s: StatsSnapshot) -> Text:
    """Connection states and end-to-end freshness: the first thing to look at. A refused
    password or certificate adds its short code; the errors pane has the whole line."""
    kafka, postgres = state_text("Kafka", s.kafka_state), state_text("PostgreSQL", s.postgres_state)
    for text, problem in ((kafka, s.kafka_problem), (postgres, s.postgres_problem)):
        if problem is not None:
            text.append_text(safe_text(f" ({problem.code})", "bold red", max_chars=24))
    return Text("  ").join([kafka, postgres, _figure("fresh", human_seconds(s.freshness_s))])


def counters_text(s: StatsSnapshot) -> Text:
    """Spool, DB write latency and the problem counters; the rare ones appear only when > 0."""
    parts = [_figure("spool", f"{human_count(s.spool_depth)} ({human_bytes(s.spool_bytes)})")]
    if s.spool_dropped_total:
        parts.append(_figure("dropped", human_count(s.spool_dropped_total), alert=True))
    parts.append(_figure("db", human_ms(s.db_write_ms)))
    parts.append(_figure("dead", human_count(s.dead_letters_total), s.dead_letters_total > 0))
    if s.send_errors_total:
        parts.append(_figure("send err", human_count(s.send_errors_total), alert=True))
    parts.append(_figure("errors", human_count(s.errors_total)))
    return Text("  ").join(parts)


class PipelinePane(Vertical):
    """The left pane of the dashboard; `apply()` repaints only the lines that changed.

    Every child has a fixed size (one row; a fixed or fractional width), so nothing here ever
    asks for a new layout: a refresh while the sink drains costs a repaint of a few lines.
    """

    DEFAULT_CSS = """
    PipelinePane { height: auto; }
    PipelinePane .rate-row { height: 1; }
    PipelinePane .rate-label { width: 22; }
    PipelinePane Spark { min-width: 8; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "pipeline"
        self._lines: dict[str, Line] = {}
        self._sparks: dict[str, Spark] = {}

    def compose(self) -> ComposeResult:
        yield Line(id="pipeline-state")
        for key, _label, _unit in RATES:
            with Horizontal(classes="rate-row"):
                yield Line(id=f"rate-{key}", classes="rate-label")
                yield Spark(id=f"spark-{key}")
        yield Line(id="pipeline-lag")
        yield Line(id="pipeline-counters")

    def on_mount(self) -> None:
        self._lines = {line.id: line for line in self.query(Line) if line.id}
        self._sparks = {spark.id: spark for spark in self.query(Spark) if spark.id}

    def apply(self, s: StatsSnapshot) -> None:
        """Show snapshot `s`."""
        lines = self._lines
        lines["pipeline-state"].show(header_text(s))
        # The snapshot's rates are already the 10 s mean (engine.stats.RATE_WINDOW_S), the same
        # figure the headless status line prints.
        rates = {
            "produced": s.produced_per_s,
            "consumed": s.consumed_per_s,
            "inserted": s.inserted_per_s,
        }
        for key, label, unit in RATES:
            history = s.history.get(key, ())
            rate = f"{human_count(round(rates[key], 1))} {unit}"
            lines[f"rate-{key}"].show(Text.assemble((f"{label:<9}", "bold"), f"{rate:>12} "))
            self._sparks[f"spark-{key}"].data = history
        lines["pipeline-lag"].show(lag_text(s.lag, s.lag_total))
        lines["pipeline-counters"].show(counters_text(s))
