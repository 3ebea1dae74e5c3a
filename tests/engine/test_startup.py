"""The engine's start-up steps run side by side (engine.tasks.side_by_side)."""

from __future__ import annotations

import asyncio

import pytest

from engine.errors import UserError
from engine.tasks import side_by_side


async def test_steps_run_together_and_return_in_order() -> None:
    started: list[str] = []
    both = asyncio.Event()

    async def step(name: str) -> str:
        """Finishes only once both steps have started: run one after the other, it never does."""
        started.append(name)
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), timeout=10)
        return name

    assert await side_by_side(step("topics"), step("postgres")) == ["topics", "postgres"]


async def test_the_first_failure_stops_the_others_and_is_raised_as_it_is() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def refused() -> None:
        await asyncio.sleep(0.01)
        raise UserError("Kafka refuses to create topics: grant CREATE or set create_topics")

    with pytest.raises(UserError, match="grant CREATE"):  # not an ExceptionGroup
        await side_by_side(slow(), refused())
    assert cancelled.is_set(), "a step went on alone after another failed"
