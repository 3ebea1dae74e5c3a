"""Kafka offsets on the sink's side: lag per partition, and commits our timeout walked away from."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

log = logging.getLogger("metrictui.sink")


async def partition_lag(
    consumer: AIOKafkaConsumer, pending: dict[TopicPartition, int]
) -> dict[tuple[str, int], int]:
    """Lag per partition: end of the log minus the first offset not yet in PostgreSQL.

    While a batch waits for the database, the fetcher is idle and its high-water marks go
    stale, so the end offsets are asked for (bounded); otherwise they are free.
    """
    assigned = list(consumer.assignment())
    ends: dict[TopicPartition, int] = {}
    if pending and assigned:
        try:
            async with asyncio.timeout(2.0):
                ends = await consumer.end_offsets(assigned)
        except (KafkaError, IllegalStateError, TimeoutError):
            ends = {}
    lag: dict[tuple[str, int], int] = {}
    for tp in assigned:
        high = ends.get(tp, consumer.highwater(tp))
        if high is None:
            continue
        if tp in pending:
            done = pending[tp]
        else:
            try:  # position() waits for an offset reset if there is one pending
                async with asyncio.timeout(1.0):
                    done = await consumer.position(tp)
            except (KafkaError, IllegalStateError, TimeoutError):
                continue
        lag[(tp.topic, tp.partition)] = max(0, high - done)
    return lag


def adopt_orphaned_commits() -> None:
    """Retrieve the outcome of commit requests our timeout walked away from.

    aiokafka sends a commit inside `asyncio.shield`; when our timeout cancels the wait, shield
    (Python 3.11) drops its hold on the request, which goes on and may fail later (a dead
    coordinator: RequestTimedOutError) with nobody to see it, and asyncio logs "Task exception
    was never retrieved". The next batch's commit covers those offsets, so the failure only
    needs to be seen here, at debug level.
    """
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        if getattr(coro, "__qualname__", "") == "GroupCoordinator._do_commit_offsets":
            task.add_done_callback(_note_orphaned_commit)


def _note_orphaned_commit(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("an abandoned offset commit failed: %s", type(exc).__name__)
