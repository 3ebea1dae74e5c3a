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
import struct
from pathlib import Path
from typing import Any

from engine.control.identity import engine_identity
from engine.control.local import history_from_postgres
from engine.control.snapshot_wire import snapshot_to_dict
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
        self._writers: set[asyncio.StreamWriter] = set()

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
            for writer in list(self._writers):
                writer.close()  # the client's handler reads EOF and ends by itself
            if self._clients:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1):
                        await asyncio.gather(*self._clients, return_exceptions=True)
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
        self._writers.add(writer)
        pusher: asyncio.Task[None] | None = None
        who = _peer(writer)
        log.info("control client attached: %s (%d attached)", who, len(self._clients))
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
                    writer.write(dumps(await self._handle(request, who)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # Only from close(): end like a hang-up. A handler task that ends cancelled makes
            # asyncio log "Exception in callback ... CancelledError" at ERROR level.
            pass
        finally:
            if pusher is not None:
                pusher.cancel()
            self._clients.discard(task)
            self._writers.discard(writer)
            writer.close()
            log.info("control client detached: %s", who)

    async def _push(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                doc = {"push": "snapshot", "data": snapshot_to_dict(self.engine.snapshot())}
                writer.write(dumps(doc))
                await writer.drain()
                await asyncio.sleep(1 / PUSH_HZ)

    async def _handle(self, req: dict[str, Any], who: str) -> dict[str, Any]:
        rid = req.get("id")
        op = str(req.get("op"))
        try:
            result = await self._dispatch(op, req)
        except UserError as exc:
            return {"id": rid, "ok": False, "error": str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            return {"id": rid, "ok": False, "error": f"bad request: {exc}"}
        audit = _audit_line(op, req)
        if audit is not None:
            log.info("control client %s: %s", who, audit)
        return {"id": rid, "ok": True, "result": result}

    async def _dispatch(self, op: str, req: dict[str, Any]) -> Any:
        e = self.engine
        if op == "hello":
            return {
                **engine_identity(e.config),
                "agent": e.agent,
                "role": e.role,
                "pid": os.getpid(),
            }
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


def _peer(writer: asyncio.StreamWriter) -> str:
    """'pid 123 uid 1000' from the socket's peer credentials (Linux), for the audit log."""
    sock = writer.get_extra_info("socket")
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):
        return "pid ?"
    pid, uid, _gid = struct.unpack("3i", creds)
    return f"pid {pid} uid {uid}"


def _audit_line(op: str, req: dict[str, Any]) -> str | None:
    """What an applied edit changed, naming the target or metric (None for reads)."""
    if op == "add_target":
        return f"added target {req['target'].get('name')}"
    if op == "update_target":
        new = req["target"].get("name")
        renamed = f" (now {new})" if new != req["name"] else ""
        return f"edited target {req['name']}{renamed}"
    if op == "delete_target":
        return f"deleted target {req['name']}"
    if op == "set_target_enabled":
        return f"{'enabled' if req['enabled'] else 'disabled'} target {req['name']}"
    if op == "set_metric_enabled":
        return f"{'enabled' if req['enabled'] else 'disabled'} metric {req['name']}"
    return None


async def start_control_server(engine: Engine, path: Path) -> ControlServer:
    server = ControlServer(engine, path)
    await server.start()
    return server
