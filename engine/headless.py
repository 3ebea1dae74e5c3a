"""`metrictui --headless`: the engine without a screen, for servers and services.

Logs to stderr, prints a status line every `status_interval` seconds, and on SIGINT/SIGTERM
stops collecting, flushes the producer (or spools), finishes the sink batch and exits 0 within
a bounded time (10 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from engine.config import Config
from engine.engine import Engine, Role
from engine.status_line import status_line

log = logging.getLogger("metrictui")
STOP_TIMEOUT = 9.0


async def run_headless(config: Config, role: Role) -> int:
    """Run until a signal arrives; UserError from start() propagates to the CLI."""
    engine = Engine(config, role)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("metrictui starting: role %s, agent %s", role, engine.agent)
    try:
        await engine.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await engine.stop(timeout=3)
        raise
    log.info("running; send SIGTERM or press Ctrl-C to stop")
    extras = await _start_extras(engine)
    interval = config.headless.status_interval
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
        log.info("%s", status_line(engine.snapshot()))
    log.info("stopping: flushing the producer and committing the sink")
    for extra in extras:
        await extra.close()
    await engine.stop(timeout=STOP_TIMEOUT)
    log.info("%s", status_line(engine.snapshot()))
    log.info("stopped cleanly")
    return 0


class _Closable:
    async def close(self) -> None: ...


async def _start_extras(engine: Engine) -> list[_Closable]:
    """Servers that expose a running headless engine (control socket, /metrics)."""
    return []
