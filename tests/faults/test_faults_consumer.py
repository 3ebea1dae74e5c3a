"""Consumer faults (issue 4, cases 6-7): the sink SIGKILLed on either side of the PostgreSQL
commit, and a second consumer joining and leaving the group mid-stream. Exactly once, always."""

from __future__ import annotations

import sys
import time

import pytest

from helpers.faults import (
    CRASHING_CONSUMER,
    Agents,
    assert_committed_in_postgres,
    assert_conserved,
    committed_offsets,
    config_variant,
    free_port,
    partition_messages,
    scrape,
    stored_count,
)
from helpers.sites import LocalSites
from helpers.stack import Pipeline
from helpers.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def _targets(sites: LocalSites, n: int = 6) -> list[dict[str, object]]:
    return [{"name": f"t{i}", "url": sites.http_url("/"), "interval": 0.5} for i in range(n)]


@pytest.mark.parametrize("point", ["before-db-commit", "after-db-commit"])
def test_consumer_sigkilled_around_the_database_commit_stores_everything_once(
    pipeline: Pipeline, agents: Agents, local_sites: LocalSites, point: str
) -> None:
    pipeline.write_config(consumer={"batch_max": 20})
    pipeline.write_targets(_targets(local_sites))
    producer = agents.start("producer")
    crashing = agents.start(
        "consumer",
        name=f"consumer-{point}",
        program=(sys.executable, "-c", CRASHING_CONSUMER),
        extra_env={"FAULT_CRASH_POINT": point, "FAULT_CRASH_AFTER": "3"},
    )
    assert crashing.proc is not None
    crashing.proc.wait(timeout=90)
    assert crashing.proc.returncode == -9, crashing.tail()
    topics = [pipeline.metrics_topic, pipeline.checks_topic]
    committed = committed_offsets(pipeline.stack.bootstrap, pipeline.group_id, topics)
    assert committed, "three batches were committed before the crash"
    covered = assert_committed_in_postgres(pipeline, committed)
    below = {
        event_id
        for (topic, part), msgs in partition_messages(pipeline).items()
        for offset, event_id in msgs
        if offset < committed.get((topic, part), 0)
    }
    stored = {str(r[0]) for r in pipeline.query("SELECT event_id FROM events")}
    assert sum(covered.values()) == len(below) > 0
    if point == "before-db-commit":
        # The killed transaction left nothing behind: PostgreSQL holds the committed batches.
        assert stored == below
    else:
        # The batch is in PostgreSQL but its offsets are not committed: it will be read again.
        assert stored > below
    port = free_port()
    config = config_variant(
        pipeline,
        "consumer.toml",
        consumer={"batch_max": 20},
        headless={"listen": f"127.0.0.1:{port}"},
    )
    consumer = agents.start("consumer", name="consumer-restarted", config=config)
    wait_for(lambda: stored_count(pipeline) > len(stored) + 20, 60, "the new consumer to write")
    if point == "after-db-commit":
        # The re-read batch fails its writer's transaction and is written again the careful way,
        # while later batches go in beside it on the other writer: wait for its count.
        wait_for(
            lambda: scrape(port)["metrictui_duplicates_total"] >= 1,
            30,
            "the re-read batch to be recognised as already stored",
        )
    code, _ = producer.stop()
    assert code == 0, producer.tail()
    assert_conserved(pipeline, min_events=50)
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()
    for agent in agents.started:
        if agent is not crashing:
            assert "Traceback" not in agent.text(), agent.tail()


def test_second_consumer_joins_mid_stream_and_leaves_nothing_lost_or_doubled(
    pipeline: Pipeline, agents: Agents, local_sites: LocalSites
) -> None:
    pipeline.write_config(consumer={"batch_max": 50})
    pipeline.write_targets(_targets(local_sites, n=10))
    port_a, port_b = free_port(), free_port()
    config_a, config_b = (
        config_variant(
            pipeline,
            f"consumer-{port}.toml",
            consumer={"batch_max": 50},
            headless={
                "listen": f"127.0.0.1:{port}",
                "control_socket": str(pipeline.dir / f"{port}.sock"),
            },
        )
        for port in (port_a, port_b)
    )
    first = agents.start("consumer", name="consumer-a", config=config_a)
    producer = agents.start("producer")
    wait_for(lambda: stored_count(pipeline) >= 50, 60, "the first consumer to write")
    second = agents.start("consumer", name="consumer-b", config=config_b)
    wait_for(
        lambda: second.statuses() and scrape(port_b).get("metrictui_inserted_events_total", 0) > 0,
        60,
        "the second consumer to get partitions and write",
    )
    time.sleep(5)
    code, took = second.stop()
    assert code == 0 and took < 10, second.tail()
    written_by_a = scrape(port_a)["metrictui_inserted_events_total"]
    time.sleep(8)  # the first consumer takes every partition back
    assert scrape(port_a)["metrictui_inserted_events_total"] > written_by_a
    code, _ = producer.stop()
    assert code == 0, producer.tail()
    result = assert_conserved(pipeline, min_events=200)
    code, _ = first.stop()
    assert code == 0, first.tail()
    agents.assert_clean()
    print(result)
