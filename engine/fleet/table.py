"""The whole targets table, kept by reading every partition of the compacted targets topic.

Every agent and every dashboard holds the full table (not only its share): the dashboard shows
all targets, and when the group hands this agent more partitions it can check their targets at
once, without reading anything again. The reader is group-less (no group id: it is assigned
every partition and starts from the beginning), so it never takes part in the agents' group.
A bad record is skipped, counted in `bad_total`, reported through `on_bad`, and never stops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from engine.config.model import KafkaConfig
from engine.fleet.consumer_task import ConsumerTask
from engine.fleet.records import BadRecord, decode_target
from engine.kafka.settings import client_kwargs
from engine.targets.model import Target

log = logging.getLogger("metrictui.fleet")

FETCH_WAIT_MS = 200
"""How long a fetch waits for new records: bounds how soon an edit reaches every agent."""


class TargetsTable(ConsumerTask):
    """Owns the group-less reader task; `targets` and `partition_of` are the table so far."""

    task_name = "fleet-table"

    def __init__(
        self,
        cfg: KafkaConfig,
        client_id: str,
        base_dir: Path,
        on_change: Callable[[], None] = lambda: None,
        on_bad: Callable[[str], None] = lambda line: None,
    ) -> None:
        super().__init__()
        self._cfg = cfg
        self._client_id = client_id
        self._base_dir = base_dir
        self._on_change = on_change
        self._on_bad = on_bad
        self.targets: dict[str, Target] = {}
        self.partition_of: dict[str, int] = {}
        """The partition each target's record lives in: the group assigns partitions."""
        self.bad_total = 0
        self.partitions = 0
        self.caught_up = asyncio.Event()
        """Set once the table holds everything the topic had when the reader started."""

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._read()
            except (KafkaError, OSError, TimeoutError) as exc:  # Kafka away: keep the table
                log.warning("reading the targets topic failed (%s); retrying", type(exc).__name__)
                await self._close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _read(self) -> None:
        topic = self._cfg.targets_topic
        consumer = AIOKafkaConsumer(
            **client_kwargs(self._cfg, f"{self._client_id}-table"),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )
        self._consumer = consumer
        async with asyncio.timeout(self._cfg.request_timeout_s + 5):
            await consumer.start()
            # Without a group id the subscription is every partition, from the beginning.
            consumer.subscribe([topic])
            partitions = await _partitions(consumer)
        self.partitions = len(partitions)
        async with asyncio.timeout(self._cfg.request_timeout_s + 5):
            ends = await consumer.end_offsets(partitions)
        behind = {tp: end for tp, end in ends.items() if end > 0}
        if not behind:
            self.caught_up.set()
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            changed = False
            for tp, records in batch.items():
                for record in records:
                    changed |= self._apply(record.key, record.value, tp.partition)
                if tp in behind and records and records[-1].offset + 1 >= behind[tp]:
                    del behind[tp]
            if changed and (self.caught_up.is_set() or not behind):
                self._on_change()
            if not behind and not self.caught_up.is_set():
                log.info("targets table loaded: %d targets", len(self.targets))
                self.caught_up.set()
                self._on_change()

    def _apply(self, key: bytes | None, value: bytes | None, partition: int) -> bool:
        """Apply one record; returns whether the table changed."""
        try:
            target = decode_target(key, value, self._base_dir)
        except BadRecord as bad:
            self.bad_total += 1
            line = f"targets topic partition {partition}: record skipped: {bad.reason}"
            log.warning("%s", line)
            self._on_bad(line)
            return False
        assert key is not None
        name = key.decode("utf-8")
        if target is None:
            self.partition_of.pop(name, None)
            return self.targets.pop(name, None) is not None
        self.partition_of[name] = partition
        if self.targets.get(name) == target:
            return False
        self.targets[name] = target
        return True


async def _partitions(consumer: AIOKafkaConsumer) -> list[TopicPartition]:
    """The subscription's partitions, once metadata has arrived (a missing topic waits)."""
    while not consumer.assignment():
        await asyncio.sleep(0.05)  # the client's metadata task assigns them in the background
    return sorted(consumer.assignment())


async def read_table(cfg: KafkaConfig, base_dir: Path, timeout: float = 30.0) -> TargetsTable:
    """Read the whole table once (for `metrictui targets list/export/import --prune`)."""
    table = TargetsTable(cfg, "metrictui-cli", base_dir)
    table.start()
    try:
        async with asyncio.timeout(timeout):
            await table.caught_up.wait()
    finally:
        await table.stop()
    return table
