"""The shipper hands whole batches to aiokafka and keeps several flights in the air: every event
still arrives once, in order per key, and every event is counted (produced or dropped)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from engine.config import load_config
from engine.kafka.flights import Flight
from engine.kafka.shipper import Shipper
from engine.kafka.spool import Spool, SpoolRecord
from engine.kafka.topics import ensure_topics
from engine.stats import Stats
from helpers.stack import Pipeline


def _records(n: int) -> list[SpoolRecord]:
    return [SpoolRecord("t", b"k", str(i).encode()) for i in range(n)]


def _answered(result: object = None, error: BaseException | None = None) -> asyncio.Future[object]:
    fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    if error is None:
        fut.set_result(result)
    else:
        fut.set_exception(error)
    return fut


async def test_a_flight_is_done_exactly_where_kafka_confirmed_or_refused_for_good() -> None:
    pending = asyncio.get_running_loop().create_future()
    flight = Flight(
        _records(8),
        batches=[
            (_answered(), [0, 2]),
            (_answered(error=KafkaConnectionError("gone")), [1, 3]),
            (_answered(error=MessageSizeTooLargeError("too big")), [4]),
            (pending, [5, 6]),
        ],
        too_large=[7],
    )
    out = flight.settle()
    assert out.done == [True, False, True, False, True, False, False, True]
    assert out.produced == 2
    assert sorted(n for n, _ in out.rejected) == [1, 1]
    assert isinstance(out.failure, KafkaConnectionError)
    assert pending.cancelled()  # nobody is left waiting on it
    assert flight.settle() is out  # counted once, however often it is asked


async def test_a_flight_not_answered_in_time_says_so() -> None:
    flight = Flight(_records(2), batches=[(_answered(), [0])], failure=TimeoutError("late"))
    out = flight.settle()
    assert out.done == [True, False]
    assert isinstance(out.failure, TimeoutError)


def _consume(bootstrap: str, topics: list[str], expected: int) -> list[tuple[bytes | None, bytes]]:
    async def run() -> list[tuple[bytes | None, bytes]]:
        consumer = AIOKafkaConsumer(
            *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        got: list[tuple[bytes | None, bytes]] = []
        try:
            async with asyncio.timeout(60):
                while len(got) < expected:
                    batch = await consumer.getmany(timeout_ms=500)
                    for messages in batch.values():
                        got += [(m.key, m.value) for m in messages if m.value is not None]
                await asyncio.sleep(1)  # anything sent twice would show up by now
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    got += [(m.key, m.value) for m in messages if m.value is not None]
        finally:
            await consumer.stop()
        return got

    return asyncio.run(run())


@pytest.mark.integration
def test_a_burst_arrives_once_in_order_per_key_and_every_event_is_counted(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    # Small batches: many batches per partition and many flights in the air at once.
    config = load_config(pipeline.write_config(kafka={"max_batch_bytes": 8192}), env={})
    k = config.kafka
    keys = [f"agent-{i}".encode() for i in range(7)] + [None]
    sent = 6_000
    oversized = SpoolRecord(k.metrics_topic, b"agent-0", b"x" * 1_100_000)

    async def ship() -> Stats:
        await ensure_topics(k)
        stats = Stats("producer", "test")
        shipper = Shipper(k, Spool(tmp_path / "spool", 64 * 1024 * 1024), stats, "test")
        await shipper.start()
        try:
            for i in range(sent):
                key = keys[i % len(keys)]
                topic = k.metrics_topic if i % 3 else k.checks_topic
                shipper.submit(topic, key, orjson.dumps({"key": str(key), "seq": i}))
                if i == sent // 2:
                    shipper.submit(oversized.topic, oversized.key, oversized.value)
                if i % 400 == 399:
                    await asyncio.sleep(0)
            async with asyncio.timeout(60):
                while stats.produced.total + stats.send_errors_total < sent + 1:
                    await asyncio.sleep(0.01)
            assert shipper.spool.depth == 0
        finally:
            await shipper.stop()
        return stats

    stats = asyncio.run(ship())
    assert stats.produced.total == sent
    assert stats.send_errors_total == 1 and stats.spool_dropped_total == 1
    got = _consume(pipeline.stack.bootstrap, [k.metrics_topic, k.checks_topic], sent)
    docs = [orjson.loads(value) for _, value in got]
    assert sorted(d["seq"] for d in docs) == list(range(sent))  # each once, none lost
    for key in keys:
        if key is None:
            continue
        # Per key (one partition per topic), in the order submitted.
        for topic_mod in (0, 1):
            seqs = [
                d["seq"]
                for (k_, _), d in zip(got, docs, strict=True)
                if k_ == key and (d["seq"] % 3 != 0) == bool(topic_mod)
            ]
            assert seqs == sorted(seqs)
