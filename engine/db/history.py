"""History of targets and hosts read from PostgreSQL through the public views only.

The TUI detail screen and the `metrictui report` command both need the same summaries; reading
`checks_v` / `samples_v` (never the tables behind them) keeps them working whatever the storage
layout becomes. All SQL is parameterised; the schema name is quoted with `sql.Identifier`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class TargetHistory:
    """What one website target did over the last `since_s` seconds.

    Latency figures (percentiles and the per-minute series) cover successful checks only, so a
    burst of timeouts shows up as failures rather than as a latency spike at the timeout value.
    """

    name: str
    since_s: float
    checks: int
    uptime_pct: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    failures_by_reason: tuple[tuple[str, int], ...]
    latency_series: tuple[tuple[datetime, float | None], ...]  # per-minute average total_ms
    cert_expires_at: datetime | None


@dataclass(frozen=True)
class HostSummary:
    """CPU and memory load of one agent over the last `since_s` seconds."""

    agent: str
    host: str
    samples: int
    cpu_avg_pct: float | None
    cpu_max_pct: float | None
    memory_avg_pct: float | None
    memory_max_pct: float | None
    last_seen: datetime | None


_TOTALS = """
SELECT count(*),
       count(*) FILTER (WHERE ok),
       percentile_cont(0.50) WITHIN GROUP (ORDER BY total_ms) FILTER (WHERE ok),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY total_ms) FILTER (WHERE ok),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY total_ms) FILTER (WHERE ok)
FROM {view}
WHERE target = %(name)s AND ts >= now() - make_interval(secs => %(since)s)
"""

_FAILURES = """
SELECT coalesce(reason, 'error'), count(*)
FROM {view}
WHERE target = %(name)s AND ts >= now() - make_interval(secs => %(since)s) AND NOT ok
GROUP BY 1
ORDER BY 2 DESC, 1
"""

_SERIES = """
WITH minutes AS (
    SELECT generate_series(
        date_trunc('minute', now() - make_interval(secs => %(since)s)),
        date_trunc('minute', now()),
        interval '1 minute'
    ) AS minute
), averages AS (
    SELECT date_trunc('minute', ts) AS minute, avg(total_ms) AS avg_ms
    FROM {view}
    WHERE target = %(name)s AND ts >= now() - make_interval(secs => %(since)s) AND ok
    GROUP BY 1
)
SELECT m.minute, a.avg_ms
FROM minutes m
LEFT JOIN averages a USING (minute)
ORDER BY m.minute
"""

_CERT = """
SELECT cert_expires_at
FROM {view}
WHERE target = %(name)s AND ts >= now() - make_interval(secs => %(since)s)
  AND cert_expires_at IS NOT NULL
ORDER BY ts DESC
LIMIT 1
"""

_HOSTS = """
SELECT agent, max(host), count(*),
       avg(value) FILTER (WHERE metric = 'cpu.percent' AND labels->>'cpu' = 'total'),
       max(value) FILTER (WHERE metric = 'cpu.percent' AND labels->>'cpu' = 'total'),
       avg(value) FILTER (WHERE metric = 'memory.percent'),
       max(value) FILTER (WHERE metric = 'memory.percent'),
       max(ts)
FROM {view}
WHERE ts >= now() - make_interval(secs => %(since)s)
  AND metric IN ('cpu.percent', 'memory.percent')
  AND (%(agent)s::text IS NULL OR agent = %(agent)s::text)
GROUP BY agent
ORDER BY agent
"""


_TARGET_NAMES = """
SELECT DISTINCT target
FROM {view}
WHERE ts >= now() - make_interval(secs => %(since)s)
ORDER BY target
"""


def _view(schema: str, name: str) -> sql.Composed:
    return sql.SQL(".").join([sql.Identifier(schema), sql.Identifier(name)])


def _query(template: LiteralString, schema: str, view: str) -> sql.Composed:
    return sql.SQL(template).format(view=_view(schema, view))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


async def fetch_target_history(
    conn: psycopg.AsyncConnection[Any], schema: str, name: str, since_s: float
) -> TargetHistory:
    """Summarise target `name` over the last `since_s` seconds from `<schema>.checks_v`."""
    params = {"name": name, "since": float(since_s)}
    async with conn.cursor() as cur:
        await cur.execute(_query(_TOTALS, schema, "checks_v"), params)
        totals = await cur.fetchone()
        await cur.execute(_query(_FAILURES, schema, "checks_v"), params)
        failures = await cur.fetchall()
        await cur.execute(_query(_SERIES, schema, "checks_v"), params)
        series = await cur.fetchall()
        await cur.execute(_query(_CERT, schema, "checks_v"), params)
        cert = await cur.fetchone()
    checks, ok_count = (int(totals[0]), int(totals[1])) if totals else (0, 0)
    return TargetHistory(
        name=name,
        since_s=float(since_s),
        checks=checks,
        uptime_pct=100.0 * ok_count / checks if checks else None,
        p50_ms=_float(totals[2]) if totals else None,
        p95_ms=_float(totals[3]) if totals else None,
        p99_ms=_float(totals[4]) if totals else None,
        failures_by_reason=tuple((str(reason), int(count)) for reason, count in failures),
        latency_series=tuple((minute, _float(avg)) for minute, avg in series),
        cert_expires_at=cert[0] if cert else None,
    )


async def fetch_host_summaries(
    conn: psycopg.AsyncConnection[Any], schema: str, since_s: float, agent: str | None = None
) -> list[HostSummary]:
    """CPU total and memory use per agent over the last `since_s` seconds from `samples_v`."""
    params: dict[str, Any] = {"since": float(since_s), "agent": agent}
    async with conn.cursor() as cur:
        await cur.execute(_query(_HOSTS, schema, "samples_v"), params)
        rows = await cur.fetchall()
    return [
        HostSummary(
            agent=str(row[0]),
            host=str(row[1]),
            samples=int(row[2]),
            cpu_avg_pct=_float(row[3]),
            cpu_max_pct=_float(row[4]),
            memory_avg_pct=_float(row[5]),
            memory_max_pct=_float(row[6]),
            last_seen=row[7],
        )
        for row in rows
    ]


async def fetch_target_names(
    conn: psycopg.AsyncConnection[Any], schema: str, since_s: float
) -> list[str]:
    """Names of the targets checked in the last `since_s` seconds (any agent), sorted."""
    async with conn.cursor() as cur:
        await cur.execute(_query(_TARGET_NAMES, schema, "checks_v"), {"since": float(since_s)})
        rows = await cur.fetchall()
    return [str(row[0]) for row in rows]
