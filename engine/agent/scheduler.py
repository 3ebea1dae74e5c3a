"""Runs every enabled website target on its own fixed-rate schedule.

Design (chosen to hold 10,000 targets at a 10 s interval, i.e. 1,000 check starts per second):
one ticker task wakes on a 20 ms grid (`GRID_S`) when checks are due there and starts each due
target's check as a task of its own, which ends with the check; a target waiting for its next
slot is only an entry in the list of its grid tick. Each check takes a slot of the shared
semaphore (`concurrency`), runs and reports its result, then books the target's next slot. A
slow or hostile target only ever delays itself: checks of one target never overlap, so when a
check runs past its next slot that slot is skipped (counted in `missed_slots`), never made up
in a burst.

Why no sleeping task per target: each one made a future, a timer handle and a context every
interval, objects that live about one interval, the worst lifetime for CPython's generational
cycle collector: its passes over the ten thousand of them paused the loop for 160 ms and more.
Entries are made once per target, and what a check makes lives for the check.

Slots are fixed-rate: slot n = first slot + n * interval, whatever the checks take, rounded up
to the grid, so checks due together wake the loop once. The first slot is spread by a
deterministic jitter (a hash of the name) over a window, so that a large target list does not
fire all at once but a handful of new targets still run within ~1 s: the window is
`min(interval, max(1 s, new targets / FIRST_RUNS_PER_S))`.

Fleet agents pass `clock_phase=True`: each target's slots then sit at a fixed phase of the wall
clock (a hash of the name times the interval, past each multiple of the interval since the
epoch), the same on every agent. A target handed from one agent to another is checked by the
new owner at the slot where the old owner would have checked it: no double check. A slot that
fell while the group was handing the target over (`catch_up_after`, set by the fleet when this
agent gained a departed agent's partitions) was checked by nobody: the new owner runs it at
once, late, and then keeps the phase. So an agent stopped with SIGTERM leaves no gap longer
than the rebalance.

Lateness, passed to `on_result` with every result, is the start of the check (semaphore
acquired) minus its slot: it shows event-loop lag and concurrency saturation. When the process
is saturated (CPU or `concurrency`), a slot that cannot start before the next one is due is
skipped (counted in `missed_slots`) rather than run late: that sheds load instead of letting
every check drift further behind, so lateness stays below one interval.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from engine.records.check_result import CheckResult
from engine.targets import Target

log = logging.getLogger(__name__)

FIRST_RUNS_PER_S = 500.0
"""Pace at which a batch of new targets gets its first runs (window = count / this)."""

PROMPT_S = 1.0
"""A new target runs within this many seconds (or its interval, if that is shorter)."""

GRID_S = 0.02
"""Slots start on a 20 ms grid of the loop clock, so checks due within the same 20 ms start in
one wake-up of the event loop, and their connects and answers share its turns. Spread one by one
(500 a second per worker), each check cost its own turns of the loop: 0.35 against 0.22 ms of
CPU per check on this machine (`python -m bench.peers --only checks`). The phase of a target
moves by less than 20 ms; lateness is measured from the slot on the grid."""

STOP_TIMEOUT_S = 5.0
"""`stop()` waits at most this long for cancelled checks to unwind."""


class SupportsCheck(Protocol):
    """What the scheduler needs from a checker (`checks.checker.Checker` or a fake)."""

    async def check(self, target: Target) -> CheckResult: ...


def spread(name: str) -> float:
    """A stable fraction in [0, 1) for `name`; unlike `hash()`, the same in every process."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def clock_slot(interval: float, name: str, now_wall: float, now_loop: float) -> float:
    """The loop time of the next wall-clock slot of `name` (phase `spread(name) * interval`)."""
    phase = spread(name) * interval
    wall = math.ceil((now_wall - phase) / interval) * interval + phase
    return now_loop + (wall - now_wall)


def on_grid(moment: float) -> float:
    """`moment` rounded up to the next multiple of `GRID_S` (loop time)."""
    return _tick_of(moment) * GRID_S


def _tick_of(moment: float) -> int:
    """The number of the grid tick at or after `moment`."""
    return math.ceil(moment / GRID_S - 1e-9)


def first_run_window(interval: float, new_targets: int) -> float:
    """Seconds over which the first runs of `new_targets` targets are spread."""
    return min(interval, max(PROMPT_S, new_targets / FIRST_RUNS_PER_S))


class _Entry:
    """One scheduled target: its next slot (exact, before rounding to the grid) and the task of
    its check while one runs. Made once per target; `cancelled` once it is replaced, removed or
    stopped, so a tick that still lists it skips it."""

    __slots__ = ("cancelled", "exact", "target", "task")

    def __init__(self, target: Target, exact: float) -> None:
        self.target = target
        self.exact = exact
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False

    def cancel(self) -> asyncio.Task[None] | None:
        """Never book it again, and cancel its check if one runs (returned, to wait for)."""
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()
        return self.task


