"""PostgreSQL faults (issue 4, cases 4-5): the database stopped for 30 s mid-stream, and
restarted under the sink's open connection. Offsets never run ahead of what PostgreSQL holds."""

from __future__ import annotations

import signal
import time

import pytest

from helpers.faults import (
    Agents,
    Servers,
    assert_committed_in_postgres,
    assert_conserved,
    committed_offsets,
    group_lag,
    stored_count,
)
from helpers.sites import LocalSites
from helpers.stack import Pipeline
from helpers.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration]

OUTAGE_S = 30.0


def _targets(sites: LocalSites, n: int = 4) -> list[dict[str, object]]:
    return [{"name": f"t{i}", "url": sites.http_url("/"), "interval": 0.5} for i in range(n)]


def _lag(status: dict[str, str]) -> int:
    value = status.get("lag", "-")
    return int(value) if value.isdigit() else -1


def test_postgres_stopped_30s_mid_stream_commits_no_offset_past_the_database(
    pipeline: Pipeline, agents: Agents, servers: Servers, local_sites: LocalSites
) -> None:
    pipeline.write_config(consumer={"batch_max": 100})
    pipeline.write_targets(_targets(local_sites))
    consumer = agents.start("consumer")
    producer = agents.start("producer")
    topics = [pipeline.metrics_topic, pipeline.checks_topic]
    wait_for(lambda: stored_count(pipeline) >= 20, 60, "the first events in PostgreSQL")
    servers.pg_stop()
    down_at = time.monotonic()
    time.sleep(3)
    lag_early = group_lag(pipeline)
    committed_early = committed_offsets(pipeline.stack.bootstrap, pipeline.group_id, topics)
    wait_for(lambda: consumer.last_status().get("postgres") == "down", 20, "the consumer to notice")
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
    assert consumer.running and producer.running, agents.logs()
    lag_late = group_lag(pipeline)
    assert lag_late > lag_early + 40, (lag_early, lag_late)
    status = consumer.last_status()
    assert status["postgres"] == "down" and _lag(status) > 40, status
    # Freeze the consumer so PostgreSQL's contents cannot move, then compare them with the
    # offsets the group committed: nothing committed may be missing from the database.
    assert consumer.proc is not None
    consumer.proc.send_signal(signal.SIGSTOP)
    try:
        committed = committed_offsets(pipeline.stack.bootstrap, pipeline.group_id, topics)
        assert committed == committed_early, "an offset moved while PostgreSQL was down"
        servers.pg_start()
        covered = assert_committed_in_postgres(pipeline, committed)
        assert sum(covered.values()) >= 20
    finally:
        consumer.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: consumer.last_status().get("postgres") == "connected", 30, "reconnect")
    wait_for(lambda: group_lag(pipeline) < 20, 60, "the lag to drain")
    code, _ = producer.stop()
    assert code == 0, producer.tail()
    result = assert_conserved(pipeline, min_events=100)
    wait_for(lambda: _lag(consumer.last_status()) == 0, 30, "lag 0 in the status line")
    code, took = consumer.stop()
    assert code == 0 and took < 10, consumer.tail()
    assert "PostgreSQL" in consumer.text() and "retrying" in consumer.text()
    agents.assert_clean()
    print(f"lag {lag_early} -> {lag_late} during the outage; {result}")


@pytest.mark.parametrize("kill", [False, True], ids=["fast", "immediate"])
def test_postgres_restart_under_open_connection_next_batch_is_retried(
    pipeline: Pipeline, agents: Agents, servers: Servers, local_sites: LocalSites, kill: bool
) -> None:
    pipeline.write_config(consumer={"batch_max": 50})
    pipeline.write_targets(_targets(local_sites))
    consumer = agents.start("consumer")
    producer = agents.start("producer")
    wait_for(lambda: stored_count(pipeline) >= 20, 60, "the first events in PostgreSQL")
    before = stored_count(pipeline)
    servers.pg_stop(kill=kill)
    servers.pg_start()
    wait_for(lambda: stored_count(pipeline) >= before + 20, 30, "events written after restart")
    assert consumer.running, consumer.tail()
    code, _ = producer.stop()
    assert code == 0, producer.tail()
    assert_conserved(pipeline, min_events=40)
    wait_for(
        lambda: consumer.last_status().get("postgres") == "connected", 10, "postgres=connected"
    )
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()
    # The broken connection was noticed, replaced, and the batch written on the new one.
    assert "retrying the batch" in consumer.text() and "connection restored" in consumer.text()
    agents.assert_clean()
