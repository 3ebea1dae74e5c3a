"""One tool draining its pre-filled topic into PostgreSQL, measured like every other tool.

The tool runs as its own process (metrictui's sink too, as `metrictui --headless --role
consumer`), so its CPU is read from /proc the same way for all: the whole process tree from
launch to the last row, start-up included. PostgreSQL's CPU over the same span is read from its
postmaster's tree. Rows are timed by `landing.watch_landing`.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.peers.landing import Landing, watch_landing
from bench.peers.procstat import CpuMeter, tree_cpu_s


@dataclass(frozen=True, slots=True)
class Drain:
    """What one tool did with the same rows."""

    system: str
    rows: int
    rows_per_s_from_start: float
    rows_per_s_steady: float
    first_rows_s: float
    """Seconds from launch to the first rows in PostgreSQL (start-up, group join, DDL)."""
    tool_cpu_s: float
    pg_cpu_s: float

    @property
    def tool_cpu_us_per_row(self) -> float:
        return 1e6 * self.tool_cpu_s / self.rows

    @property
    def pg_cpu_us_per_row(self) -> float:
        return 1e6 * self.pg_cpu_s / self.rows

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "system": self.system,
            "rows": self.rows,
            "rows_per_s_from_start": round(self.rows_per_s_from_start),
            "rows_per_s_steady": round(self.rows_per_s_steady),
            "first_rows_s": round(self.first_rows_s, 2),
            "tool_cpu_s": round(self.tool_cpu_s, 2),
            "tool_cpu_us_per_row": round(self.tool_cpu_us_per_row, 2),
            "pg_cpu_s": round(self.pg_cpu_s, 2),
            "pg_cpu_us_per_row": round(self.pg_cpu_us_per_row, 2),
        }


def stop_process(proc: subprocess.Popen[bytes], *, grace_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`: only this process, which the harness started."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def run_drain(
    system: str,
    argv: list[str],
    *,
    workdir: Path,
    dsn: str,
    schema: str,
    expected_rows: int,
    pg_pid: int | None,
    timeout_s: float,
    env: dict[str, str] | None = None,
    fatal: str | None = None,
) -> Drain:
    """Launch `argv`, wait until `expected_rows` sample rows are in `schema.samples`, stop it."""
    log = workdir / f"{system}.log"
    pg = CpuMeter(pg_pid) if pg_pid is not None else None
    with log.open("wb") as out:
        if pg is not None:
            pg.start()
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env)
        try:
            landing: Landing = watch_landing(
                dsn,
                schema,
                expected_rows,
                started,
                proc,
                name=system,
                timeout_s=timeout_s,
                log=log,
                fatal=fatal,
            )
            pg_cpu = pg.stop() if pg is not None else float("nan")
            tool_cpu = 0.0
            with contextlib.suppress(OSError):
                tool_cpu = tree_cpu_s(proc.pid)
        finally:
            stop_process(proc)
    if landing.rows != expected_rows:
        raise RuntimeError(
            f"{system} landed {landing.rows} rows, expected {expected_rows}: it wrote a row"
            " twice or lost one; see its log"
        )
    return Drain(
        system,
        landing.rows,
        landing.rows_per_s_from_start,
        landing.rows_per_s_steady,
        landing.first_rows_s,
        tool_cpu,
        pg_cpu,
    )
