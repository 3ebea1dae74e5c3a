"""Waiting for a condition in a test: one sync and one async way, with one timeout message.

`wait_for` polls from plain (sync) tests that drive real processes; `wait_for_async` polls from
async tests, with `asyncio.sleep` or, for a running Textual app, with `pilot.pause` so its timers
keep ticking. Both fail the test with "timed out after <timeout>s waiting for <what>".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot


def _timed_out(timeout: float, what: str) -> str:
    return f"timed out after {timeout:g}s waiting for {what}"


def wait_for(predicate: Callable[[], object], timeout: float, what: str, step: float = 0.5) -> None:
    """Poll `predicate` every `step` seconds until it is truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    pytest.fail(_timed_out(timeout, what))


async def wait_for_async(
    predicate: Callable[[], object],
    timeout: float = 5.0,
    what: str = "the condition",
    *,
    pilot: Pilot[Any] | None = None,
    step: float | None = None,
) -> bool:
    """Poll `predicate` without blocking the loop until it is truthy; fail the test after `timeout`.

    With `pilot`, it waits with `pilot.pause` (every 0.05 s) so the app's timers run; without,
    with `asyncio.sleep` (every 0.01 s). Returns True, so `assert await wait_for_async(...)`
    reads as the check it is.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(_timed_out(timeout, what))
        if pilot is not None:
            await pilot.pause(0.05 if step is None else step)
        else:
            await asyncio.sleep(0.01 if step is None else step)
    return True
