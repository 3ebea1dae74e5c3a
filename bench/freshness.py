"""Freshness: observed_at -> committed in PostgreSQL, at a steady event rate.

A feeder process (bench/feeder.py) produces at the wanted rate through the real producer; the
real sink in this process notes, right after each transaction committed, how old its events
were. Events observed during the warm-up (group join, first fetches) are not counted.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bench.env import ROOT, child_env
from bench.measure import percentile
from bench.sink_parts import SinkRunner
from engine.config import Config
from engine.envelope import CheckEvent, MetricsEvent


@dataclass(frozen=True, slots=True)
class Freshness:
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    events: int
    rate: float


async def measure_freshness(
    config: Config, config_path: Path, rate: float, warmup_s: float, seconds: float
) -> Freshness:
    latencies: list[float] = []
    window: list[datetime] = []

    def on_commit(
        metrics: Sequence[MetricsEvent], checks: Sequence[CheckEvent], now: datetime
    ) -> None:
        if not window:
            return
        events: list[MetricsEvent | CheckEvent] = [*metrics, *checks]
        latencies.extend(
            (now - e.observed_at).total_seconds() * 1000
            for e in events
            if e.observed_at >= window[0]
        )

    runner = SinkRunner(config, on_commit)
    await runner.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.feeder",
            str(config_path),
            str(rate),
            str(warmup_s + seconds),
            cwd=ROOT,
            env=child_env(),
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            ready = await proc.stdout.readline()
        if ready.strip() != b"ready":
            raise RuntimeError(f"feeder did not start: {ready!r}")
        window.append(datetime.now(UTC) + timedelta(seconds=warmup_s))
        async with asyncio.timeout(warmup_s + seconds + 60):
            out, _ = await proc.communicate()
        summary = orjson.loads(out.splitlines()[-1])
        if proc.returncode != 0 or summary["spooled"]:
            raise RuntimeError(f"feeder failed: {summary}")
        async with asyncio.timeout(60):
            while runner.events < summary["produced"]:
                await asyncio.sleep(0.05)
    finally:
        await runner.stop()
    return Freshness(
        percentile(latencies, 50),
        percentile(latencies, 99),
        max(latencies, default=None),
        len(latencies),
        summary["sent"] / (warmup_s + seconds),
    )
