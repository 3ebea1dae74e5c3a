"""The pieces of the shipper that handle aiokafka's producer itself, not our queue or spool."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner


class KeyPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, as the Java clients), remembered
    per key. Keys are agent and target names, a few thousand at most, and the pure-Python
    hash costs more than the rest of a send; keyless records still go anywhere available."""

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._default = DefaultPartitioner()
        self._known: dict[tuple[bytes, int], int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        cache_key = (key, len(all_partitions))  # partitions are always 0..n-1
        partition = self._known.get(cache_key)
        if partition is None:
            if len(self._known) >= self.MAX_KEYS:
                self._known.clear()
            partition = int(self._default(key, all_partitions, available))
            self._known[cache_key] = partition
        return partition


async def abandon_producer(producer: AIOKafkaProducer, timeout: float) -> None:
    """Tear down a producer without flushing it (see Shipper._close_producer).

    Cancels its sender (which then waits for its requests in flight, each bounded by the
    request timeout) and closes its connections. Its undelivered batches are dropped with it:
    our copies of those records are in the spool.
    """
    sender = getattr(producer, "_sender", None)  # aiokafka has no public abort
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            if sender is not None:
                await sender.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await producer.client.close()
    # What stop() would have set first; without it aiokafka warns "Unclosed AIOKafkaProducer".
    producer._closed = True


def bury_producer(
    producer: AIOKafkaProducer, timeout: float, keep: set[asyncio.Task[None]]
) -> None:
    """Abandon `producer` in a task held in `keep` until it is done, so it really finishes."""
    task = asyncio.create_task(abandon_producer(producer, timeout), name="shipper-abandon-producer")
    keep.add(task)
    task.add_done_callback(keep.discard)
