"""Start the dashboard: attached to a running engine, or around an in-process engine.

If an engine already serves the configured control socket, `metrictui` attaches to it instead
of starting a second producer (and says so). Otherwise it starts the engine in this process and
serves the control socket itself, so a second `metrictui` on the same machine attaches too.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from engine.config import Config
from engine.control.client import SocketControl
from engine.control.identity import describe, engine_identity, same_engine
from engine.control.local import LocalControl
from engine.control.protocol import Control
from engine.control.server import ControlServer, socket_is_live, start_control_server
from engine.engine import Engine, Role
from engine.errors import UserError

log = logging.getLogger("metrictui")


async def run_app(control: Control, refresh_hz: float, targets_file: Path | None = None) -> int:
    """Run the Textual app on the current event loop (an in-process engine shares it)."""
    from tui.app import run_tui_async

    hint = str(targets_file) if targets_file else None
    return await run_tui_async(control, refresh_hz=refresh_hz, targets_file_hint=hint)


def _socket_path(config: Config) -> Path | None:
    path = config.headless.control_socket
    return path if str(path) not in ("", ".") else None


def launch(config: Config, role: Role) -> int:
    """`metrictui` without --headless."""
    return asyncio.run(_launch(config, role))


async def _launch(config: Config, role: Role) -> int:
    """Attach to the engine of this same config if one runs here, else start our own.

    The engine on the socket may run another config (the socket was set explicitly to a shared
    path): steering it would show and edit someone else's targets, so run our own engine then.
    """
    path = _socket_path(config)
    if path is None or not socket_is_live(path):
        return await _run_local(config, role, path)
    control = await SocketControl.connect(path)
    if same_engine(engine_identity(config), control.hello):
        print(
            f"metrictui: ATTACHED to the running engine of this config ({describe(control.hello)})"
            f" on {path}, instead of starting a second one",
            file=sys.stderr,
        )
        try:
            return await run_app(control, config.tui.refresh_hz)
        finally:
            await control.close()
    await control.close()
    print(
        f"metrictui: the engine on {path} runs another config ({describe(control.hello)});"
        f" starting this config's own engine, without a control socket",
        file=sys.stderr,
    )
    return await _run_local(config, role, None)


async def _run_local(config: Config, role: Role, path: Path | None) -> int:
    """Show the dashboard at once and start the engine behind it (the network may be slow)."""
    from tui.app import MetricTuiApp, exit_code

    engine = Engine(config, role, dashboard=True)
    # Logs would scribble over the dashboard: errors reach the errors pane through stats.
    logging.getLogger().handlers[:] = [logging.NullHandler()]
    app = MetricTuiApp(
        LocalControl(engine),
        refresh_hz=config.tui.refresh_hz,
        targets_file_hint=str(config.targets_file),
    )
    failure: list[BaseException] = []
    server: list[ControlServer] = []

    async def start() -> None:
        try:
            await engine.start()
            if path is not None:
                try:
                    server.append(await start_control_server(engine, path))
                except UserError as exc:
                    engine.stats.error("control", str(exc))
        except Exception as exc:  # shown after the screen is restored, as one line
            failure.append(exc)
            app.exit(1)

    starter = asyncio.create_task(start(), name="engine-start")
    try:
        code = await app.run_async()
    finally:
        if not starter.done():
            starter.cancel()
        for srv in server:
            await srv.close()
        print(
            "metrictui: stopping: flushing the producer and committing the sink…", file=sys.stderr
        )
        await engine.stop(timeout=9)
    if failure:
        raise failure[0]
    return exit_code(app, code)


async def _attach(path: Path, refresh_hz: float) -> int:
    control = await SocketControl.connect(path)
    try:
        return await run_app(control, refresh_hz)
    finally:
        await control.close()


def attach(path: str, refresh_hz: float = 3.0) -> int:
    """`metrictui --attach PATH`."""
    return asyncio.run(_attach(Path(path).expanduser(), refresh_hz))
