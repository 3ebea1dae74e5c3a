"""Stopping a background task: the one way the engine (and the TUI, which may import it) does it.

Owners of a long-lived task (a consumer loop, a health watch, a reattacher) stop it on close by
cancelling it and waiting until it has run its `finally` blocks, so nothing it holds outlives
the close. The CancelledError that wait raises is the expected end, not an error to report.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has finished, swallowing the CancelledError that ends it.

    Any other exception the task ended with is raised: a loop that died of an error before it
    was stopped should not go unnoticed.
    """
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
