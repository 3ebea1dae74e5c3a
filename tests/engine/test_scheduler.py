"""The check scheduler: prompt first runs, fixed-rate slots, diffing, isolation, bounded stop."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from engine.agent.checks.checker import Checker
from engine.agent.scheduler import (
    FIRST_RUNS_PER_S,
    GRID_S,
    PROMPT_S,
    CheckScheduler,
    clock_slot,
    first_run_window,
    on_grid,
    spread,
)
from engine.records.check_result import CheckResult
from engine.targets import Target
from helpers.sites import LocalSites
from helpers.waiting import wait_for_async


def result_for(target: Target) -> CheckResult:
    return CheckResult(
        target=target.name,
        url=target.url,
        method=target.method,
        started_at=datetime.now(UTC),
        ok=True,
        status_code=200,
        reason=None,
        error=None,
        dns_ms=None,
        connect_ms=1.0,
        tls_ms=None,
        ttfb_ms=1.0,
        total_ms=2.0,
        content_match=None,
        cert_expires_at=None,
        resolved_ip="127.0.0.1",
    )


class FakeChecker:
    """Records when each target's check starts; `slow` names take `delay` seconds (or forever)."""

    def __init__(self, slow: dict[str, float] | None = None, fail: set[str] | None = None):
        self.slow = slow or {}
        self.fail = fail or set()
        self.starts: list[tuple[str, float]] = []
        self.cancelled: list[str] = []
        self.running = 0
        self.max_running = 0

    def count(self, name: str) -> int:
        return sum(1 for started, _ in self.starts if started == name)

    def times(self, name: str) -> list[float]:
        return [at for started, at in self.starts if started == name]

    async def check(self, target: Target) -> CheckResult:
        self.starts.append((target.name, time.monotonic()))
        if target.name in self.fail:
            raise RuntimeError("checker bug")
        delay = self.slow.get(target.name)
        if delay is None:
            return result_for(target)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled.append(target.name)
            raise
        finally:
            self.running -= 1
        return result_for(target)


class Collected:
    def __init__(self) -> None:
        self.results: list[CheckResult] = []
        self.lateness: list[float] = []

    def __call__(self, result: CheckResult, lateness: float) -> None:
        self.results.append(result)
        self.lateness.append(lateness)

    def slots(self, checker: FakeChecker, name: str) -> list[float]:
        """The slots the checks of `name` were scheduled for: start time minus lateness.

        Unlike raw start times these do not move when a busy machine wakes us late.
        """
        latenesses = [
            late for r, late in zip(self.results, self.lateness, strict=True) if r.target == name
        ]
        return [at - late for at, late in zip(checker.times(name), latenesses, strict=False)]

    def urls(self, name: str) -> list[str]:
        return [r.url for r in self.results if r.target == name]


def target(name: str, interval: float = 30.0, enabled: bool = True) -> Target:
    return Target(name=name, url=f"http://{name}.example/", interval=interval, enabled=enabled)


def test_spread_is_stable_and_roughly_uniform() -> None:
    assert spread("web-1") == spread("web-1")
    values = [spread(f"target-{i}") for i in range(10_000)]
    assert all(0.0 <= v < 1.0 for v in values)
    deciles = Counter(int(v * 10) for v in values)
    assert all(800 <= deciles[d] <= 1200 for d in range(10)), deciles


def test_first_run_window_is_prompt_for_few_and_spread_for_many() -> None:
    assert first_run_window(interval=300.0, new_targets=3) == PROMPT_S
    assert first_run_window(interval=0.5, new_targets=3) == 0.5
    assert first_run_window(interval=10.0, new_targets=10_000) == 10.0
    many = int(FIRST_RUNS_PER_S * 4)
    assert first_run_window(interval=60.0, new_targets=many) == pytest.approx(4.0)


async def test_new_target_with_long_interval_runs_within_about_a_second() -> None:
    checker, collected = FakeChecker(), Collected()
    scheduler = CheckScheduler(checker, collected, concurrency=4)
    scheduler.set_targets([target("a", interval=300.0)])
    began = time.monotonic()
    scheduler.start()
    try:
        await wait_for_async(lambda: len(collected.results) == 1, timeout=PROMPT_S + 1.0)
        assert collected.slots(checker, "a")[0] - began <= PROMPT_S

        scheduler.set_targets([target("a", interval=300.0), target("b", interval=300.0)])
        added = time.monotonic()
        await wait_for_async(lambda: len(collected.results) == 2, timeout=PROMPT_S + 1.0)
        assert collected.slots(checker, "b")[0] - added <= PROMPT_S
    finally:
        await scheduler.stop()
    assert [r.target for r in collected.results] == ["a", "b"]


