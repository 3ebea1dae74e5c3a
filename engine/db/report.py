"""`metrictui report`: what the targets and hosts did over a past window, from PostgreSQL.

The numbers come from engine/db/history.py (the same queries the TUI's target detail view uses),
so the report and the dashboard never disagree. Output is a plain-text table for people or
JSON for scripts; target and host names come from the database and are shown escaped, never
interpreted (a name cannot move the cursor or colour the terminal).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from engine.db.history import (
    HostSummary,
    TargetHistory,
    fetch_host_summaries,
    fetch_target_history,
    fetch_target_names,
)
from engine.errors import UserError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
MAX_SINCE_S = 3650 * 86400


def parse_duration(text: str) -> float:
    """'90s', '30m', '1h', '7d', '2w' or a sum like '1h30m' -> seconds; ValueError otherwise."""
    cleaned = text.strip().lower()
    if not _DURATION_RE.fullmatch(cleaned):
        raise ValueError(f"expected a duration like 30m, 1h or 7d, got {text!r}")
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART_RE.findall(cleaned))
    if not 0 < seconds <= MAX_SINCE_S:
        raise ValueError(f"must be more than 0 and at most 3650d, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The largest whole unit that fits, for headings ('1h', '7d', '90m')."""
    for unit in ("w", "d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Report:
    """One report: the window, the targets (all, or the one asked for) and the hosts."""

    since_s: float
    generated_at: datetime
    schema: str
    targets: tuple[TargetHistory, ...]
    hosts: tuple[HostSummary, ...]
    target_filter: str | None = None
    known_targets: tuple[str, ...] = ()


async def build_report(
    dsn: str, schema: str, since_s: float, target: str | None = None, timeout: float = 10.0
) -> Report:
    """Query PostgreSQL; raises UserError (one line, no secrets) when it cannot."""
    # Local import: the sink's error helper is the one place that strips DSN echoes.
    from engine.db.pg_errors import postgres_error_line

    try:
        async with await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, connect_timeout=max(1, int(timeout))
        ) as conn:
            names = await fetch_target_names(conn, schema, since_s)
            wanted = [target] if target is not None else names
            targets = [await fetch_target_history(conn, schema, n, since_s) for n in wanted]
            hosts = [] if target is not None else await fetch_host_summaries(conn, schema, since_s)
    except psycopg.errors.UndefinedTable:
        raise UserError(
            f"schema {schema!r} has no metrictui views; run `metrictui migrate` first"
            " or check [postgres] schema"
        ) from None
    except psycopg.Error as exc:
        raise UserError(postgres_error_line(exc) + "; check [postgres] dsn") from None
    return Report(
        since_s=since_s,
        generated_at=datetime.now(UTC),
        schema=schema,
        targets=tuple(targets),
        hosts=tuple(hosts),
        target_filter=target,
        known_targets=tuple(names),
    )


# -- JSON ---------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _days_left(expires: datetime | None, now: datetime) -> float | None:
    if expires is None:
        return None
    return round((expires - now).total_seconds() / 86400, 2)


def report_to_json(report: Report) -> dict[str, Any]:
    """JSON-ready dict; stable keys, numbers in ms and percent, times ISO-8601 UTC."""
    now = report.generated_at
    return {
        "generated_at": _iso(now),
        "since_s": report.since_s,
        "schema": report.schema,
        "targets": [
            {
                "name": t.name,
                "checks": t.checks,
                "uptime_pct": t.uptime_pct,
                "p50_ms": t.p50_ms,
                "p95_ms": t.p95_ms,
                "p99_ms": t.p99_ms,
                "failures_by_reason": dict(t.failures_by_reason),
                "cert_expires_at": _iso(t.cert_expires_at),
                "cert_days_left": _days_left(t.cert_expires_at, now),
            }
            for t in report.targets
        ],
        "hosts": [
            {
                "agent": h.agent,
                "host": h.host,
                "samples": h.samples,
                "cpu_avg_pct": h.cpu_avg_pct,
                "cpu_max_pct": h.cpu_max_pct,
                "memory_avg_pct": h.memory_avg_pct,
                "memory_max_pct": h.memory_max_pct,
                "last_seen": _iso(h.last_seen),
            }
            for h in report.hosts
        ],
    }


# -- text ---------------------------------------------------------------------------------------

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe_text(value: str, limit: int = 60) -> str:
    """Untrusted text for a terminal: control characters escaped, long values cut."""
    text = _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f}s" if value >= 10_000 else f"{value:.0f}ms"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _cert(expires: datetime | None, now: datetime) -> str:
    if expires is None:
        return "-"
    days = (expires - now).total_seconds() / 86400
    left = "EXPIRED" if days < 0 else f"{days:.0f}d left"
    return f"{expires.astimezone(UTC):%Y-%m-%d} ({left})"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return lines


def format_report(report: Report) -> str:
    """The human report: a targets table and a hosts table, aligned plain text."""
    now = report.generated_at
    window = format_duration(report.since_s)
    start = datetime.fromtimestamp(now.timestamp() - report.since_s, UTC)
    out = [
        f"metrictui report: last {window} (since {start:%Y-%m-%d %H:%M} UTC),"
        f" schema {report.schema}",
        "",
    ]
    checked = [t for t in report.targets if t.checks]
    if checked:
        rows = [
            [
                safe_text(t.name, 40),
                str(t.checks),
                _pct(t.uptime_pct),
                _ms(t.p50_ms),
                _ms(t.p95_ms),
                _ms(t.p99_ms),
                ", ".join(f"{safe_text(r, 30)} {n}" for r, n in t.failures_by_reason) or "-",
                _cert(t.cert_expires_at, now),
            ]
            for t in checked
        ]
        header = ["TARGET", "CHECKS", "UPTIME", "P50", "P95", "P99", "FAILURES", "CERT EXPIRES"]
        out += ["Targets", *_table(header, rows)]
    elif report.target_filter is not None:
        seen = ", ".join(safe_text(n, 40) for n in report.known_targets[:10]) or "none"
        out.append(
            f"no checks of target '{safe_text(report.target_filter)}' in the last {window}"
            f" (targets checked: {seen})"
        )
    else:
        out.append(f"no website checks in the last {window}")
    if report.target_filter is None:
        out.append("")
        if report.hosts:
            rows = [
                [
                    safe_text(h.agent, 40),
                    safe_text(h.host, 40),
                    str(h.samples),
                    _pct(h.cpu_avg_pct),
                    _pct(h.cpu_max_pct),
                    _pct(h.memory_avg_pct),
                    _pct(h.memory_max_pct),
                    f"{h.last_seen.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if h.last_seen else "-",
                ]
                for h in report.hosts
            ]
            header = ["AGENT", "HOST", "SAMPLES", "CPU AVG", "CPU MAX", "MEM AVG", "MEM MAX"]
            out += ["Hosts", *_table([*header, "LAST SEEN (UTC)"], rows)]
        else:
            out.append(f"no host metrics in the last {window}")
    return "\n".join(out) + "\n"
