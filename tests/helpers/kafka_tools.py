"""Plain Kafka client helpers for tests: read a whole topic, write raw messages."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[bytes]:
    """Every message value currently in `topic` (all partitions, from the beginning)."""
    # Without a group, a subscription is assigned every partition of the topic.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            while not consumer.assignment():
                await asyncio.sleep(0.1)
        tps = sorted(consumer.assignment())
        end = await consumer.end_offsets(tps)
        values: list[bytes] = []
        async with asyncio.timeout(timeout):
            while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    values += [m.value for m in messages if m.value is not None]
        return values
    finally:
        await consumer.stop()


def event_ids(values: Sequence[bytes]) -> list[str]:
    return [orjson.loads(v)["id"] for v in values]


async def send_raw(bootstrap: str, topic: str, values: Sequence[bytes | None]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            # A tombstone (None value) needs a key.
            await producer.send_and_wait(topic, value, key=b"raw" if value is None else None)
    finally:
        await producer.stop()
