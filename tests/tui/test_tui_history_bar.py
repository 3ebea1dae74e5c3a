"""Recent history per target: the last checks as up/down cells and the uptime of the last
hour, from the engine's own results (no query per refresh), readable without colour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.agent.recent_checks import RECENT_SHOWN, RecentChecks
from engine.config import load_config
from engine.control.snapshot_wire import snapshot_from_dict, snapshot_to_dict
from engine.engine import Engine
from engine.stats import Stats, TargetStatus
from helpers.fake_control import FakeControl, screen_text
from helpers.sites import LocalSites
from helpers.stack import Pipeline
from helpers.waiting import wait_for_async
from helpers.waiting import wait_for_async as until
from tui.app import MetricTuiApp
from tui.widgets.history_bar import DOWN_GLYPH, UP_GLYPH, history_bar

T0 = datetime(2026, 1, 2, 3, 0, 0, tzinfo=UTC)


def test_recent_checks_keep_the_last_outcomes_and_the_hours_uptime() -> None:
    recent = RecentChecks()
    for minute in range(90):  # one check a minute; every third one fails
        recent.record("a", T0 + timedelta(minutes=minute), minute % 3 != 0)
    now = T0 + timedelta(minutes=89)
    assert len(recent.last("a")) == RECENT_SHOWN
    assert recent.last("a")[-1] is True and recent.last("a")[-3] is False
    pct = recent.uptime_pct("a", now)
    assert pct is not None and 66.0 < pct < 67.5  # only the last hour counts
    assert recent.uptime_pct("b", now) is None and recent.last("b") == ()
    recent.forget("a")
    assert recent.last("a") == ()


def test_the_bar_reads_without_colour() -> None:
    bar = history_bar([True, False, True], 5)
    assert bar.plain == f"  {UP_GLYPH}{DOWN_GLYPH}{UP_GLYPH}"
    assert UP_GLYPH != DOWN_GLYPH


def test_history_travels_in_the_snapshot_to_an_attached_dashboard() -> None:
    snap = FakeControl().snapshot()
    assert snap is not None
    back = snapshot_from_dict(snapshot_to_dict(snap))
    api = next(t for t in back.targets if t.name == "api")
    assert len(api.recent) == 24 and api.recent[9] is False and api.uptime_1h_pct == 99.3
    assert Stats("all", "a").snapshot().targets == ()


async def test_targets_table_shows_the_bar_and_uptime() -> None:
    app = MetricTuiApp(FakeControl())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_async(pilot=pilot, predicate=lambda: "99.3%" in screen_text(app))
        text = screen_text(app)
    api = next(line for line in text.splitlines() if " api " in line)
    bar = UP_GLYPH * 5 + DOWN_GLYPH + UP_GLYPH * 14  # the last 20 of 24
    assert bar in api and "99.3%" in api
    assert "Recent  up 1h" in text


async def test_at_80_columns_the_bar_is_shorter_and_the_table_fits() -> None:
    app = MetricTuiApp(FakeControl())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_async(
            lambda: "99%" in screen_text(app) and "Quit" in screen_text(app), pilot=pilot
        )
        text = screen_text(app)
    api = next(line for line in text.splitlines() if " api " in line)
    assert UP_GLYPH * 8 + " 99%" in api and UP_GLYPH * 9 not in api
    assert "q Quit" in text.splitlines()[-1]


@pytest.mark.integration
async def test_the_real_engine_fills_the_history_from_its_own_checks(
    pipeline: Pipeline, local_sites: LocalSites
) -> None:
    pipeline.write_targets(
        [
            {"name": "good", "url": local_sites.http_url("/"), "interval": 1},
            {"name": "bad", "url": local_sites.http_url("/status/500"), "interval": 1},
        ]
    )
    engine = Engine(load_config(pipeline.config_path, {}), "producer")
    await engine.start()
    try:

        def statuses() -> dict[str, TargetStatus]:
            return {t.name: t for t in engine.snapshot().targets}

        await until(lambda: all(len(t.recent) >= 3 for t in statuses().values()), 40, "checks")
        good, bad = statuses()["good"], statuses()["bad"]
    finally:
        await engine.stop(timeout=9)
    assert all(good.recent) and good.uptime_1h_pct == 100.0
    assert not any(bad.recent) and bad.uptime_1h_pct == 0.0
