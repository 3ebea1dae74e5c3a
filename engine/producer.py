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
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from engine.config import KafkaConfig
from engine.kafka_settings import client_kwargs
from engine.spool import Spool, SpoolError, SpoolRecord
from engine.stats import Stats

log = logging.getLogger("metrictui.producer")

SEND_BATCH = 2000
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

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool and try Kafka once; if Kafka is away, start in spooling mode."""
        self.spool.open()
        self._sync_spool_stats()
        if self.spool.depth:
            log.info("spool holds %d events from an earlier run; replaying", self.spool.depth)
            self._enter_spooling()
        else:
            try:
                await self._connect()
            except (KafkaError, OSError, TimeoutError) as exc:
                self._kafka_down(f"Kafka unreachable at start ({_describe(exc)}); spooling")
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
        await self._close_producer(max(0.5, deadline - loop.time()))
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
        )
        try:
            async with asyncio.timeout(self.send_timeout):
                await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await producer.stop()
            raise
        self._producer = producer
        self.stats.kafka_state = "connected"

    async def _close_producer(self, timeout: float = 3.0) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await producer.stop()
        except (TimeoutError, KafkaError, OSError) as exc:
            log.debug("producer close: %s", _describe(exc))

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
            if self._spooling or self._producer is None:
                self._to_spool(batch)
                continue
            # Kept until confirmed, so a stop() that cancels us mid-send can spool it.
            self._inflight = batch
            sent = await self._send(batch)
            if sent < len(batch):
                self._to_spool(batch[sent:])
                self._enter_spooling()
            self._inflight = []

    async def _send(self, batch: Sequence[SpoolRecord]) -> int:
        """Send in order; returns how many records are confirmed (a prefix of `batch`).

        Records after the first failure are reported unsent even if some were delivered:
        re-sending them is safe (the sink deduplicates) and keeps the spool ordered.
        """
        producer = self._producer
        assert producer is not None
        futures: list[asyncio.Future[object]] = []
        try:
            async with asyncio.timeout(self.send_timeout):
                for rec in batch:
                    futures.append(await producer.send(rec.topic, rec.value, key=rec.key))
                results = await asyncio.gather(*futures, return_exceptions=True)
        except (TimeoutError, KafkaError, OSError) as exc:
            _discard(futures)
            self._kafka_down(f"send to Kafka failed ({_describe(exc)}); spooling")
            await self._close_producer(1.0)
            return 0
        confirmed = 0
        for result in results:
            if isinstance(result, BaseException):
                if isinstance(result, KafkaError) and not getattr(result, "retriable", True):
                    # A permanent rejection (e.g. message too large): the event cannot ever be
                    # delivered; count it as dropped instead of blocking the queue forever.
                    self.dropped_total += 1
                    self.stats.send_errors_total += 1
                    self.stats.error("producer", f"Kafka rejected an event: {_describe(result)}")
                    confirmed += 1
                    continue
                self._kafka_down(f"send to Kafka failed ({_describe(result)}); spooling")
                await self._close_producer(1.0)
                break
            confirmed += 1
            self.stats.produced.total += 1
        return confirmed

    def _to_spool(self, records: Sequence[SpoolRecord]) -> None:
        try:
            self.spool.append(records)
        except SpoolError as exc:
            self.dropped_total += len(records)
            self.stats.spool_dropped_total += len(records)
            self.stats.error("spool", str(exc))
            log.error("%s (%d events dropped)", exc, len(records))
        self._sync_spool_stats()

    def _sync_spool_stats(self) -> None:
        self.stats.spool_depth = self.spool.depth
        self.stats.spool_bytes = self.spool.bytes
        self.stats.spool_dropped_total = self.spool.dropped_total + self.dropped_total

    def _kafka_down(self, message: str) -> None:
        if self.stats.kafka_state != "down":
            log.warning("%s", message)
            self.stats.error("kafka", message)
        self.stats.kafka_state = "down"

    def _enter_spooling(self) -> None:
        self._spooling = True
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover(), name="shipper-recover")

    async def _recover(self) -> None:
        """Reconnect with backoff and replay the spool in order, then leave spooling mode."""
        backoff = 0.5
        while True:
            if self._producer is None:
                try:
                    self.stats.kafka_state = "connecting"
                    await self._connect()
                    log.info("Kafka is back; replaying %d spooled events", self.spool.depth)
                except (KafkaError, OSError, TimeoutError) as exc:
                    self.stats.kafka_state = "down"
                    log.debug("reconnect failed: %s", _describe(exc))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
            records = self.spool.peek(REPLAY_BATCH)
            if not records:
                # No await between this check and the switch: nothing can slip in between.
                self._spooling = False
                self._sync_spool_stats()
                return
            sent = await self._send(records)
            self.spool.ack(sent)
            self._sync_spool_stats()
            if sent < len(records):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            else:
                backoff = 0.5


def _discard(futures: Sequence[asyncio.Future[object]]) -> None:
    """Cancel pending send futures and mark failed ones as seen (no 'never retrieved' noise)."""
    for fut in futures:
        if not fut.done():
            fut.cancel()
        elif not fut.cancelled():
            fut.exception()


def _describe(exc: BaseException) -> str:
    """Short, secret-free description of a Kafka/network error."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text[:200]}" if text else name
