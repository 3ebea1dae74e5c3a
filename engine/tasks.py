"""Running and stopping background tasks: the one way the engine (and the TUI, which may import
it) does each.

Owners of a long-lived task (a consumer loop, a health watch, a reattacher) stop it on close by
cancelling it and waiting until it has run its `finally` blocks, so nothing it holds outlives
the close. The CancelledError that wait raises is the expected end, not an error to report.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has finished, swallowing the CancelledError that ends it.

    Any other exception the task ended with is raised: a loop that died of an error before it
    was stopped should not go unnoticed.
    """
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def side_by_side(*steps: Awaitable[Any]) -> list[Any]:
    """Run `steps` concurrently and return their results. The first to fail cancels the rest
    and its exception is raised as it is: a UserError stays one line for the operator, not an
    ExceptionGroup, and no step goes on alone in the background."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stopping` is set meanwhile: back-offs end at a stop."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopping.wait()
