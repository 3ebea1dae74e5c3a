"""One background task around one Kafka consumer: the shape the table reader and the group
member share. `start()` runs `_run()`; `stop()` cancels it and stops the consumer within a
bound, so a broker that does not answer never holds up an agent's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from engine.tasks import cancel_and_wait

STOP_TIMEOUT_S = 5.0
"""How long stopping a consumer may take (LeaveGroup, closing connections)."""


class ConsumerTask:
    """Subclasses implement `_run()` and keep their live consumer in `_consumer`."""

    task_name = "consumer"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        await self._close()

    async def _close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self._consumer.stop()
            self._consumer = None

    async def _run(self) -> None:
        raise NotImplementedError