async def test_target_runs_at_a_fixed_rate() -> None:
    checker, collected = FakeChecker(), Collected()
    scheduler = CheckScheduler(checker, collected, concurrency=4)
    scheduler.set_targets([target("a", interval=0.25)])
    scheduler.start()
    try:
        await wait_for_async(lambda: len(collected.results) >= 6)
    finally:
        await scheduler.stop()
    slots = collected.slots(checker, "a")
    # Fixed rate: slot n is first slot + n * interval rounded up to the grid, no drift
    # accumulates (0.25 s is no multiple of the 20 ms grid, so the gaps alternate).
    for n, slot in enumerate(slots):
        assert slot == pytest.approx(on_grid(slot - 0.002), abs=0.002), slots
        assert slot - slots[0] == pytest.approx(n * 0.25, abs=GRID_S + 0.001), slots
    starts = checker.times("a")
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert all(gap > 0.1 for gap in gaps), gaps  # never back to back


async def test_unchanged_targets_keep_their_schedule() -> None:
    checker, collected = FakeChecker(), Collected()
    scheduler = CheckScheduler(checker, collected, concurrency=4)
    targets = [target("a", interval=60.0), target("b", interval=60.0)]
    scheduler.set_targets(targets)
    scheduler.start()
    try:
        await wait_for_async(lambda: checker.count("a") == 1 and checker.count("b") == 1)
        for _ in range(5):
            scheduler.set_targets(list(targets))  # e.g. the targets file was saved unchanged
        await asyncio.sleep(PROMPT_S + 0.3)
    finally:
        await scheduler.stop()
    assert (checker.count("a"), checker.count("b")) == (1, 1)  # a restart would run again now


async def test_changed_target_restarts_and_its_old_in_flight_check_is_dropped() -> None:
    checker, collected = FakeChecker(slow={"a": 3600.0}), Collected()
    scheduler = CheckScheduler(checker, collected, concurrency=4)
    scheduler.set_targets([target("a", interval=60.0)])
    scheduler.start()
    try:
        await wait_for_async(lambda: checker.running == 1)
        checker.slow.clear()  # the new version answers at once
        changed = Target(name="a", url="http://changed.example/", interval=60.0)
        scheduler.set_targets([changed])
        await wait_for_async(lambda: len(collected.results) == 1)
        await asyncio.sleep(0.1)
    finally:
        await scheduler.stop()
    assert checker.cancelled == ["a"]
    assert collected.urls("a") == ["http://changed.example/"]
    assert scheduler.scheduled == ()


async def test_removed_target_is_cancelled_mid_check_and_reports_nothing() -> None:
    checker, collected = FakeChecker(slow={"slow": 3600.0}), Collected()
    scheduler = CheckScheduler(checker, collected, concurrency=4)
    scheduler.set_targets([target("slow", interval=60.0), target("fast", interval=60.0)])
    scheduler.start()
    try:
        await wait_for_async(lambda: checker.running == 1 and checker.count("fast") == 1)
        scheduler.set_targets([target("fast", interval=60.0)])
        await wait_for_async(lambda: checker.cancelled == ["slow"])
        assert [t.name for t in scheduler.scheduled] == ["fast"]
    finally:
        await scheduler.stop()
    assert [r.target for r in collected.results] == ["fast"]


async def test_disabled_target_is_not_run_until_enabled() -> None:
    checker, collected = FakeChecker(), Collected()
    scheduler = CheckScheduler(checker, collected, concurrency=4)
    scheduler.set_targets([target("off", interval=0.2, enabled=False), target("on", interval=0.2)])
    scheduler.start()
    try:
        await wait_for_async(lambda: checker.count("on") >= 3)
        assert checker.count("off") == 0

        scheduler.set_targets([target("off", interval=0.2), target("on", interval=0.2)])
        await wait_for_async(lambda: checker.count("off") >= 1, timeout=PROMPT_S + 0.5)

        scheduler.set_targets([target("off", interval=0.2), target("on", 0.2, enabled=False)])
        on_runs = checker.count("on")
        await asyncio.sleep(0.5)
        assert checker.count("on") == on_runs
    finally:
        await scheduler.stop()


