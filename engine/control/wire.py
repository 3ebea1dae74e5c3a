"""Wire format of the control socket: newline-delimited JSON, one object per line.

Request: {"id": N, "op": "<name>", ...args}
Replies: {"id": N, "ok": true, "result": ...} or {"id": N, "ok": false, "error": "..."}
Pushes:  {"push": "snapshot", "data": {...}} (after a "subscribe" request, 4 per second)
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from engine.db.history import TargetHistory
from engine.targets import Target, target_from_dict, target_to_dict

MAX_LINE = 16 * 1024 * 1024


def dumps(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc) + b"\n"


def loads(line: bytes) -> dict[str, Any]:
    doc = orjson.loads(line)
    if not isinstance(doc, dict):
        raise ValueError("control message must be a JSON object")
    return doc


def target_out(target: Target) -> dict[str, Any]:
    return target_to_dict(target)


def target_in(raw: Any) -> Target:
    """Validate a target received over the socket with the same rules as the targets file."""
    if not isinstance(raw, dict):
        raise ValueError("target must be an object")
    return target_from_dict(raw, where="control socket", base_dir=Path("/"))


def history_out(h: TargetHistory) -> dict[str, Any]:
    return {
        "name": h.name,
        "since_s": h.since_s,
        "checks": h.checks,
        "uptime_pct": h.uptime_pct,
        "p50_ms": h.p50_ms,
        "p95_ms": h.p95_ms,
        "p99_ms": h.p99_ms,
        "failures_by_reason": [list(x) for x in h.failures_by_reason],
        "latency_series": [[ts.isoformat(), v] for ts, v in h.latency_series],
        "cert_expires_at": h.cert_expires_at.isoformat() if h.cert_expires_at else None,
    }


def history_in(d: dict[str, Any]) -> TargetHistory:
    cert = d.get("cert_expires_at")
    return TargetHistory(
        name=str(d["name"]),
        since_s=float(d["since_s"]),
        checks=int(d["checks"]),
        uptime_pct=d["uptime_pct"],
        p50_ms=d["p50_ms"],
        p95_ms=d["p95_ms"],
        p99_ms=d["p99_ms"],
        failures_by_reason=tuple((str(r), int(n)) for r, n in d["failures_by_reason"]),
        latency_series=tuple((datetime.fromisoformat(t), v) for t, v in d["latency_series"]),
        cert_expires_at=datetime.fromisoformat(cert) if cert else None,
    )
