"""One place where every part of the engine reports, and immutable snapshots for readers.

Writers (producer, sink, collectors, checks) bump plain counters on `Stats`; nothing here
awaits or locks because the engine runs on one event loop. Readers (TUI, headless status line,
/metrics, control socket) call `snapshot()` a few times per second and never touch live state.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from engine.records.heartbeats import FleetAgent

HISTORY_SECONDS = 300
RATE_WINDOW_S = 10
"""A rate is the mean of this many per-second values, everywhere it is shown (dashboard, status
line): a pipeline of a few events a second reads 1.4/s instead of flickering between 0 and 3."""
ERRORS_KEPT = 100


class ConnState(StrEnum):
    """A connection's state as the status line, /healthz and the dashboard show it."""

    OFF = "off"  # this role does not use the server
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DOWN = "down"


KafkaClient = Literal["producer", "consumer"]
"""Each Kafka client keeps its own state: in role "all" both run in one engine."""

# What one word says for several clients: the worst of them, so a down consumer is not
# hidden by a connected producer.
_WORST_FIRST = (ConnState.DOWN, ConnState.CONNECTING, ConnState.CONNECTED)


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """Latest known state of one website target, as the dashboard shows it."""

    name: str
    url: str
    enabled: bool
    interval: float
    ok: bool | None = None
    status_code: int | None = None
    total_ms: float | None = None
    content_match: bool | None = None
    cert_days_left: float | None = None
    last_checked: datetime | None = None
    reason: str | None = None
    error: str | None = None
    recent: tuple[bool, ...] = ()
    """Outcomes of the last checks (oldest first), for the history bar."""
    uptime_1h_pct: float | None = None
    """Successful checks in the last hour, in percent (None before the first check)."""


@dataclass(frozen=True, slots=True)
class LatestSample:
    """Newest value of one metric series on this agent."""

    metric: str
    labels: tuple[tuple[str, str], ...]
    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    """One recent error; `message` is untrusted text and must be shown literally."""

    at: datetime
    source: str
    message: str


@dataclass(frozen=True, slots=True)
class Problem:
    """A cause only the operator can fix (a refused password or certificate): `code` is a short
    word for the key=value status line, `line` says the cause and what to do, without secrets."""

    code: str
    line: str


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    lag: int


@dataclass(frozen=True)
class StatsSnapshot:
    """Everything a reader may show, frozen at `taken_at`. Safe to share across tasks/threads."""

    taken_at: datetime
    role: str
    agent: str
    kafka_state: ConnState
    postgres_state: ConnState
    produced_per_s: float
    consumed_per_s: float
    inserted_per_s: float
    produced_total: int
    consumed_total: int
    inserted_rows_total: int
    inserted_events_total: int
    duplicates_total: int
    dead_letters_total: int
    send_errors_total: int
    spool_depth: int
    spool_bytes: int
    spool_dropped_total: int
    checks_total: int
    lag: tuple[PartitionLag, ...]
    lag_total: int | None
    db_write_ms: float | None
    freshness_s: float | None
    history: dict[str, tuple[float, ...]]
    metrics: tuple[LatestSample, ...]
    metrics_enabled: dict[str, bool]
    targets: tuple[TargetStatus, ...]
    errors: tuple[ErrorEntry, ...]
    errors_total: int
    kafka_problem: Problem | None = None
    """Why Kafka refuses us (certificate, TLS, SASL), naming the setting to fix; None when
    Kafka is connected or merely unreachable. `kafka_state` keeps its values alongside."""
    postgres_problem: Problem | None = None
    """Why PostgreSQL refuses us (password, certificate, privileges) and what to fix."""
    targets_assigned: int = 0
    """Fleet: targets this agent checks now (its share); in file mode, its enabled targets."""
    fleet_idle: bool = False
    """Fleet: this agent got no partition (more agents in its location than partitions)."""
    targets_bad_total: int = 0
    """Fleet: targets-topic records skipped as malformed."""
    fleet: tuple[FleetAgent, ...] = ()
    """Every agent whose heartbeat this engine saw (the sink's view; else only itself)."""
    target_locations: dict[str, dict[str, bool]] = field(default_factory=dict)
    """Per target, per location: whether its latest check there was up (from the sink)."""


@dataclass
class _Rate:
    """A counter, its per-second values (one per `tick()`) and their recent mean."""

    total: int = 0
    last_total: int = 0
    last_at: float = field(default_factory=time.monotonic)
    per_s: float = 0.0
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_SECONDS))

    def tick(self, now: float) -> None:
        elapsed = now - self.last_at
        if elapsed <= 0:
            return
        self.per_s = (self.total - self.last_total) / elapsed
        self.history.append(self.per_s)
        self.last_total = self.total
        self.last_at = now

    def mean_per_s(self) -> float:
        """The mean of the last `RATE_WINDOW_S` per-second values (0 before the first tick)."""
        recent = list(self.history)[-RATE_WINDOW_S:]
        return sum(recent) / len(recent) if recent else self.per_s