async def test_slow_check_skips_missed_slots_instead_of_bursting() -> None:
    checker, collected = FakeChecker(slow={"slow": 0.5}), Collected()
    scheduler = CheckScheduler(checker, collected, concurrency=4)
    scheduler.set_targets([target("slow", interval=0.2)])
    scheduler.start()
    try:
        await wait_for_async(lambda: len(collected.results) >= 4, timeout=6.0)
    finally:
        await scheduler.stop()
    # A 0.5 s check at a 0.2 s interval: the slots at +0.2 and +0.4 are skipped, the next run
    # takes the slot at +0.6 (later ones if the machine is slow), never a catch-up burst.
    slots = collected.slots(checker, "slow")
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    for gap in gaps:
        assert gap >= 0.6 - 0.005, gaps
        assert gap / 0.2 == pytest.approx(round(gap / 0.2), abs=0.03), gaps
    assert scheduler.missed_slots >= sum(round(gap / 0.2) - 1 for gap in gaps)


async def test_concurrency_bounds_checks_in_flight() -> None:
    names = [f"t{i}" for i in range(40)]
    checker, collected = FakeChecker(slow=dict.fromkeys(names, 0.1)), Collected()
    scheduler = CheckScheduler(checker, collected, concurrency=5)
    scheduler.set_targets([target(name, interval=0.3) for name in names])
    scheduler.start()
    try:
        await wait_for_async(lambda: len(collected.results) >= 60, timeout=5.0)
    finally:
        await scheduler.stop()
    assert checker.max_running == 5


async def test_checker_bug_or_result_handler_error_does_not_stop_the_schedule() -> None:
    checker = FakeChecker(fail={"buggy"})
    handled: list[str] = []

    def on_result(result: CheckResult, lateness: float) -> None:
        handled.append(result.target)
        if result.target == "picky":
            raise ValueError("handler bug")

    scheduler = CheckScheduler(checker, on_result, concurrency=4)
    scheduler.set_targets([target(n, interval=0.2) for n in ("buggy", "picky", "fine")])
    scheduler.start()
    try:
        await wait_for_async(lambda: all(checker.count(n) >= 3 for n in ("buggy", "picky", "fine")))
    finally:
        await scheduler.stop()
    assert "buggy" not in handled
    assert handled.count("picky") >= 3


async def test_stop_cancels_in_flight_checks_promptly() -> None:
    names = [f"t{i}" for i in range(100)]
    checker, collected = FakeChecker(slow=dict.fromkeys(names, 3600.0)), Collected()
    scheduler = CheckScheduler(checker, collected, concurrency=200)
    scheduler.set_targets([target(name, interval=0.2) for name in names])
    scheduler.start()
    await wait_for_async(lambda: checker.running == 100)

    began = time.monotonic()
    await scheduler.stop()

    assert time.monotonic() - began < 1.0
    assert sorted(checker.cancelled) == sorted(names)
    assert collected.results == []
    scheduler.set_targets([target("late", interval=0.2)])  # ignored after stop
    await asyncio.sleep(0.3)
    assert checker.count("late") == 0


async def test_healthy_target_keeps_its_schedule_while_hostile_targets_run(
    sites: LocalSites,
) -> None:
    collected = Collected()
    checker = Checker()
    await checker.start()
    hostile = [
        Target(name=f"drip{i}", url=sites.http_url("/drip"), interval=1.0, timeout=2.5)
        for i in range(5)
    ] + [
        Target(name=f"endless{i}", url=sites.http_url("/endless"), interval=1.0, timeout=2.5)
        for i in range(5)
    ]
    healthy = Target(name="healthy", url=sites.http_url("/"), interval=1.0, timeout=2.5)
    scheduler = CheckScheduler(checker, collected, concurrency=64)
    scheduler.set_targets([*hostile, healthy])
    scheduler.start()
    try:
        await asyncio.sleep(5.5)
    finally:
        await scheduler.stop()
        await checker.close()

    healthy_results = [r for r in collected.results if r.target == "healthy"]
    assert len(healthy_results) >= 5
    assert all(r.ok for r in healthy_results), [r.error for r in healthy_results]
    starts = [r.started_at.timestamp() for r in healthy_results]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert max(gaps) <= 1.5, gaps
    reasons = {r.reason for r in collected.results if r.target != "healthy"}
    assert reasons <= {"timeout", "body_too_large"}
    assert "timeout" in reasons and "body_too_large" in reasons


