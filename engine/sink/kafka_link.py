"""The sink's Kafka consumer: made, started with back-off, watched while idle, replaced when
only a new one can reach Kafka, and stopped. What it reads is engine/sink/consume.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from engine.config import Config
from engine.errors import ConfigError
from engine.kafka.settings import client_kwargs, describe_kafka_error
from engine.kafka.watch import SettingsWatch
from engine.stats import ConnState, Stats
from engine.tasks import sleep_unless

log = logging.getLogger("metrictui.sink")

# aiokafka's consumer reconnects by itself, and while no broker takes it getmany() just comes
# back empty: after this long without a message, a metadata request tells "nothing to read"
# apart from "Kafka is away or refuses us".
KAFKA_IDLE_CHECK_S = 5.0


class KafkaLink:
    """Holds the sink's consumer (None until `start()` got one running) and its state."""

    def __init__(
        self, config: Config, stats: Stats, client_id: str, stopping: asyncio.Event
    ) -> None:
        self.config = config
        self.stats = stats
        self.client_id = client_id
        self.consumer: AIOKafkaConsumer | None = None
        self._stopping = stopping
        # Names the cause when Kafka refuses our settings after start (see engine.kafka.watch).
        self._watch = SettingsWatch(config.kafka, stats, "consumer")
        self._checked_at = 0.0  # last message or metadata answer (monotonic)
        self._retired: asyncio.Task[None] | None = None  # a replaced consumer, stopping

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

    async def start(self) -> None:
        """Start a consumer, retrying with back-off until one runs or the sink stops."""
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
                self.down()
                log.warning(
                    "Kafka consumer cannot connect to %s (%s); retrying",
                    self.config.kafka.bootstrap_servers,
                    describe_kafka_error(exc),
                )
                await sleep_unless(self._stopping, backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            self.consumer = consumer
            self.up()
            return

    def up(self) -> None:
        """Kafka answered (a batch, or metadata)."""
        self._checked_at = time.monotonic()
        self.stats.set_kafka_state("consumer", ConnState.CONNECTED)
        self._watch.up()

    def down(self) -> None:
        self.stats.set_kafka_state("consumer", ConnState.DOWN)
        self._watch.down()

    async def check(self) -> None:
        """While no message arrives, ask for metadata every KAFKA_IDLE_CHECK_S (bounded):
        only an answer proves the consumer still reaches Kafka with our settings."""
        now = time.monotonic()
        if self.consumer is None or now - self._checked_at < KAFKA_IDLE_CHECK_S:
            return
        self._checked_at = now
        try:
            async with asyncio.timeout(self.config.kafka.request_timeout_s):
                await self.consumer.topics()
        except (KafkaError, OSError, TimeoutError):
            self.down()
            if self._watch.settings_work:
                await self._rebuild()
            return
        self.up()

    async def _rebuild(self) -> None:
        """A probe with the settings as they are now gets through, and this consumer still
        cannot: aiokafka reuses the TLS context it was built with on every reconnect, so a CA,
        certificate or key rotated on disk since (the fix for a replaced broker CA) reaches
        only a new consumer. The old one stays in place until the new one runs, and is
        stopped in the background: aiokafka's stop() can outlast its timeout on a consumer
        that cannot reach the broker, and must not hold up consuming."""
        log.info("Kafka takes the [kafka] settings as they are now; reconnecting the consumer")
        old = self.consumer
        await self.start()
        if old is not None and old is not self.consumer:
            self._retired = asyncio.create_task(_stop_quietly(old), name="sink-old-consumer")

    async def close(self) -> None:
        await self._watch.close()
        if self._retired is not None and not self._retired.done():
            self._retired.cancel()
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.consumer.stop()
            self.consumer = None


async def _stop_quietly(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer that is being replaced; bounded, and nothing it raises matters."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(10):
            await consumer.stop()
