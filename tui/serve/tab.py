"""The process behind one browser tab: the dashboard, attached to the engine's socket.

textual-serve starts it with Textual's web driver selected in the environment, so the same
app that runs in a terminal draws into the browser. Run as
`python -m tui.serve.tab SOCKET REFRESH_HZ TARGETS_FILE`; it holds no secret.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from tui.serve.reattach import ReattachingControl


async def run_tab(socket: Path, refresh_hz: float, targets_file: str) -> int:
    """Show the dashboard until the tab closes (the web driver then asks the app to quit)."""
    from tui.app import run_tui_async

    control = ReattachingControl(socket)
    control.start()
    try:
        return await run_tui_async(
            control, refresh_hz=refresh_hz, targets_file_hint=targets_file or None
        )
    finally:
        await control.close()


def main(argv: list[str]) -> int:
    # stdout carries the terminal protocol; errors reach the page through the dashboard.
    logging.getLogger().handlers[:] = [logging.NullHandler()]
    socket, refresh_hz, targets_file = argv
    return asyncio.run(run_tab(Path(socket), float(refresh_hz), targets_file))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
