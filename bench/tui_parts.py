"""The sink with the TUI attached vs headless, same data, same engine.

Both runs are the in-process `Engine` (consumer role) draining the pre-filled topics into a
fresh schema; one of them under the real `MetricTuiApp` driven by Textual's headless test
driver, which lays out and renders every refresh like a terminal would, minus the terminal.
"""

from __future__ import annotations

import asyncio
import time

from bench.kafka_parts import TIMEOUT_S, wait_assigned
from bench.measure import Throughput
from engine.config import Config
from engine.control.local import LocalControl
from engine.engine import Engine


async def engine_drain(config: Config, rows: int, events: int, *, tui: bool) -> Throughput:
    engine = Engine(config, role="consumer")
    if not tui:
        return await _drain(engine, rows, events)
    from tui.app import MetricTuiApp  # only this part needs Textual

    app = MetricTuiApp(LocalControl(engine), refresh_hz=config.tui.refresh_hz)
    async with app.run_test(size=(120, 40)):
        return await _drain(engine, rows, events)


async def _drain(engine: Engine, rows: int, events: int) -> Throughput:
    await engine.start()
    try:
        async with asyncio.timeout(TIMEOUT_S):
            started = await wait_assigned(lambda: engine.sink.consumer if engine.sink else None)
            cpu = time.process_time()
            while engine.stats.inserted.total < rows:
                await asyncio.sleep(0.002)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
    finally:
        await engine.stop(timeout=20)
    s = engine.stats
    return Throughput(s.inserted_events_total, s.inserted.total, elapsed, cpu)
