"""Known check rows for tests that seed PostgreSQL through the sink's Store.

Built from `CheckResult` itself, so a field added to the result gets its default here and the
seeding tests keep working (they once hand-listed every field and broke on `location`).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from engine.envelope import CheckEvent
from engine.records.check_result import CHECK_FIELDS, CheckResult

CERT_EXPIRY = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)


def check_event(
    agent: str, at: datetime, target: str, ok: bool, total_ms: float | None, **fields: Any
) -> CheckEvent:
    """One stored check of `target` at `at`; a failure has no status and reason "timeout"."""
    result = CheckResult(
        target=target,
        url="https://example.invalid/",
        method="GET",
        started_at=at,
        ok=ok,
        status_code=200 if ok else None,
        reason=None if ok else "timeout",
        error=None,
        dns_ms=1.0,
        connect_ms=2.0,
        tls_ms=3.0,
        ttfb_ms=4.0,
        total_ms=total_ms,
        content_match=None,
        cert_expires_at=CERT_EXPIRY if ok else None,
        resolved_ip="192.0.2.1",
    )
    result = replace(result, **fields)
    row = tuple(getattr(result, name) for name in CHECK_FIELDS)
    return CheckEvent(uuid.uuid4(), agent, "host-1", at, row)
