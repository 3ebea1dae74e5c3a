"""The fleet's figures for `make bench`: failover, steady state and edit latency, measured on a
real fleet (bench/fleet_rig.py) with PostgreSQL's check timestamps as the judge.

    fleet_failover_kill_p95_s / _max_s  from SIGKILL of one agent to the first check of each
                                        of its targets by a survivor
    fleet_failover_term_max_s           the same for SIGTERM (graceful: leaves the group)
    fleet_double_checks / _missed_checks over a steady window (no agent joins or leaves)
    fleet_edit_p95_s                    from `targets import` of new targets (1 s interval)
                                        to their first check
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from bench.fleet_rig import (
    FleetRig,
    double_and_missed,
    failover_delays,
    handover_gaps,
    owners,
    p95,
)

FLEET_KEYS = (
    "fleet_failover_kill_p95_s",
    "fleet_failover_kill_max_s",
    "fleet_failover_term_max_s",
    "fleet_double_checks",
    "fleet_missed_checks",
    "fleet_edit_p95_s",
)


def fleet_sizes(scale: str) -> dict[str, Any]:
    """The issue's case at full scale (3 agents, 300 targets, 5 s); a quick one for tiny."""
    if scale == "tiny":
        return {"agents": 3, "targets": 30, "interval": 2.0, "steady_s": 8.0}
    return {"agents": 3, "targets": 300, "interval": 5.0, "steady_s": 60.0}


def scale_sizes(scale: str) -> dict[str, Any]:
    """The issue's scale case (20 agents, 10,000 targets); a quick one for tiny."""
    if scale == "tiny":
        return {"agents": 3, "targets": 300, "interval": 10.0}
    return {"agents": 20, "targets": 10_000, "interval": 60.0}


def _start_fleet(rig: FleetRig, agents: int, targets: int, interval: float) -> None:
    result = rig.import_targets(rig.targets(targets, interval))
    if result.returncode != 0:
        raise RuntimeError(f"targets import failed: {result.stderr.strip()}")
    rig.start_sink()
    for i in range(agents):
        rig.start_agent(f"agent{i}-{rig.tag}", "eu")


def _wait_all_checked(rig: FleetRig, targets: int, since: float, timeout: float) -> None:
    def ok() -> bool:
        return len({c[0] for c in rig.checks_since(since)}) >= targets

    rig.wait_for(f"all {targets} targets checked", ok, timeout)


def _failover(rig: FleetRig, sig: int, interval: float) -> tuple[list[float], list[float]]:
    """Signal the agent owning the most targets; delays until survivors checked each of them."""
    window_start = time.time() - 2 * interval
    own = owners(rig.checks_since(window_start))
    live = {a.name for a in rig.agents.values() if a.proc is not None and a.proc.poll() is None}
    counts = {name: sum(1 for o in own.values() if o == name) for name in live}
    victim = max(counts, key=lambda n: counts[n])
    dead_targets = {t for t, o in own.items() if o == victim}
    at = rig.signal_agent(victim, sig)
    deadline = time.time() + 40
    delays: dict[str, float | None] = {}
    while time.time() < deadline:
        time.sleep(1)
        delays = failover_delays(rig.checks_since(at - 1), victim, dead_targets, at)
        if all(d is not None for d in delays.values()):
            break
    missing = [t for t, d in delays.items() if d is None]
    if missing:
        raise RuntimeError(f"{len(missing)} targets of {victim} never checked again")
    rig.wait_exit(victim)
    gaps = handover_gaps(rig.checks_since(at - 3 * interval), victim, dead_targets, at)
    return [d for d in delays.values() if d is not None], gaps


def measure_fleet(
    rig: FleetRig, *, agents: int = 3, targets: int = 300, interval: float = 5.0,
    steady_s: float = 30.0,
) -> dict[str, Any]:  # fmt: skip
    """Every fleet figure in one run on `rig` (see the module docstring)."""
    started = time.time()
    _start_fleet(rig, agents, targets, interval)
    _wait_all_checked(rig, targets, started, timeout=90)
    time.sleep(2 * interval)  # past the start-up rebalances
    steady_from = time.time()
    time.sleep(steady_s)
    steady_to = time.time()
    time.sleep(3)  # the sink's lag
    doubles, missed = double_and_missed(
        rig.checks_since(steady_from - interval), interval, steady_from, steady_to
    )
    # Edits: new targets with a 1 s interval, published as `targets import` does (in this
    # process: the CLI's own start-up is not the edit's way to the agent); first check minus
    # the time Kafka confirmed them.
    edit_targets = rig.targets(20, 1.0, prefix="edit")
    published = rig.publish(edit_targets)
    names = {t["name"] for t in edit_targets}
    rig.wait_for(
        "edited targets checked", lambda: names <= {c[0] for c in rig.checks_since(published)}, 30
    )
    first: dict[str, float] = {}
    for target, _, ts, _ in rig.checks_since(published):
        if target in names:
            first.setdefault(target, ts - published)
    kill, kill_gaps = _failover(rig, signal.SIGKILL, interval)
    time.sleep(2 * interval)
    term, term_gaps = _failover(rig, signal.SIGTERM, interval)
    return {
        "fleet_agents": agents,
        "fleet_targets": targets,
        "fleet_interval_s": interval,
        "fleet_failover_kill_p95_s": round(p95(kill), 2),
        "fleet_failover_kill_max_s": round(max(kill), 2),
        "fleet_failover_term_max_s": round(max(term), 2),
        "fleet_failover_term_p95_s": round(p95(term), 2),
        "fleet_kill_gap_max_s": round(max(kill_gaps, default=0.0), 2),
        "fleet_term_gap_max_s": round(max(term_gaps, default=0.0), 2),
        "fleet_double_checks": doubles,
        "fleet_missed_checks": missed,
        "fleet_steady_window_s": round(steady_to - steady_from, 1),
        "fleet_edit_p95_s": round(p95(list(first.values())), 2),
        "fleet_edit_max_s": round(max(first.values()), 2),
    }


def run_fleet(bootstrap: str, dsn: str, web_url: str, directory: Path, **kw: Any) -> dict[str, Any]:
    rig = FleetRig(bootstrap, dsn, web_url, directory)
    try:
        return measure_fleet(rig, **kw)
    finally:
        rig.stop_all()
        rig.drop_schema()
