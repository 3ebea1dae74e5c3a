"""Hand records to aiokafka as whole batches, and read back how each record ended.

`AIOKafkaProducer.send()` costs a coroutine, a metadata wait, a partitioner call, a size check
and a future per record, and resolving those futures costs as much again; for the shipper,
which always has a list of records in hand, that was more than the rest of the producer path
together. Here the records are grouped per partition into aiokafka `BatchBuilder`s (the same
record batches `send()` builds, with the same idempotent sequence numbers), each handed over
with `send_batch()`: one future per batch instead of one per record.

A `Flight` is one such hand-over: its records in submission order and the batch futures that
cover them. Per partition, aiokafka's idempotent producer delivers batches in order, so the
records a failed flight did not get confirmed are, per key, a tail; the shipper spools them in
this order and order by key is kept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from engine.kafka.producer_parts import KeyPartitioner
from engine.kafka.spool import SpoolRecord


@dataclass(slots=True)
class Outcome:
    """How the records of a flight ended, in submission order."""

    done: list[bool]
    """Per record: acknowledged by Kafka, or rejected for good (never to be sent again)."""
    produced: int = 0
    rejected: list[tuple[int, BaseException]] = field(default_factory=list)
    """Events Kafka refused for good, with the error, per batch (counted as dropped)."""
    failure: BaseException | None = None
    """Why some records are not done (a retriable error, or no answer in time)."""


@dataclass(slots=True)
class Flight:
    """Records handed to aiokafka in one go and the batch futures that say how they ended."""

    records: Sequence[SpoolRecord]
    batches: list[tuple[asyncio.Future[Any], list[int]]] = field(default_factory=list)
    """Each batch's delivery future and the indices (into `records`) of its records."""
    too_large: list[int] = field(default_factory=list)
    """Records over max_request_size: aiokafka's send() would refuse them, so do we."""
    deadline: float = 0.0
    """Monotonic time by which Kafka must have answered for every batch."""
    failure: BaseException | None = None
    """An error while handing the batches over; batches not handed over are not done."""
    outcome: Outcome | None = None
    """Set by the first `settle`, which the shipper counts; later calls return it again."""

    def landed(self) -> bool:
        """True when Kafka has answered for every batch (no await: a cheap poll)."""
        return all(fut.done() for fut, _ in self.batches)

    async def wait(self) -> None:
        """Until every batch is answered or the deadline passes (then `settle` says so)."""
        pending = [fut for fut, _ in self.batches if not fut.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, self.deadline - time.monotonic()))

    def settle(self) -> Outcome:
        """Per record, whether it is done; never waits. Unanswered batches are not done."""
        if self.outcome is not None:
            return self.outcome
        out = self.outcome = Outcome([False] * len(self.records), failure=self.failure)
        done = out.done
        if self.too_large:
            size = len(self.too_large)
            out.rejected.append((size, MessageSizeTooLargeError("over max_request_size")))
            for i in self.too_large:
                done[i] = True
        for fut, indices in self.batches:
            if not fut.done():
                out.failure = out.failure or TimeoutError("Kafka did not answer in time")
                fut.cancel()
                continue
            if fut.cancelled():
                out.failure = out.failure or TimeoutError("send cancelled")
                continue
            error = fut.exception()
            if error is None:
                out.produced += len(indices)
            elif isinstance(error, KafkaError) and not getattr(error, "retriable", True):
                out.rejected.append((len(indices), error))
            else:
                out.failure = out.failure or error
                continue
            for i in indices:
                done[i] = True
        return out


def _partitions(producer: AIOKafkaProducer, topic: str) -> tuple[list[int], list[int]]:
    cluster = producer.client.cluster
    every = sorted(cluster.partitions_for_topic(topic) or ())
    return every, sorted(cluster.available_partitions_for_topic(topic) or ())


async def launch(
    producer: AIOKafkaProducer,
    partitioner: KeyPartitioner,
    records: Sequence[SpoolRecord],
    max_request_size: int,
    timeout: float,
) -> Flight:
    """Build per-partition batches of `records` and hand them to `producer`.

    Errors while handing over (Kafka away, no metadata in time) are kept in the flight, not
    raised: the batches handed over so far may still be delivered, and `settle` tells them
    apart from the rest.
    """
    flight = Flight(records, deadline=time.monotonic() + timeout)
    try:
        async with asyncio.timeout(timeout):
            for topic in {rec.topic for rec in records}:
                await producer.partitions_for(topic)  # metadata, as send() would wait for it
            await _hand_over(producer, partitioner, flight, max_request_size)
    except (TimeoutError, KafkaError, OSError) as exc:
        flight.failure = exc
    return flight


async def _hand_over(
    producer: AIOKafkaProducer, partitioner: KeyPartitioner, flight: Flight, max_size: int
) -> None:
    """Fill batches per partition in record order, then submit them round-robin over the
    partitions (aiokafka holds one waiting batch per partition; the others need not wait)."""
    open_: dict[tuple[str, int], tuple[BatchBuilder, list[int]]] = {}
    full: dict[tuple[str, int], list[tuple[BatchBuilder, list[int]]]] = {}
    topics: dict[str, tuple[list[int], list[int]]] = {}
    estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes
    for i, rec in enumerate(flight.records):
        near_max = len(rec.value) + len(rec.key or b"") + 1024 > max_size  # skips most estimates
        if near_max and estimate(rec.key, rec.value, []) > max_size:
            flight.too_large.append(i)
            continue
        parts = topics.get(rec.topic)
        if parts is None:
            parts = topics[rec.topic] = _partitions(producer, rec.topic)
        tp = (rec.topic, partitioner(rec.key, *parts))
        current = open_.get(tp)
        if current is None:
            current = open_[tp] = (producer.create_batch(), [])
        if current[0].append(timestamp=None, key=rec.key, value=rec.value) is None:
            # Full: an empty batch always takes its first record.
            full.setdefault(tp, []).append(current)
            current = open_[tp] = (producer.create_batch(), [])
            current[0].append(timestamp=None, key=rec.key, value=rec.value)
        current[1].append(i)
    for tp, current in open_.items():
        if current[1]:
            full.setdefault(tp, []).append(current)
    queues = list(full.items())
    while queues:
        for tp, batches in queues:
            builder, indices = batches.pop(0)
            builder.close()  # closed: aiokafka sends it without lingering
            fut = await producer.send_batch(builder, tp[0], partition=tp[1])
            flight.batches.append((fut, indices))
        queues = [(tp, batches) for tp, batches in queues if batches]
