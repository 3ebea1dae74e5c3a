"""The soak's faults, one at a time: what each does to the real servers and processes, and
how long the pipeline took to get over it.

    broker_kill       SIGKILL the node leading the most metrics/checks partitions; restart it
    postgres_restart  stop PostgreSQL immediately (like a crash), start it again
    consumer_kill     SIGKILL the sink; start a new one
    producer_kill     take the cluster below min ISR (two nodes down) so the feeder spools,
                      SIGKILL it with events in its spool, bring the nodes back and start a new
                      feeder on the same spool, which replays them

Every fault ends with the cluster whole again (all replicas in sync) so the next one starts
from a healthy pipeline.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.cluster import Cluster, fully_replicated, partition_replicas
from bench.soak.procs import Child, Incarnation, wait_until

KINDS = ("broker_kill", "postgres_restart", "consumer_kill", "producer_kill")
POSTGRES_DOWN_S = 5.0
BROKER_DOWN_S = 5.0
SPOOL_WAIT_S = 90.0
HEAL_WAIT_S = 180.0


class SoakFailure(RuntimeError):
    """The pipeline did not get over a fault in time."""


@dataclass
class Processes:
    """What the faults act on: the current feeder and consumer, and how to start new ones."""

    feeder: Incarnation
    consumer: Child
    new_feeder: Callable[[], Incarnation]
    new_consumer: Callable[[], Child]
    rate: float


def fault_plan(count: int, rng: random.Random) -> list[str]:
    """`count` faults in random order, each kind as evenly as possible (every kind at least
    once when count >= 4)."""
    plan: list[str] = []
    while len(plan) < count:
        bag = list(KINDS)
        rng.shuffle(bag)
        plan += bag
    return plan[:count]


def _busiest_leader(cluster: Cluster, topics: list[str]) -> int:
    parts = asyncio.run(partition_replicas(cluster.bootstrap, topics))
    leaders = Counter(p["leader"] for p in parts.values() if p["leader"] >= 0)
    return leaders.most_common(1)[0][0] if leaders else cluster.node_ids[0]


def _heal(cluster: Cluster, topics: list[str]) -> float:
    """Wait until every replica is back in sync; seconds it took."""
    started = time.monotonic()
    if not wait_until(
        lambda: asyncio.run(fully_replicated(cluster.bootstrap, topics)), HEAL_WAIT_S, 1.0
    ):
        raise SoakFailure(f"replicas of {topics} not in sync {HEAL_WAIT_S:.0f} s after a fault")
    return time.monotonic() - started


def produce_recovery(
    feeder: Incarnation, rate: float, since: float, timeout: float
) -> float | None:
    """Seconds from `since` until the feeder's acknowledgements over the last second reach
    half its rate again (None: not within `timeout`). Kafka acknowledges nothing for a
    partition whose leader died until a new leader is elected, and the shipper's batch waits
    for all of them, so throughput drops to about zero first."""
    window: list[tuple[float, int]] = []
    deadline = since + timeout
    stalled = False
    while (now := time.monotonic()) < deadline:
        window.append((now, int(feeder.read_status().get("produced", 0))))
        window = [w for w in window if now - w[0] <= 1.0]
        span = window[-1][0] - window[0][0]
        acked = window[-1][1] - window[0][1]
        if span >= 0.8:
            if acked < rate * 0.5:
                stalled = True
            elif stalled or now - since > 30.0:
                return now - since
        time.sleep(0.1)
    return None


def broker_kill(cluster: Cluster, procs: Processes, topics: list[str]) -> dict[str, Any]:
    node = _busiest_leader(cluster, topics)
    killed = time.monotonic()
    cluster.kill_node(node)
    produce_back = produce_recovery(procs.feeder, procs.rate, killed, 120.0)
    time.sleep(max(0.0, killed + BROKER_DOWN_S - time.monotonic()))
    cluster.start_node(node)
    restarted = time.monotonic() - killed
    return {
        "node": node,
        "produce_resumed_s": None if produce_back is None else round(produce_back, 1),
        "node_back_s": round(restarted, 1),
        "in_sync_s": round(_heal(cluster, topics) + restarted, 1),
    }


def postgres_restart(cluster: Cluster, procs: Processes, topics: list[str]) -> dict[str, Any]:
    started = time.monotonic()
    cluster.kill_postgres()
    time.sleep(POSTGRES_DOWN_S)
    cluster.start_postgres()
    return {"down_s": round(time.monotonic() - started, 1)}


def consumer_kill(cluster: Cluster, procs: Processes, topics: list[str]) -> dict[str, Any]:
    procs.consumer.kill()
    procs.consumer = procs.new_consumer()
    return {"killed": procs.consumer.name}


def producer_kill(cluster: Cluster, procs: Processes, topics: list[str]) -> dict[str, Any]:
    """Below min ISR, then SIGKILL the feeder with a spool; the next feeder replays it."""
    survivor = _busiest_leader(cluster, topics)
    down = [n for n in cluster.node_ids if n != survivor][:2]
    cluster.kill_node(*down)  # at the same moment
    below_at = time.monotonic()
    feeder = procs.feeder
    spooled = wait_until(lambda: int(feeder.read_status().get("spool", 0)) > 0, SPOOL_WAIT_S)
    spool_took = time.monotonic() - below_at
    depth = int(feeder.read_status().get("spool", 0))
    if not spooled:
        raise SoakFailure(f"the feeder did not spool within {SPOOL_WAIT_S:.0f} s below min ISR")
    time.sleep(2.0)  # a few more events in the spool, and some in memory
    feeder.child.signal(signal.SIGKILL)
    feeder.child.proc.wait(timeout=30)
    # Taken once it is dead, not before the signal: on a busy box the feeder can make one more
    # tick between the two, and that tick, in memory at the kill, would look made after it.
    feeder.killed_at = time.time()
    killed = time.monotonic()
    cluster.start_all()  # both nodes at once
    back = time.monotonic() - killed
    procs.feeder = procs.new_feeder()
    replayed = wait_until(lambda: procs.feeder.read_status().get("spool") == 0, 300.0)
    return {
        "nodes_down": down,
        "spooling_after_s": round(spool_took, 1),
        "spool_at_kill": max(depth, int(feeder.read_status().get("spool", 0))),
        "killed": feeder.agent,
        "nodes_back_s": round(back, 1),
        "replayed_s": round(time.monotonic() - killed - back, 1) if replayed else None,
        "in_sync_s": round(_heal(cluster, topics), 1),
    }


FAULTS: dict[str, Callable[[Cluster, Processes, list[str]], dict[str, Any]]] = {
    "broker_kill": broker_kill,
    "postgres_restart": postgres_restart,
    "consumer_kill": consumer_kill,
    "producer_kill": producer_kill,
}
