"""The consumer side: Kafka batches into PostgreSQL, offsets committed only after the rows.

Loop: `getmany` a batch -> decode and validate every message (bad ones become dead letters, so
a partition never stalls on a poison message) -> one PostgreSQL transaction (engine/sink/store.py)
-> commit the Kafka offsets. If PostgreSQL is away, the same batch is retried with backoff and
no offset moves; lag grows and drains later. If the database rejects a batch for its content,
it is written event by event and the rejected events are dead-lettered with the SQL state.

Pipelined one deep: while one batch is written (this process waits on PostgreSQL), the next is
fetched and decoded, so Python and PostgreSQL work at the same time. Writes and offset commits
still happen one batch at a time, in order. Batches come from engine/sink/fetch.py: a backlog
is drawn from every partition at once, so a batch mixes check events and samples as they were
produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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
from engine.errors import ConfigError, ConnectError
from engine.kafka.settings import client_kwargs, describe_kafka_error
from engine.kafka.watch import SettingsWatch
from engine.sink.agents import HeartbeatKeeper
from engine.sink.decode import (
    Batch,
    decode_messages,
    keep_startup_out_of_gc,
    loop_keeps_pace,
)
from engine.sink.fetch import Batches, Records
from engine.sink.offsets import adopt_orphaned_commits, partition_lag
from engine.sink.poison import write_one_by_one
from engine.sink.store import DeadLetter, Encoded, Store, WriteResult
from engine.stats import ConnState, Stats
from engine.tasks import cancel_and_wait

T = TypeVar("T")

log = logging.getLogger("metrictui.sink")

# aiokafka's consumer reconnects by itself, and while no broker takes it getmany() just comes
# back empty: after this long without a message, a metadata request tells "nothing to read"
# apart from "Kafka is away or refuses us".
KAFKA_IDLE_CHECK_S = 5.0
# Messages in a batch fetched while the pipeline is empty (see Sink._batch_size).
FIRST_BATCH_MAX = 500


class Sink:
    """Owns the Kafka consumer and the store; `run()` is the engine's consumer task."""

    def __init__(self, config: Config, stats: Stats, client_id: str) -> None:
        self.config = config
        self.stats = stats
        self.client_id = client_id
        dsn = config.postgres.dsn
        if dsn is None:
            raise ConnectError("[postgres] dsn is not set: the consumer needs a PostgreSQL DSN")
        self.store = Store(dsn.reveal(), config.postgres.schema)
        self.consumer: AIOKafkaConsumer | None = None
        self.max_age = timedelta(days=config.consumer.max_event_age_days)
        self._stopping = asyncio.Event()
        self._last_lag_at = 0.0
        self.fleet = HeartbeatKeeper(self.store, self.stats)
        self._write_error: str | None = None  # the last write failure said, until one works
        self.batches = Batches(stats)
        # Names the cause when Kafka refuses our settings after start (see engine.kafka.watch).
        self._watch = SettingsWatch(config.kafka, stats, "consumer")
        self._kafka_checked_at = 0.0  # last message or metadata answer (monotonic)
        self._retired: asyncio.Task[None] | None = None  # a replaced consumer, stopping

    async def connect_postgres(self) -> None:
        """First connection; wrong credentials raise ConnectError, other failures propagate."""
        try:
            await self.store.connect()
        except psycopg.OperationalError as exc:
            if is_fatal_postgres_error(exc):
                raise ConnectError(postgres_error_line(exc) + "; check [postgres] dsn") from None
            raise
        self.stats.postgres_state = ConnState.CONNECTED

    def _new_consumer(self) -> AIOKafkaConsumer:
        k = self.config.kafka
        return AIOKafkaConsumer(
            k.metrics_topic,
            k.checks_topic,
            **client_kwargs(k, self.client_id),
            group_id=self.config.consumer.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.config.consumer.batch_max,
            fetch_max_wait_ms=min(500, self.config.consumer.flush_ms),
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )

    async def _start_consumer(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            consumer: AIOKafkaConsumer | None = None
            try:
                consumer = self._new_consumer()  # ConfigError: a TLS file unreadable just now
                async with asyncio.timeout(self.config.kafka.request_timeout_s + 5):
                    await consumer.start()
            except (KafkaError, OSError, TimeoutError, ConfigError) as exc:
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(2):
                            await consumer.stop()
                self._kafka_down()
                log.warning(
                    "Kafka consumer cannot connect to %s (%s); retrying",
                    self.config.kafka.bootstrap_servers,
                    describe_kafka_error(exc),
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            self.consumer = consumer
            self._kafka_up()
            return

    def _kafka_up(self) -> None:
        self._kafka_checked_at = time.monotonic()
        self.stats.set_kafka_state("consumer", ConnState.CONNECTED)
        self._watch.up()

    def _kafka_down(self) -> None:
        self.stats.set_kafka_state("consumer", ConnState.DOWN)
        self._watch.down()

    async def _check_kafka(self) -> None:
        """While no message arrives, ask for metadata every KAFKA_IDLE_CHECK_S (bounded):
        only an answer proves the consumer still reaches Kafka with our settings."""
        now = time.monotonic()
        if self.consumer is None or now - self._kafka_checked_at < KAFKA_IDLE_CHECK_S:
            return
        self._kafka_checked_at = now
        try:
            async with asyncio.timeout(self.config.kafka.request_timeout_s):
                await self.consumer.topics()
        except (KafkaError, OSError, TimeoutError):
            self._kafka_down()
            if self._watch.settings_work:
                await self._rebuild_consumer()
            return
        self._kafka_up()

    async def _rebuild_consumer(self) -> None:
        """A probe with the settings as they are now gets through, and this consumer still
        cannot: aiokafka reuses the TLS context it was built with on every reconnect, so a CA,
        certificate or key rotated on disk since (the fix for a replaced broker CA) reaches
        only a new consumer. The old one stays in place until the new one runs, and is
        stopped in the background: aiokafka's stop() can outlast its timeout on a consumer
        that cannot reach the broker, and must not hold up consuming."""
        log.info("Kafka takes the [kafka] settings as they are now; reconnecting the consumer")
        old = self.consumer
        await self._start_consumer()
        if old is not None and old is not self.consumer:
            self._retired = asyncio.create_task(_stop_quietly(old), name="sink-old-consumer")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def run(self) -> None:
        """Consume until `stop()`; each batch is in PostgreSQL before its offsets commit."""
        await asyncio.gather(self._start_consumer(), self.store.prepare_today())
        keep_startup_out_of_gc()
        flush_ms = self.config.consumer.flush_ms
        writing: asyncio.Task[None] | None = None  # the batch in PostgreSQL's hands
        batches = self.batches
        try:
            while not self._stopping.is_set() and self.consumer is not None:
                try:
                    limit = self._batch_size(writing)
                    batch, first = await batches.next(self.consumer, flush_ms, limit)
                except KafkaError as exc:
                    self._kafka_down()
                    self.stats.error("consumer", f"Kafka fetch failed: {type(exc).__name__}")
                    await self._sleep(1.0)
                    continue
                if batch:
                    self._kafka_up()
                    decoded = await self._decode(batch, first)  # while the previous is written
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(self._store(decoded), name="sink-write")
                else:
                    await self._check_kafka()
                    if writing is not None and writing.done():
                        done, writing = writing, None
                        await done  # raises what the write raised
                await self._update_lag()
            if writing is not None:
                await writing
        finally:
            if writing is not None and not writing.done():
                await cancel_and_wait(writing)

    def _batch_size(self, writing: asyncio.Task[None] | None) -> int:
        """`batch_max`, except while nothing is being written (at start, or after an idle
        spell): then a small batch, so PostgreSQL starts on it while the next, full batch is
        decoded, instead of idling through a whole batch's decoding first."""
        batch_max = self.config.consumer.batch_max
        return batch_max if writing is not None else min(batch_max, FIRST_BATCH_MAX)

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

    async def _store(self, batch: Batch) -> None:
        """Write one decoded batch, then commit its offsets (never before its rows are in)."""
        try:
            result = await self._write_until_done(
                batch.metrics, batch.checks, batch.dead, batch.encoded
            )
            if result is None:
                return  # stopping: nothing committed, the batch is read again next time
            self._account(result)
            # The batch's offsets also wait for its heartbeats (retried the same way).
            if await self._until_stored(lambda: self.fleet.keep(batch.checks)) is None:
                return
            await self._commit(batch.offsets)
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
                if not self.store.connected:
                    await self.store.close()
                    await self.store.connect()
                    log.info("PostgreSQL connection restored")
                result = await attempt()
                if self._write_error is not None:
                    log.info("PostgreSQL takes writes again")
                    self._write_error = None
                self.stats.postgres_state = ConnState.CONNECTED
                self.stats.postgres_problem = None
                return result
            except psycopg.Error as exc:
                self._say_write_error(exc)
                self.stats.postgres_state = ConnState.DOWN
                if isinstance(exc, psycopg.OperationalError) or not self.store.connected:
                    await self.store.close()
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                # The operator watches the lag grow while the database is away.
                await self._update_lag()
        return None

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
        """Stop after the current batch; bounded by the caller's timeout."""
        self._stopping.set()

    async def close(self) -> None:
        await self._watch.close()
        if self._retired is not None and not self._retired.done():
            self._retired.cancel()
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.consumer.stop()
            self.consumer = None
        await self.store.close()


async def _stop_quietly(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer that is being replaced; bounded, and nothing it raises matters."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(10):
            await consumer.stop()
