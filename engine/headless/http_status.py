"""`[headless] listen`: an aiohttp server with `/metrics` (Prometheus) and `/healthz`.

For monitoring the pipeline itself: Prometheus scrapes `/metrics`; systemd, a load balancer or
Kubernetes probes `/healthz` (200 "ok", or 503 with the reasons). Both read immutable
snapshots, so a scrape never touches live engine state. No access log: a scrape every few
seconds would drown the useful lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from engine.config import split_host_port
from engine.engine import Engine
from engine.errors import UserError
from engine.headless.health import DEFAULT_STALL_AFTER_S, HealthJudge
from engine.headless.prom import CONTENT_TYPE, render_metrics
from engine.tasks import cancel_and_wait

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("metrictui.http")
OBSERVE_EVERY_S = 1.0


class StatusServer:
    """Serves one engine on one host:port until `close()`."""

    def __init__(
        self, engine: Engine, listen: str, stall_after_s: float = DEFAULT_STALL_AFTER_S
    ) -> None:
        self.engine = engine
        self.listen = listen
        self.judge = HealthJudge(stall_after_s)
        self._runner: web.AppRunner | None = None
        self._watch: asyncio.Task[None] | None = None
        self.port: int | None = None

    def mark_started(self) -> None:
        """The engine finished starting: /healthz stops answering 'starting'."""
        self.judge.phase = "running"

    def mark_stopping(self) -> None:
        """Shutdown began: /healthz answers 503 'stopping' until the server closes."""
        self.judge.phase = "stopping"

    async def start(self) -> None:
        # Imported here: aiohttp is a tenth of a second of every start, and most agents and
        # sinks run without `listen` (the sink's first rows come that much sooner).
        from aiohttp import web

        host, port = split_host_port(self.listen)
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, shutdown_timeout=1.0)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise UserError(
                f"cannot listen on {self.listen} for /metrics ({exc.strerror or exc});"
                " change [headless] listen or free the port"
            ) from None
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        self._watch = asyncio.create_task(self._observe(), name="health-watch")
        log.info("serving /metrics and /healthz on %s", self.listen)

    async def _observe(self) -> None:
        """Sample progress once a second, so a stall is timed even when nobody asks."""
        while True:
            self.judge.observe(self.engine.snapshot(), time.monotonic())
            await asyncio.sleep(OBSERVE_EVERY_S)

    async def _metrics(self, request: web.Request) -> web.Response:
        from aiohttp import web

        snap = self.engine.snapshot()
        healthy = self.judge.verdict(snap, time.monotonic()).healthy
        body = render_metrics(snap, healthy=healthy).encode()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        from aiohttp import web

        verdict = self.judge.verdict(self.engine.snapshot(), time.monotonic())
        return web.Response(text=verdict.text + "\n", status=200 if verdict.healthy else 503)

    async def close(self) -> None:
        if self._watch is not None:
            await cancel_and_wait(self._watch)
            self._watch = None
        if self._runner is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await self._runner.cleanup()
            self._runner = None


async def start_status_server(engine: Engine, listen: str) -> StatusServer:
    server = StatusServer(engine, listen)
    await server.start()
    return server
