"""The fleet on the real stack: real agent processes in a real Kafka group, PostgreSQL as judge.

Scaled down from the benchmark (bench/fleet_parts.py measures the figures): fewer targets and a
shorter interval, and no timing assertions, only outcomes (who checked what, how often).
"""

from __future__ import annotations

import signal
import subprocess
import time

from bench.fleet_rig import FleetRig, double_and_missed, failover_delays, metrictui_cmd, owners

INTERVAL = 2.0


def _imported(rig: FleetRig, targets: list[dict[str, object]], *extra: str) -> None:
    result = rig.import_targets(targets, *extra)
    assert result.returncode == 0, result.stderr


def _all_checked(rig: FleetRig, names: set[str], since: float, timeout: float = 90) -> None:
    rig.wait_for(
        f"{len(names)} targets checked", lambda: names <= {c[0] for c in rig.checks_since(since)},
        timeout,
    )  # fmt: skip


def _survivors_took_over(rig: FleetRig, sig: int) -> tuple[str, int]:
    """Signal the busiest agent; wait until survivors checked every one of its targets."""
    own = owners(rig.checks_since(time.time() - 2 * INTERVAL))
    live = {n for n, a in rig.agents.items() if a.proc is not None and a.proc.poll() is None}
    victim = max(live, key=lambda n: sum(1 for o in own.values() if o == n))
    mine = {t for t, o in own.items() if o == victim}
    assert mine, "the busiest agent checked nothing"
    at = rig.signal_agent(victim, sig)

    def taken() -> bool:
        delays = failover_delays(rig.checks_since(at - 1), victim, mine, at)
        return all(d is not None for d in delays.values())

    rig.wait_for(f"survivors to check the {len(mine)} targets of {victim}", taken, 60)
    return victim, rig.wait_exit(victim)


def test_agents_share_targets_exactly_once_and_survivors_take_over(rig: FleetRig) -> None:
    targets = rig.targets(60, INTERVAL)
    names = {str(t["name"]) for t in targets}
    _imported(rig, targets)
    rig.start_sink()
    for i in range(3):
        rig.start_agent(f"a{i}", "eu")
    started = time.time()
    _all_checked(rig, names, started)
    # Steady state: every agent has a share, and each target is checked once per interval.
    rig.wait_for(
        "all three agents checking",
        lambda: len(set(owners(rig.checks_since(time.time() - INTERVAL * 2)).values())) == 3,
        60,
    )
    time.sleep(3 * INTERVAL)
    window_start = time.time()
    time.sleep(6 * INTERVAL)
    window_end = time.time()
    time.sleep(3)
    checks = rig.checks_since(window_start - INTERVAL)
    assert double_and_missed(checks, INTERVAL, window_start, window_end) == (0, 0)
    # A graceful stop leaves the group: its targets move, and it exits cleanly.
    _, code = _survivors_took_over(rig, signal.SIGTERM)
    assert code == 0
    # A killed agent's targets move once its session expires.
    _survivors_took_over(rig, signal.SIGKILL)
    last = rig.checks_since(time.time() - 2 * INTERVAL)
    assert {c[0] for c in last} == names  # the last agent checks all of them
    beats = rig.query("SELECT agent, state, targets_assigned FROM agents_v ORDER BY agent")
    assert [b[0] for b in beats] == ["a0", "a1", "a2"]


def test_edits_reach_the_checking_agent_and_deletes_stop_checks(rig: FleetRig) -> None:
    first = rig.targets(6, INTERVAL)
    _imported(rig, first)
    rig.start_sink()
    rig.start_agent("a0", "eu")
    rig.start_agent("a1", "eu")
    _all_checked(rig, {str(t["name"]) for t in first}, time.time())
    added = rig.targets(3, INTERVAL, prefix="new")
    kept = first[:3]
    _imported(rig, kept + added, "--prune")  # 3 deleted, 3 added
    changed = time.time()
    _all_checked(rig, {str(t["name"]) for t in added}, changed)
    time.sleep(3 * INTERVAL)
    recent = {c[0] for c in rig.checks_since(time.time() - 2 * INTERVAL)}
    assert recent == {str(t["name"]) for t in kept + added}


def test_two_locations_each_check_every_target_and_locations_restrict(rig: FleetRig) -> None:
    everywhere = rig.targets(8, INTERVAL)
    only_us = [{**t, "locations": [rig.location("us")]} for t in rig.targets(2, INTERVAL, "us")]
    _imported(rig, everywhere + only_us)
    rig.start_sink()
    for name, where in (("eu0", "eu"), ("eu1", "eu"), ("us0", "us")):
        rig.start_agent(name, where)
    since = time.time()
    _all_checked(rig, {str(t["name"]) for t in everywhere + only_us}, since)
    time.sleep(3 * INTERVAL)
    checks = rig.checks_since(time.time() - 2 * INTERVAL)
    by_location: dict[str | None, set[str]] = {}
    for target, _, _, location in checks:
        by_location.setdefault(location, set()).add(target)
    assert by_location[rig.location("eu")] == {str(t["name"]) for t in everywhere}
    assert by_location[rig.location("us")] == {str(t["name"]) for t in everywhere + only_us}
    # Kill every agent of one location: the fleet view calls them offline, the other goes on.
    for name in ("eu0", "eu1"):
        rig.signal_agent(name, signal.SIGKILL)

    def eu_offline() -> bool:
        rows = rig.query("SELECT agent, state FROM agents_v")
        return {a: s for a, s in rows if a.startswith("eu")} == {"eu0": "offline", "eu1": "offline"}

    rig.wait_for("eu agents offline in agents_v", eu_offline, 60)
    still = {c[0] for c in rig.checks_since(time.time() - 2 * INTERVAL) if c[1] == "us0"}
    assert still == {str(t["name"]) for t in everywhere + only_us}


def test_invalid_import_lists_every_problem_and_publishes_nothing(rig: FleetRig) -> None:
    bad = [
        {"name": "ok", "url": "http://127.0.0.1/"},
        {"name": "x", "url": "ftp://nope"},
        {"name": "y", "url": "http://127.0.0.1/", "interval": -1, "locations": ["bad place"]},
    ]
    result = rig.import_targets(bad)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("metrictui:")]
    assert len(lines) == 4, result.stderr  # three problems and the summary
    assert "Traceback" not in result.stderr
    config = rig.write_config("lister", rig.location("cli"))
    listed = subprocess.run(
        metrictui_cmd("--config", str(config), "targets", "list", "--json"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"
