"""`CheckResult`, the one declaration of what a website check reports.

Every place that handles a result field by field derives its list from here: the Kafka payload
(`to_payload`), the check workers' pipe format (engine.agent.checks.wire), the envelope's
validation of incoming check events and the `checks` table's COPY columns (engine.envelope,
engine.sink.store). Adding a field means adding it here (and a column in a migration).
It sits at the engine's base, not in agent/, because the sink reads results too and must
never import the agent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any


class Kind(enum.Enum):
    """How a field travels and is stored; each kind has one validator and one COPY encoder."""

    TEXT = "text"  # required, non-empty
    OPT_TEXT = "opt_text"  # optional, cut at its limit
    BOOL = "bool"  # required
    OPT_BOOL = "opt_bool"
    STATUS = "status"  # optional HTTP status (int4)
    MS = "ms"  # optional duration in milliseconds (real)
    TIME = "time"  # a moment (timestamptz); started_at is the row's ts
    OPT_TIME = "opt_time"


NAME_MAX = 200
TEXT_MAX = 2000


def _f(kind: Kind, limit: int = TEXT_MAX) -> Any:
    return field(metadata={"kind": kind, "limit": limit})


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check of one target; a site being down is a result, not an error."""

    target: str = _f(Kind.TEXT, NAME_MAX)
    url: str = _f(Kind.TEXT)
    method: str = _f(Kind.TEXT, 20)
    started_at: datetime = _f(Kind.TIME)
    ok: bool = _f(Kind.BOOL)
    status_code: int | None = _f(Kind.STATUS)
    reason: str | None = _f(Kind.OPT_TEXT, 100)
    error: str | None = _f(Kind.OPT_TEXT)
    dns_ms: float | None = _f(Kind.MS)
    connect_ms: float | None = _f(Kind.MS)
    tls_ms: float | None = _f(Kind.MS)
    ttfb_ms: float | None = _f(Kind.MS)
    total_ms: float | None = _f(Kind.MS)
    content_match: bool | None = _f(Kind.OPT_BOOL)
    cert_expires_at: datetime | None = _f(Kind.OPT_TIME)
    resolved_ip: str | None = _f(Kind.OPT_TEXT, 100)
    location: str | None = field(default=None, metadata={"kind": Kind.OPT_TEXT, "limit": NAME_MAX})
    """The fleet location of the agent that checked (the agent sets it; migration 003)."""

    def to_payload(self) -> dict[str, Any]:
        """JSON-ready dict for the Kafka envelope; datetimes as ISO-8601 with offset."""
        out: dict[str, Any] = {}
        for name in RESULT_FIELDS:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One result field: its name, kind and text limit."""

    name: str
    kind: Kind
    limit: int


FIELD_SPECS: tuple[FieldSpec, ...] = tuple(
    FieldSpec(f.name, f.metadata["kind"], f.metadata["limit"]) for f in fields(CheckResult)
)
RESULT_FIELDS: tuple[str, ...] = tuple(spec.name for spec in FIELD_SPECS)
"""Every field of a `CheckResult`, in declaration order (the payload's keys)."""
ROW_SPECS: tuple[FieldSpec, ...] = tuple(s for s in FIELD_SPECS if s.name != "started_at")
CHECK_FIELDS: tuple[str, ...] = tuple(spec.name for spec in ROW_SPECS)
"""Columns of a `checks` row built from a check event, after (ts, event_id, agent)."""
