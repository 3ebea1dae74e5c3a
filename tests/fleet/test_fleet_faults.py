"""The fleet under faults, on the real stack: a malformed targets record, and Kafka going away.

Decision (README, "An agent cut off from Kafka"): an agent that loses Kafka keeps checking the
targets of its last assignment and spools every result; nothing it made is lost. Here the
broker itself stops, so no agent can take over anyone's targets meanwhile.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer

from bench.fleet_rig import FleetRig
from helpers.faults import Servers, servers_fixture  # noqa: F401 - registers the fixture

INTERVAL = 1.0


async def _produce_raw(bootstrap: str, topic: str, key: bytes | None, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=key, value=value)
    finally:
        await producer.stop()


def test_a_malformed_targets_record_is_skipped_counted_and_shown(rig: FleetRig) -> None:
    assert rig.import_targets(rig.targets(3, INTERVAL)).returncode == 0
    rig.start_sink()
    rig.start_agent("a0", "eu")
    since = time.time()
    rig.wait_for("checks", lambda: len({c[0] for c in rig.checks_since(since)}) == 3, 90)
    topic = rig.config_doc("x", "x", "producer")["kafka"]["targets_topic"]
    asyncio.run(_produce_raw(rig.bootstrap, topic, b"broken", b"{not json"))
    # The agent goes on: a target published after the bad record is checked too.
    assert rig.import_targets(rig.targets(4, INTERVAL)).returncode == 0
    later = time.time()
    rig.wait_for(
        "the new target checked", lambda: "t00003" in {c[0] for c in rig.checks_since(later)}, 60
    )
    log = rig.agents["a0"].log.read_text()
    assert "record skipped" in log and "'broken'" in log
    agent = rig.agents["a0"].proc
    assert agent is not None and agent.poll() is None


def test_an_agent_cut_off_from_kafka_keeps_checking_and_loses_nothing(
    rig: FleetRig, servers: Servers
) -> None:
    assert rig.import_targets(rig.targets(5, INTERVAL)).returncode == 0
    rig.start_sink()
    rig.start_agent("a0", "eu")
    since = time.time()
    rig.wait_for("checks", lambda: len({c[0] for c in rig.checks_since(since)}) == 5, 90)
    time.sleep(2)
    down_at = time.time()
    servers.kafka_stop()
    time.sleep(15)
    servers.kafka_start()
    up_at = time.time()

    def outage_covered() -> bool:
        checks = [c for c in rig.checks_since(down_at) if c[2] < up_at]
        # every target checked about once a second during the outage (spooled, replayed)
        return len(checks) >= 5 * int(up_at - down_at - 2)

    rig.wait_for("the outage's checks in PostgreSQL", outage_covered, 120)
