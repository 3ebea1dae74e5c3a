"""The three-node Kafka cluster that the soak and the cluster fault tests run against.

It is the local stack with `METRICTUI_STACK_BROKERS=3`, in its own stack dir and on its own
ports, so it never disturbs the single-node stack that `make run` and the other tests use:

    METRICTUI_STACK_CLUSTER_DIR         default: <stack dir>/cluster
    METRICTUI_STACK_CLUSTER_KAFKA_PORT  default 19192 (node i: that + 4 (i - 1) .. + 3)
    METRICTUI_STACK_CLUSTER_PG_PORT     default 15532
    METRICTUI_STACK_CLUSTER_WEB_PORT    default 18180

Nodes are stopped, killed and started only through stack/stack.py, as every fault test does.
Which node leads a partition, or coordinates a group, is asked of Kafka itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

ROOT = Path(__file__).resolve().parent.parent
STACK_SCRIPT = ROOT / "stack" / "stack.py"
BROKERS = 3


class ClusterError(RuntimeError):
    """A stack.py command on the cluster failed; carries its output."""


def cluster_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment under which stack.py manages the cluster (not the single-node stack)."""
    env = dict(os.environ if base is None else base)
    stack_dir = Path(env.get("METRICTUI_STACK_DIR") or ROOT / ".stack")
    env["METRICTUI_STACK_DIR"] = env.get("METRICTUI_STACK_CLUSTER_DIR") or str(
        stack_dir / "cluster"
    )
    env["METRICTUI_STACK_BROKERS"] = str(BROKERS)
    env["METRICTUI_STACK_KAFKA_PORT"] = env.get("METRICTUI_STACK_CLUSTER_KAFKA_PORT", "19192")
    env["METRICTUI_STACK_PG_PORT"] = env.get("METRICTUI_STACK_CLUSTER_PG_PORT", "15532")
    env["METRICTUI_STACK_WEB_PORT"] = env.get("METRICTUI_STACK_CLUSTER_WEB_PORT", "18180")
    # A node restarted after a SIGKILL recovers its logs first; on a busy box that takes long.
    env.setdefault("METRICTUI_STACK_READY_TIMEOUT", "300")
    # The servers named by METRICTUI_<SECTION>__<KEY> are not the cluster's.
    return {k: v for k, v in env.items() if not (k.startswith("METRICTUI_") and "__" in k)}


def cluster_cmd(*args: str, timeout: float = 900.0) -> str:
    """Run one stack.py command against the cluster; raise ClusterError if it fails."""
    proc = subprocess.run(
        [sys.executable, str(STACK_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cluster_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise ClusterError(f"stack.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _node_args(node_ids: tuple[int, ...]) -> list[str]:
    return [arg for n in node_ids for arg in ("--node", str(n))]


@dataclass(frozen=True)
class Cluster:
    """Where the running cluster listens (from its env.json)."""

    env: dict[str, Any]

    @property
    def bootstrap(self) -> str:
        return str(self.env["kafka_bootstrap"])

    @property
    def dsn(self) -> str:
        return str(self.env["pg_dsn"])

    @property
    def node_ids(self) -> list[int]:
        return [int(n["node_id"]) for n in self.env["kafka_nodes"]]

    def kill_node(self, *node_ids: int) -> None:
        """SIGKILL nodes (all at the same moment) and wait until their ports are closed."""
        cluster_cmd("kafka-stop", *_node_args(node_ids), "--kill")

    def stop_node(self, node_id: int) -> None:
        """SIGTERM one node (a controlled shutdown moves its leaderships first)."""
        cluster_cmd("kafka-stop", "--node", str(node_id))

    def start_node(self, node_id: int) -> None:
        """Start one node and wait until it is registered with the quorum again."""
        cluster_cmd("kafka-start", "--node", str(node_id))

    def start_all(self) -> None:
        """Start every node that is down, at once, and wait until each is registered."""
        cluster_cmd("kafka-start")

    def kill_postgres(self) -> None:
        cluster_cmd("pg-stop", "--kill")

    def start_postgres(self) -> None:
        cluster_cmd("pg-start")

    def restore(self) -> None:
        """Start whatever is down (running servers are reused)."""
        cluster_cmd("up")


def start_cluster() -> Cluster:
    """Start (or reuse) the cluster stack and return where it listens."""
    cluster_cmd("up", timeout=600)
    stack_dir = Path(cluster_env()["METRICTUI_STACK_DIR"])
    return Cluster(json.loads((stack_dir / "env.json").read_text()))


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    async with asyncio.timeout(30):
        await admin.start()
    return admin


async def partition_replicas(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], Any]:
    """(topic, partition) -> {"leader": id, "isr": [ids], "replicas": [ids]}, from Metadata."""
    admin = await _admin(bootstrap)
    try:
        async with asyncio.timeout(30):
            described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {
        (t["topic"], p["partition"]): {
            "leader": p["leader"],
            "isr": sorted(p["isr"]),
            "replicas": sorted(p["replicas"]),
        }
        for t in described
        for p in t["partitions"]
    }


async def group_coordinator(bootstrap: str, group_id: str) -> int:
    """The node that coordinates `group_id` (it holds its __consumer_offsets partition)."""
    admin = await _admin(bootstrap)
    try:
        async with asyncio.timeout(30):
            return int(await admin.find_coordinator(group_id))
    finally:
        await admin.close()


async def fully_replicated(bootstrap: str, topics: list[str]) -> bool:
    """Every partition of `topics` has a leader and all its replicas in sync."""
    try:
        parts = await partition_replicas(bootstrap, topics)
    except (OSError, TimeoutError, KafkaError):  # a node restarting: not yet
        return False
    return bool(parts) and all(
        p["leader"] >= 0 and p["isr"] == p["replicas"] for p in parts.values()
    )
