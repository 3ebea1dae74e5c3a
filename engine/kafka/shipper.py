"""The producer side: send events to Kafka, or to the disk spool while Kafka is away.

`Shipper.submit()` never blocks the collectors or checks. One task sends in batches; when a
send fails or times out, the unsent events go to the spool and the shipper switches to
spooling mode: every new event is appended behind them (order is kept) while a recovery task
reconnects and replays the spool oldest first. Once the spool is empty, events go straight to
Kafka again. Every await on Kafka is bounded, because aiokafka's idempotent producer can wait
forever on a dead broker; a producer that timed out is thrown away and rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from engine.config import KafkaConfig
from engine.errors import ConfigError, describe_error
from engine.kafka.producer_parts import (
    KeyPartitioner,
    bury_producer,
    discard_futures,
)
from engine.kafka.reach import reach_cause
from engine.kafka.settings import client_kwargs, describe_kafka_error
from engine.kafka.spool import Spool, SpoolError, SpoolRecord, size_text
from engine.kafka.watch import SettingsWatch
from engine.stats import ConnState, Stats

log = logging.getLogger("metrictui.producer")

# Each send batch waits for its acknowledgements (after linger_ms) before the next one goes
# out: under a burst, 10,000 records a batch keep that pause rare (2,000 cost a third of the
# throughput); in steady operation batches are far smaller anyway.
SEND_BATCH = 10_000
SPOOL_ERROR_EVERY_S = 30.0
REPLAY_BATCH = 500
QUEUE_MAX = 100_000


class Shipper:
    """Owns the Kafka producer, the in-memory queue and the spool."""

    def __init__(self, cfg: KafkaConfig, spool: Spool, stats: Stats, client_id: str) -> None:
        self.cfg = cfg
        self.spool = spool
        self.stats = stats
        self.client_id = client_id
        self._queue: asyncio.Queue[SpoolRecord] = asyncio.Queue()
        self._producer: AIOKafkaProducer | None = None
        self._spooling = False
        self._stopping = False
        self._sender: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._inflight: list[SpoolRecord] = []
        self.dropped_total = 0
        self.send_timeout = max(5.0, cfg.request_timeout_s)
        self._spool_failing = False  # the last append failed (disk full, unwritable)
        self._spool_failed_since_log = 0
        self._dropped_while_failing = 0
        self._spool_error_logged_at = -SPOOL_ERROR_EVERY_S
        self._spool_error_logged: str | None = None
        self._cap_dropped_logged = 0
        self._abandoned: set[asyncio.Task[None]] = set()
        # Set while the last spooled events are replayed: new events wait in memory behind
        # them instead of going to the spool (under steady load it would never empty).
        self._replaying = False
        self._replay_over = asyncio.Event()
        self._replay_over.set()
        # Names the cause when Kafka refuses our settings after start (see engine.kafka.watch).
        self._watch = SettingsWatch(cfg, stats, "producer")

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool and try Kafka once; if Kafka is away, start in spooling mode."""
        try:
            self.spool.open()
        except SpoolError as exc:  # e.g. spool_dir names a file, or a place we may not write
            raise ConfigError(str(exc)) from None
        self._sync_spool_stats()
        if self.spool.depth:
            log.info("spool holds %d events from an earlier run; replaying", self.spool.depth)
            self._enter_spooling()
        else:
            try:
                await self._connect()
            except (KafkaError, OSError, TimeoutError) as exc:
                self._kafka_down(
                    f"Kafka unreachable at {self.cfg.bootstrap_servers} at start"
                    f" ({describe_kafka_error(exc)}); spooling"
                )
                self._enter_spooling()
        self._sender = asyncio.create_task(self._send_loop(), name="shipper-send")

    async def stop(self, timeout: float = 8.0) -> None:
        """Send what is queued (or spool it), then close. Bounded by `timeout`."""
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._sender is not None:
            # Let the sender drain the queue while Kafka answers; then stop it.
            while (self._inflight or not self._queue.empty()) and loop.time() < deadline - 2:
                await asyncio.sleep(0.05)
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        leftovers = self._inflight + self._drain_queue()
        self._inflight = []
        if leftovers:
            self._to_spool(leftovers)
        await self._close_producer(max(0.5, deadline - loop.time()), dead=self._spooling)
        if self._abandoned:
            _, pending = await asyncio.wait(
                self._abandoned, timeout=max(0.1, deadline - loop.time())
            )
            for task in pending:
                task.cancel()
        await self._watch.close()
        self.spool.close()

    # -- submitting -------------------------------------------------------------------------

    def submit(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Queue one event for Kafka. Never blocks; overflow goes to the spool."""
        record = SpoolRecord(topic, key, value)
        if self._queue.qsize() >= QUEUE_MAX:
            self._to_spool([record])
            self._enter_spooling()
            return
        self._queue.put_nowait(record)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # -- internals --------------------------------------------------------------------------

    async def _connect(self) -> None:
        producer = AIOKafkaProducer(
            **client_kwargs(self.cfg, self.client_id),
            acks="all",
            enable_idempotence=True,
            compression_type=None if self.cfg.compression == "none" else self.cfg.compression,
            linger_ms=self.cfg.linger_ms,
            max_batch_size=self.cfg.max_batch_bytes,
            max_request_size=max(1_048_576, self.cfg.max_batch_bytes),
            partitioner=KeyPartitioner(),
        )
        try:
            async with asyncio.timeout(self.send_timeout):
                await producer.start()
        except BaseException:
            self._bury(producer)
            raise
        self._producer = producer
        self.stats.set_kafka_state("producer", ConnState.CONNECTED)
        self._watch.up()

    async def _close_producer(self, timeout: float = 3.0, *, dead: bool = False) -> None:
        """Stop the producer, flushing what it holds; `dead`: Kafka is away, do not wait.

        aiokafka's stop() waits until every pending batch is delivered, which a dead broker
        never does (and the sender task would retry forever in the background), so a producer
        on a dead broker, or one whose stop() timed out, is abandoned instead: its records are
        in the spool already.
        """
        producer, self._producer = self._producer, None
        if producer is None:
            return
        if not dead:
            try:
                async with asyncio.timeout(timeout):
                    await producer.stop()
                return
            except (TimeoutError, KafkaError, OSError) as exc:
                log.debug("producer close: %s; abandoning it", describe_error(exc))
        self._bury(producer)

    def _bury(self, producer: AIOKafkaProducer) -> None:
        """Abandon a producer in a task we keep a reference to, so it really finishes."""
        bury_producer(producer, self.send_timeout + 5, self._abandoned)

    def _drain_queue(self) -> list[SpoolRecord]:
        items: list[SpoolRecord] = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    async def _next_batch(self) -> list[SpoolRecord]:
        first = await self._queue.get()
        batch = [first]
        while len(batch) < SEND_BATCH and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _send_loop(self) -> None:
        while True:
            batch = await self._next_batch()
            # Kept until placed, so a stop() that cancels us meanwhile can spool it.
            self._inflight = batch
            while self._replaying:
                await self._replay_over.wait()
            if self._spooling or self._producer is None:
                self._to_spool(batch)
                self._inflight = []
                continue
            done = await self._send(batch)
            unsent = [rec for rec, ok in zip(batch, done, strict=True) if not ok]
            if unsent:
                # Only what Kafka did not confirm: per partition that is a tail of the batch
                # (the idempotent producer acknowledges in order), so order by key is kept,
                # and nothing delivered is spooled again (and later counted as dropped).
                self._to_spool(unsent)
                self._enter_spooling()
            self._inflight = []

    async def _send(self, batch: Sequence[SpoolRecord]) -> list[bool]:
        """Send in order; returns, per record, whether it is done (acknowledged by Kafka, or
        rejected for good and counted as dropped). Unconfirmed records are safe to send
        again: the sink deduplicates by event id.
        """
        producer = self._producer
        assert producer is not None
        futures: list[asyncio.Future[object]] = []
        failure: BaseException | None = None
        try:
            async with asyncio.timeout(self.send_timeout):
                for rec in batch:
                    futures.append(await producer.send(rec.topic, rec.value, key=rec.key))
                if futures:
                    await asyncio.wait(futures)
        except (TimeoutError, KafkaError, OSError) as exc:
            failure = exc
        done: list[bool] = []
        for fut in futures:
            if not fut.done() or fut.cancelled():
                done.append(False)
                continue
            error = fut.exception()
            if error is None:
                done.append(True)
                self.stats.produced.total += 1
            elif isinstance(error, KafkaError) and not getattr(error, "retriable", True):
                # A permanent rejection (e.g. message too large): the event cannot ever be
                # delivered; count it as dropped instead of blocking the queue forever.
                done.append(True)
                self.dropped_total += 1
                self.stats.send_errors_total += 1
                self.stats.error("producer", f"Kafka rejected an event: {describe_error(error)}")
            else:
                done.append(False)
                failure = failure or error
        done += [False] * (len(batch) - len(futures))
        discard_futures(futures)
        if failure is not None or not all(done):
            reason = describe_error(failure) if failure is not None else "not acknowledged"
            if self.stats.kafka_states.get("producer") != ConnState.DOWN:  # said once: name why
                cause = await reach_cause(producer, self.cfg.bootstrap_servers)
                reason += f"; {cause}" if cause else ""
            self._kafka_down(f"send to Kafka failed ({reason}); spooling")
            await self._close_producer(dead=True)
        return done

    def _to_spool(self, records: Sequence[SpoolRecord]) -> None:
        try:
            self.spool.append(records)
        except SpoolError as exc:
            self.dropped_total += len(records)
            self._spool_failed(str(exc), len(records))
        else:
            if self._spool_failing:
                self._spool_failing = False
                log.warning(
                    "spool is writable again; %d events were dropped while it was not",
                    self._dropped_while_failing,
                )
                self._spool_failed_since_log = self._dropped_while_failing = 0
        self._sync_spool_stats()

    def _spool_failed(self, message: str, lost: int) -> None:
        """Say it once, then at most every SPOOL_ERROR_EVERY_S: a full disk fails every batch."""
        self._spool_failed_since_log += lost
        self._dropped_while_failing += lost
        now = time.monotonic()
        # The interval holds across short recoveries too: a nearly full disk alternates between
        # taking a small batch and refusing the next, which must not flood the log.
        repeat = message == self._spool_error_logged
        if not repeat or now - self._spool_error_logged_at >= SPOOL_ERROR_EVERY_S:
            self._spool_error_logged = message
            line = f"{message} ({self._spool_failed_since_log} events dropped)"
            log.error("%s", line)
            self.stats.error("spool", line)
            self._spool_error_logged_at = now
            self._spool_failed_since_log = 0
        self._spool_failing = True

    def _sync_spool_stats(self) -> None:
        self.stats.spool_depth = self.spool.depth
        self.stats.spool_bytes = self.spool.bytes
        self.stats.spool_dropped_total = self.spool.dropped_total + self.dropped_total
        over_cap = self.spool.dropped_total - self._cap_dropped_logged
        if over_cap > 0 and (
            self._cap_dropped_logged == 0
            or time.monotonic() - self._spool_error_logged_at >= SPOOL_ERROR_EVERY_S
        ):
            line = (
                f"spool reached its cap of {size_text(self.spool.max_bytes)}"
                f" ([agent] spool_max_mb): dropped the {over_cap} oldest events"
                f" ({self.spool.dropped_total} in all)"
            )
            log.warning("%s", line)
            self.stats.error("spool", line)
            self._cap_dropped_logged = self.spool.dropped_total
            self._spool_error_logged_at = time.monotonic()

    def _kafka_down(self, message: str) -> None:
        if self.stats.kafka_states.get("producer") != ConnState.DOWN:
            log.warning("%s", message)
            self.stats.error("kafka", message)
        self.stats.set_kafka_state("producer", ConnState.DOWN)
        self._watch.down()

    def _set_replaying(self, on: bool) -> None:
        self._replaying = on
        if on:
            self._replay_over.clear()
        else:
            self._replay_over.set()

    def _enter_spooling(self) -> None:
        self._spooling = True
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover(), name="shipper-recover")

    async def _recover(self) -> None:
        """Reconnect with backoff and replay the spool in order, then leave spooling mode."""
        backoff = 0.5
        try:
            while (outcome := await self._recover_step()) != "done":
                if outcome == "progress":
                    backoff = 0.5  # Kafka took batches before failing: it is not down for long
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        finally:
            self._set_replaying(False)  # never leave the sender waiting for a dead task

    async def _recover_step(self) -> Literal["done", "progress", "failed"]:
        """Reconnect and replay until the spool is empty ("done") or Kafka fails again
        ("progress" if some batches went out first, else "failed"); the caller backs off."""
        outcome: Literal["progress", "failed"] = "failed"
        while True:
            try:
                if self._producer is None:
                    try:
                        self.stats.set_kafka_state("producer", ConnState.CONNECTING)
                        await self._connect()
                        log.info("Kafka is back; replaying %d spooled events", self.spool.depth)
                    except (KafkaError, OSError, TimeoutError, ConfigError) as exc:
                        # ConfigError: a CA, certificate or key file unreadable after a
                        # rotation; the watch names it, and the next try reads it again.
                        self.stats.set_kafka_state("producer", ConnState.DOWN)
                        self._watch.down()
                        log.debug("reconnect failed: %s", describe_error(exc))
                        return outcome
                records = self.spool.peek(REPLAY_BATCH)
                if not records:
                    # No await between this check and the switch: nothing can slip in between.
                    self._spooling = False
                    self._set_replaying(False)
                    self._sync_spool_stats()
                    return "done"
                if self.spool.depth <= REPLAY_BATCH:
                    self._set_replaying(True)
                done = await self._send(records)
                sent = next((i for i, ok in enumerate(done) if not ok), len(done))
                # Only a prefix leaves the spool; confirmed records after a gap go out again.
                self.spool.ack(sent)
                self._sync_spool_stats()
                if sent < len(records):
                    self._set_replaying(False)
                    return "progress" if sent else outcome
                outcome = "progress"
            except Exception as exc:  # a bug must not leave the agent spooling forever
                self._set_replaying(False)
                log.exception("spool replay failed; retrying")
                self.stats.error("producer", f"spool replay failed: {describe_error(exc)}")
                await self._close_producer(dead=True)
                return "failed"
