"""The fleet screen (key f), the header's agent counts and "up in k of L locations" (Pilot)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from engine.records.heartbeats import FleetAgent
from engine.stats import StatsSnapshot
from helpers.fake_control import FakeControl, screen_text, settle
from tui.app import MetricTuiApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.fleet import FleetScreen

SIZE = (140, 40)


def _agent(name: str, location: str, age_s: float, snap: StatsSnapshot, **kw: object) -> FleetAgent:
    values: dict[str, object] = {
        "agent": name, "host": f"{name}.example", "location": location, "version": "0.1.0",
        "role": "producer", "last_seen": snap.taken_at - timedelta(seconds=age_s),
        "targets_assigned": 100, "idle": False, "spool_depth": 0, "errors_total": 0,
        "stale_after_s": 10.0, "offline_after_s": 30.0,
    }  # fmt: skip
    values.update(kw)
    return FleetAgent(**values)  # type: ignore[arg-type]


def _fleet_control() -> FakeControl:
    control = FakeControl()
    snap = control._snapshot
    fleet = (
        _agent("eu-1", "eu", 1, snap),
        _agent("eu-2", "eu", 15, snap, spool_depth=42),
        _agent("us-1", "us", 90, snap, errors_total=3),
        _agent("us-2", "us", 2, snap, idle=True, targets_assigned=0),
    )
    first = snap.targets[0].name
    locations = {first: {"eu": True, "us": False}}
    control._snapshot = replace(snap, fleet=fleet, target_locations=locations)
    return control


async def test_f_opens_the_fleet_screen_listing_every_agent_with_its_state() -> None:
    app = MetricTuiApp(_fleet_control())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, FleetScreen)
        text = screen_text(app)
        assert "4 agents: 2 live · 1 stale · 1 offline" in text
        for line_part in ("eu-1", "eu-2", "us-1", "us-2", "idle", "42", "offline", "stale"):
            assert line_part in text, line_part
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)


async def test_header_counts_agents_and_targets_show_up_in_k_of_l_locations() -> None:
    app = MetricTuiApp(_fleet_control())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "agents 2 live 1 stale 1 offline" in text
        assert "up in 1 of 2 locations" in text
