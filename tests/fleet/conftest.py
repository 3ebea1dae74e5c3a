"""The fleet tests' shared fixture: one isolated fleet (bench/fleet_rig.py) on the local stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fleet_rig import FleetRig
from helpers.stack import StackInfo


@pytest.fixture
def rig(stack: StackInfo, tmp_path: Path) -> Iterator[FleetRig]:
    """Its own topics (12 targets partitions), groups and schema; every process stopped and the
    schema and topics dropped afterwards."""
    r = FleetRig(
        stack.bootstrap, stack.dsn, str(stack.env["web_url"]), tmp_path, targets_partitions=12
    )
    yield r
    r.stop_all()
    r.drop_schema()