async def test_many_targets_start_close_to_their_slots() -> None:
    """2,000 targets at 1 s with an instant checker: 2,000 check starts per second.

    Prints the lateness distribution (a test-sized version of 10,000 targets at 10 s); the
    assertions are only loose sanity bounds, not a benchmark.
    """
    count, run_s = 2000, 3.5
    checker, collected = FakeChecker(), Collected()
    scheduler = CheckScheduler(checker, collected, concurrency=256)
    scheduler.set_targets([target(f"t{i}", interval=1.0) for i in range(count)])
    began = time.monotonic()
    scheduler.start()
    try:
        await asyncio.sleep(run_s)
    finally:
        await scheduler.stop()
    elapsed = time.monotonic() - began

    lateness = sorted(collected.lateness)
    p50 = statistics.median(lateness)
    p99 = lateness[int(len(lateness) * 0.99)]
    print(
        f"\n{len(lateness)} checks of {count} targets in {elapsed:.2f} s "
        f"({len(lateness) / elapsed:.0f}/s): lateness p50 {p50 * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {lateness[-1] * 1000:.1f} ms, "
        f"missed slots {scheduler.missed_slots}"
    )
    runs = Counter(name for name, _ in checker.starts)
    assert len(runs) == count
    assert min(runs.values()) >= 2
    assert max(runs.values()) <= int(run_s) + 1  # no bursts
    assert p99 < 1.0


async def test_clock_phase_catches_up_a_slot_missed_during_a_hand_over() -> None:
    """A fleet agent gaining a departed agent's target: the slot that fell during the
    rebalance (at or after catch_up_after) runs now, then the wall-clock phase is kept; a
    target whose last slot fell before the rebalance waits for its phase (no double check)."""
    interval = 4.0
    names = [f"t{i}" for i in range(40)]
    now_wall = time.time()
    since = now_wall - 1.5  # the rebalance began 1.5 s ago
    due = [n for n in names if clock_slot(interval, n, now_wall, 0.0) - interval >= -1.5]
    later = [n for n in names if n not in due]
    assert due and later
    checker, collected = FakeChecker(), Collected()
    scheduler = CheckScheduler(checker, collected, concurrency=50, clock_phase=True)
    scheduler.start()
    began = time.monotonic()
    try:
        scheduler.set_targets([target(n, interval=interval) for n in names], catch_up_after=since)
        await wait_for_async(lambda: all(checker.count(n) >= 1 for n in due), timeout=1.0)
        assert all(checker.times(n)[0] - began < 0.5 for n in due)
        await wait_for_async(lambda: all(checker.count(n) >= 1 for n in names), timeout=6.0)
        await wait_for_async(lambda: all(checker.count(n) >= 2 for n in due), timeout=6.0)
    finally:
        await scheduler.stop()
    for n in later:  # first run at its phase: more than the 1.5 s since the rebalance ago
        assert checker.times(n)[0] - began > 0.0
        phase_wall = clock_slot(interval, n, now_wall, now_wall)
        assert abs((checker.times(n)[0] - began) - (phase_wall - now_wall)) < 0.5
    for n in due:  # after the catch-up, the next run is at the phase slot, not catch-up + 4 s
        second = checker.times(n)[1] - began
        assert abs(second - (clock_slot(interval, n, now_wall, now_wall) - now_wall)) < 0.5


async def test_targets_waiting_for_their_slots_hold_no_task_or_timer() -> None:
    """A target waiting for its next slot is an entry in the list of its grid tick: with one
    sleeping task per target, each interval made a future, a timer handle and a context per
    target, objects that live about one interval, the cycle collector's worst case."""
    checker, collected = FakeChecker(), Collected()
    scheduler = CheckScheduler(checker, collected, concurrency=50)
    before = len(asyncio.all_tasks())
    scheduler.set_targets([target(f"t{i}", interval=3600.0) for i in range(500)])
    scheduler.start()
    try:
        await wait_for_async(lambda: len(collected.results) == 500, timeout=10)
        await asyncio.sleep(0.05)  # the last checks' tasks end
        assert len(asyncio.all_tasks()) - before == 1  # the ticker alone
        assert len(scheduler.scheduled) == 500
    finally:
        await scheduler.stop()
    assert len(asyncio.all_tasks()) == before
