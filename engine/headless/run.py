"""`metrictui --headless`: the engine without a screen, for servers and services.

Logs to stderr, prints a status line every `status_interval` seconds, serves `/metrics` and
`/healthz` when `[headless] listen` is set and the control socket (for `metrictui --attach`)
unless `[headless] control_socket` is empty, and on SIGINT/SIGTERM stops collecting, flushes
the producer (or spools), finishes the sink batch and exits 0 within a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Protocol

from engine.config import Config
from engine.control.client import SocketControl
from engine.control.server import socket_is_live, start_control_server
from engine.engine import Engine, Role
from engine.errors import UserError
from engine.headless.http_status import StatusServer, start_status_server
from engine.headless.status_line import status_line

log = logging.getLogger("metrictui")
STOP_TIMEOUT = 9.0


async def run_headless(config: Config, role: Role) -> int:
    """Run until a signal arrives; UserError from start() propagates to the CLI."""
    path = control_socket_path(config)
    if path is not None and socket_is_live(path) and await _both_produce(path, role):
        # A second producing engine of this config would produce everything twice; a consumer
        # beside it duplicates nothing (its group splits the partitions) and runs on without
        # the socket.
        raise UserError(
            f"another metrictui engine already serves {path}; attach to it with"
            f" `metrictui --attach {path}`, or give this one its own [headless] control_socket"
        )
    engine = Engine(config, role)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("metrictui starting: role %s, agent %s", role, engine.agent)
    status: StatusServer | None = None
    extras: list[_Closable] = []
    try:
        # Before the engine, so /healthz says "starting" and a busy port fails before connecting.
        if config.headless.listen:
            status = await start_status_server(engine, config.headless.listen)
        await engine.start()
        if status is not None:
            status.mark_started()
        extras = await _start_extras(engine)
    except BaseException:
        for extra in extras:
            await extra.close()
        with contextlib.suppress(Exception):
            await engine.stop(timeout=3)
        if status is not None:
            await status.close()
        raise
    log.info("running; send SIGTERM or press Ctrl-C to stop")
    interval = config.headless.status_interval
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
        log.info("%s", status_line(engine.snapshot()))
    log.info("stopping: flushing the producer and committing the sink")
    if status is not None:
        status.mark_stopping()
    for extra in extras:
        await extra.close()
    await engine.stop(timeout=STOP_TIMEOUT)
    if status is not None:
        await status.close()
    log.info("%s", status_line(engine.snapshot()))
    log.info("stopped cleanly")
    return 0


async def _both_produce(path: Path, role: Role) -> bool:
    """Whether this engine and the one serving `path` would both produce (its `hello` says
    its role; an engine that does not answer is taken to produce, the safe side)."""
    if role == "consumer":
        return False
    try:
        other = await SocketControl.connect(path, timeout=3.0)
    except UserError:
        return True
    try:
        return other.hello.get("role") != "consumer"
    finally:
        await other.close()


class _Closable(Protocol):
    async def close(self) -> None: ...


def control_socket_path(config: Config) -> Path | None:
    """The configured control socket, or None when it is turned off (empty)."""
    path = config.headless.control_socket
    return path if str(path) not in ("", ".") else None


async def _start_extras(engine: Engine) -> list[_Closable]:
    """Servers that expose a running headless engine: the control socket.

    The pipeline matters more than the socket: if it cannot be served (another engine on
    this machine serves that path, or the directory is not writable), say so and run on.
    """
    extras: list[_Closable] = []
    path = control_socket_path(engine.config)
    if path is not None:
        try:
            extras.append(await start_control_server(engine, path))
        except UserError as exc:
            log.warning("running without a control socket: %s", exc)
            engine.stats.error("control", str(exc))
    return extras
