"""The soak's load: the real producer path (`Shipper` + `Spool`) at a steady rate, in its own
process so the soak can SIGKILL it like an agent.

    python -m bench.soak.feeder CONFIG AGENT RATE MARKS STATUS

Every event id says who made it and in which order: the agent name names the incarnation
(a restarted feeder is a new agent) and the id carries a sequence number (see `event_id`), so
PostgreSQL alone tells which events of which incarnation are stored. Before events are handed to
the shipper, the feeder appends "<next seq> <unix time>" to MARKS with one write(2), which
survives a SIGKILL: after the kill, MARKS says exactly how many events were made and when, and
every one of them must be stored unless it was only in memory at the kill.

SIGUSR1 pauses making (the soak drains before it stops); SIGTERM stops like an agent does:
what is queued goes to Kafka or to the spool. STATUS is rewritten twice a second (JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.workload import TARGETS_PER_AGENT, check_payload, sample_template
from engine.config import load_config
from engine.envelope import encode_event
from engine.kafka.shipper import Shipper
from engine.kafka.spool import Spool
from engine.stats import Stats

TICK_S = 0.01
SAMPLES_PER_EVENT = 8  # a small metrics event: the soak is about events, not sample rows
STATUS_EVERY_S = 0.5


def event_id(seq: int) -> uuid.UUID:
    """48 bits of Unix milliseconds (ids stay time-ordered, like the engine's v7 ids, so the
    `events` index grows at its right edge), then 16 zero bits, then the 64-bit sequence."""
    return uuid.UUID(int=((time.time_ns() // 1_000_000) << 80) | seq)


class Feeder:
    """Makes events at `rate` per second and hands them to a real Shipper."""

    def __init__(self, config_path: Path, agent: str, rate: float, marks: Path) -> None:
        self.config = load_config(config_path, env={})
        self.agent = agent
        self.rate = rate
        self.marks_fd = os.open(marks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.stats = Stats("producer", agent)
        spool_mb = self.config.agent.spool_max_mb
        self.spool = Spool(self.config.agent.spool_dir, int(spool_mb * 1024 * 1024))
        self.shipper = Shipper(self.config.kafka, self.spool, self.stats, f"soak-{agent}")
        self.made = 0
        self.paused = False
        self.stopping = asyncio.Event()
        rng = random.Random(agent)
        now = datetime.now(UTC)
        self.metrics = {"samples": sample_template()[:SAMPLES_PER_EVENT]}
        self.checks = [check_payload(rng, "soak", i, now) for i in range(TARGETS_PER_AGENT)]

    def status(self) -> dict[str, object]:
        return {
            "agent": self.agent,
            "made": self.made,
            "produced": self.stats.produced.total,
            "spool": self.spool.depth,
            "spool_dropped": self.stats.spool_dropped_total,
            "queued": self.shipper.queued,
            "kafka": self.stats.kafka_state,
            "paused": self.paused,
            "pid": os.getpid(),
        }

    def make(self, count: int) -> None:
        """Mark, then make and submit `count` events (one metrics event to two checks)."""
        os.write(self.marks_fd, f"{self.made + count} {time.time():.3f}\n".encode())
        k = self.config.kafka
        for _ in range(count):
            seq = self.made
            observed = datetime.now(UTC)
            if seq % 3 == 0:
                value = encode_event(
                    "metrics", self.agent, "soak-host", observed, self.metrics, event_id(seq)
                )
                self.shipper.submit(k.metrics_topic, self.agent.encode(), value)
            else:
                payload = self.checks[seq % TARGETS_PER_AGENT]
                value = encode_event(
                    "check", self.agent, "soak-host", observed, payload, event_id(seq)
                )
                self.shipper.submit(k.checks_topic, payload["target"].encode(), value)
            self.made += 1

    async def run(self, status_path: Path) -> None:
        await self.shipper.start()
        status_task = asyncio.create_task(self._write_status(status_path))
        started = time.monotonic()
        while not self.stopping.is_set():
            due = int(self.rate * (time.monotonic() - started))
            if not self.paused and due > self.made:
                self.make(due - self.made)
            await asyncio.sleep(TICK_S)
        await self.shipper.stop(timeout=60)
        status_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await status_task
        _write_json(status_path, {**self.status(), "stopped": True})

    async def _write_status(self, path: Path) -> None:
        while True:
            _write_json(path, self.status())
            await asyncio.sleep(STATUS_EVERY_S)


def _write_json(path: Path, doc: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(orjson.dumps(doc))
    os.replace(tmp, path)


async def main_async(argv: list[str]) -> None:
    config, agent, rate, marks, status = argv
    feeder = Feeder(Path(config), agent, float(rate), Path(marks))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, feeder.stopping.set)
    loop.add_signal_handler(signal.SIGINT, feeder.stopping.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(feeder, "paused", True))
    await feeder.run(Path(status))


if __name__ == "__main__":
    asyncio.run(main_async(sys.argv[1:]))
