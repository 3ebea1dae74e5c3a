"""Website checks at scale, and the agent's own footprint.

Checks: the real engine (producer role: scheduler, checker, shipper to Kafka; with its check
worker processes when ``[agent] check_workers`` asks for them) with N targets against the local
web server. Its check callback is wrapped to note each result's arrival in the engine and its
lateness (the check start against its slot, as the scheduler reports it). Counted after one full
interval of warm-up, so the spread-out first runs are not mistaken for a slow scheduler. CPU per
check counts the engine process and its workers.

Agent: `metrictui --headless --role producer` as a child process, every metric each second and
a handful of targets; CPU (user + system, all threads) over the window after warm-up, as a
percentage of one core, and RSS at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.env import BenchEnv, child_env
from bench.measure import percentile
from engine.agent.checks.pool import CheckWorkerPool
from engine.engine import Engine
from engine.records.check_result import CheckResult


@dataclass(frozen=True, slots=True)
class Checks:
    per_s: float
    lateness_p50_ms: float | None
    lateness_p99_ms: float | None
    ok_pct: float | None
    missed_slots: int
    """Slots skipped during the window (a check could not start within its interval)."""
    cpu_ms_per_check: float | None
    """CPU of the engine and its check workers (scheduler, checker, events to Kafka) per check
    in the window."""
    engine_cpu_ms_per_check: float | None
    """The engine process's part of that (Kafka, stats; everything when in-process)."""
    workers: int
    """Check worker processes (0: checks ran in the engine process)."""
    concurrency: int


def targets(url: str, count: int, interval: float) -> list[dict[str, Any]]:
    return [
        {"name": f"t{i:05d}", "url": f"{url}t/{i}", "interval": interval, "timeout": 5.0}
        for i in range(count)
    ]


async def measure_checks(
    env: BenchEnv, url: str, count: int, interval: float, warmup_s: float, seconds: float
) -> Checks:
    names = env.names("checks")
    config, _ = env.config(
        "checks", names, targets=targets(url, count, interval), agent={"metrics_interval": 10.0}
    )
    await env.create_topics(config)
    engine = Engine(config, role="producer")
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, float, bool]] = []
    original: Callable[..., None] = engine._on_check

    def on_check(result: CheckResult, lateness: float, *event: bytes) -> None:
        seen.append((loop.time(), lateness, result.ok))
        original(result, lateness, *event)

    setattr(engine, "_on_check", on_check)  # noqa: B010 - instrumenting an instance
    await engine.start()
    started = loop.time()
    me = psutil.Process()
    try:
        await asyncio.sleep(warmup_s)
        cpu, workers_cpu = time.process_time(), _children_cpu(me)
        missed = engine.scheduler.missed_slots if engine.scheduler else 0
        await asyncio.sleep(seconds)
        cpu, workers_cpu = time.process_time() - cpu, _children_cpu(me) - workers_cpu
        missed = (engine.scheduler.missed_slots if engine.scheduler else 0) - missed
        pool = engine.scheduler if isinstance(engine.scheduler, CheckWorkerPool) else None
        worker_pids = pool.pids() if pool is not None else []
    finally:
        await engine.stop(timeout=20)
    lo, hi = started + warmup_s, started + warmup_s + seconds
    window = [(late, ok) for at, late, ok in seen if lo <= at < hi]
    late_ms = [late * 1000 for late, _ in window]
    return Checks(
        per_s=len(window) / seconds,
        lateness_p50_ms=percentile(late_ms, 50),
        lateness_p99_ms=percentile(late_ms, 99),
        ok_pct=100 * sum(ok for _, ok in window) / len(window) if window else None,
        missed_slots=missed,
        cpu_ms_per_check=1000 * (cpu + workers_cpu) / len(window) if window else None,
        engine_cpu_ms_per_check=1000 * cpu / len(window) if window else None,
        workers=len(worker_pids),
        concurrency=config.agent.check_concurrency,
    )


def _children_cpu(me: psutil.Process) -> float:
    """CPU (user + system) of the live child processes (the check workers) so far."""
    total = 0.0
    for child in me.children():
        with contextlib.suppress(psutil.Error):
            total += _cpu(child)
    return total


async def bare_http(url: str, count: int, concurrency: int) -> float:
    """Requests per second of a bare aiohttp client, a new connection each (as the checker
    makes), at the checker's concurrency: what Python's HTTP stack can do on this machine."""
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            async with gate, session.get(f"{url}t/{i}") as response:
                await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        return count / (time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class Agent:
    cpu_pct: float
    rss_mb: float
    rss_max_mb: float


async def measure_agent(
    env: BenchEnv, url: str, count: int, interval: float, warmup_s: float, seconds: float
) -> Agent:
    names = env.names("agent")
    _, path = env.config(
        "agent",
        names,
        targets=targets(url, count, interval),
        agent={"metrics_interval": 1.0},
        headless={"status_interval": 10.0, "listen": ""},
    )
    log = path.parent / "agent.log"
    metrictui = str(Path(sys.executable).parent / "metrictui")
    argv = [metrictui, "--headless", "--role", "producer", "--config", str(path)]
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=child_env(), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        p = psutil.Process(proc.pid)
        await asyncio.sleep(warmup_s)
        cpu0, wall0 = _cpu(p), time.monotonic()
        rss_max = 0
        while time.monotonic() - wall0 < seconds - warmup_s:
            if proc.returncode is not None:
                raise RuntimeError(f"the agent exited early: {log.read_text()[-800:]}")
            rss_max = max(rss_max, p.memory_info().rss)
            await asyncio.sleep(1.0)
        cpu1, wall1 = _cpu(p), time.monotonic()
        rss = p.memory_info().rss
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the agent exited with {proc.returncode}: {log.read_text()[-800:]}")
    mb = 1024 * 1024
    return Agent(100 * (cpu1 - cpu0) / (wall1 - wall0), rss / mb, max(rss, rss_max) / mb)


def _cpu(p: psutil.Process) -> float:
    times = p.cpu_times()
    return float(times.user + times.system)
