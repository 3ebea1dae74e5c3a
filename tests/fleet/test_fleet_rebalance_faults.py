"""The fleet when a rebalance is hit by a fault, on the real stack, PostgreSQL as the judge.

Two cases from the fleet issue: an agent SIGKILLed while the group rebalances, and the broker
restarted during a rebalance. The judges are outcomes, not timings (helpers/fleet_tools.py):
nothing a surviving agent made is lost or stored twice, and the group settles to one check per
target per interval. The cluster's case (the targets topic's leader killed during a rebalance)
is in tests/faults/test_faults_cluster.py.
"""

from __future__ import annotations

import signal
import time

import pytest

from bench.fleet_rig import FleetRig
from helpers.faults import Servers, servers_fixture  # noqa: F401 - registers the fixture
from helpers.fleet_tools import fleet_of, nothing_lost, settled

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def test_an_agent_sigkilled_while_the_group_rebalances_loses_nothing(rig: FleetRig) -> None:
    names = fleet_of(rig, 3)
    rig.start_agent("a3", "eu")  # a join: the group rebalances
    time.sleep(0.3)
    rig.signal_agent("a1", signal.SIGKILL)  # and a member dies in the middle of it
    rig.wait_exit("a1")
    survivors = {"a0", "a2", "a3"}
    settled(rig, names, survivors)
    nothing_lost(rig, survivors)


def test_a_broker_restarted_during_a_rebalance_loses_nothing(
    rig: FleetRig, servers: Servers
) -> None:
    names = fleet_of(rig, 2)
    rig.start_agent("a2", "eu")  # the group starts to rebalance
    time.sleep(0.5)
    servers.kafka_stop()  # and the broker goes away in the middle of it
    time.sleep(5)
    servers.kafka_start()
    settled(rig, names, {"a0", "a1", "a2"})
    nothing_lost(rig, {"a0", "a1", "a2"})
