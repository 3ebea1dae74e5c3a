"""The pipeline's fast paths give exactly what the careful paths give.

The metrics decoder checks whole columns at once, the store builds binary COPY rows itself, the
producer makes event ids and partitions keys its own way: each is judged against the plain
per-sample loop, against what PostgreSQL reads back, or against uuid and aiokafka themselves.
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.agent.collector_names import COLLECTOR_NAMES
from engine.agent.collectors import HostCollector
from engine.db.migrate import migrate
from engine.envelope import (
    CheckEvent,
    Invalid,
    MetricsEvent,
    _check_row,
    _check_row_at_once,
    decode_event,
    encode_event,
    metrics_payload,
    new_event_id,
)
from engine.kafka.producer_parts import KeyPartitioner
from engine.records.check_result import CHECK_FIELDS, CheckResult
from engine.records.samples import BadSample, Shape, _samples_one_by_one, samples_at_once
from engine.sink.store import DeadLetter, Store
from helpers.stack import Pipeline

names = st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s)
labels = st.dictionaries(names, names, max_size=3)
values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53))
sample = st.tuples(names, labels, values, st.text(max_size=6).filter(lambda s: "\x00" not in s))


@settings(max_examples=300, deadline=None)
@given(st.lists(sample.map(list), max_size=20))
def test_samples_at_once_equals_the_per_sample_loop(items: list[list[Any]]) -> None:
    assert _rows(samples_at_once(items)) == _rows(_samples_one_by_one(items))


def _rows(parsed: tuple[Shape, tuple[float, ...]] | None) -> list[tuple[str, str, float, str]]:
    assert parsed is not None
    shape, values = parsed
    return shape.rows(values)


def test_events_of_one_shape_share_one_shape_object() -> None:
    """The store keys its series-id vectors on the shape object: the decoder must hand the
    same one for the same layout, whatever the values, and another for another layout."""
    items = [["cpu.percent", {"cpu": "total"}, 1.5, "%"], ["load.1m", {}, 2, ""]]
    again = [["cpu.percent", {"cpu": "total"}, 9.0, "%"], ["load.1m", {}, 0.25, ""]]
    other = [["cpu.percent", {"cpu": "0"}, 1.5, "%"], ["load.1m", {}, 2, ""]]
    first, second, third = (samples_at_once(x) for x in (items, again, other))
    assert first is not None and second is not None and third is not None
    assert first[0] is second[0] and first[0] is not third[0]
    assert second[1] == (9.0, 0.25)


def test_a_real_collection_takes_the_fast_path() -> None:
    collector = HostCollector(COLLECTOR_NAMES)
    collector.collect()
    items = orjson.loads(orjson.dumps(metrics_payload(collector.collect())))["samples"]
    assert items and _rows(samples_at_once(items)) == _rows(_samples_one_by_one(items))


BAD_SAMPLES: dict[str, list[Any]] = {
    "not a list": [("m", {}, 1.0, "")],
    "three fields": [["m", {}, 1.0]],
    "empty metric": [["", {}, 1.0, ""]],
    "long metric": [["m" * 201, {}, 1.0, ""]],
    "labels list": [["m", [], 1.0, ""]],
    "label value number": [["m", {"a": 1}, 1.0, ""]],
    "bool value": [["m", {}, True, ""]],
    "string value": [["m", {}, "1", ""]],
    "null unit": [["m", {}, 1.0, None]],
    "long unit": [["m", {}, 1.0, "u" * 41]],
    "infinite": [["m", {}, math.inf, ""]],
    "one bad among good": [["m", {}, 1.0, ""], ["m", {}, None, ""]],
}


@pytest.mark.parametrize("case", sorted(BAD_SAMPLES))
def test_samples_at_once_leaves_every_bad_sample_to_the_loop(case: str) -> None:
    items = BAD_SAMPLES[case]
    assert samples_at_once(items) is None
    with pytest.raises(BadSample):
        _samples_one_by_one(items)


def test_a_nul_escape_takes_the_careful_path_and_is_rejected() -> None:
    now = datetime.now(UTC)
    doc = {
        "v": "1.0",
        "id": str(uuid.uuid4()),
        "type": "metrics",
        "agent": "a",
        "host": "h",
        "observed_at": now.isoformat(),
        "payload": {"samples": [["m", {"dev": "sd\x00a"}, 1.0, ""]]},
    }
    with pytest.raises(Invalid, match="nul_character"):
        decode_event(orjson.dumps(doc), now=now, max_age=timedelta(days=1))


def _event(at: datetime, samples: list[tuple[str, str, float, str]]) -> MetricsEvent:
    return MetricsEvent.of(uuid.uuid4(), "agent-1", "host-1", at, samples)


async def test_binary_copy_rows_read_back_exactly(pipeline: Pipeline) -> None:
    await migrate(pipeline.stack.dsn, pipeline.schema)
    store = Store(pipeline.stack.dsn, pipeline.schema)
    await store.connect()
    at = datetime.now(timezone(timedelta(hours=5, minutes=30))).replace(microsecond=123457)
    samples = [
        ("cpu.percent", '{"cpu":"total"}', 12.5, "%"),
        ("net.recv_bytes_total", '{"interface":"eth0"}', 2**53, "bytes"),
        ("temp", "{}", -0.1, "C"),
        ("tiny", "{}", 5e-324, ""),
        ("huge", "{}", 1.7976931348623157e308, ""),
    ]
    try:
        result = await store.write_batch([_event(at, samples)], [], [])
        later = _event(at + timedelta(days=-1, microseconds=1), samples[:1])
        result2 = await store.write_batch([later], [], [])
    finally:
        await store.close()
    assert (result.rows, result2.rows) == (5, 1)
    rows = pipeline.query("SELECT ts, metric, labels::text, value, unit FROM samples_v")
    got = sorted((r[0], r[1], orjson.dumps(orjson.loads(r[2])).decode(), r[3], r[4]) for r in rows)
    want = sorted(
        [(at, m, lab, float(v), u) for m, lab, v, u in samples]
        + [(later.observed_at, *samples[0][:2], 12.5, "%")]
    )
    assert got == want


async def test_an_event_repeated_within_one_batch_is_stored_once(pipeline: Pipeline) -> None:
    await migrate(pipeline.stack.dsn, pipeline.schema)
    store = Store(pipeline.stack.dsn, pipeline.schema)
    await store.connect()
    event = _event(datetime.now(UTC), [("load.1m", "{}", 0.5, ""), ("load.5m", "{}", 0.7, "")])
    try:
        result = await store.write_batch([event, event], [], [])
    finally:
        await store.close()
    assert (result.events, result.duplicates, result.rows) == (1, 1, 2)
    assert pipeline.query("SELECT count(*) FROM samples_v") == [(2,)]


def test_new_event_ids_are_distinct_time_ordered_uuids() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert all(str(u) == i for u, i in zip(parsed, ids, strict=True))
    millis = [u.int >> 80 for u in parsed]
    assert before <= min(millis) and max(millis) <= after
    assert millis == sorted(millis)


def test_a_timing_beyond_the_real_column_range_is_a_dead_letter_not_a_crash() -> None:
    now = datetime.now(UTC)
    payload = {"target": "t", "url": "http://x/", "method": "GET", "ok": True, "dns_ms": 1e300}
    raw = encode_event("check", "a", "h", now, payload)
    with pytest.raises(Invalid, match="out_of_range: dns_ms"):
        decode_event(raw, now=now, max_age=timedelta(days=1))
    payload["dns_ms"] = 3.0e38
    event = decode_event(
        encode_event("check", "a", "h", now, payload), now=now, max_age=timedelta(days=1)
    )
    assert event.row[7] == 3.0e38


@pytest.mark.parametrize(
    "tz",
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(seconds=3630))],
    ids=["utc", "plus-0530", "seconds-offset"],
)
def test_encoded_timestamps_decode_to_the_same_instant(tz: timezone) -> None:
    at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=tz)
    now = datetime.now(UTC)
    raw = encode_event("metrics", "a", "h", at, {"samples": []})
    event = decode_event(raw, now=at, max_age=timedelta(days=1))
    assert event.observed_at == at and event.observed_at.utcoffset() == at.utcoffset()
    assert abs(datetime.fromisoformat(orjson.loads(raw)["sent_at"]) - now) < timedelta(minutes=1)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(1, 64))
def test_key_partitioner_agrees_with_aiokafka(key: bytes, partitions: int) -> None:
    all_partitions = list(range(partitions))
    ours = KeyPartitioner()
    expected = DefaultPartitioner()(key, all_partitions, all_partitions)
    assert ours(key, all_partitions, all_partitions) == expected
    assert ours(key, all_partitions, []) == expected  # remembered, and unavailability ignored


async def test_binary_copy_check_rows_read_back_exactly(pipeline: Pipeline) -> None:
    await migrate(pipeline.stack.dsn, pipeline.schema)
    store = Store(pipeline.stack.dsn, pipeline.schema)
    await store.connect()
    at = datetime.now(UTC).replace(microsecond=654321)
    cert = datetime(2027, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    full = ("web ✓", "https://x/é?q=1", "GET", True, 200, None, None)
    full += (1.5, 2.25, 3.0, 0.125, 7.75, True, cert, "192.0.2.7", "eu")
    bare = ("down", "http://y/", "HEAD", False, None, "timeout", "no answer in 5 s")
    bare += (None, None, None, None, 9.5, None, None, None, None)
    events = [CheckEvent(uuid.uuid4(), "agent-ü", "h", at, row) for row in (full, bare)]
    try:
        result = await store.write_batch([], events, [])
    finally:
        await store.close()
    assert result.rows == 2
    columns = ", ".join(f'"{c}"' for c in ("ts", "event_id", "agent", *CHECK_FIELDS))
    got = sorted(pipeline.query(f"SELECT {columns} FROM checks"), key=lambda r: r[3])
    want = sorted(((at, e.event_id, e.agent, *e.row) for e in events), key=lambda r: r[3])
    assert got == want


async def test_a_replayed_batch_mixing_old_and_new_events_stores_only_the_new(
    pipeline: Pipeline,
) -> None:
    await migrate(pipeline.stack.dsn, pipeline.schema)
    store = Store(pipeline.stack.dsn, pipeline.schema)
    await store.connect()
    now = datetime.now(UTC)
    old = [_event(now, [("load.1m", "{}", float(i), "")]) for i in range(3)]
    new = [_event(now, [("load.1m", "{}", 10.0 + i, "")]) for i in range(2)]
    try:
        first = await store.write_batch(old, [], [])
        replay = await store.write_batch([*old[1:], *new], [], [])
    finally:
        await store.close()
    assert (first.events, first.duplicates, first.rows) == (3, 0, 3)
    assert (replay.events, replay.duplicates, replay.rows) == (2, 2, 2)
    values = sorted(v for (v,) in pipeline.query("SELECT value FROM samples_v"))
    assert values == [0.0, 1.0, 2.0, 10.0, 11.0]
    assert pipeline.query("SELECT count(*) FROM events") == [(5,)]


async def test_a_replayed_batch_is_written_again_whole_with_its_dead_letters_once(
    pipeline: Pipeline,
) -> None:
    """The claim has no savepoint: a stored event rolls the whole transaction back, and the
    second pass must still store every new row and dead letter once, and count them once."""
    await migrate(pipeline.stack.dsn, pipeline.schema)
    store = Store(pipeline.stack.dsn, pipeline.schema)
    await store.connect()
    now = datetime.now(UTC)
    old = _event(now, [("load.1m", "{}", 1.0, "")])
    new = _event(now, [("load.1m", "{}", 2.0, ""), ("load.5m", "{}", 3.0, "")])
    dead = DeadLetter("t", 0, 7, "not_json", b"{")
    try:
        await store.write_batch([old], [], [])
        replay = await store.write_batch([old, new], [], [dead])
    finally:
        await store.close()
    assert (replay.events, replay.duplicates, replay.rows, replay.dead_letters) == (1, 1, 2, 1)
    assert replay.newest_observed_at == now
    values = sorted(v for (v,) in pipeline.query("SELECT value FROM samples_v"))
    assert values == [1.0, 2.0, 3.0]
    assert pipeline.query('SELECT "offset", reason FROM dead_letters') == [(7, "not_json")]


_texts = st.one_of(st.none(), st.text(max_size=3), st.text(min_size=99, max_size=102), st.just(""))
_numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=3.0e38, max_value=1e39),
    st.integers(-5, 2000),
    st.booleans(),
)
_check_payloads = st.fixed_dictionaries(
    {
        "target": _texts,
        "url": _texts,
        "method": st.one_of(_texts, st.just("GET")),
        "ok": st.one_of(st.booleans(), st.none(), st.just(1)),
        "status_code": _numbers,
        "reason": _texts,
        "error": _texts,
        "dns_ms": _numbers,
        "total_ms": _numbers,
        "content_match": st.one_of(st.booleans(), st.none(), st.just("yes")),
        "cert_expires_at": st.one_of(
            st.none(), st.just("2027-01-01T00:00:00+00:00"), st.just("2027-01-01"), st.just("x")
        ),
        "location": _texts,
    }
)


@settings(max_examples=400, deadline=None)
@given(_check_payloads)
def test_check_row_at_once_equals_the_careful_path(payload: dict[str, Any]) -> None:
    """The fast path gives exactly the careful path's row, or steps aside (None) and leaves
    the careful path to accept or name the problem."""
    fast = _check_row_at_once(payload)
    try:
        careful = _check_row(payload)
    except Invalid:
        assert fast is None
        return
    assert fast is None or fast == careful


def test_a_real_check_result_takes_the_fast_path() -> None:
    at = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    result = CheckResult(
        target="t", url="https://x/", method="GET", started_at=at, ok=True, status_code=200,
        reason=None, error=None, content_match=None,
        dns_ms=1.5, connect_ms=2.0, tls_ms=3.0, ttfb_ms=4.0, total_ms=10.5,
        cert_expires_at=at + timedelta(days=30), resolved_ip="192.0.2.1",
    )  # fmt: skip
    payload = orjson.loads(orjson.dumps(result.to_payload()))
    assert (fast := _check_row_at_once(payload)) is not None
    assert fast == _check_row(payload)
