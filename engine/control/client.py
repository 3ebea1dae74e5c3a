"""`Control` over a headless engine's control socket: what `metrictui --attach` uses."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.control.snapshot_wire import snapshot_from_dict
from engine.control.wire import MAX_LINE, dumps, history_in, loads, target_in, target_out
from engine.db.history import TargetHistory
from engine.errors import UserError
from engine.stats import StatsSnapshot
from engine.targets import Target
from engine.tasks import cancel_and_wait

REQUEST_TIMEOUT = 30.0
RECONNECT_EVERY_S = 1.0
"""How often a client whose engine went away tries the socket again (cheap: one connect)."""


def _not_a_socket(path: Path) -> str | None:
    """Why `path` cannot be a control socket (a directory, a regular file), else None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # missing or unreadable: connecting says why
    if stat.S_ISDIR(mode):
        return (
            f"cannot attach to {path}: it is a directory; pass the control socket inside it"
            " ([headless] control_socket of the engine's config)"
        )
    if not stat.S_ISSOCK(mode):
        return (
            f"cannot attach to {path}: it is a regular file, not a control socket; pass the"
            " engine's [headless] control_socket"
        )
    return None


class SocketControl:
    """Client side of the control socket; keeps the newest pushed snapshot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.hello: dict[str, Any] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._snapshot: StatsSnapshot | None = None
        self._listener: asyncio.Task[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._closing = False
        self.connected = False
        self.last_contact: datetime | None = None

    @classmethod
    async def connect(cls, path: Path, timeout: float = 5.0) -> SocketControl:
        not_a_socket = _not_a_socket(path)
        if not_a_socket:
            raise UserError(not_a_socket)
        control = cls(path)
        try:
            async with asyncio.timeout(timeout):
                control._reader, control._writer = await asyncio.open_unix_connection(
                    str(path), limit=MAX_LINE
                )
        except (OSError, TimeoutError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise UserError(
                f"cannot attach to {path} ({reason}); is `metrictui --headless` running"
                " there, and are you the same user?"
            ) from None
        control.connected = True
        control._listener = asyncio.create_task(control._listen(), name="control-listen")
        control.hello = await control._call("hello")
        await control._call("subscribe")
        return control

    @property
    def description(self) -> str:
        agent = self.hello.get("agent", "?")
        pid = self.hello.get("pid", "?")
        config = Path(str(self.hello.get("config") or "?")).name
        return f"attached to agent {agent} (pid {pid}, {config})"

    def snapshot(self) -> StatsSnapshot | None:
        return self._snapshot

    async def _listen(self) -> None:
        assert self._reader is not None
        try:
            while line := await self._reader.readline():
                self.last_contact = datetime.now(UTC)
                doc = loads(line)
                if doc.get("push") == "snapshot":
                    self._snapshot = snapshot_from_dict(doc["data"])
                    continue
                fut = self._pending.pop(int(doc.get("id") or 0), None)
                if fut is not None and not fut.done():
                    fut.set_result(doc)
        except (ConnectionError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            self.connected = False
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(UserError(f"the engine at {self.path} went away"))
            self._pending.clear()
            if not self._closing:
                self._reconnector = asyncio.create_task(self._reconnect(), name="control-again")

    async def _reconnect(self) -> None:
        """Attach again as soon as an engine answers on the same socket (it was restarted)."""
        while not self._closing:
            await asyncio.sleep(RECONNECT_EVERY_S)
            try:
                async with asyncio.timeout(2):
                    reader, writer = await asyncio.open_unix_connection(
                        str(self.path), limit=MAX_LINE
                    )
            except (OSError, TimeoutError):
                continue
            self._reader, self._writer = reader, writer
            self.connected = True
            self._listener = asyncio.create_task(self._listen(), name="control-listen")
            try:
                self.hello = await self._call("hello")
                await self._call("subscribe")
            except UserError:
                pass  # gone again: the listener's end starts the next round
            return

    async def _call(self, op: str, **args: Any) -> Any:
        if not self.connected or self._writer is None:
            raise UserError(f"the engine at {self.path} went away; restart metrictui")
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._writer.write(dumps({"id": rid, "op": op, **args}))
        await self._writer.drain()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                reply = await fut
        except TimeoutError:
            self._pending.pop(rid, None)
            raise UserError(f"the engine at {self.path} did not answer {op}") from None
        if not reply.get("ok"):
            raise UserError(str(reply.get("error") or "refused"))
        return reply.get("result")

    async def get_target(self, name: str) -> Target:
        return target_in(await self._call("get_target", name=name))

    async def add_target(self, target: Target) -> None:
        await self._call("add_target", target=target_out(target))

    async def update_target(self, name: str, target: Target) -> None:
        await self._call("update_target", name=name, target=target_out(target))

    async def delete_target(self, name: str) -> None:
        await self._call("delete_target", name=name)

    async def set_target_enabled(self, name: str, enabled: bool) -> None:
        await self._call("set_target_enabled", name=name, enabled=enabled)

    async def set_metric_enabled(self, name: str, enabled: bool) -> None:
        await self._call("set_metric_enabled", name=name, enabled=enabled)

    async def target_history(self, name: str, since_s: float) -> TargetHistory:
        return history_in(await self._call("target_history", name=name, since_s=since_s))

    async def close(self) -> None:
        self._closing = True
        if self._reconnector is not None:
            await cancel_and_wait(self._reconnector)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._listener is not None:
            await cancel_and_wait(self._listener)
        self.connected = False
