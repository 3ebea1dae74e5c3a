"""A real fleet (bench/fleet_rig.py) brought up, settled and judged, for the fault tests on the
single-node stack (tests/fleet) and on the three-node cluster (tests/faults).

The judges: every check result a surviving agent made is stored, once (its own count, from its
final status line, against its rows in PostgreSQL); every check event on the topic is stored
exactly once; and once the group settles, each target is checked once per interval, with no
double check and no gap.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time

import orjson

from bench.fleet_rig import FleetRig, double_and_missed, owners
from helpers.kafka_tools import read_topic

INTERVAL = 1.0
TARGETS = 24


def fleet_of(rig: FleetRig, agents: int) -> set[str]:
    targets = rig.targets(TARGETS, INTERVAL)
    assert rig.import_targets(targets).returncode == 0
    rig.start_sink()
    for i in range(agents):
        rig.start_agent(f"a{i}", "eu")
    names = {str(t["name"]) for t in targets}
    since = time.time()
    rig.wait_for(
        "every target checked", lambda: names <= {c[0] for c in rig.checks_since(since)}, 90
    )
    rig.wait_for(
        f"all {agents} agents checking",
        lambda: len(set(owners(rig.checks_since(time.time() - 2 * INTERVAL)).values())) == agents,
        60,
    )
    return names


def settled(rig: FleetRig, names: set[str], live: set[str]) -> None:
    """The group settled: every live agent checks, and a window has no double or missed check."""
    rig.wait_for(
        "the group to settle with every live agent checking",
        lambda: set(owners(rig.checks_since(time.time() - 2 * INTERVAL)).values()) == live,
        90,
    )
    time.sleep(3 * INTERVAL)
    start = time.time()
    time.sleep(8 * INTERVAL)
    end = time.time()
    time.sleep(3)  # the sink's lag
    checks = rig.checks_since(start - INTERVAL)
    assert {c[0] for c in checks} == names
    assert double_and_missed(checks, INTERVAL, start, end) == (0, 0)


_CHECKS = re.compile(r"status role=\S+ .*\bchecks=(\d+)")


def _stop_and_count(rig: FleetRig, name: str) -> int:
    """Stop an agent gracefully; the number of checks it made, from its final status line."""
    rig.signal_agent(name, signal.SIGTERM)
    assert rig.wait_exit(name) == 0, rig.agents[name].log.read_text()[-2000:]
    made = _CHECKS.findall(rig.agents[name].log.read_text())
    assert made, f"no status line in {name}'s log"
    return int(made[-1])


def nothing_lost(rig: FleetRig, survivors: set[str]) -> None:
    """Each survivor's checks are all stored; the topic's check events are stored once each."""
    made = {name: _stop_and_count(rig, name) for name in sorted(survivors)}

    def stored() -> dict[str, int]:
        rows = rig.query("SELECT agent, count(*) FROM checks_v GROUP BY agent")
        return {str(a): int(n) for a, n in rows if a in survivors}

    rig.wait_for(f"every check survivors made stored ({made})", lambda: stored() == made, 60)
    topic = rig.config_doc("x", "x", "producer")["kafka"]["checks_topic"]
    docs = [orjson.loads(v) for v in asyncio.run(read_topic(rig.bootstrap, topic))]
    on_topic = {str(d["id"]) for d in docs if d["type"] == "check"}

    def ids() -> list[str]:
        return [str(r[0]) for r in rig.query("SELECT event_id::text FROM checks")]

    rig.wait_for(
        f"the {len(on_topic)} checks on the topic stored", lambda: set(ids()) >= on_topic, 60
    )
    stored_ids = ids()
    assert len(stored_ids) == len(set(stored_ids)), "a check stored twice"
    assert set(stored_ids) == on_topic
