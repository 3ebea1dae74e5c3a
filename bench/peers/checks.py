"""Website checks side by side: metrictui's agent and Telegraf's http_response, same targets.

Both run as processes against the same local nginx and send one Kafka message per check result
to their own topic, so one method counts both: the topic's end offsets before and after a window
that starts after warm-up (one full interval, so the first round's spreading is not mistaken for
the steady rate). CPU per check is the process tree's CPU (metrictui's check workers included)
over the same window, read from /proc.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.peers.cache import one_line_error
from bench.peers.drain import stop_process
from bench.peers.procstat import tree_cpu_s


@dataclass(frozen=True, slots=True)
class ChecksRun:
    system: str
    per_s: float
    cpu_ms_per_check: float
    checks: int
    window_s: float

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "system": self.system,
            "checks_per_s": round(self.per_s, 1),
            "cpu_ms_per_check": round(self.cpu_ms_per_check, 3),
            "checks": self.checks,
            "window_s": round(self.window_s, 1),
        }


async def topic_end(bootstrap: str, topic: str, partitions: int) -> int:
    """Messages ever written to `topic` (sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)  # puts the topic in the client's metadata
            ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return sum(ends.values())


async def _first_result(
    system: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    bootstrap: str,
    topic: str,
    partitions: int,
    timeout_s: float = 120.0,
) -> None:
    """Until the first result is in Kafka: start-up (imports, JVM-less Go, workers) is not
    part of the checks' steady rate."""
    deadline = time.monotonic() + timeout_s
    while await topic_end(bootstrap, topic, partitions) == 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"{system} sent no check result within {timeout_s:.0f} s of start"
                f" ({one_line_error(log)}); see {log}"
            )
        await asyncio.sleep(0.5)


async def measure_checks(
    system: str,
    argv: list[str],
    *,
    workdir: Path,
    bootstrap: str,
    topic: str,
    partitions: int,
    warmup_s: float,
    window_s: float,
    env: dict[str, str] | None = None,
) -> ChecksRun:
    log = workdir / f"{system}.log"
    with log.open("wb") as out:
        proc = await asyncio.to_thread(
            subprocess.Popen, argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env
        )
        try:
            await _first_result(system, proc, log, bootstrap, topic, partitions)
            await asyncio.sleep(warmup_s)
            before = await topic_end(bootstrap, topic, partitions)
            cpu0, t0 = tree_cpu_s(proc.pid), time.time()
            await asyncio.sleep(window_s)
            after = await topic_end(bootstrap, topic, partitions)
            cpu1, t1 = tree_cpu_s(proc.pid), time.time()
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{system} exited with code {proc.returncode} while checking"
                    f" ({one_line_error(log)}); see {log}"
                )
        finally:
            await asyncio.to_thread(stop_process, proc)
    checks = after - before
    if checks <= 0:
        raise RuntimeError(
            f"{system} sent no check results to {topic} in {window_s:.0f} s"
            f" ({one_line_error(log)}); see {log}"
        )
    return ChecksRun(system, checks / (t1 - t0), 1000 * (cpu1 - cpu0) / checks, checks, t1 - t0)
