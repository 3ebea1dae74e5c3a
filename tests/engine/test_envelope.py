"""The envelope: what the producer writes, the sink accepts; everything else has a reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from engine.agent.collectors import Sample
from engine.envelope import (
    CheckEvent,
    Invalid,
    MetricsEvent,
    decode_event,
    encode_event,
    metrics_payload,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
AGE = timedelta(days=30)


def _doc(**over: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "v": "1.0",
        "id": str(uuid.uuid4()),
        "type": "metrics",
        "agent": "a1",
        "host": "h1",
        "observed_at": NOW.isoformat(),
        "sent_at": NOW.isoformat(),
        "payload": {"samples": [["cpu.percent", {"cpu": "total"}, 12.5, "%"]]},
    }
    doc.update(over)
    return doc


def test_metrics_event_round_trips() -> None:
    samples = [Sample("cpu.percent", 12.5, "%", (("cpu", "total"),)), Sample("load.1m", 0.5, "")]
    raw = encode_event("metrics", "a1", "h1", NOW, metrics_payload(samples))
    event = decode_event(raw, now=NOW, max_age=AGE)
    assert isinstance(event, MetricsEvent)
    assert event.samples == [
        ("cpu.percent", '{"cpu":"total"}', 12.5, "%"),
        ("load.1m", "{}", 0.5, ""),
    ]


def test_check_event_round_trips_and_ignores_unknown_fields() -> None:
    payload = {
        "target": "t",
        "url": "https://x",
        "method": "GET",
        "ok": True,
        "status_code": 200,
        "total_ms": 12.0,
        "cert_expires_at": "2027-01-01T00:00:00+00:00",
        "something_new": [1, 2],
    }
    raw = orjson.dumps(_doc(type="check", payload=payload, extra="ignored", v="1.7"))
    event = decode_event(raw, now=NOW, max_age=AGE)
    assert isinstance(event, CheckEvent)
    assert event.row[0] == "t" and event.row[3] is True and event.row[4] == 200
    assert event.row[13] == datetime(2027, 1, 1, tzinfo=UTC)


BAD = {
    "not_json": b"hello world",
    "binary": bytes(range(256)),
    "array": b"[1,2,3]",
    "digits": b"1" * 100_000,
    "unknown_version": orjson.dumps(_doc(v="2.0")),
    "no_version": orjson.dumps({k: v for k, v in _doc().items() if k != "v"}),
    "bad_uuid": orjson.dumps(_doc(id="nope")),
    "unknown_type": orjson.dumps(_doc(type="logs")),
    "no_tz": orjson.dumps(_doc(observed_at="2026-11-22T12:00:00")),
    "future": orjson.dumps(_doc(observed_at=(NOW + timedelta(days=400)).isoformat())),
    "ancient": orjson.dumps(_doc(observed_at="2001-01-01T00:00:00+00:00")),
    "sample_shape": orjson.dumps(_doc(payload={"samples": [["cpu", 1]]})),
    "value_string": orjson.dumps(_doc(payload={"samples": [["cpu", {}, "1", "%"]]})),
    "huge_value": b'{"v":"1.0","payload":{"samples":[["c",{},1e400,""]]}}',
    "nul": orjson.dumps(_doc(agent="a\x00b")),
    "check_missing_ok": orjson.dumps(_doc(type="check", payload={"target": "t"})),
    "oversized": b'"' + b"x" * 1_100_000 + b'"',
    "empty": None,
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_messages_are_rejected_with_a_reason(name: str) -> None:
    with pytest.raises(Invalid) as info:
        decode_event(BAD[name], now=NOW, max_age=AGE)
    assert info.value.reason
    assert "\n" not in info.value.reason
