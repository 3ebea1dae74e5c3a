"""Watching rows land in PostgreSQL while a tool drains its topic, the same way for every tool.

Counting rows with `count(*)` many times a second would cost PostgreSQL more than some tools
do, so progress is read from the size of the sample tables' heap (`pg_relation_size`, a file
size), polled every 50 ms. Every system here appends fixed-shape rows, so rows grow in step with
the heap; the end is confirmed with `count(*)` and that count calibrates the curve. "From start"
runs from the tool's launch (JVM start, group join and table creation included) to the last
heap growth; "steady" is the rate between 10 % and 90 % of the final heap, once rows flow.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from bench.peers.cache import one_line_error

POLL_S = 0.05
COUNT_EVERY_S = 1.0

SIZE_SQL = """
SELECT coalesce(sum(pg_relation_size(c.oid)), 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname ~ '^samples(_[0-9]+)?$'
"""


class ToolFailed(RuntimeError):
    """The tool under measurement exited or stalled; the message names cause and fix."""


@dataclass(frozen=True, slots=True)
class Landing:
    """How `rows` landed: seconds from launch, and the heap-size curve over time."""

    rows: int
    started: float
    """perf_counter() at the tool's launch."""
    curve: list[tuple[float, int]]
    """(perf_counter(), heap bytes) samples; the last one is the final size."""

    @property
    def last_growth(self) -> float:
        final = self.curve[-1][1]
        return next(t for t, size in self.curve if size >= final)

    @property
    def from_start_s(self) -> float:
        return self.last_growth - self.started

    @property
    def rows_per_s_from_start(self) -> float:
        return self.rows / self.from_start_s

    def _crossing(self, fraction: float) -> float:
        """When the heap passed `fraction` of its final size (linear between polls)."""
        goal = fraction * self.curve[-1][1]
        prev_t, prev_size = self.started, 0
        for t, size in self.curve:
            if size >= goal:
                if size == prev_size:
                    return t
                return prev_t + (t - prev_t) * (goal - prev_size) / (size - prev_size)
            prev_t, prev_size = t, size
        return self.curve[-1][0]

    @property
    def first_rows_s(self) -> float:
        """Seconds from launch until the first rows were on disk."""
        return self._crossing(0.001) - self.started

    @property
    def rows_per_s_steady(self) -> float:
        lo, hi = self._crossing(0.1), self._crossing(0.9)
        return 0.8 * self.rows / (hi - lo) if hi > lo else self.rows_per_s_from_start


def count_rows(conn: psycopg.Connection[tuple[int]], schema: str, table: str) -> int:
    """Rows in `schema.table`, 0 while the tool has not created it yet."""
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}"."{table}"',)
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    query = sql.SQL("SELECT count(*) FROM {}.{}").format(
        sql.Identifier(schema), sql.Identifier(table)
    )
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def watch_landing(
    dsn: str,
    schema: str,
    expected_rows: int,
    started: float,
    proc: subprocess.Popen[bytes],
    *,
    name: str,
    timeout_s: float,
    log: Path,
    table: str = "samples",
    fatal: str | None = None,
) -> Landing:
    """Poll until `expected_rows` are in `schema.table`; raise ToolFailed if the tool exits
    first or nothing lands for a long while."""
    curve: list[tuple[float, int]] = []
    last_count_at = 0.0
    stalled_since: float | None = None
    # Since when the heap has not grown, once rows flow (start-up has only the timeout).
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            now = time.perf_counter()
            row = conn.execute(SIZE_SQL, (schema,)).fetchone()
            size = int(row[0]) if row else 0
            grew = not curve or size > curve[-1][1]
            curve.append((now, size))
            if grew and size > 0:
                stalled_since = now
            if not grew and now - last_count_at >= COUNT_EVERY_S and size > 0:
                last_count_at = now
                rows = count_rows(conn, schema, table)
                if rows >= expected_rows:
                    return Landing(rows, started, curve)
            if fatal is not None and size == 0 and now - last_count_at >= COUNT_EVERY_S:
                last_count_at = now
                if fatal in log.read_text(errors="replace"):
                    raise ToolFailed(
                        f"{name} failed before writing ({one_line_error(log)}); {log} says why"
                    )
            if proc.poll() is not None:
                raise ToolFailed(
                    f"{name} exited with code {proc.returncode} before all rows landed"
                    f" ({one_line_error(log)}); fix what {log} names and run again"
                )
            stalled = stalled_since is not None and now - stalled_since > max(60.0, timeout_s / 4)
            if now - started > timeout_s or stalled:
                raise ToolFailed(
                    f"{name} landed {count_rows(conn, schema, table)} of {expected_rows} rows"
                    f" and then stalled ({one_line_error(log)}); {log} says why"
                )
            time.sleep(POLL_S)
