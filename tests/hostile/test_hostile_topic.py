"""Hostile input on the topic (issue 4, case 10): every malformed message becomes a dead letter
with a reason and its raw bytes, and the partition keeps moving past it to the good events."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from engine.envelope import encode_event
from helpers.faults import (
    Agents,
    committed_offsets,
    events_table_ready,
)
from helpers.stack import Pipeline
from helpers.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration]

NOW = datetime.now(UTC)


def _env(**over: object) -> bytes:
    doc: dict[str, object] = {
        "v": "1.0",
        "id": str(uuid.uuid4()),
        "type": "metrics",
        "agent": "hostile",
        "host": "h",
        "observed_at": NOW.isoformat(),
        "sent_at": NOW.isoformat(),
        "payload": {"samples": [["cpu.percent", {"cpu": "total"}, 1.0, "%"]]},
    }
    for key, value in over.items():
        if value is _DROP:
            doc.pop(key)
        else:
            doc[key] = value
    return orjson.dumps(doc)


def _check(**payload: object) -> bytes:
    base: dict[str, object] = {"target": "t", "url": "http://x/", "method": "GET", "ok": True}
    return _env(type="check", payload={**base, **payload})


_DROP = object()

# name -> (raw message value, expected dead-letter reason prefix)
HOSTILE: dict[str, tuple[bytes | None, str]] = {
    "not json": (b"hello, kafka", "not_json"),
    "binary garbage": (b"\xff\xfe\x00\x01garbage\x80", "not_json"),
    "truncated json": (b'{"v": "1.0", "id": ', "not_json"),
    "NaN literal": (_env()[:-1] + b', "x": NaN}', "not_json"),
    "infinity 1e999": (
        _env(payload={"samples": [["m", {}, 0, ""]]}).replace(b'["m",{},0', b'["m",{},1e999'),
        "not_json",
    ),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "not_json"),
    "json array": (b"[1, 2, 3]", "wrong_shape"),
    "json string": (b'"just a string"', "wrong_shape"),
    "json number": (b"42", "wrong_shape"),
    "empty object": (b"{}", "missing_field: v"),
    "version not a string": (_env(v=1), "missing_field: v"),
    "unknown major version": (_env(v="2.0"), "unknown_version"),
    "far future version": (_env(v="10.1"), "unknown_version"),
    "missing id": (_env(id=_DROP), "missing_field: id"),
    "id not a uuid": (_env(id="'; DROP TABLE events; --"), "wrong_type: id"),
    "missing type": (_env(type=_DROP), "missing_field: type"),
    "unknown type": (_env(type="logs"), "unknown_type"),
    "agent mistyped": (_env(agent=7), "wrong_type: agent"),
    "agent empty": (_env(agent=""), "empty_field: agent"),
    "agent with NUL": (_env(agent="a\x00b"), "nul_character: agent"),
    "missing observed_at": (_env(observed_at=_DROP), "bad_timestamp"),
    "observed_at garbage": (_env(observed_at="yesterday"), "bad_timestamp"),
    "observed_at without zone": (_env(observed_at="2026-01-01T00:00:00"), "bad_timestamp"),
    "years in the past": (_env(observed_at="2001-09-09T01:46:40+00:00"), "timestamp_out_of_range"),
    "years in the future": (
        _env(observed_at=(NOW + timedelta(days=3650)).isoformat()),
        "timestamp_out_of_range",
    ),
    "payload not an object": (_env(payload=[1]), "wrong_shape"),
    "samples not a list": (_env(payload={"samples": "cpu=1"}), "wrong_shape"),
    "sample wrong arity": (_env(payload={"samples": [["cpu", {}, 1]]}), "wrong_shape"),
    "sample value a string": (_env(payload={"samples": [["cpu", {}, "1", ""]]}), "wrong_type"),
    "sample value a bool": (_env(payload={"samples": [["cpu", {}, True, ""]]}), "wrong_type"),
    "labels not strings": (_env(payload={"samples": [["cpu", {"a": 1}, 1, ""]]}), "wrong_type"),
    "check ok mistyped": (_check(ok="yes"), "wrong_type: ok"),
    "check status a string": (_check(status_code="200"), "wrong_type: status_code"),
    "check target missing": (_check(target=None), "missing_field: target"),
    "oversized": (_env(payload={"samples": [["m", {"pad": "x" * 1_000_000}, 1, ""]]}), "oversized"),
    "tombstone": (None, "empty_message"),
}


async def _send(bootstrap: str, topic: str, values: list[bytes | None]) -> list[int]:
    """Everything to partition 0, in order; returns the offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2_000_000)
    await producer.start()
    try:
        offsets = []
        for value in values:
            meta = await producer.send_and_wait(topic, value, key=b"hostile", partition=0)
            offsets.append(meta.offset)
        return offsets
    finally:
        await producer.stop()


def test_hostile_messages_become_dead_letters_and_the_partition_keeps_moving(
    pipeline: Pipeline, agents: Agents
) -> None:
    assert len(HOSTILE) >= 30
    consumer = agents.start("consumer")
    wait_for(lambda: events_table_ready(pipeline), 60, "the schema")
    wait_for(lambda: consumer.last_status().get("kafka") == "connected", 60, "the consumer")
    good_first = encode_event("metrics", "hostile", "h", NOW, {"samples": [["m", {}, 1.0, ""]]})
    good_last = encode_event(
        "check",
        "hostile",
        "h",
        NOW,
        {"target": "t", "url": "http://x/", "method": "GET", "ok": True},
    )
    values = [good_first, *(v for v, _ in HOSTILE.values()), good_last]
    started = time.monotonic()
    offsets = asyncio.run(_send(pipeline.stack.bootstrap, pipeline.metrics_topic, values))
    good_ids = {orjson.loads(good_first)["id"], orjson.loads(good_last)["id"]}
    wait_for(
        lambda: {str(r[0]) for r in pipeline.query("SELECT event_id FROM events")} >= good_ids,
        30,
        "the good event behind the hostile ones",
    )
    took = time.monotonic() - started
    dead = {
        r[0]: (r[1], None if r[2] is None else bytes(r[2]))
        for r in pipeline.query(
            'SELECT "offset", reason, payload FROM dead_letters WHERE topic = %s AND partition = 0',
            (pipeline.metrics_topic,),
        )
    }
    for (name, (raw, reason)), offset in zip(HOSTILE.items(), offsets[1:-1], strict=True):
        assert offset in dead, f"{name}: no dead letter"
        stored_reason, payload = dead[offset]
        assert stored_reason.startswith(reason), f"{name}: {stored_reason!r}, want {reason!r}"
        assert payload == raw, f"{name}: the raw bytes are kept verbatim"
    assert len(dead) == len(HOSTILE)
    wait_for(
        lambda: (
            committed_offsets(
                pipeline.stack.bootstrap, pipeline.group_id, [pipeline.metrics_topic]
            ).get((pipeline.metrics_topic, 0))
            == offsets[-1] + 1
        ),
        30,
        "the offset committed past every hostile message",
    )
    assert consumer.running and took < 30
    # The status line is printed every status_interval: wait for one after the commit.
    wait_for(
        lambda: consumer.last_status().get("dead_letters") == str(len(HOSTILE)),
        15,
        "the status line to count every dead letter",
    )
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()
    agents.assert_clean()
