"""The sink's batches while it drains a backlog (engine/sink/fetch.py).

aiokafka's getmany() drains one fetched partition after another, so a drain's batches used to
hold one topic's events only: the check events' batches left PostgreSQL idle while Python
decoded, the samples' batches the other way round. These tests hold the fix to its two
promises on real Kafka: each batch takes every partition's share of the backlog, and nothing
is lost, repeated or reordered on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from engine.sink.fetch import fetch_batch, shares
from helpers.stack import StackInfo

A, B = TopicPartition("a", 0), TopicPartition("b", 0)


def test_shares_are_proportional_and_sum_to_the_limit() -> None:
    got = shares({A: 2000, B: 1000, TopicPartition("c", 0): 1}, 300)
    assert sum(got.values()) == 300
    assert got[A] == 200 and got[B] == 100  # the remainder went to the largest remainder
    assert shares({A: 7, B: 7}, 5) in ({A: 3, B: 2}, {A: 2, B: 3})


def test_no_shares_when_the_backlog_fits_or_sits_on_one_partition() -> None:
    assert shares({A: 100, B: 100}, 300) == {}  # one plain getmany() takes it all
    assert shares({A: 5000, B: 0}, 300) == {}
    assert shares({A: 5000}, 300) == {}
    assert shares({}, 300) == {}


async def test_a_backlog_is_drained_in_mixed_batches_with_nothing_lost(stack: StackInfo) -> None:
    tag = uuid.uuid4().hex[:8]
    checks, metrics = f"fetch-{tag}.checks", f"fetch-{tag}.metrics"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(checks, 1, 1), NewTopic(metrics, 1, 1)])
        sent = {checks: 3000, metrics: 1500}
        await _fill(stack.bootstrap, sent)
        await _drain(stack.bootstrap, sent)
    finally:
        with contextlib.suppress(KafkaError):
            await admin.delete_topics([checks, metrics])
        await admin.close()


async def _fill(bootstrap: str, counts: dict[str, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        for topic, n in counts.items():
            for i in range(n):
                await producer.send(topic, str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _drain(bootstrap: str, counts: dict[str, int]) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, 0) for t in counts]
        consumer.assign(tps)
        seen: dict[str, list[int]] = {t: [] for t in counts}
        mixed: list[dict[str, int]] = []
        async with asyncio.timeout(60):
            # One record from each partition first: their high-water marks come with it.
            for tp in tps:
                while not (got := await consumer.getmany(tp, timeout_ms=500, max_records=1)):
                    pass
                seen[tp.topic] += [int(r.value or b"") for r in got[tp]]
            while sum(map(len, seen.values())) < sum(counts.values()):
                batch = await fetch_batch(consumer, 500, 300)
                sizes = {tp.topic: len(records) for tp, records in batch.items()}
                if sum(sizes.values()) == 300:
                    mixed.append(sizes)
                for tp, records in batch.items():
                    seen[tp.topic] += [int(r.value or b"") for r in records]
    finally:
        await consumer.stop()
    assert seen == {t: list(range(n)) for t, n in counts.items()}  # all, once, in order
    checks, metrics = counts
    # While both had a backlog, every full batch took both, in proportion (2:1, within one).
    assert len(mixed) >= 5, mixed
    for sizes in mixed[:5]:
        assert abs(sizes.get(checks, 0) - 200) <= 1 and abs(sizes.get(metrics, 0) - 100) <= 1
