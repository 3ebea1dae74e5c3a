"""The real consumer (engine/sink/consume.py) under measurement.

The sink runs unmodified; the benchmark only listens on its `on_written` hook to note the moment
each batch's transaction committed (and, for freshness, how old its events were by then).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime

from bench.kafka_parts import TIMEOUT_S, wait_assigned
from bench.measure import Throughput
from engine.config import Config
from engine.db.migrate import migrate
from engine.envelope import CheckEvent, MetricsEvent
from engine.sink.consume import Sink
from engine.sink.decode import Batch
from engine.sink.store import WriteResult
from engine.stats import Stats

OnCommit = Callable[[Sequence[MetricsEvent], Sequence[CheckEvent], datetime], None]


class SinkRunner:
    """One real `Sink` in this event loop, with commit times noted."""

    def __init__(self, config: Config, on_commit: OnCommit | None = None) -> None:
        self.config = config
        self.stats = Stats("consumer", "bench")
        self.sink = Sink(config, self.stats, "bench-sink")
        self.rows = 0
        self.events = 0
        self.last_commit = 0.0
        self._on_commit = on_commit
        self._want_rows: int | None = None
        self._reached = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, days: Iterable[date] = ()) -> float:
        """Migrate, make the daily partitions of `days` (the raw COPY finds its tables made
        too), connect and run; returns the moment the consumer got its partitions."""
        assert self.config.postgres.dsn is not None
        await migrate(self.config.postgres.dsn.reveal(), self.config.postgres.schema)
        await self.sink.connect_postgres()
        await self.sink.store.ensure_partitions(days)
        self.sink.on_written = self._written
        self._task = asyncio.create_task(self.sink.run(), name="bench-sink")
        async with asyncio.timeout(60):
            return await wait_assigned(lambda: self.sink.consumer)

    def _written(self, batch: Batch, result: WriteResult) -> None:
        self.last_commit = time.perf_counter()
        self.rows += result.rows
        self.events += result.events
        if self._on_commit is not None:
            self._on_commit(batch.metrics, batch.checks, datetime.now(UTC))
        if self._want_rows is not None and self.rows >= self._want_rows:
            self._reached.set()

    async def wait_rows(self, rows: int) -> None:
        self._want_rows = rows
        if self.rows >= rows:
            return
        async with asyncio.timeout(TIMEOUT_S):
            await self._reached.wait()

    async def stop(self) -> None:
        await self.sink.stop()
        if self._task is not None:
            async with asyncio.timeout(30):
                await self._task
        await self.sink.close()


async def sink_drain(
    config: Config, expected_rows: int, expected_events: int, days: Iterable[date]
) -> Throughput:
    """The real sink draining a pre-filled topic: partitions assigned -> last row committed."""
    runner = SinkRunner(config)
    try:
        started = await runner.start(days)
        # The sink runs in this process, alone: process CPU over the drain is its CPU
        # (aiokafka's fetching and decompression included), the cost per row to judge.
        cpu = time.process_time()
        await runner.wait_rows(expected_rows)
        cpu = time.process_time() - cpu
    finally:
        await runner.stop()
    if runner.events != expected_events or runner.rows != expected_rows:
        raise RuntimeError(
            f"sink wrote {runner.events} events / {runner.rows} rows,"
            f" expected {expected_events} / {expected_rows}"
        )
    return Throughput(runner.events, runner.rows, runner.last_commit - started, cpu)
