"""The control socket of a running engine: live snapshots out, target/metric edits in.

A Unix socket with owner-only permissions (0600 in a 0700 directory), so only the user running
the engine (and root) can attach. `metrictui` started on the same machine finds it and attaches
instead of starting a second producer. A stale socket file (engine gone) is replaced; a live
one means another engine already runs here, which is refused with a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Any

from engine.control.local import history_from_postgres
from engine.control.wire import MAX_LINE, dumps, history_out, loads, target_in, target_out
from engine.engine import Engine
from engine.errors import UserError
from engine.targets import Target

log = logging.getLogger("metrictui.control")
PUSH_HZ = 4.0


def socket_is_live(path: Path, timeout: float = 1.0) -> bool:
    """True if an engine answers on `path` (a leftover file from a dead one does not)."""
    if not path.exists():
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


class ControlServer:
    """Serves one engine on one socket path until `close()`."""

    def __init__(self, engine: Engine, path: Path) -> None:
        self.engine = engine
        self.path = path
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if socket_is_live(self.path):
            raise UserError(
                f"another metrictui engine already serves {self.path}; attach to it with"
                " `metrictui --attach` or set [headless] control_socket to another path"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            old_umask = os.umask(0o177)
            try:
                self._server = await asyncio.start_unix_server(
                    self._serve, path=str(self.path), limit=MAX_LINE
                )
            finally:
                os.umask(old_umask)
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise UserError(
                f"cannot create the control socket {self.path} ({exc.strerror}); set"
                ' [headless] control_socket to a writable path, or "" to turn it off'
            ) from None
        log.info("control socket: %s", self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        pusher: asyncio.Task[None] | None = None
        try:
            while line := await reader.readline():
                try:
                    request = loads(line)
                except ValueError:
                    writer.write(dumps({"ok": False, "error": "malformed request"}))
                    continue
                if request.get("op") == "subscribe":
                    if pusher is None:
                        pusher = asyncio.create_task(self._push(writer))
                    writer.write(dumps({"id": request.get("id"), "ok": True, "result": None}))
                else:
                    writer.write(dumps(await self._handle(request)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            if pusher is not None:
                pusher.cancel()
            self._clients.discard(task)
            writer.close()

    async def _push(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                doc = {"push": "snapshot", "data": self.engine.snapshot().to_dict()}
                writer.write(dumps(doc))
                await writer.drain()
                await asyncio.sleep(1 / PUSH_HZ)

    async def _handle(self, req: dict[str, Any]) -> dict[str, Any]:
        rid = req.get("id")
        try:
            result = await self._dispatch(str(req.get("op")), req)
        except UserError as exc:
            return {"id": rid, "ok": False, "error": str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            return {"id": rid, "ok": False, "error": f"bad request: {exc}"}
        return {"id": rid, "ok": True, "result": result}

    async def _dispatch(self, op: str, req: dict[str, Any]) -> Any:
        e = self.engine
        if op == "hello":
            return {"agent": e.agent, "role": e.role, "pid": os.getpid()}
        if op == "get_target":
            return target_out(e.get_target(str(req["name"])))
        if op == "add_target":
            await e.add_target(self._target(req))
            return None
        if op == "update_target":
            await e.update_target(str(req["name"]), self._target(req))
            return None
        if op == "delete_target":
            await e.delete_target(str(req["name"]))
            return None
        if op == "set_target_enabled":
            await e.set_target_enabled(str(req["name"]), bool(req["enabled"]))
            return None
        if op == "set_metric_enabled":
            await e.set_metric_enabled(str(req["name"]), bool(req["enabled"]))
            return None
        if op == "target_history":
            h = await history_from_postgres(e, str(req["name"]), float(req["since_s"]))
            return history_out(h)
        raise UserError(f"unknown operation {op[:40]!r}")

    @staticmethod
    def _target(req: dict[str, Any]) -> Target:
        return target_in(req["target"])


async def start_control_server(engine: Engine, path: Path) -> ControlServer:
    server = ControlServer(engine, path)
    await server.start()
    return server
