"""Plain Kafka client helpers for tests: read a whole topic, write raw messages."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


async def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[bytes]:
    """Every message value currently in `topic` (all partitions, from the beginning)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        for _ in range(50):
            if partitions:
                break
            await asyncio.sleep(0.2)
            await consumer.topics()  # refreshes cluster metadata
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        values: list[bytes] = []
        async with asyncio.timeout(timeout):
            while any(await consumer.position(tp) < end[tp] for tp in tps):
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
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
