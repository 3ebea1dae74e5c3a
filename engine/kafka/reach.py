"""Why a send failed, in words an operator can act on: which brokers cannot be reached.

With `acks=all` a write is acknowledged only once `min.insync.replicas` replicas hold it. When
brokers die, Kafka never tells the producer "not enough replicas": the partitions they led have
no leader, and a surviving leader waits for followers that never fetch until the request times
out. aiokafka reports a bare timeout. Counting the brokers we cannot connect to names the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from engine.kafka.settings import bootstrap_hosts

PROBE_TIMEOUT_S = 1.0


def known_brokers(producer: Any, bootstrap_servers: str) -> list[tuple[str, int]]:
    """The brokers in the producer's cluster metadata, else the bootstrap servers."""
    cluster = getattr(getattr(producer, "client", None), "cluster", None)
    brokers = cluster.brokers() if cluster is not None else set()
    found = sorted({(b.host, int(b.port)) for b in brokers})
    return found or bootstrap_hosts(bootstrap_servers)


async def unreachable(addresses: Sequence[tuple[str, int]]) -> list[str]:
    """The addresses that refuse or ignore a TCP connection (all probed at once, bounded)."""

    async def answers(host: str, port: int) -> bool:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await writer.wait_closed()
        return True

    results = await asyncio.gather(*(answers(h, p) for h, p in addresses))
    return [f"{h}:{p}" for (h, p), ok in zip(addresses, results, strict=True) if not ok]


async def reach_cause(producer: Any, bootstrap_servers: str) -> str | None:
    """One clause naming the unreachable brokers and what that means for acks=all, or None
    when every broker answers (then the cause lies elsewhere and the error says it)."""
    brokers = known_brokers(producer, bootstrap_servers)
    down = await unreachable(brokers)
    if not down:
        return None
    names = ", ".join(down)
    if len(down) == len(brokers):
        return f"no broker reachable ({names})"
    head = f"{len(down)} of {len(brokers)} brokers unreachable ({names})"
    if 2 * len(down) < len(brokers):
        return f"{head}: their partitions wait for a new leader"
    # Most replicas gone: with the usual replication 3 and min.insync.replicas 2 (managed
    # Kafka's defaults), no write can be acknowledged until a broker returns.
    return f"{head}: too few in-sync replicas for acks=all (min.insync.replicas)"
