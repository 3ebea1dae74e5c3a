"""Helpers for the fault tests on the three-node cluster (tests/faults/test_faults_cluster.py).

Every test runs the same load: a real sink (`metrictui --role consumer`), a real agent
(`--role producer`) checking three local targets every second, and a soak feeder
(bench/soak/feeder.py) whose every event is numbered. The judges are PostgreSQL and the feeder's
marks: every event the feeder made is stored exactly once (bench/soak/audit.py), every message
on the topics is stored exactly once (`assert_conserved`), and the agent's metrics timeline has
no hole. Figures (recovery times) go to bench/results/cluster_faults.json; nothing asserts on
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiokafka.errors import KafkaError

from bench.cluster import Cluster, fully_replicated, group_coordinator, partition_replicas
from bench.soak.audit import audit
from bench.soak.faults import produce_recovery
from bench.soak.procs import Incarnation, spawn_feeder, wait_until
from helpers.faults import (
    Agent,
    Agents,
    assert_conserved,
    config_variant,
    metrics_gaps,
    stored_count,
)
from helpers.sites import LocalSites
from helpers.stack import ROOT, Pipeline, StackInfo
from helpers.waiting import wait_for as wait_or_fail

FEED_RATE = 300.0  # events/s: enough to see throughput drop and recover, light for the box
FIGURES = ROOT / "bench" / "results" / "cluster_faults.json"


@pytest.fixture(name="cluster_pipeline")
def cluster_pipeline_fixture(cluster: Cluster, tmp_path: Path) -> Iterator[Pipeline]:
    """A fresh schema, topics (replication 3) and group on the cluster; afterwards every node
    is started again (whatever the test killed) and the schema is dropped."""
    tag = uuid.uuid4().hex[:10]
    info = StackInfo(cluster.bootstrap, cluster.dsn, cluster.env.get("pg_admin_dsn"), cluster.env)
    p = Pipeline(
        stack=info,
        dir=tmp_path,
        schema=f"t_{tag}",
        metrics_topic=f"t-{tag}.metrics",
        checks_topic=f"t-{tag}.checks",
        group_id=f"g-{tag}",
        agent=f"agent-{tag}",
    )
    p.write_config(kafka={"replication_factor": 3})
    p.write_targets([])
    try:
        yield p
    finally:
        cluster.restore()
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{p.schema}" CASCADE'.encode())


@dataclass
class Load:
    """The running load of one test."""

    p: Pipeline
    agents: Agents
    consumer: Agent
    producer: Agent
    feeder: Incarnation

    @property
    def topics(self) -> list[str]:
        return [self.p.metrics_topic, self.p.checks_topic]


def start_load(p: Pipeline, agents: Agents, sites: LocalSites) -> Load:
    p.write_targets(
        [{"name": f"site-{i}", "url": sites.http_url("/"), "interval": 1} for i in range(3)]
    )
    consumer = agents.start("consumer")
    producer = agents.start("producer")
    # Its own spool: two producers must never share one.
    config = config_variant(
        p, "feeder.toml", kafka={"replication_factor": 3}, agent={"spool_dir": str(p.dir / "fs")}
    )
    feeder = spawn_feeder(p.dir, p.schema, 0, config, FEED_RATE)
    load = Load(p, agents, consumer, producer, feeder)
    wait_or_fail(lambda: stored_count(p) >= 100, 120, "the first events in PostgreSQL")
    wait_or_fail(lambda: in_sync(load), 60, "every replica in sync")
    return load


def in_sync(load: Load) -> bool:
    return asyncio.run(fully_replicated(load.p.stack.bootstrap, load.topics))


def leader_of_both(load: Load) -> int:
    """The node leading partition 0 of the metrics topic if it also leads a checks partition,
    else the one leading the most partitions of the two topics."""
    parts = asyncio.run(partition_replicas(load.p.stack.bootstrap, load.topics))
    leads: dict[int, set[str]] = {}
    for (topic, _), info in parts.items():
        leads.setdefault(info["leader"], set()).add(topic)
    both = [node for node, topics in leads.items() if len(topics) == 2 and node >= 0]
    assert both, f"no node leads partitions of both topics: {parts}"
    return sorted(both, key=lambda n: -sum(i["leader"] == n for i in parts.values()))[0]


def coordinator_of(load: Load) -> int | None:
    """The group's coordinator node, or None while Kafka cannot say (the admin client may ask
    the dead node first)."""
    try:
        return asyncio.run(group_coordinator(load.p.stack.bootstrap, load.p.group_id))
    except (KafkaError, OSError, TimeoutError):
        return None


def status_count(agent: Agent) -> int:
    return len(agent.statuses())


def measure_produce_recovery(load: Load, since: float) -> float | None:
    return produce_recovery(load.feeder, FEED_RATE, since, 120.0)


def sink_recovery(p: Pipeline, agent: str, since_unix: float) -> float | None:
    """Seconds from `since_unix` until the sink stored, within one second, at least half the
    feeder's rate of its events again (after a second below that), from `inserted_at`."""
    rows = p.query(
        "SELECT extract(epoch FROM date_trunc('second', inserted_at)), count(*) FROM events"
        " WHERE agent = %s AND inserted_at >= to_timestamp(%s) GROUP BY 1 ORDER BY 1",
        (agent, since_unix),
    )
    per_second = {int(r[0]): int(r[1]) for r in rows}
    if not per_second:
        return None
    stalled = False
    for second in range(int(since_unix), max(per_second) + 1):
        if per_second.get(second, 0) < FEED_RATE * 0.5:
            stalled = True
        elif stalled or second > since_unix + 30:
            return round(second + 1 - since_unix, 1)
    return None


