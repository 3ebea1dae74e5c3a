"""A snapshot survives the control socket's JSON form field for field.

An attached dashboard shows only what `snapshot_to_dict` sends and `snapshot_from_dict` reads
back; a field left out of either would silently show as missing over SSH.
"""

from __future__ import annotations

import dataclasses

import orjson

from engine.control.snapshot_wire import snapshot_from_dict, snapshot_to_dict
from engine.stats import Problem
from helpers.fake_control import FakeControl


def test_every_field_of_a_snapshot_round_trips_through_json() -> None:
    snapshot = FakeControl().snapshot()
    assert snapshot is not None
    snapshot = dataclasses.replace(
        snapshot,
        kafka_problem=Problem("sasl_auth", "Kafka: SASL authentication failed"),
        postgres_problem=Problem("password", "PostgreSQL refused the password"),
    )
    wire = orjson.loads(orjson.dumps(snapshot_to_dict(snapshot)))
    back = snapshot_from_dict(wire)
    for f in dataclasses.fields(snapshot):
        assert getattr(back, f.name) == getattr(snapshot, f.name), f.name
    assert any(t.last_checked is not None for t in back.targets)


def test_a_snapshot_from_an_older_engine_without_problem_fields_still_reads() -> None:
    snapshot = FakeControl().snapshot()
    assert snapshot is not None
    wire = snapshot_to_dict(snapshot)
    del wire["kafka_problem"], wire["postgres_problem"]
    back = snapshot_from_dict(wire)
    assert back.kafka_problem is None and back.postgres_problem is None
