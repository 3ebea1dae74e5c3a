"""The Kafka message format: a small, versioned, self-describing JSON envelope.

    {"v": "1.0", "id": "<uuid4>", "type": "metrics" | "check", "agent": "...", "host": "...",
     "observed_at": "<iso8601>", "sent_at": "<iso8601>", "payload": {...}}

heartbeat payload: engine.records.heartbeats.Heartbeat.to_payload() (version 1.1, one per interval).
metrics payload: {"samples": [[metric, {label: value}, value, unit], ...]} (one event per tick).
check payload:   CheckResult.to_payload() (one event per check).

Readers ignore unknown fields and minor versions; an unknown major version, like any other
invalid message, is rejected with a short machine-readable reason so the sink can dead-letter it
and keep the partition moving.
"""

from __future__ import annotations

import math
import operator
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from engine.records.check_result import NAME_MAX, ROW_SPECS, TEXT_MAX, FieldSpec, Kind
from engine.records.heartbeats import HEARTBEAT_VERSION, BadHeartbeat, Heartbeat, parse_heartbeat
from engine.records.row_plan import ROW_NAMES, row_plan
from engine.records.samples import BadSample, Shape, parse_samples, shape_of

SCHEMA_VERSION = "1.0"
MAJOR = 1
MAX_MESSAGE_BYTES = 1_000_000
MAX_FUTURE_SKEW = timedelta(hours=1)
_NAME_MAX = NAME_MAX
_TEXT_MAX = TEXT_MAX


def utc_now() -> datetime:
    return datetime.now(UTC)


def encode_event(
    kind: str,
    agent: str,
    host: str,
    observed_at: datetime,
    payload: Mapping[str, Any],
    event_id: uuid.UUID | None = None,
    version: str = SCHEMA_VERSION,
) -> bytes:
    """One envelope as compact JSON bytes (orjson: the sink and producer are hot paths).

    UTC datetimes are left to orjson, which writes them as `isoformat()` does, in a fraction
    of the time; other offsets go through `isoformat()` (orjson would round away seconds).
    """
    return orjson.dumps(
        {
            "v": version,
            "id": new_event_id() if event_id is None else str(event_id),
            "type": kind,
            "agent": agent,
            "host": host,
            "observed_at": observed_at if observed_at.tzinfo is UTC else observed_at.isoformat(),
            "sent_at": utc_now(),
            "payload": payload,
        }
    )


