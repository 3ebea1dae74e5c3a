"""The headless status line: the pipeline's health in one grep-able line."""

from __future__ import annotations

from engine.stats import StatsSnapshot


def _lag(s: StatsSnapshot) -> str:
    return "-" if s.lag_total is None else str(s.lag_total)


def status_line(s: StatsSnapshot) -> str:
    parts = [f"role={s.role}", f"kafka={s.kafka_state}"]
    if s.role in ("all", "consumer"):
        parts.append(f"postgres={s.postgres_state}")
    if s.role in ("all", "producer"):
        parts += [
            f"produced={s.produced_per_s:.1f}/s",
            f"spool={s.spool_depth}",
            f"spool_dropped={s.spool_dropped_total}",
            f"checks={s.checks_total}",
        ]
    if s.role in ("all", "consumer"):
        fresh = "-" if s.freshness_s is None else f"{s.freshness_s:.1f}s"
        parts += [
            f"consumed={s.consumed_per_s:.1f}/s",
            f"inserted={s.inserted_per_s:.1f}rows/s",
            f"lag={_lag(s)}",
            f"dead_letters={s.dead_letters_total}",
            f"freshness={fresh}",
        ]
    parts.append(f"errors={s.errors_total}")
    # A short code only: the key=value form stays parseable, and the whole cause (with what
    # to fix) is in the log, the errors list and /healthz, said once rather than every line.
    if s.kafka_problem is not None:
        parts.append(f"kafka_problem={s.kafka_problem.code}")
    if s.postgres_problem is not None and s.role in ("all", "consumer"):
        parts.append(f"postgres_problem={s.postgres_problem.code}")
    return "status " + " ".join(parts)
