"""The fleet's scale figures that need no running fleet: how evenly a location's agents share
10,000 targets, and what the whole table costs an agent in memory.

    python -m bench.fleet_scale [--agents 20] [--targets 10000] [--partitions 60]

Balance: the targets are placed on partitions exactly as the producer places them (murmur2 of
the key, aiokafka's DefaultPartitioner, the Java client's rule) and the partitions are dealt
to the agents as Kafka's round-robin assignor deals them (sorted, one each in turn). Memory:
the table (decoded `Target`s, the partition map) built by `TargetsTable._apply` from the
records `targets import` publishes, measured with tracemalloc.
"""

from __future__ import annotations

import argparse
import statistics
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_scale")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=60)
    args = parser.parse_args()
    figures = balance(args.agents, args.targets, args.partitions)
    figures["fleet_table_memory_mb"] = round(table_memory_mb(args.targets), 1)
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
