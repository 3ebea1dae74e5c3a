"""The stats snapshot as JSON on the control socket: what an attached dashboard sees.

Kept next to the socket's other wire formats; the snapshot itself is engine.stats'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from engine.records.heartbeats import FleetAgent
from engine.stats import (
    ErrorEntry,
    LatestSample,
    PartitionLag,
    Problem,
    StatsSnapshot,
    TargetStatus,
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _same(value: Any) -> Any:
    return value


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "role": str,
    "agent": str,
    "kafka_state": str,  # compares equal to ConnState; an unknown word from another version
    "postgres_state": str,  # is kept as it is, not refused
    "produced_per_s": float,
    "consumed_per_s": float,
    "inserted_per_s": float,
    "produced_total": int,
    "consumed_total": int,
    "inserted_rows_total": int,
    "inserted_events_total": int,
    "duplicates_total": int,
    "dead_letters_total": int,
    "send_errors_total": int,
    "spool_depth": int,
    "spool_bytes": int,
    "spool_dropped_total": int,
    "checks_total": int,
    "lag_total": _same,
    "db_write_ms": _same,
    "freshness_s": _same,
    "errors_total": int,
    "targets_assigned": int,
    "fleet_idle": bool,
    "targets_bad_total": int,
}
"""Snapshot fields that are plain JSON values, with the conversion that reads each back;
the other fields are nested and have their own lines in `snapshot_to_dict`/`_from_dict`."""

_TARGET_FIELDS = tuple(f.name for f in fields(TargetStatus))


def snapshot_to_dict(s: StatsSnapshot) -> dict[str, Any]:
    """Serialise a snapshot to plain JSON types (datetimes as ISO strings)."""
    return {
        **{name: getattr(s, name) for name in _SCALARS},
        "taken_at": _iso(s.taken_at),
        "lag": [[p.topic, p.partition, p.lag] for p in s.lag],
        "history": {k: list(v) for k, v in s.history.items()},
        "metrics": [[m.metric, [list(kv) for kv in m.labels], m.value, m.unit] for m in s.metrics],
        "metrics_enabled": dict(s.metrics_enabled),
        "targets": [
            {
                **{name: getattr(t, name) for name in _TARGET_FIELDS},
                "last_checked": _iso(t.last_checked),
            }
            for t in s.targets
        ],
        "errors": [[_iso(e.at), e.source, e.message] for e in s.errors],
        "kafka_problem": _problem_list(s.kafka_problem),
        "postgres_problem": _problem_list(s.postgres_problem),
        "fleet": [a.to_list() for a in s.fleet],
        "target_locations": s.target_locations,
    }


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _target_from_dict(t: dict[str, Any]) -> TargetStatus:
    values: dict[str, Any] = {name: t.get(name) for name in _TARGET_FIELDS}
    values.update(
        enabled=bool(t["enabled"]),
        interval=float(t["interval"]),
        last_checked=_dt(t["last_checked"]),
        recent=tuple(bool(ok) for ok in t.get("recent") or ()),
    )
    return TargetStatus(**values)


def snapshot_from_dict(d: dict[str, Any]) -> StatsSnapshot:
    """Inverse of `snapshot_to_dict`, for a TUI attached over the control socket."""
    return StatsSnapshot(
        **{name: read(d[name]) for name, read in _SCALARS.items() if name in d},
        taken_at=_dt(d["taken_at"]) or datetime.now(UTC),
        lag=tuple(PartitionLag(str(t), int(p), int(n)) for t, p, n in d["lag"]),
        history={k: tuple(float(x) for x in v) for k, v in d["history"].items()},
        metrics=tuple(
            LatestSample(str(m), tuple((str(k), str(v)) for k, v in labels), float(val), str(u))
            for m, labels, val, u in d["metrics"]
        ),
        metrics_enabled={str(k): bool(v) for k, v in d["metrics_enabled"].items()},
        targets=tuple(_target_from_dict(t) for t in d["targets"]),
        errors=tuple(
            ErrorEntry(_dt(a) or datetime.now(UTC), str(s), str(m)) for a, s, m in d["errors"]
        ),
        kafka_problem=_problem(d.get("kafka_problem")),  # absent from older engines
        postgres_problem=_problem(d.get("postgres_problem")),
        fleet=tuple(FleetAgent.from_list(a) for a in d.get("fleet", ())),
        target_locations={
            str(t): {str(loc): bool(ok) for loc, ok in by_loc.items()}
            for t, by_loc in d.get("target_locations", {}).items()
        },
    )


def _problem_list(p: Problem | None) -> list[str] | None:
    return None if p is None else [p.code, p.line]


def _problem(value: Any) -> Problem | None:
    return Problem(str(value[0]), str(value[1])) if value else None
