"""The fleet's pure parts: the targets-topic record format, who checks what, clock phases,
heartbeats through the envelope, /metrics families and the import's problem list."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from bench.fleet_rig import double_and_missed
from engine.agent.scheduler import clock_slot
from engine.config.model import Config
from engine.envelope import HeartbeatEvent, Invalid, decode_event, encode_heartbeat
from engine.fleet.importing import read_import_file
from engine.fleet.records import BadRecord, decode_target, encode_target, tombstone
from engine.fleet.share import FleetTargets, targets_to_check
from engine.headless.prom import render_metrics
from engine.records.heartbeats import FleetAgent, Heartbeat
from engine.stats import Stats
from engine.targets.model import Target

NOW = datetime.now(UTC)


def test_a_target_round_trips_through_its_record_and_a_tombstone_deletes() -> None:
    target = Target("shop", "https://shop.example/", interval=5.0, locations=("eu", "us"))
    key, value = encode_target(target)
    assert decode_target(key, value, Path("/")) == target
    key, none = tombstone("shop")
    assert decode_target(key, none, Path("/")) is None


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        (None, b"{}", "no key"),
        (b"x", b"not json", "not JSON"),
        (b"x", orjson.dumps({"v": "2.0", "target": {"name": "x", "url": "http://a/"}}), "version"),
        (b"x", orjson.dumps({"v": "1.0", "target": {"name": "y", "url": "http://a/"}}), "differ"),
        (b"x", orjson.dumps({"v": "1.0", "target": {"name": "x", "url": "ftp://a/"}}), "url"),
        (b"x", orjson.dumps({"v": "1.0", "target": {"name": "x", "url": "http://a/",
                                                      "locations": ["a b"]}}), "locations"),
    ],
)  # fmt: skip
def test_a_bad_record_is_refused_with_a_reason(key: bytes | None, value: bytes, why: str) -> None:
    with pytest.raises(BadRecord) as info:
        decode_target(key, value, Path("/"))
    assert why in info.value.reason
    assert "\n" not in info.value.reason


def test_an_agent_checks_enabled_targets_of_its_partitions_in_its_location() -> None:
    targets = {
        "a": Target("a", "http://a/"),
        "b": Target("b", "http://b/"),
        "c": Target("c", "http://c/", enabled=False),
        "d": Target("d", "http://d/", locations=("us",)),
        "e": Target("e", "http://e/", locations=("eu",)),
    }
    partition_of = {"a": 0, "b": 1, "c": 0, "d": 0, "e": 0}
    mine = targets_to_check(targets, partition_of, {0}, "eu")
    assert [t.name for t in mine] == ["a", "e"]


def test_every_agent_puts_a_target_at_the_same_phase_of_the_wall_clock() -> None:
    # Two agents whose event loops started at different moments agree on the wall-clock slot.
    wall = 1_000_000.3
    first = clock_slot(5.0, "shop", wall, now_loop=10.0) - 10.0 + wall
    second = clock_slot(5.0, "shop", wall + 2.0, now_loop=500.0) - 500.0 + wall + 2.0
    assert (second - first) % 5.0 == pytest.approx(0.0, abs=1e-6) or second == pytest.approx(first)
    assert wall <= first < wall + 5.0


def test_double_and_missed_count_gaps() -> None:
    ts = [0.1, 2.1, 2.2, 4.1, 8.1]  # one double (2.1/2.2), one missed slot (4.1 -> 8.1)
    checks = [("t", "a", t, "eu") for t in ts]
    assert double_and_missed(checks, 2.0, 0.0, 8.5) == (1, 1)


def _beat() -> Heartbeat:
    return Heartbeat("eu", "0.1.0", "producer", 12, False, 3, 1, 0, NOW, 5.0, 10.0, 30.0)


def test_a_heartbeat_travels_in_a_minor_version_envelope() -> None:
    raw = encode_heartbeat("agent-1", "host-1", NOW, _beat())
    assert orjson.loads(raw)["v"] == "1.1"
    event = decode_event(raw, now=NOW, max_age=timedelta(days=1))
    assert isinstance(event, HeartbeatEvent)
    assert event.heartbeat == _beat()
    bad = orjson.loads(raw)
    bad["payload"]["spool_depth"] = -1
    with pytest.raises(Invalid):
        decode_event(orjson.dumps(bad), now=NOW, max_age=timedelta(days=1))


def test_metrics_count_agents_by_state_and_targets_assigned() -> None:
    stats = Stats("producer", "agent-1")
    stats.targets_assigned = 7
    base = FleetAgent("a", "h", "eu", "0.1.0", "producer", NOW, 1, False, 0, 0, 10.0, 30.0)
    stats.fleet = {
        "a": base,
        "b": replace(base, agent="b", last_seen=NOW - timedelta(seconds=20)),
        "c": replace(base, agent="c", last_seen=NOW - timedelta(seconds=60)),
    }
    text = render_metrics(replace(stats.snapshot(), taken_at=NOW))
    assert "metrictui_targets_assigned 7" in text
    for state in ("live", "stale", "offline"):
        assert f'metrictui_agents{{state="{state}"}} 1' in text


def test_an_import_lists_every_problem_and_returns_no_target(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        '[[targets]]\nname = "ok"\nurl = "http://a/"\n'
        '[[targets]]\nname = "bad"\nurl = "ftp://a/"\ninterval = 0\n'
        '[[targets]]\nname = "ok"\nurl = "http://b/"\n'
    )
    targets, problems = read_import_file(path)
    assert targets == []
    assert len(problems) == 3  # url, interval, duplicate name
    assert all("\n" not in p and str(path) in p for p in problems)


def test_an_agent_given_nothing_says_too_many_agents_only_when_the_topic_has_partitions() -> None:
    """Given nothing before the targets topic exists, an agent waits quietly (it takes its
    share once the topic appears); given nothing from a topic that has partitions, there are
    more agents than partitions, which the operator is told once."""
    problems: list[str] = []
    fleet = FleetTargets(Config(), "agent", lambda: None, problems.append, member=False)
    fleet._assigned(frozenset())
    assert problems == []
    fleet.table.partitions = 3
    fleet._assigned(frozenset())
    fleet._assigned(frozenset())
    assert len(problems) == 1 and "more agents than the topic has partitions (3)" in problems[0]