def finish_and_judge(load: Load) -> dict[str, Any]:
    """Stop the feeder and the agent gracefully, let the sink drain, then judge: the feeder's
    events exactly once, the topics' messages exactly once, no hole in the agent's timeline."""
    p, feeder = load.p, load.feeder
    wait_or_fail(lambda: in_sync(load), 180, "every replica in sync")
    feeder.child.signal(signal.SIGUSR1)
    wait_or_fail(
        lambda: (
            (st := feeder.read_status()).get("paused")
            and st.get("spool") == 0
            and st.get("queued") == 0
        ),
        180,
        "the feeder to empty its spool",
    )
    time.sleep(1)
    assert feeder.child.stop() == 0, feeder.child.log.read_text()[-3000:]
    wait_or_fail(lambda: load.producer.last_status().get("spool") == "0", 120, "agent spool")
    code, _ = load.producer.stop()
    assert code == 0, load.producer.tail()
    conservation = assert_conserved(p, min_events=100, timeout=180)
    verdict = audit(p.stack.dsn, p.schema, [feeder])
    assert verdict["produced"] > 0
    assert verdict["lost_unexplained"] == 0, verdict
    assert verdict["stored"] == verdict["produced"], verdict
    assert verdict["duplicates"] == 0 and verdict["sample_rows_missing"] == 0, verdict
    gaps = metrics_gaps(p, p.agent)
    assert gaps and max(gaps) < 5.0, f"a hole in the agent's metrics timeline: {max(gaps):.1f} s"
    code, _ = load.consumer.stop()
    assert code == 0, load.consumer.tail()
    load.agents.assert_clean()
    return {"events": conservation.events, "feeder": verdict}


def record_figures(test: str, figures: dict[str, Any]) -> None:
    """Merge this test's figures into bench/results/cluster_faults.json (git-ignored)."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        doc = json.loads(FIGURES.read_text())
    doc[test] = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}
    FIGURES.write_text(json.dumps(doc, indent=2) + "\n")


def wait_new_status(agent: Agent, timeout: float = 30.0) -> bool:
    """A new status line arrived: the agent's event loop runs (nothing blocks it)."""
    before = status_count(agent)
    return wait_until(lambda: status_count(agent) > before, timeout)
