"""The fleet at scale: how evenly a location's agents share 10,000 targets, and what the whole
table costs an agent in memory.

Measured on a real fleet by `make bench` (`run_scale`, part "fleet"): 20 agent processes of
one location on this machine, 10,000 targets in the targets topic (60 partitions), a sink, and
PostgreSQL as the judge. Balance is each agent's `targets_assigned` from its heartbeat in
`agents_v` once every target has been checked; memory is each agent's resident set (VmRSS)
against an agent of the same configuration whose table is empty.

Also computed without a fleet, as a cross-check (`python -m bench.fleet_scale`): the targets
placed on partitions as the producer places them (murmur2 of the key) and the partitions dealt
round-robin, which is also how the sticky assignor deals a group that forms at once; the table
built by `TargetsTable._apply` and measured with tracemalloc.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

from bench.fleet_rig import FleetRig
from engine.config.model import KafkaConfig
from engine.fleet.records import encode_target
from engine.fleet.table import TargetsTable
from engine.targets.model import Target


def _targets(count: int) -> list[Target]:
    return [
        Target(f"site-{i:05d}", f"https://site-{i:05d}.example.com/health", interval=10.0)
        for i in range(count)
    ]


def balance(agents: int, targets: int, partitions: int) -> dict[str, Any]:
    """Targets per agent when the group deals `partitions` round-robin to `agents`."""
    partitioner = DefaultPartitioner()
    ids = list(range(partitions))
    per_partition = [0] * partitions
    for t in _targets(targets):
        per_partition[partitioner(t.name.encode(), ids, ids)] += 1
    per_agent = [sum(per_partition[p] for p in ids[a::agents]) for a in range(agents)]
    mean = statistics.fmean(per_agent)
    return {
        "fleet_scale_agents": agents,
        "fleet_scale_targets": targets,
        "fleet_scale_partitions": partitions,
        "fleet_balance_min": min(per_agent),
        "fleet_balance_max": max(per_agent),
        "fleet_balance_worst_pct": round(100 * max(abs(n - mean) for n in per_agent) / mean, 1),
    }


def table_memory_mb(targets: int) -> float:
    """MB that a full table of `targets` holds, built the way an agent builds it."""
    records = [encode_target(t) for t in _targets(targets)]
    tracemalloc.start()
    table = TargetsTable(KafkaConfig(), "bench", Path("/"))
    before = tracemalloc.get_traced_memory()[0]
    for i, (key, value) in enumerate(records):
        table._apply(key, value, i % 60)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(table.targets) == targets
    return used / 1e6


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _agent_rss(rig: FleetRig) -> list[float]:
    return [_rss_mb(a.proc.pid) for a in rig.agents.values() if a.proc and a.proc.poll() is None]


def _empty_table_rss(bootstrap: str, dsn: str, web_url: str, directory: Path) -> float:
    """RSS of one agent like the fleet's, settled, with nothing in its targets topic."""
    rig = FleetRig(bootstrap, dsn, web_url, directory / "empty", session_timeout_s=10.0)
    rig.dir.mkdir(parents=True, exist_ok=True)
    try:
        rig.start_agent("empty", "eu")
        time.sleep(8)  # imported, connected, its empty table read
        return max(_agent_rss(rig))
    finally:
        rig.stop_all()
        rig.drop_schema()


def measure_scale(rig: FleetRig, agents: int, targets: int, interval: float) -> dict[str, Any]:
    """Start the fleet, wait until every target is checked and every agent reported its
    share, then read the shares (agents_v) and the agents' memory."""
    result = rig.import_targets(rig.targets(targets, interval))
    if result.returncode != 0:
        raise RuntimeError(f"targets import failed: {result.stderr.strip()}")
    rig.start_sink()
    started = time.time()
    for i in range(agents):
        rig.start_agent(f"s{i:02d}-{rig.tag}", "eu")
    rig.wait_for(
        f"all {targets} targets checked",
        lambda: len({c[0] for c in rig.checks_since(started)}) >= targets,
        5 * interval + 120,
    )

    def shares() -> list[int]:
        rows = rig.query("SELECT targets_assigned FROM agents_v WHERE state = 'live'")
        return [int(r[0]) for r in rows]

    rig.wait_for(
        f"{agents} agents reporting {targets} targets between them",
        lambda: len(shares()) == agents and sum(shares()) == targets,
        120,
    )
    per_agent = shares()
    rss = _agent_rss(rig)
    mean = statistics.fmean(per_agent)
    return {
        "fleet_scale_agents": agents,
        "fleet_scale_targets": targets,
        "fleet_scale_interval_s": interval,
        "fleet_scale_start_s": round(time.time() - started, 1),
        "fleet_balance_min": min(per_agent),
        "fleet_balance_max": max(per_agent),
        "fleet_balance_worst_pct": round(100 * max(abs(n - mean) for n in per_agent) / mean, 1),
        "fleet_agent_rss_max_mb": round(max(rss), 1),
    }


def run_scale(
    bootstrap: str, dsn: str, web_url: str, directory: Path, *, agents: int, targets: int,
    interval: float,
) -> dict[str, Any]:  # fmt: skip
    """The real scale run (see the module docstring); returns its figures."""
    directory.mkdir(parents=True, exist_ok=True)
    empty = _empty_table_rss(bootstrap, dsn, web_url, directory)
    rig = FleetRig(bootstrap, dsn, web_url, directory, session_timeout_s=10.0)
    try:
        figures = measure_scale(rig, agents, targets, interval)
    finally:
        rig.stop_all()
        rig.drop_schema()
    figures["fleet_agent_rss_empty_mb"] = round(empty, 1)
    figures["fleet_table_memory_mb"] = round(figures["fleet_agent_rss_max_mb"] - empty, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_scale")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=60)
    args = parser.parse_args()
    figures = balance(args.agents, args.targets, args.partitions)
    figures["fleet_table_traced_mb"] = round(table_memory_mb(args.targets), 1)
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
