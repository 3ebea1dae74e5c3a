"""Faults on a three-node cluster, the way managed Kafka runs (replication 3, min ISR 2):
partition leaders killed, a rolling restart, the cluster below min ISR, the group coordinator
killed, and the fleet's targets topic leader killed during a rebalance. Real processes and
servers; PostgreSQL and the feeder's numbered events are the judges (see cluster_tools.py; the
fleet case is judged by helpers/fleet_tools.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.cluster import Cluster, partition_replicas
from bench.fleet_rig import FleetRig
from helpers.cluster_tools import (
    Load,
    cluster_pipeline_fixture,  # noqa: F401 - fixture
    coordinator_of,
    finish_and_judge,
    in_sync,
    leader_of_both,
    measure_produce_recovery,
    record_figures,
    sink_recovery,
    start_load,
    wait_new_status,
)
from helpers.faults import Agents, stored_count
from helpers.fleet_tools import fleet_of, nothing_lost, settled
from helpers.sites import LocalSites
from helpers.stack import Pipeline
from helpers.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(900)]

DOWN_S = 10.0


@pytest.fixture(name="load_agents")
def load_agents_fixture(cluster_pipeline: Pipeline) -> Agents:
    return Agents(cluster_pipeline, cluster_pipeline.dir / "logs")


def _kill_and_restart_leader(cluster: Cluster, load: Load) -> dict[str, object]:
    node = leader_of_both(load)
    killed_mono, killed_unix = time.monotonic(), time.time()
    cluster.kill_node(node)
    produce_s = measure_produce_recovery(load, killed_mono)
    assert wait_new_status(load.producer), "the agent's loop is stuck while a leader is dead"
    time.sleep(max(0.0, killed_mono + DOWN_S - time.monotonic()))
    cluster.start_node(node)
    wait_for(lambda: in_sync(load), 180, "the restarted node back in sync")
    return {
        "node": node,
        "killed_unix": killed_unix,
        "produce_recovered_s": None if produce_s is None else round(produce_s, 1),
    }


def test_partition_leader_sigkilled_twice_loses_nothing_and_stores_nothing_twice(
    cluster: Cluster,
    cluster_pipeline: Pipeline,
    load_agents: Agents,
    local_sites: LocalSites,
) -> None:
    try:
        load = start_load(cluster_pipeline, load_agents, local_sites)
        kills = []
        for _ in range(2):
            kills.append(_kill_and_restart_leader(cluster, load))
            time.sleep(5)
        result = finish_and_judge(load)
        for kill in kills:
            since = float(kill["killed_unix"])  # type: ignore[arg-type]
            kill["sink_recovered_s"] = sink_recovery(cluster_pipeline, load.feeder.agent, since)
        record_figures("leader_kill", {"kills": kills, "feed_rate": 300, **result})
    finally:
        load_agents.kill_all()


def test_rolling_restart_of_all_three_nodes_under_load_loses_nothing(
    cluster: Cluster,
    cluster_pipeline: Pipeline,
    load_agents: Agents,
    local_sites: LocalSites,
) -> None:
    try:
        load = start_load(cluster_pipeline, load_agents, local_sites)
        took = []
        for node in cluster.node_ids:
            began = time.monotonic()
            cluster.stop_node(node)  # SIGTERM: a controlled shutdown hands leadership over
            cluster.start_node(node)
            wait_for(lambda: in_sync(load), 180, f"node {node} back in sync")
            took.append(round(time.monotonic() - began, 1))
        result = finish_and_judge(load)
        record_figures("rolling_restart", {"node_restart_to_in_sync_s": took, **result})
    finally:
        load_agents.kill_all()


def test_below_min_isr_the_agent_spools_says_why_and_replays_when_a_node_returns(
    cluster: Cluster,
    cluster_pipeline: Pipeline,
    load_agents: Agents,
    local_sites: LocalSites,
) -> None:
    try:
        load = start_load(cluster_pipeline, load_agents, local_sites)
        down = cluster.node_ids[1:]
        logged = len(load.producer.text().splitlines())
        cluster.kill_node(*down)  # at the same moment
        below = time.monotonic()
        wait_for(lambda: int(load.producer.last_status().get("spool", 0)) >= 5, 90, "spooling")
        # (kafka= may already say "connected": the agent reconnects to the surviving node at
        # once, though no write can be acknowledged there.)
        status = load.producer.last_status()
        # One line says why (said when Kafka goes down, not once per failed batch).
        lines = [ln for ln in load.producer.text().splitlines()[logged:] if "spooling" in ln]
        assert lines, load.producer.tail()
        why = lines[0]
        assert "2 of 3 brokers unreachable" in why and "acks=all" in why, why
        spooled = int(status["spool"])
        returned = time.monotonic()
        cluster.start_node(down[0])  # 2 of 3: a quorum, and acks=all can be met again
        wait_for(lambda: load.producer.last_status().get("spool") == "0", 120, "the replay")
        replay_s = time.monotonic() - returned
        cluster.start_node(down[1])
        result = finish_and_judge(load)
        record_figures(
            "below_min_isr",
            {
                "spooling_after_s": round(returned - below, 1),
                "spooled": spooled,
                "why": why[-300:],
                "replayed_after_node_back_s": round(replay_s, 1),
                **result,
            },
        )
    finally:
        load_agents.kill_all()


def test_group_coordinator_sigkilled_the_sink_resumes_without_duplicate_rows(
    cluster: Cluster,
    cluster_pipeline: Pipeline,
    load_agents: Agents,
    local_sites: LocalSites,
) -> None:
    try:
        load = start_load(cluster_pipeline, load_agents, local_sites)
        node = coordinator_of(load)
        assert node is not None
        killed_unix = time.time()
        cluster.kill_node(node)
        # The group moves to a new coordinator (once Kafka fences the dead node), and the
        # sink goes on storing and committing there while the node is still dead.
        wait_for(lambda: coordinator_of(load) not in (None, node), 180, "a new group coordinator")
        resumed = coordinator_of(load)
        before = stored_count(cluster_pipeline)
        wait_for(lambda: stored_count(cluster_pipeline) > before + 500, 120, "the sink to resume")
        cluster.start_node(node)
        result = finish_and_judge(load)
        sink_s = sink_recovery(cluster_pipeline, load.feeder.agent, killed_unix)
        record_figures(
            "coordinator_kill",
            {"node": node, "new_coordinator": resumed, "sink_recovered_s": sink_s, **result},
        )
    finally:
        load_agents.kill_all()


def test_fleet_targets_topic_leader_sigkilled_during_a_rebalance_loses_no_check(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Two fleet agents on the cluster; a third joins (the group rebalances) and, in the middle
    of it, the node leading most of the targets topic's partitions is killed. The group settles
    with all three agents, every target is checked once per interval again, and no check a
    survivor made is lost or stored twice (helpers/fleet_tools.py)."""
    web_url = str(cluster.env.get("web_url") or "")
    assert web_url, "the cluster's stack has no demo web server"
    rig = FleetRig(
        cluster.bootstrap, cluster.dsn, web_url, tmp_path, targets_partitions=12,
        replication_factor=3,
    )  # fmt: skip
    try:
        names = fleet_of(rig, 2)
        topic = rig.config_doc("x", "x", "producer")["kafka"]["targets_topic"]
        parts = asyncio.run(partition_replicas(cluster.bootstrap, [topic]))
        leaders = Counter(info["leader"] for info in parts.values() if info["leader"] >= 0)
        node = leaders.most_common(1)[0][0]
        rig.start_agent("a2", "eu")  # the group starts to rebalance
        time.sleep(0.5)
        cluster.kill_node(node)  # and the targets topic loses its leaders in the middle of it
        time.sleep(DOWN_S)
        cluster.start_node(node)
        settled(rig, names, {"a0", "a1", "a2"})
        nothing_lost(rig, {"a0", "a1", "a2"})
    finally:
        rig.stop_all()
        rig.drop_schema()
        cluster.restore()
