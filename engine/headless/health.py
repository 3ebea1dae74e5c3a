"""Is this engine healthy? The rules behind `/healthz`, kept apart from HTTP so they are testable.

Healthy means: Kafka is connected (every role uses it); PostgreSQL is connected (roles that
write to it); and the sink is making progress — consumer lag above zero with nothing written
(no new rows, duplicates or dead letters) for `stall_after_s` seconds means the sink is stuck
even if both connections look fine. When Kafka or PostgreSQL refuses our settings (a password
or certificate changed after start), the reason carries the cause and what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.stats import StatsSnapshot

DEFAULT_STALL_AFTER_S = 60.0


@dataclass(frozen=True, slots=True)
class Verdict:
    healthy: bool
    reasons: tuple[str, ...]

    @property
    def text(self) -> str:
        return "ok" if self.healthy else "unhealthy: " + "; ".join(self.reasons)


class HealthJudge:
    """Watches successive snapshots (`observe`) and judges the newest one (`verdict`)."""

    def __init__(self, stall_after_s: float = DEFAULT_STALL_AFTER_S) -> None:
        self.stall_after_s = stall_after_s
        self.phase = "starting"  # starting | running | stopping
        self._progress: int | None = None
        self._progress_at: float | None = None

    def observe(self, s: StatsSnapshot, now: float) -> None:
        """Remember when the sink last wrote something or had nothing to do."""
        written = s.inserted_events_total + s.duplicates_total + s.dead_letters_total
        if self._progress_at is None or written != self._progress or not s.lag_total:
            self._progress_at = now
        self._progress = written

    def verdict(self, s: StatsSnapshot, now: float) -> Verdict:
        self.observe(s, now)
        if self.phase != "running":
            return Verdict(False, (self.phase,))
        reasons: list[str] = []
        if s.kafka_state != "connected":
            reasons.append(f"kafka {s.kafka_state}")
            if s.spool_depth:
                reasons[-1] += f" ({s.spool_depth} events spooled)"
            if s.kafka_problem is not None:
                reasons[-1] += f": {s.kafka_problem.line}"
        if s.role in ("all", "consumer"):
            if s.postgres_state != "connected":
                reasons.append(f"postgres {s.postgres_state}")
                if s.postgres_problem is not None:
                    reasons[-1] += f": {s.postgres_problem.line}"
            assert self._progress_at is not None
            stalled_for = now - self._progress_at
            if s.lag_total and stalled_for >= self.stall_after_s:
                reasons.append(
                    f"sink stalled: lag {s.lag_total} messages and nothing written"
                    f" for {stalled_for:.0f}s"
                )
        return Verdict(not reasons, tuple(reasons))