def new_event_id() -> str:
    """A new event id: a time-ordered UUID (version 7: 48 bits of Unix milliseconds, then 74
    random bits), as text, at a fraction of the cost of `str(uuid.uuid4())`.

    Time order matters to the sink: ids land in the `events` primary key in roughly increasing
    order, so its index grows at the right edge instead of touching random pages all over.
    """
    h = (time.time_ns() // 1_000_000).to_bytes(6, "big").hex() + os.urandom(10).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-7{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def metrics_payload(samples: Iterable[Any]) -> dict[str, Any]:
    """Payload of a metrics event from `engine.agent.collectors.Sample`-like objects."""
    return {"samples": [[s.metric, dict(s.labels), s.value, s.unit] for s in samples]}


class Invalid(Exception):
    """A message that cannot be accepted; `reason` is short and stored with the dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class MetricsEvent:
    event_id: uuid.UUID
    agent: str
    host: str
    observed_at: datetime
    shape: Shape
    """Metric, canonical labels JSON and unit per sample; shared by the events of one shape."""
    values: tuple[float, ...]
    """The samples' values, in the shape's order."""

    @classmethod
    def of(
        cls,
        event_id: uuid.UUID,
        agent: str,
        host: str,
        observed_at: datetime,
        samples: list[tuple[str, str, float, str]],
    ) -> MetricsEvent:
        """An event from (metric, canonical labels JSON, value, unit) rows, made in code."""
        return cls(event_id, agent, host, observed_at, *shape_of(samples))

    @property
    def samples(self) -> list[tuple[str, str, float, str]]:
        """(metric, canonical labels JSON, value, unit) per sample (built on each call)."""
        return self.shape.rows(self.values)


@dataclass(slots=True)
class CheckEvent:
    event_id: uuid.UUID
    agent: str
    host: str
    observed_at: datetime
    row: tuple[Any, ...]  # values in CHECK_FIELDS order


@dataclass(slots=True)
class HeartbeatEvent:
    event_id: uuid.UUID
    agent: str
    host: str
    observed_at: datetime
    heartbeat: Heartbeat


Event = MetricsEvent | CheckEvent | HeartbeatEvent


def encode_heartbeat(agent: str, host: str, observed_at: datetime, beat: Heartbeat) -> bytes:
    """A heartbeat envelope (minor version 1.1, which introduced the type)."""
    payload = beat.to_payload()
    return encode_event("heartbeat", agent, host, observed_at, payload, version=HEARTBEAT_VERSION)


def _text(d: Mapping[str, Any], key: str, *, limit: int = _NAME_MAX, empty: bool = False) -> str:
    value = d.get(key)
    if value is None:
        raise Invalid(f"missing_field: {key}")
    if not isinstance(value, str):
        raise Invalid(f"wrong_type: {key} must be a string")
    if not empty and not value:
        raise Invalid(f"empty_field: {key}")
    if len(value) > limit:
        raise Invalid(f"too_long: {key}")
    if "\x00" in value:
        raise Invalid(f"nul_character: {key}")
    return value


def _opt_text(d: Mapping[str, Any], key: str, limit: int = _TEXT_MAX) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(f"wrong_type: {key} must be a string or null")
    # PostgreSQL text cannot hold NUL; keep the rest of an untrusted error message.
    return value[:limit].replace("\x00", "\ufffd")


def _opt_number(d: Mapping[str, Any], key: str) -> float | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"wrong_type: {key} must be a number or null")
    if not math.isfinite(value):
        raise Invalid(f"non_finite: {key}")
    return float(value)


_REAL_MAX = 3.4028234663852886e38


def _opt_real(d: Mapping[str, Any], key: str) -> float | None:
    """A number for a `real` (float4) column: beyond its range the database would reject the
    whole batch, so the event is set aside as a dead letter instead."""
    value = _opt_number(d, key)
    if value is not None and abs(value) > _REAL_MAX:
        raise Invalid(f"out_of_range: {key}")
    return value


def _opt_int(d: Mapping[str, Any], key: str) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 999:
        raise Invalid(f"wrong_type: {key} must be an HTTP status or null")
    return value


def _opt_bool(d: Mapping[str, Any], key: str) -> bool | None:
    value = d.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise Invalid(f"wrong_type: {key} must be a boolean or null")


def _timestamp(value: Any, key: str) -> datetime:
    if not isinstance(value, str):
        raise Invalid(f"bad_timestamp: {key}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"bad_timestamp: {key}") from None
    if ts.tzinfo is None:
        raise Invalid(f"bad_timestamp: {key} has no time zone")
    return ts


def _check_age(ts: datetime, now: datetime, max_age: timedelta) -> None:
    if ts > now + MAX_FUTURE_SKEW:
        raise Invalid("timestamp_out_of_range: observed_at is in the future")
    if ts < now - max_age:
        raise Invalid("timestamp_out_of_range: observed_at is older than max_event_age_days")


def decode_event(raw: bytes | None, *, now: datetime, max_age: timedelta) -> Event:
    """Parse and validate one Kafka message value, or raise `Invalid` with the reason."""
    if raw is None:
        raise Invalid("empty_message")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise Invalid("oversized")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Invalid("not_json") from None
    if not isinstance(doc, dict):
        raise Invalid("wrong_shape: envelope must be a JSON object")
    version = doc.get("v")
    if not isinstance(version, str) or not version.split(".", 1)[0].isdigit():
        raise Invalid("missing_field: v")
    if int(version.split(".", 1)[0]) != MAJOR:
        raise Invalid(f"unknown_version: {version[:20]}")
    try:
        event_id = uuid.UUID(_text(doc, "id"))
    except ValueError:
        raise Invalid("wrong_type: id must be a UUID") from None
    kind = _text(doc, "type")
    agent = _text(doc, "agent")
    host = _text(doc, "host", empty=True)
    observed_at = _timestamp(doc.get("observed_at"), "observed_at")
    _check_age(observed_at, now, max_age)
    payload = doc.get("payload")
    if not isinstance(payload, dict):
        raise Invalid("wrong_shape: payload must be an object")
    if kind == "metrics":
        # JSON can only carry NUL as the escape \u0000; without one, no string holds NUL.
        nul_free = b"\\u0000" not in raw
        shape, values = _samples(payload, nul_free)
        return MetricsEvent(event_id, agent, host, observed_at, shape, values)
    if kind == "check":
        fast = _check_row_at_once(payload) if b"\\u0000" not in raw else None
        row = fast if fast is not None else _check_row(payload)
        return CheckEvent(event_id, agent, host, observed_at, row)
    if kind == "heartbeat":
        try:
            beat = parse_heartbeat(payload)
        except BadHeartbeat as bad:
            raise Invalid(str(bad)) from None
        return HeartbeatEvent(event_id, agent, host, observed_at, beat)
    raise Invalid(f"unknown_type: {kind[:40]}")


def _samples(payload: Mapping[str, Any], nul_free: bool) -> tuple[Shape, tuple[float, ...]]:
    items = payload.get("samples")
    if not isinstance(items, list):
        raise Invalid("wrong_shape: payload.samples must be a list")
    try:
        return parse_samples(items, nul_free)
    except BadSample as bad:
        raise Invalid(str(bad)) from None


def _opt_time(d: Mapping[str, Any], key: str) -> datetime | None:
    value = d.get(key)
    return None if value is None else _timestamp(value, key)


def _bool(d: Mapping[str, Any], key: str) -> bool:
    value = d.get(key)
    if not isinstance(value, bool):
        raise Invalid(f"wrong_type: {key} must be a boolean")
    return value


# One validator per kind of check field; the fields themselves come from `CheckResult`.
_VALIDATORS: dict[Kind, Callable[[Mapping[str, Any], FieldSpec], Any]] = {
    Kind.TEXT: lambda p, f: _text(p, f.name, limit=f.limit),
    Kind.OPT_TEXT: lambda p, f: _opt_text(p, f.name, f.limit),
    Kind.BOOL: lambda p, f: _bool(p, f.name),
    Kind.OPT_BOOL: lambda p, f: _opt_bool(p, f.name),
    Kind.STATUS: lambda p, f: _opt_int(p, f.name),
    Kind.MS: lambda p, f: _opt_real(p, f.name),
    Kind.OPT_TIME: lambda p, f: _opt_time(p, f.name),
}
_ROW = tuple((_VALIDATORS[spec.kind], spec) for spec in ROW_SPECS)


def _check_row(p: Mapping[str, Any]) -> tuple[Any, ...]:
    """A check payload as a `checks` row (CHECK_FIELDS order), each field validated."""
    _bool(p, "ok")  # checked first: a payload that is not a result at all says so
    return tuple(validate(p, spec) for validate, spec in _ROW)


def _check_row_at_once(p: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """`_check_row` for the sink's hot path: the fields fetched and typed with C-level `map`,
    the rest checked per kind from a cached plan, so no validator runs per field. None when
    anything is off (the careful path then names it); callers rule out NUL characters.

    A check event is one row against a metrics event's 63, yet per field validation made
    check events cost the sink as much as the metrics."""
    values: tuple[Any, ...] = tuple(map(p.get, ROW_NAMES))
    plan = row_plan(tuple(map(type, values)))
    if plan is None:
        return None
    get = values.__getitem__
    lengths = tuple(map(len, map(get, plan.sized)))
    if not all(map(operator.le, lengths, plan.limits)) or not all(lengths[: plan.required]):
        return None
    if plan.ms:
        ms = tuple(map(get, plan.ms))
        if not all(map(math.isfinite, ms)) or max(map(abs, ms)) > _REAL_MAX:
            return None
    for i in plan.status:
        if not 0 <= values[i] <= 999:
            return None
    if not plan.times:
        return values
    row = list(values)
    try:
        for i in plan.times:
            row[i] = _timestamp(values[i], ROW_NAMES[i])
    except Invalid:
        return None
    return tuple(row)
