"""The consumer side: Kafka batches into PostgreSQL, offsets committed only after the rows.

Loop: `getmany` a batch -> decode and validate every message (bad ones become dead letters, so
a partition never stalls on a poison message) -> one PostgreSQL transaction (engine/sink/store.py)
-> commit the Kafka offsets. If PostgreSQL is away, the same batch is retried with backoff and
no offset moves; lag grows and drains later. If the database rejects a batch for its content,
it is written event by event and the rejected events are dead-lettered with the SQL state.

Pipelined: while one batch is written (this process waits on PostgreSQL), the next is fetched
and decoded, so Python and PostgreSQL work at the same time. A decoded batch is queued on the
next of the writer threads (engine/sink/row_writer.py), whose transactions run side by side and
follow each other without waiting for the event loop; a batch they cannot take goes the careful
way on the store's connection. Offsets are committed in batch order, each only once every
batch before it is in PostgreSQL. Batches come from engine/sink/fetch.py: a backlog is drawn
from every partition at once, so a batch mixes check events and samples as they were produced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from engine.config import Config
from engine.db.pg_errors import (
    is_fatal_postgres_error,
    postgres_error_line,
    postgres_problem,
    rejects_content,
)
from engine.envelope import CheckEvent, HeartbeatEvent, MetricsEvent
from engine.errors import ConnectError
from engine.process_gc import keep_startup_out_of_gc
from engine.sink.agents import HeartbeatKeeper
from engine.sink.decode import Batch, decode_messages, loop_keeps_pace
from engine.sink.fetch import Batches, Records
from engine.sink.kafka_link import KafkaLink
from engine.sink.offsets import adopt_orphaned_commits, partition_lag
from engine.sink.poison import write_one_by_one
from engine.sink.row_writer import RowWriters
from engine.sink.store import DeadLetter, Encoded, Store, WriteResult
from engine.stats import ConnState, Stats
from engine.tasks import cancel_and_wait, sleep_unless

T = TypeVar("T")

log = logging.getLogger("metrictui.sink")

# Messages in a batch fetched while the pipeline is empty (see Sink._batch_size).
FIRST_BATCH_MAX = 500


class Sink:
    """Owns the Kafka consumer and the store; `run()` is the engine's consumer task."""

    def __init__(
        self, config: Config, stats: Stats, client_id: str, *, tune_gc: bool = True
    ) -> None:
        self.config = config
        self.stats = stats
        self.client_id = client_id
        dsn = config.postgres.dsn
        if dsn is None:
            raise ConnectError("[postgres] dsn is not set: the consumer needs a PostgreSQL DSN")
        self.store = Store(dsn.reveal(), config.postgres.schema)
        self.writers = RowWriters(dsn.reveal(), config.postgres.schema, writer_count(config))
        # Batches handed on and not yet done: one being written by each writer, one queued.
        self.in_flight_max = max(2, len(self.writers) + 1)
        self._db = asyncio.Lock()  # one task at a time on the store's connection
        self.on_written: Callable[[Batch, WriteResult], None] | None = None
        """Called once a batch's rows are committed (the benchmarks time the sink by it)."""
        self.max_age = timedelta(days=config.consumer.max_event_age_days)
        self._stopping = asyncio.Event()
        self.kafka = KafkaLink(config, stats, client_id, self._stopping)
        self._last_lag_at = 0.0
        self.fleet = HeartbeatKeeper(self.store, self.stats)
        self._write_error: str | None = None  # the last write failure said, until one works
        self.batches = Batches(stats)
        self.tune_gc = tune_gc
        """Set the cycle collector for a hot path without cycles (engine.process_gc) once
        running; off in the dashboard's process."""

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The running Kafka consumer; None until it first started."""
        return self.kafka.consumer

    async def connect_postgres(self) -> None:
        """First connection; wrong credentials raise ConnectError, other failures propagate."""
        try:
            await self.store.connect()
        except psycopg.OperationalError as exc:
            if is_fatal_postgres_error(exc):
                raise ConnectError(postgres_error_line(exc) + "; check [postgres] dsn") from None
            raise
        self.stats.postgres_state = ConnState.CONNECTED

    async def run(self) -> None:
        """Consume until `stop()`; each batch is in PostgreSQL before its offsets commit."""
        await asyncio.gather(self.kafka.start(), self.store.prepare_today())
        if self.tune_gc:
            keep_startup_out_of_gc()
        flush_ms = self.config.consumer.flush_ms
        in_flight: deque[asyncio.Task[bool]] = deque()  # oldest first; True: offsets committed
        batches = self.batches
        try:
            while not self._stopping.is_set() and self.consumer is not None:
                try:
                    limit = self._batch_size(bool(in_flight))
                    batch, first = await batches.next(self.consumer, flush_ms, limit)
                except KafkaError as exc:
                    self.kafka.down()
                    self.stats.error("consumer", f"Kafka fetch failed: {type(exc).__name__}")
                    await sleep_unless(self._stopping, 1.0)
                    continue
                if batch:
                    self.kafka.up()
                    decoded = await self._decode(batch, first)  # while earlier ones are written
                    while len(in_flight) >= self.in_flight_max:
                        await in_flight.popleft()  # raises what its write raised
                    fast = await self._submit(decoded)
                    previous = in_flight[-1] if in_flight else None
                    store = self._store(decoded, fast, previous)
                    in_flight.append(asyncio.create_task(store, name="sink-write"))
                else:
                    await self.kafka.check()
                    while in_flight and in_flight[0].done():
                        await in_flight.popleft()
                await self._update_lag()
            while in_flight:
                await in_flight.popleft()
        finally:
            for task in in_flight:
                if not task.done():
                    await cancel_and_wait(task)

    def _batch_size(self, writing: bool) -> int:
        """`batch_max`, except while nothing is being written (at start, or after an idle
        spell): then a small batch, so PostgreSQL starts on it while the next, full batch is
        decoded, instead of idling through a whole batch's decoding first."""
        batch_max = self.config.consumer.batch_max
        return batch_max if writing else min(batch_max, FIRST_BATCH_MAX)

    async def _decode(self, batch: Records, first: dict[TopicPartition, int]) -> Batch:
        """Decode and encode `batch` in a worker thread while the previous batch is written.

        The work is pure CPU and takes a good part of a second for a full batch. Done on the
        event loop, it held up the write in flight at each of its round trips (COPYs,
        commit), so PostgreSQL idled while Python decoded and the two rarely ran at the same
        time. From a thread, with a short GIL switch interval (`loop_keeps_pace`), the loop
        gets its turn within a millisecond. Only this thread writes the store's caches
        meanwhile; the loop thread's series resolution adds entries, which a dict takes safely
        under the GIL."""
        beats: list[HeartbeatEvent] = []
        with loop_keeps_pace():
            metrics, checks, dead, offsets, encoded = await asyncio.to_thread(
                self._decode_in_thread, batch, beats
            )
        self.fleet.pending.extend(beats)  # on the loop: the write in flight reads this list
        return Batch(metrics, checks, dead, offsets, first, encoded)

    def _decode_in_thread(
        self, batch: Records, beats: list[HeartbeatEvent]
    ) -> tuple[
        list[MetricsEvent], list[CheckEvent], list[DeadLetter], dict[TopicPartition, int], Encoded
    ]:
        metrics, checks, dead, offsets = decode_messages(batch, self.max_age, beats)
        return metrics, checks, dead, offsets, self.store.encode(metrics, checks)

    async def _submit(self, batch: Batch) -> asyncio.Future[WriteResult] | None:
        """Queue the batch on the next writer thread, once its partitions and new series are
        committed; None if it must go the careful way (which also says what went wrong)."""
        if not self.store.connected:
            return None
        try:
            async with self._db:
                await self.store.prepare(batch.encoded)
        except (psycopg.Error, OSError):
            return None
        writer = self.writers.next_writer()
        if writer is None:
            return None
        return writer.submit(batch.metrics, batch.checks, batch.dead, batch.encoded)

    async def _store(
        self,
        batch: Batch,
        fast: asyncio.Future[WriteResult] | None,
        previous: asyncio.Task[bool] | None,
    ) -> bool:
        """Wait for the batch's rows (from its writer thread, else written the careful way),
        then commit its offsets, never before its rows and every earlier batch's are in.
        True if its offsets were committed; False when stopping first."""
        try:
            result = await _fast_result(fast)
            if result is not None:
                self._writes_work()
            else:
                result = await self._write_until_done(
                    batch.metrics, batch.checks, batch.dead, batch.encoded
                )
            if result is None:
                return False  # stopping: nothing committed, the batch is read again next time
            self._account(result)
            if self.on_written is not None:
                self.on_written(batch, result)
            # The batch's offsets also wait for its heartbeats (retried the same way).
            if await self._until_stored(lambda: self.fleet.keep(batch.checks)) is None:
                return False
            if previous is not None and not await previous:
                return False  # an earlier batch is not in: its offsets and these wait
            await self._commit(batch.offsets)
            return True
        finally:
            self.batches.written(batch.first)

    async def _write_until_done(
        self,
        metrics: list[MetricsEvent],
        checks: list[CheckEvent],
        dead: list[DeadLetter],
        encoded: Encoded | None = None,
    ) -> WriteResult | None:
        """Write the batch, retrying while PostgreSQL cannot take it; None if asked to stop.

        Only errors caused by an event's content (data exceptions, constraint violations) set
        events aside as dead letters. Anything else (unreachable, permission denied, read-only
        standby, disk full, schema not migrated) is not the events' fault: nothing is
        dead-lettered, no offset moves, and the batch is retried until the operator fixes it.
        """

        async def write() -> WriteResult:
            try:
                return await self.store.write_batch(metrics, checks, dead, encoded)
            except psycopg.Error as exc:
                if not rejects_content(exc):
                    raise
                return await write_one_by_one(self.store, metrics, checks, dead, exc)

        return await self._until_stored(write)

    async def _until_stored(self, attempt: Callable[[], Awaitable[T]]) -> T | None:
        """Run `attempt` until PostgreSQL takes it, reconnecting as needed; None if stopping.
        Each distinct cause is said once and the state shows down until a write succeeds."""
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                async with self._db:
                    if not self.store.connected:
                        await self.store.close()
                        await self.store.connect()
                        log.info("PostgreSQL connection restored")
                    result = await attempt()
                self._writes_work()
                return result
            except psycopg.Error as exc:
                self._say_write_error(exc)
                self.stats.postgres_state = ConnState.DOWN
                if isinstance(exc, psycopg.OperationalError) or not self.store.connected:
                    await self.store.close()
                await sleep_unless(self._stopping, backoff)
                backoff = min(backoff * 2, 5.0)
                # The operator watches the lag grow while the database is away.
                await self._update_lag()
        return None

    def _writes_work(self) -> None:
        if self._write_error is not None:
            log.info("PostgreSQL takes writes again")
            self._write_error = None
        self.stats.postgres_state = ConnState.CONNECTED
        self.stats.postgres_problem = None

    def _say_write_error(self, exc: psycopg.Error) -> None:
        """Once per distinct cause, not per retry; with what to fix when only the operator can
        (a password changed or a certificate that stopped verifying after start)."""
        problem = postgres_problem(exc)
        line = postgres_error_line(exc) if problem is None else problem.line
        self.stats.postgres_problem = problem
        if line != self._write_error:
            log.warning("%s; retrying the batch", line)
            self.stats.error("postgres", line)
            self._write_error = line

    def _account(self, result: WriteResult) -> None:
        s = self.stats
        s.inserted.total += result.rows
        s.inserted_events_total += result.events
        s.duplicates_total += result.duplicates
        s.dead_letters_total += result.dead_letters
        s.record_db_write(result.elapsed_ms)
        if result.newest_observed_at is not None and (
            s.newest_committed_observed_at is None
            or result.newest_observed_at > s.newest_committed_observed_at
        ):
            s.newest_committed_observed_at = result.newest_observed_at

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self.consumer is not None
        try:
            async with asyncio.timeout(self.config.kafka.request_timeout_s):
                await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # Partitions moved to another consumer: it re-reads them; event ids dedupe.
            log.info("offset commit skipped after a rebalance (%s)", type(exc).__name__)
        except (KafkaError, TimeoutError) as exc:
            self.stats.error("consumer", f"offset commit failed: {type(exc).__name__}")
            if isinstance(exc, TimeoutError):
                adopt_orphaned_commits()

    async def _update_lag(self) -> None:
        """Lag per partition, at most once a second (see engine.sink.offsets.partition_lag)."""
        now = time.monotonic()
        if self.consumer is None or now - self._last_lag_at < 1.0:
            return
        self._last_lag_at = now
        self.stats.lag = await partition_lag(self.consumer, self.batches.pending)

    async def stop(self) -> None:
        """Stop once the batches in flight (one per writer and one queued) are written; bounded
        by the caller's timeout."""
        self._stopping.set()

    async def close(self) -> None:
        await self.kafka.close()
        await self.writers.close()
        await self.store.close()


def writer_count(config: Config) -> int:
    """`[consumer] writers`, within `[postgres] pool_max` with the store's own connection."""
    return max(0, min(config.consumer.writers, config.postgres.pool_max - 1))


async def _fast_result(fast: asyncio.Future[WriteResult] | None) -> WriteResult | None:
    """The writer thread's result; None if there is none, or if the thread's write failed:
    a replay, rejected content or PostgreSQL trouble, which the careful way tells apart."""
    if fast is None:
        return None
    try:
        return await fast
    except psycopg.Error as exc:
        # Said by the careful way if it persists; here only for tracing a fast path that
        # keeps falling back (each fallback writes the batch a second time round).
        log.debug("writer thread gave the batch back (%s)", type(exc).__name__)
        return None
