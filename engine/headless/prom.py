"""The Prometheus text exposition format (0.0.4) of one stats snapshot, for `/metrics`.

Built by hand from `StatsSnapshot` rather than with prometheus_client's registry: the engine
already keeps every counter in `Stats`, and a snapshot renders in one pass without a second
set of live objects to keep in step. Label values (target names are user text and may hold
quotes, backslashes or newlines) are escaped as the format requires.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine import __version__
from engine.records.heartbeats import state_counts
from engine.stats import StatsSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Labels = tuple[tuple[str, str], ...]


def escape_label_value(value: str) -> str:
    """Backslash, double quote and line feed are the three characters the format escapes."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


@dataclass
class _Family:
    name: str
    kind: str  # counter | gauge
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, value: float, labels: Labels = ()) -> None:
        self.samples.append((labels, float(value)))

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {_escape_help(self.help)}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in self.samples:
            if labels:
                inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels)
                yield f"{self.name}{{{inner}}} {_number(value)}"
            else:
                yield f"{self.name} {_number(value)}"


def render_metrics(s: StatsSnapshot, healthy: bool | None = None) -> str:
    """All `metrictui_*` families for one snapshot, newline-terminated."""
    families: list[_Family] = []

    def family(name: str, kind: str, help_text: str, value: float | None = None) -> _Family:
        f = _Family(f"metrictui_{name}", kind, help_text)
        if value is not None:
            f.add(value)
        families.append(f)
        return f

    family("info", "gauge", "Always 1; labels say what this process is.").add(
        1, (("version", __version__), ("role", s.role), ("agent", s.agent))
    )
    family("kafka_connected", "gauge", "1 when Kafka is connected.", s.kafka_state == "connected")
    if s.role in ("all", "consumer"):
        family(
            "postgres_connected",
            "gauge",
            "1 when PostgreSQL is connected.",
            s.postgres_state == "connected",
        )
    if healthy is not None:
        family("healthy", "gauge", "1 when /healthz answers 200.", healthy)
    counters = [
        ("produced_total", "Events handed to Kafka (acknowledged).", s.produced_total),
        ("consumed_total", "Kafka messages read by the sink.", s.consumed_total),
        ("inserted_rows_total", "Rows written to PostgreSQL.", s.inserted_rows_total),
        ("inserted_events_total", "Events written to PostgreSQL.", s.inserted_events_total),
        ("duplicates_total", "Events skipped because already stored.", s.duplicates_total),
        ("dead_letters_total", "Messages set aside as dead letters.", s.dead_letters_total),
        ("send_errors_total", "Failed sends to Kafka.", s.send_errors_total),
        (
            "spool_dropped_total",
            "Events dropped because the spool was full.",
            s.spool_dropped_total,
        ),
        ("checks_total", "Website checks completed.", s.checks_total),
        ("errors_total", "Errors recorded by any part of the engine.", s.errors_total),
    ]
    for name, help_text, value in counters:
        family(name, "counter", help_text, value)
    family("spool_depth", "gauge", "Events waiting in the disk spool.", s.spool_depth)
    family("spool_bytes", "gauge", "Bytes used by the disk spool.", s.spool_bytes)
    lag = family("lag", "gauge", "Consumer lag in messages per partition.")
    for p in s.lag:
        lag.add(p.lag, (("topic", p.topic), ("partition", str(p.partition))))
    if s.db_write_ms is not None:
        family(
            "db_write_seconds",
            "gauge",
            "Smoothed time to write one batch to PostgreSQL.",
            s.db_write_ms / 1000,
        )
    if s.freshness_s is not None:
        family(
            "freshness_seconds",
            "gauge",
            "Age of the newest event committed to PostgreSQL.",
            s.freshness_s,
        )
    family(
        "targets_assigned",
        "gauge",
        "Targets this agent checks (its share of the fleet's table, or its enabled targets).",
        s.targets_assigned,
    )
    family("targets_bad_records_total", "counter", "Targets-topic records skipped as malformed.",
           s.targets_bad_total)  # fmt: skip
    agents = family("agents", "gauge", "Fleet agents by state, from their heartbeats.")
    for state, count in state_counts(s.fleet, s.taken_at).items():
        agents.add(count, (("state", state),))
    up = family("target_up", "gauge", "1 when the last check of the target passed.")
    enabled = family("target_enabled", "gauge", "1 when the target is checked.")
    status = family("target_status_code", "gauge", "HTTP status of the last check.")
    latency = family("target_latency_seconds", "gauge", "Total time of the last check.")
    cert = family("target_cert_days_left", "gauge", "Days until the TLS certificate expires.")
    checked = family("target_last_check_timestamp_seconds", "gauge", "Unix time of the last check.")
    for t in s.targets:
        labels: Labels = (("target", t.name),)
        enabled.add(t.enabled, labels)
        if t.ok is not None:
            up.add(t.ok, labels)
        if t.status_code is not None:
            status.add(t.status_code, labels)
        if t.total_ms is not None:
            latency.add(t.total_ms / 1000, labels)
        if t.cert_days_left is not None:
            cert.add(t.cert_days_left, labels)
        if t.last_checked is not None:
            checked.add(t.last_checked.timestamp(), labels)
    lines = [line for f in families for line in f.render()]
    return "\n".join(lines) + "\n"
