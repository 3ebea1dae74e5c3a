"""Kafka faults (issue 4, cases 1-3): the broker away at start, SIGKILLed mid-stream, and the
agent SIGKILLed with a full spool. Real processes, real servers; PostgreSQL is the judge."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from engine.kafka.spool import Spool
from helpers.faults import (
    Agents,
    Servers,
    assert_conserved,
    metrics_gaps,
    stored_count,
)
from helpers.sites import LocalSites
from helpers.stack import Pipeline
from helpers.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration]

OUTAGE_S = 30.0


def _targets(sites: LocalSites) -> list[dict[str, object]]:
    return [
        {"name": "home", "url": sites.http_url("/"), "interval": 1},
        {"name": "down", "url": sites.http_url("/status/503"), "interval": 1},
    ]


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def _spool(status: dict[str, str]) -> int:
    """Spool depth from a status line; -1 before the first status line."""
    return int(status.get("spool", "-1"))


def test_kafka_down_at_agent_start_then_up_30s_later_loses_nothing(
    pipeline: Pipeline, agents: Agents, servers: Servers, local_sites: LocalSites
) -> None:
    pipeline.write_targets(_targets(local_sites))
    servers.kafka_stop()
    down_at = time.monotonic()
    servers.kafka_back_after(down_at, OUTAGE_S)
    producer = agents.start("producer")
    consumer = agents.start("consumer")
    wait_for(lambda: _spool(producer.last_status()) >= 5, 30, "the agent to spool")
    _sleep_until(down_at + OUTAGE_S - servers.KAFKA_START_S - 1)
    assert producer.running and consumer.running, agents.logs()
    spooled = _spool(producer.last_status())
    assert producer.last_status()["kafka"] in ("down", "connecting")
    outage = servers.wait_kafka_back() - down_at
    assert outage >= OUTAGE_S - 2, f"Kafka was away {outage:.0f} s"
    wait_for(lambda: _spool(producer.last_status()) == 0, 60, "the spool to be replayed")
    wait_for(lambda: stored_count(pipeline) >= spooled, 60, "the consumer to catch up")
    time.sleep(2)
    code, took = producer.stop()
    assert code == 0 and took < 10, producer.tail()
    result = assert_conserved(pipeline, min_events=spooled)
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()
    gaps = metrics_gaps(pipeline, pipeline.agent)
    assert sum(gaps) >= OUTAGE_S, "metrics collected while Kafka was away are in PostgreSQL"
    assert max(gaps) < 2.5, f"a hole in the metrics timeline: {max(gaps):.1f} s"
    assert producer.last_status()["spool_dropped"] == "0"
    assert result.check_events >= 2 * OUTAGE_S * 0.8
    agents.assert_clean()


def test_broker_sigkill_mid_stream_back_after_30s_spools_and_replays_in_order(
    pipeline: Pipeline, agents: Agents, servers: Servers, local_sites: LocalSites
) -> None:
    pipeline.write_targets(_targets(local_sites))
    consumer = agents.start("consumer")
    producer = agents.start("producer")
    wait_for(lambda: stored_count(pipeline) >= 5, 60, "the first events in PostgreSQL")
    servers.kafka_stop(kill=True)
    killed_at = time.monotonic()
    servers.kafka_back_after(killed_at, OUTAGE_S)
    wait_for(lambda: _spool(producer.last_status()) >= 5, 30, "the agent to spool")
    _sleep_until(killed_at + OUTAGE_S - servers.KAFKA_START_S - 1)
    assert producer.running and consumer.running, agents.logs()
    status = producer.last_status()
    assert status["kafka"] in ("down", "connecting"), status
    spooled = _spool(status)
    # The agent kept collecting and checking while the broker was dead.
    assert spooled >= (OUTAGE_S - servers.KAFKA_START_S) * 2, status
    back_at = servers.wait_kafka_back()
    assert back_at - killed_at >= OUTAGE_S - 2, f"Kafka was away {back_at - killed_at:.0f} s"
    wait_for(lambda: _spool(producer.last_status()) == 0, 60, "the spool to be replayed")
    replay_s = time.monotonic() - back_at
    wait_for(lambda: consumer.last_status().get("kafka") == "connected", 60, "consumer back")
    time.sleep(2)
    code, took = producer.stop()
    assert code == 0 and took < 10, producer.tail()
    result = assert_conserved(pipeline, min_events=spooled)
    code, took = consumer.stop()
    assert code == 0 and took < 10, consumer.tail()
    gaps = metrics_gaps(pipeline, pipeline.agent)
    assert sum(gaps) >= OUTAGE_S
    assert max(gaps) < 2.5, f"a hole in the metrics timeline: {max(gaps):.1f} s"
    assert producer.last_status()["spool_dropped"] == "0"
    # Replayed in order: within each key (agent / target) the broker got them oldest first.
    _assert_key_order(pipeline)
    agents.assert_clean()
    print(f"spooled {spooled} events, replayed in {replay_s:.1f} s; {result}")


def _assert_key_order(p: Pipeline) -> None:
    """Within a partition, the first copy of each event arrives in observed_at order per key."""

    async def read() -> dict[tuple[str, int], list[dict[str, object]]]:
        consumer = AIOKafkaConsumer(
            p.metrics_topic,
            p.checks_topic,
            bootstrap_servers=p.stack.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        out: dict[tuple[str, int], list[dict[str, object]]] = {}
        try:
            async with asyncio.timeout(30):
                while len(consumer.assignment()) < 6:
                    await asyncio.sleep(0.1)
                tps = sorted(consumer.assignment())
                end = await consumer.end_offsets(tps)
                while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
                    for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                        for m in msgs:
                            out.setdefault((tp.topic, tp.partition), []).append(
                                {**orjson.loads(m.value), "_key": m.key}
                            )
        finally:
            await consumer.stop()
        return out

    for (topic, partition), docs in asyncio.run(read()).items():
        seen: set[object] = set()
        last: dict[object, str] = {}
        for doc in docs:
            if doc["id"] in seen:
                continue  # a re-send after a failed batch; the sink stores it once
            seen.add(doc["id"])
            # Heartbeats share the agent's key but are their own stream: a tick's observed_at
            # is taken before it is collected, so a heartbeat sent meanwhile may come first.
            key, ts = (doc["_key"], doc.get("type")), str(doc["observed_at"])
            assert ts >= last.get(key, ""), f"{topic}[{partition}] key {key!r} out of order"
            last[key] = ts


def test_agent_sigkilled_with_events_in_its_spool_replays_them_after_restart(
    pipeline: Pipeline, agents: Agents, servers: Servers, local_sites: LocalSites, tmp_path: Path
) -> None:
    pipeline.write_targets(_targets(local_sites))
    consumer = agents.start("consumer")
    producer = agents.start("producer")
    wait_for(lambda: stored_count(pipeline) >= 3, 60, "the first events in PostgreSQL")
    servers.kafka_stop()
    wait_for(lambda: _spool(producer.last_status()) >= 10, 30, "events in the spool")
    producer.stop(signal.SIGKILL)
    # What the killed agent left on disk: read a copy with the spool's own reader.
    copy = tmp_path / "spool-copy"
    shutil.copytree(pipeline.dir / "spool", copy)
    left = Spool(copy, 1 << 30)
    left.open()
    spooled_ids: list[str] = []
    while batch := left.peek(500):
        spooled_ids += [orjson.loads(r.value)["id"] for r in batch]
        left.ack(len(batch))
    left.close()
    assert len(spooled_ids) >= 10
    servers.kafka_start()
    producer = agents.start("producer", name="producer-restarted")
    wait_for(lambda: _spool(producer.last_status()) == 0, 60, "the spool to be replayed")
    assert "spool holds" in producer.text()
    time.sleep(2)
    code, _ = producer.stop()
    assert code == 0, producer.tail()
    assert_conserved(pipeline, min_events=len(spooled_ids))
    stored = {str(r[0]) for r in pipeline.query("SELECT event_id FROM events")}
    assert set(spooled_ids) <= stored, "events spooled before the SIGKILL are in PostgreSQL"
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()
    agents.assert_clean()