class Stats:
    """Live counters of one engine. Mutated in place by the engine; read via `snapshot()`."""

    def __init__(self, role: str, agent: str) -> None:
        self.role = role
        self.agent = agent
        self.kafka_states: dict[KafkaClient, ConnState] = {}
        self.postgres_state = ConnState.OFF
        self.produced = _Rate()
        self.consumed = _Rate()
        self.inserted = _Rate()
        self.inserted_events_total = 0
        self.duplicates_total = 0
        self.dead_letters_total = 0
        self.send_errors_total = 0
        self.spool_depth = 0
        self.spool_bytes = 0
        self.spool_dropped_total = 0
        self.checks_total = 0
        self.lag: dict[tuple[str, int], int] = {}
        self.db_write_ms: float | None = None
        self.newest_committed_observed_at: datetime | None = None
        self.metrics: dict[tuple[str, tuple[tuple[str, str], ...]], LatestSample] = {}
        self.metrics_enabled: dict[str, bool] = {}
        self.targets: dict[str, TargetStatus] = {}
        self.errors: deque[ErrorEntry] = deque(maxlen=ERRORS_KEPT)
        self.errors_total = 0
        # Per Kafka client ("producer", "consumer"): in role "all" both may name one cause.
        self.kafka_problems: dict[str, Problem] = {}
        self.postgres_problem: Problem | None = None
        self.targets_assigned = 0
        self.fleet_idle = False
        self.targets_bad_total = 0
        self.fleet: dict[str, FleetAgent] = {}
        self.target_locations: dict[str, dict[str, bool]] = {}

    @property
    def kafka_state(self) -> ConnState:
        """Kafka's state in one word: the worst of this engine's clients (off without any)."""
        states = self.kafka_states.values()
        return next((s for s in _WORST_FIRST if s in states), ConnState.OFF)

    def set_kafka_state(self, client: KafkaClient, state: ConnState) -> None:
        self.kafka_states[client] = state

    def tick(self) -> None:
        """Roll the per-second rates; the engine calls this once a second."""
        now = time.monotonic()
        for rate in (self.produced, self.consumed, self.inserted):
            rate.tick(now)

    def error(self, source: str, message: str) -> None:
        """Record an error for the errors pane (bounded ring) and the error counter."""
        self.errors_total += 1
        self.errors.append(ErrorEntry(datetime.now(UTC), source, message))

    def name_kafka_problem(self, source: str, problem: Problem) -> bool:
        """Remember why `source`'s Kafka client is refused. True when the cause is news (no
        client of this engine names it yet), so the caller says it once, not per retry."""
        news = problem not in self.kafka_problems.values()
        self.kafka_problems[source] = problem
        return news

    def clear_kafka_problem(self, source: str) -> bool:
        """`source` connected (or its settings work again); True if it had named a cause."""
        return self.kafka_problems.pop(source, None) is not None

    def record_db_write(self, ms: float) -> None:
        """Exponentially smoothed DB write latency, so one slow batch does not flap the UI."""
        self.db_write_ms = ms if self.db_write_ms is None else 0.8 * self.db_write_ms + 0.2 * ms

    def snapshot(self) -> StatsSnapshot:
        now = datetime.now(UTC)
        freshness = None
        if self.newest_committed_observed_at is not None:
            freshness = max(0.0, (now - self.newest_committed_observed_at).total_seconds())
        lag = tuple(PartitionLag(t, p, n) for (t, p), n in sorted(self.lag.items()))
        return StatsSnapshot(
            taken_at=now,
            role=self.role,
            agent=self.agent,
            kafka_state=self.kafka_state,
            postgres_state=self.postgres_state,
            produced_per_s=self.produced.mean_per_s(),
            consumed_per_s=self.consumed.mean_per_s(),
            inserted_per_s=self.inserted.mean_per_s(),
            produced_total=self.produced.total,
            consumed_total=self.consumed.total,
            inserted_rows_total=self.inserted.total,
            inserted_events_total=self.inserted_events_total,
            duplicates_total=self.duplicates_total,
            dead_letters_total=self.dead_letters_total,
            send_errors_total=self.send_errors_total,
            spool_depth=self.spool_depth,
            spool_bytes=self.spool_bytes,
            spool_dropped_total=self.spool_dropped_total,
            checks_total=self.checks_total,
            lag=lag,
            lag_total=sum(p.lag for p in lag) if lag else None,
            db_write_ms=self.db_write_ms,
            freshness_s=freshness,
            history={
                "produced": tuple(self.produced.history),
                "consumed": tuple(self.consumed.history),
                "inserted": tuple(self.inserted.history),
            },
            metrics=tuple(self.metrics[k] for k in sorted(self.metrics)),
            metrics_enabled=dict(self.metrics_enabled),
            targets=tuple(self.targets[k] for k in sorted(self.targets)),
            errors=tuple(self.errors),
            errors_total=self.errors_total,
            kafka_problem=next(iter(self.kafka_problems.values()), None),
            postgres_problem=self.postgres_problem,
            targets_assigned=self.targets_assigned,
            fleet_idle=self.fleet_idle,
            targets_bad_total=self.targets_bad_total,
            fleet=tuple(self.fleet[k] for k in sorted(self.fleet)),
            target_locations={t: dict(v) for t, v in self.target_locations.items()},
        )