class CheckScheduler:
    """Owns one entry per enabled target; `set_targets` applies changes to the running schedule."""

    def __init__(
        self,
        checker: SupportsCheck,
        on_result: Callable[[CheckResult, float], None],
        concurrency: int,
        *,
        clock_phase: bool = False,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._checker = checker
        self._on_result = on_result
        self._semaphore = asyncio.Semaphore(concurrency)
        self._wanted: dict[str, Target] = {}
        self._entries: dict[str, _Entry] = {}
        self._due: dict[int, list[_Entry]] = {}  # grid tick -> entries whose slot it is
        self._ticks: list[int] = []  # heap of the ticks in `_due`
        self._ticker: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None  # the ticker waits on it
        self._started = False
        self._missed_slots = 0
        self._clock_phase = clock_phase

    @property
    def missed_slots(self) -> int:
        """Slots skipped: the previous check of the same target was still running, or the
        check could not start within one interval of its slot (saturation)."""
        return self._missed_slots

    @property
    def scheduled(self) -> tuple[Target, ...]:
        """Targets that currently have a schedule (enabled ones, once started)."""
        return tuple(entry.target for entry in self._entries.values())

    def set_targets(self, targets: Sequence[Target], catch_up_after: float | None = None) -> None:
        """Replace the target list. Diffed by name: unchanged targets keep their schedule,
        changed ones restart (promptly), removed and disabled ones are cancelled, including a
        check in flight (its result is dropped). With clock phases, a new target whose last
        slot fell at or after `catch_up_after` (wall time) runs that slot now."""
        self._wanted = {target.name: target for target in targets if target.enabled}
        if self._started:
            self._apply(catch_up_after)

    def start(self) -> None:
        """Start scheduling the current targets; call from inside the running event loop."""
        if self._started:
            return
        self._started = True
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="check-ticker")
        self._apply()

    async def stop(self) -> None:
        """Cancel every schedule and in-flight check; waits at most `STOP_TIMEOUT_S`."""
        self._started = False
        tasks = [task for entry in self._entries.values() if (task := entry.cancel()) is not None]
        self._entries.clear()
        self._due.clear()
        self._ticks.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            tasks.append(self._ticker)
            self._ticker = None
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
            if pending:
                log.warning(
                    "%d website checks did not stop within %.0f s", len(pending), STOP_TIMEOUT_S
                )

    def _apply(self, catch_up_after: float | None = None) -> None:
        for name, entry in list(self._entries.items()):
            if self._wanted.get(name) != entry.target:
                entry.cancel()
                del self._entries[name]
        new = [target for name, target in self._wanted.items() if name not in self._entries]
        if not new:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        now_wall = time.time()
        for target in new:
            if self._clock_phase:
                first_slot = clock_slot(target.interval, target.name, now_wall, now)
                missed_at = now_wall + (first_slot - now) - target.interval
                if catch_up_after is not None and missed_at >= catch_up_after:
                    first_slot -= target.interval  # due already: run it now, then keep phase
            else:
                first_slot = now + first_run_window(target.interval, len(new)) * spread(target.name)
            entry = self._entries[target.name] = _Entry(target, first_slot)
            self._book(entry)

    def _book(self, entry: _Entry) -> None:
        """Put `entry` in the list of its slot's tick; wake the ticker if that is the next."""
        tick = _tick_of(entry.exact)
        due = self._due.get(tick)
        if due is None:
            due = self._due[tick] = []
            heapq.heappush(self._ticks, tick)
        due.append(entry)
        wakeup = self._wakeup
        if wakeup is not None and self._ticks[0] == tick and not wakeup.done():
            wakeup.set_result(None)

    async def _tick(self) -> None:
        """Start the checks of each tick when it comes; sleep until the next booked one."""
        loop = asyncio.get_running_loop()
        ticks, due = self._ticks, self._due
        while True:
            delay = None if not ticks else ticks[0] * GRID_S - loop.time()
            if delay is None or delay > 0:
                self._wakeup = wakeup = loop.create_future()
                try:
                    async with asyncio.timeout(delay):
                        await wakeup
                except TimeoutError:
                    pass
                finally:
                    self._wakeup = None
                continue
            tick = heapq.heappop(ticks)
            slot = tick * GRID_S
            for entry in due.pop(tick, ()):
                if not entry.cancelled:
                    entry.task = loop.create_task(self._run(entry, slot))

    async def _run(self, entry: _Entry, slot: float) -> None:
        """One check of `entry` at `slot`, then its next slot booked."""
        loop = asyncio.get_running_loop()
        target = entry.target
        interval = target.interval
        async with self._semaphore:
            lateness = max(0.0, loop.time() - slot)
            if lateness >= interval:  # saturated: the next slot is due already
                result = None
                self._missed_slots += 1
            else:
                try:
                    result = await self._checker.check(target)
                except Exception:  # Checker never raises for site problems; this is a bug
                    log.exception("website check of %s failed unexpectedly", target.name)
                    result = None
        if result is not None:
            try:
                self._on_result(result, lateness)
            except Exception:
                log.exception("handling the check result of %s failed", target.name)
        entry.task = None
        exact = entry.exact + interval
        behind = loop.time() - on_grid(exact)
        if behind >= 0:
            missed = math.floor(behind / interval) + 1
            self._missed_slots += missed
            exact += missed * interval
        entry.exact = exact
        if not entry.cancelled:
            self._book(entry)
