"""The web server of `metrictui serve`: the gate, the page, the assets and one websocket per tab.

It owns the tab processes: each websocket starts one (`TabProcess`) and ends it when the
socket closes; SIGTERM or SIGINT ends every tab and the server within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from importlib.resources import files
from pathlib import Path

from aiohttp import WSMsgType, web
from textual_serve.download_manager import DownloadManager

from engine.errors import UserError
from tui.serve.auth import TokenGate
from tui.serve.page import CONTENT_SECURITY_POLICY, PAGE_CSS, font_size, page_html, websocket_url
from tui.serve.settings import ServeSettings
from tui.serve.tabs import TabProcess

log = logging.getLogger("metrictui.serve")

MAX_TABS = 32
"""Each tab is a Python process (~60 MB); more than this is a mistake or an attack."""
STATIC_DIR = Path(str(files("textual_serve"))) / "static"


class DashboardServer:
    """aiohttp application plus the set of live tab processes."""

    def __init__(self, settings: ServeSettings, tab_argv: list[str]) -> None:
        self.settings = settings
        self.tab_argv = tab_argv
        self.tabs: set[TabProcess] = set()
        self._downloads = DownloadManager()
        self._gate = TokenGate(settings.token, settings.port, public_url=settings.public_url)
        self._closing = False

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate.middleware])
        app.add_routes(
            [
                web.get("/", self.index),
                web.get("/page.css", self.stylesheet),
                web.get("/ws", self.websocket),
                web.get("/favicon.ico", _no_icon),
                web.static("/static", STATIC_DIR),
            ]
        )
        return app

    async def index(self, request: web.Request) -> web.Response:
        body = page_html(websocket_url(request, self.settings.public_url), font_size(request))
        return web.Response(
            text=body,
            content_type="text/html",
            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
        )

    async def stylesheet(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE_CSS, content_type="text/css")

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if self._closing or len(self.tabs) >= MAX_TABS:
            return web.Response(status=503, text="metrictui serve: too many open tabs\n")
        ws = web.WebSocketResponse(heartbeat=15)
        await ws.prepare(request)

        async def close() -> None:
            await ws.close()

        tab = TabProcess(
            self.tab_argv,
            write_bytes=ws.send_bytes,
            write_str=ws.send_str,
            close=close,
            download_manager=self._downloads,
        )
        self.tabs.add(tab)
        try:
            await tab.start(_size(request, "width", 80), _size(request, "height", 24))
            log.info("tab opened: dashboard pid %s", tab.pid)
            await _pump(ws, tab)
        finally:
            await tab.stop_within()
            self.tabs.discard(tab)
            log.info("tab closed: dashboard pid %s ended", tab.pid)
            await ws.close()
        return ws

    async def stop_tabs(self) -> None:
        """End every tab's dashboard (each one bounded in time), all at once."""
        self._closing = True
        await asyncio.gather(*(tab.stop_within() for tab in list(self.tabs)))


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _size(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name, "")
    return int(text) if text.isdigit() and 1 <= int(text) <= 1000 else default


async def _pump(ws: web.WebSocketResponse, tab: TabProcess) -> None:
    """Browser to dashboard: keys, sizes, focus; pings are answered here."""
    async for message in ws:
        if message.type != WSMsgType.TEXT:
            continue
        try:
            envelope = json.loads(message.data)
        except ValueError:
            break  # not textual.js talking: drop the tab
        if not isinstance(envelope, list) or not envelope:
            break
        kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
        if kind == "stdin" and isinstance(data, str):
            await tab.send_bytes(data.encode("utf-8"))
        elif kind == "resize" and isinstance(data, dict):
            width, height = data.get("width"), data.get("height")
            if isinstance(width, int) and isinstance(height, int):
                await tab.set_terminal_size(max(1, min(width, 1000)), max(1, min(height, 1000)))
        elif kind == "ping":
            await ws.send_json(["pong", data])
        elif kind == "blur":
            await tab.blur()
        elif kind == "focus":
            await tab.focus()


async def serve_until_signalled(settings: ServeSettings, tab_argv: list[str], socket: Path) -> int:
    """Bind, print the address with the token once, and run until SIGTERM/SIGINT."""
    server = DashboardServer(settings, tab_argv)
    runner = web.AppRunner(server.make_app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        where = f"{settings.host}:{settings.port}"
        raise UserError(f"cannot listen on {where} ({exc.strerror}); try --listen") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"metrictui serve: open {settings.login_url}  (engine socket {socket})", flush=True)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        print("metrictui serve: stopping: closing every tab", file=sys.stderr, flush=True)
        await server.stop_tabs()
        # Worst case: 1.5 s to quit, 1 s after SIGTERM, SIGKILL, 1 s here: under the 5 s promised.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await runner.cleanup()
    return 0


def run_serve(settings: ServeSettings, socket: Path, refresh_hz: float, targets_file: Path) -> int:
    """`metrictui serve`: blocks until a signal; returns the exit code."""
    argv = [sys.executable, "-m", "tui.serve.tab", str(socket), str(refresh_hz), str(targets_file)]
    return asyncio.run(serve_until_signalled(settings, argv, socket))
