"""The producer side: send events to Kafka, or to the disk spool while Kafka is away.

`Shipper.submit()` never blocks the collectors or checks. One task hands what is queued to
aiokafka as flights of whole batches (engine/kafka/flights.py), the next while Kafka still
acknowledges the last; when a send fails or times out, the unconfirmed events go to the spool
(in submission order) and the shipper switches to spooling mode: every new event is appended
behind them (order is kept) while a recovery task reconnects and replays the spool oldest
first. Once the spool is empty, events go straight to Kafka again. Every await on Kafka is
bounded, because aiokafka's idempotent producer can wait forever on a dead broker; a producer
that timed out is thrown away and rebuilt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from engine.config import KafkaConfig
from engine.errors import ConfigError, describe_error
from engine.kafka.flights import Flight, Outcome, launch
from engine.kafka.producer_parts import KeyPartitioner, bury_producer
from engine.kafka.reach import reach_cause
from engine.kafka.settings import client_kwargs, describe_kafka_error
from engine.kafka.spool import Spool, SpoolError, SpoolRecord
from engine.kafka.spool_feed import SpoolFeed
from engine.kafka.watch import SettingsWatch
from engine.stats import ConnState, Stats
from engine.tasks import cancel_and_wait

log = logging.getLogger("metrictui.producer")

# Records taken from the queue at once and handed to aiokafka as one flight; the next flight
# goes out while Kafka still acknowledges the earlier ones (at most FLIGHTS in the air), so a
# burst never waits for acknowledgements between flights.
SEND_BATCH = 10_000
FLIGHTS = 4
REPLAY_BATCH = 500
QUEUE_MAX = 100_000


class Shipper:
    """Owns the Kafka producer, the in-memory queue and the spool."""

    def __init__(self, cfg: KafkaConfig, spool: Spool, stats: Stats, client_id: str) -> None:
        self.cfg = cfg
        self.spool = spool
        self.stats = stats
        self.client_id = client_id
        # A plain deque and one wake-up future: asyncio.Queue's per-record bookkeeping was a
        # visible part of the producer path's cost.
        self._queue: deque[SpoolRecord] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._flights: deque[Flight] = deque()  # handed to aiokafka, oldest first
        self._partitioner = KeyPartitioner()
        self._max_request = max(1_048_576, cfg.max_batch_bytes)
        self._producer: AIOKafkaProducer | None = None
        self._spooling = False
        self._stopping = False
        self._sender: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._inflight: list[SpoolRecord] = []  # taken from the queue, not in a flight yet
        self.send_timeout = max(5.0, cfg.request_timeout_s)
        self._feed = SpoolFeed(spool, stats)
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
        self._feed.sync_stats()
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
            while (self._inflight or self._flights or self._queue) and loop.time() < deadline - 2:
                await asyncio.sleep(0.05)
            await cancel_and_wait(self._sender)
        if self._recovery is not None:
            await cancel_and_wait(self._recovery)
        leftovers = self._unconfirmed(list(self._flights)) + self._inflight + self._drain_queue()
        self._flights.clear()
        self._inflight = []
        if leftovers:
            self._feed.put(leftovers)
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
        if len(self._queue) >= QUEUE_MAX:
            self._feed.put([record])
            self._enter_spooling()
            return
        self._queue.append(record)
        if (wakeup := self._wakeup) is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- internals --------------------------------------------------------------------------

    async def _connect(self) -> None:
        producer = AIOKafkaProducer(
            **client_kwargs(self.cfg, self.client_id),
            acks="all",
            enable_idempotence=True,
            compression_type=None if self.cfg.compression == "none" else self.cfg.compression,
            linger_ms=self.cfg.linger_ms,
            max_batch_size=self.cfg.max_batch_bytes,
            max_request_size=self._max_request,
            partitioner=self._partitioner,
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
        items = list(self._queue)
        self._queue.clear()
        return items

    async def _records_waiting(self) -> None:
        """Until the queue holds records, counting flights as Kafka answers them meanwhile."""
        while not self._queue:
            await self._land_flights(keep=len(self._flights))
            if self._queue:
                return
            self._wakeup = wakeup = asyncio.get_running_loop().create_future()
            waits: list[asyncio.Future[object]] = [wakeup]
            timeout = None
            if self._flights:
                head = self._flights[0]
                waits += [fut for fut, _ in head.batches if not fut.done()]
                timeout = max(0.0, head.deadline - time.monotonic())
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._wakeup = None
                wakeup.cancel()

    def _take_batch(self) -> list[SpoolRecord]:
        queue = self._queue
        if len(queue) <= SEND_BATCH:
            return self._drain_queue()
        return [queue.popleft() for _ in range(SEND_BATCH)]

    async def _send_loop(self) -> None:
        linger = self.cfg.linger_ms / 1000
        while True:
            await self._records_waiting()
            if linger and len(self._queue) < SEND_BATCH and not self._flights:
                await asyncio.sleep(linger)  # let a batch gather, as aiokafka's linger would
            # Kept until placed, so a stop() that cancels us meanwhile can spool it.
            self._inflight = batch = self._take_batch()
            while self._replaying:
                await self._replay_over.wait()
            # When spooling, what the flights did not deliver goes to the spool first.
            await self._land_flights(keep=0 if self._spooling else FLIGHTS - 1)
            if self._spooling or self._producer is None:  # (a flight may have failed just now)
                self._feed.put(batch)
                self._inflight = []
                continue
            flight = await launch(
                self._producer, self._partitioner, batch, self._max_request, self.send_timeout
            )
            self._flights.append(flight)
            self._inflight = []
            if flight.failure is not None:
                await self._land_flights(keep=0)

    async def _land_flights(self, keep: int) -> None:
        """Count the flights Kafka has answered, oldest first, waiting for the oldest while
        more than `keep` are in the air. When one failed, the later ones are settled at once
        (whatever they got confirmed counts) and every unconfirmed record goes to the spool in
        submission order: per partition that is a tail (the idempotent producer acknowledges
        in order), so order by key is kept and nothing delivered is spooled again."""
        while self._flights:
            head = self._flights[0]
            if not head.landed() and time.monotonic() < head.deadline:
                if len(self._flights) <= keep:
                    return
                await head.wait()
            out = self._count(head)
            if out.failure is None and all(out.done):
                self._flights.popleft()
                continue
            flights = list(self._flights)
            self._flights.clear()
            self._feed.put(self._unconfirmed(flights))  # no await since the count: nothing lost
            await self._report_failure(out)
            self._enter_spooling()
            return

    def _unconfirmed(self, flights: Sequence[Flight]) -> list[SpoolRecord]:
        """The records of `flights` (counted now if not yet) that Kafka did not confirm."""
        unsent: list[SpoolRecord] = []
        for flight in flights:
            done = self._count(flight).done
            unsent += [rec for rec, ok in zip(flight.records, done, strict=True) if not ok]
        return unsent

    def _count(self, flight: Flight) -> Outcome:
        """Settle `flight` and count it, once: later calls return the same outcome."""
        if flight.outcome is not None:
            return flight.outcome
        out = flight.settle()
        self.stats.produced.total += out.produced
        for lost, error in out.rejected:
            # A permanent rejection (e.g. message too large): the events cannot ever be
            # delivered; count them as dropped instead of blocking the queue forever.
            self._feed.dropped_total += lost
            self.stats.send_errors_total += lost
            self.stats.error("producer", f"Kafka rejected {lost} event(s): {describe_error(error)}")
        if out.rejected:
            self._feed.sync_stats()
        return out

    async def _report_failure(self, out: Outcome) -> None:
        """Say why a send failed (once per outage) and drop the producer: Kafka is away."""
        reason = describe_error(out.failure) if out.failure is not None else "not acknowledged"
        producer = self._producer
        if producer is not None and self.stats.kafka_states.get("producer") != ConnState.DOWN:
            cause = await reach_cause(producer, self.cfg.bootstrap_servers)
            reason += f"; {cause}" if cause else ""
        self._kafka_down(f"send to Kafka failed ({reason}); spooling")
        await self._close_producer(dead=True)

    async def _send(self, batch: Sequence[SpoolRecord]) -> list[bool]:
        """Send in order and wait; returns, per record, whether it is done (acknowledged by
        Kafka, or rejected for good and counted as dropped). Unconfirmed records are safe to
        send again: the sink deduplicates by event id.
        """
        producer = self._producer
        assert producer is not None
        flight = await launch(
            producer, self._partitioner, batch, self._max_request, self.send_timeout
        )
        await flight.wait()
        out = self._count(flight)
        if out.failure is not None or not all(out.done):
            await self._report_failure(out)
        return out.done

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
                    self._feed.sync_stats()
                    return "done"
                if self.spool.depth <= REPLAY_BATCH:
                    self._set_replaying(True)
                done = await self._send(records)
                sent = next((i for i, ok in enumerate(done) if not ok), len(done))
                # Only a prefix leaves the spool; confirmed records after a gap go out again.
                self.spool.ack(sent)
                self._feed.sync_stats()
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
