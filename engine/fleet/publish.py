"""Writing the targets table: publish targets and tombstones to the compacted targets topic.

Used by `metrictui targets import` and by the dashboard's edits when the topic is the source.
The caller has validated every target; this only delivers, and returns once Kafka confirmed
every record (acks=all, idempotent), or raises.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from engine.config.model import KafkaConfig
from engine.fleet.records import encode_target, tombstone
from engine.kafka.settings import client_kwargs
from engine.targets.model import Target


async def publish_targets(
    cfg: KafkaConfig,
    upserts: Iterable[Target] = (),
    deletes: Iterable[str] = (),
    *,
    client_id: str = "metrictui-targets",
    timeout: float = 60.0,
) -> int:
    """Publish `upserts` and tombstone `deletes`; returns how many records Kafka confirmed."""
    producer = AIOKafkaProducer(
        **client_kwargs(cfg, client_id), acks="all", enable_idempotence=True, linger_ms=5
    )
    records: list[tuple[bytes, bytes | None]] = [encode_target(t) for t in upserts]
    records += [tombstone(name) for name in deletes]
    try:
        async with asyncio.timeout(timeout):
            await producer.start()
            futures = [
                await producer.send(cfg.targets_topic, key=key, value=value)
                for key, value in records
            ]
            await producer.flush()
            for future in futures:
                await future
    finally:
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            async with asyncio.timeout(5):
                await producer.stop()
    return len(records)
