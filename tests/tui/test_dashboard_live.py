"""The dashboard against the real engine and the real stack: edits reach Kafka and PostgreSQL.

These drive the real Textual app with Pilot, around an in-process Engine (LocalControl) or a
headless engine in another process (SocketControl), and judge by rows in PostgreSQL and by the
targets file on disk.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static, Switch

from engine.config import load_config
from engine.control.client import SocketControl
from engine.control.local import LocalControl
from engine.engine import Engine
from helpers.sites import LocalSites
from helpers.stack import Pipeline, metrictui_cmd
from tui.app import MetricTuiApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.target_form import TargetFormScreen
from tui.widgets.targets_table import TargetsTable

pytestmark = pytest.mark.integration
SIZE = (120, 40)


async def until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.3)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@asynccontextmanager
async def live_app(p: Pipeline) -> AsyncIterator[tuple[MetricTuiApp, Pilot[int], Engine]]:
    engine = Engine(load_config(p.config_path, {}), "all")
    await engine.start()
    app = MetricTuiApp(LocalControl(engine), targets_file_hint=str(p.targets_path))
    try:
        async with app.run_test(size=SIZE) as pilot:
            yield app, pilot, engine
    finally:
        await engine.stop(timeout=9)


async def fill(pilot: Pilot[int], field: str, text: str) -> None:
    widget = pilot.app.screen.query_one(f"#field-{field}", Input)
    widget.focus()
    widget.value = text
    await pilot.pause()


def rows(app: MetricTuiApp) -> set[str]:
    return {str(key.value) for key in app.dashboard.query_one(TargetsTable).rows}


async def select(pilot: Pilot[int], app: MetricTuiApp, name: str) -> None:
    app.dashboard.query_one(TargetsTable).select(name)
    await pilot.pause()


def check_count(p: Pipeline, target: str, url: str | None = None) -> int:
    if p.count("checks") == 0:
        return 0
    sql = "SELECT count(*) FROM checks_v WHERE target = %s"
    params: tuple[object, ...] = (target,)
    if url is not None:
        sql += " AND url = %s"
        params = (target, url)
    return int(p.query(sql, params)[0][0])


async def test_target_added_edited_disabled_deleted_through_the_form(
    pipeline: Pipeline, local_sites: LocalSites
) -> None:
    first_url = local_sites.http_url("/")
    second_url = local_sites.http_url("/status/500")
    async with live_app(pipeline) as (app, pilot, _engine):
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, TargetFormScreen)
        await fill(pilot, "name", "live")
        await fill(pilot, "url", first_url)
        await fill(pilot, "interval", "1")
        await pilot.press("ctrl+s")
        await until(lambda: "live" in rows(app), 10, "the new row")
        assert 'name = "live"' in pipeline.targets_path.read_text()
        await until(lambda: check_count(pipeline, "live", first_url) >= 2, 40, "checks in checks_v")

        await select(pilot, app, "live")
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, TargetFormScreen)
        await fill(pilot, "url", second_url)
        await pilot.press("ctrl+s")
        await until(
            lambda: check_count(pipeline, "live", second_url) >= 2, 40, "the new URL checked"
        )
        assert second_url in pipeline.targets_path.read_text()

        await select(pilot, app, "live")
        await pilot.press("space")
        await until(lambda: "enabled = false" in pipeline.targets_path.read_text(), 10, "saved")
        await asyncio.sleep(4)  # let an in-flight check and the sink batch land
        settled = await asyncio.to_thread(check_count, pipeline, "live")
        await asyncio.sleep(4)
        assert await asyncio.to_thread(check_count, pipeline, "live") == settled

        await select(pilot, app, "live")
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(lambda: "live" not in rows(app), 10, "the row to go")
        assert 'name = "live"' not in pipeline.targets_path.read_text()


@pytest.mark.parametrize(("field", "value"), [("url", "ftp://nope"), ("regex", "(unclosed")])
async def test_invalid_url_or_regex_shows_an_error_and_changes_nothing_on_disk(
    pipeline: Pipeline, field: str, value: str
) -> None:
    before = pipeline.targets_path.read_bytes()
    async with live_app(pipeline) as (app, pilot, _engine):
        await pilot.press("a")
        await pilot.pause()
        await fill(pilot, "name", "bad")
        await fill(pilot, "url", "http://127.0.0.1/")
        await fill(pilot, field, value)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, TargetFormScreen)
        problem = app.screen.query_one(f"#problem-{field}", Static)
        assert problem.has_class("-shown") and str(problem.content)
        assert "bad" not in rows(app)
    assert pipeline.targets_path.read_bytes() == before


async def test_switching_a_metric_off_stops_its_samples_in_postgres(pipeline: Pipeline) -> None:
    async with live_app(pipeline) as (app, pilot, _engine):
        await until(
            lambda: (
                pipeline.count("samples") > 0
                and pipeline.query("SELECT count(*) FROM samples_v WHERE metric = 'load.1m'")[0][0]
                >= 2
            ),
            40,
            "load samples",
        )
        await pilot.press("m")
        await pilot.pause()
        switch = app.screen.query_one("#metric-load", Switch)
        switch.value = False
        await until(lambda: "load" not in _enabled_state(pipeline), 10, "the switch saved")
        off_at = datetime.now(UTC)
        await asyncio.sleep(6)
        late = pipeline.query(
            "SELECT count(DISTINCT ts) FROM samples_v WHERE metric LIKE 'load.%%' AND ts > %s",
            (off_at.replace(microsecond=0),),
        )[0][0]
        fresh_cpu = pipeline.query(
            "SELECT count(*) FROM samples_v WHERE metric = 'cpu.percent' AND ts > %s",
            (off_at,),
        )[0][0]
    assert fresh_cpu >= 2, "other metrics keep flowing"
    assert late <= 1, "at most one tick collected before the switch took effect"


def _enabled_state(p: Pipeline) -> str:
    path = p.targets_path.with_name("metrics_state.toml")
    return path.read_text() if path.exists() else "load"


async def test_tui_attached_to_headless_engine_edits_it_and_no_second_engine_produces(
    pipeline: Pipeline, local_sites: LocalSites, tmp_path: Path
) -> None:
    pipeline.write_targets([{"name": "home", "url": local_sites.http_url("/"), "interval": 1}])
    log = (tmp_path / "headless.log").open("ab")
    proc = subprocess.Popen(
        metrictui_cmd("--config", str(pipeline.config_path), "--headless"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    sock = pipeline.dir / "control.sock"
    try:
        await until(sock.exists, 40, "the control socket")
        control = await SocketControl.connect(sock)
        app = MetricTuiApp(control, targets_file_hint=str(pipeline.targets_path))
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: "home" in rows(app), 20, "the headless engine's targets")

            def producing() -> bool:
                snap = control.snapshot()
                return snap is not None and snap.produced_per_s > 0 and snap.inserted_per_s > 0

            await until(producing, 30, "non-zero rates from the headless engine")
            assert "attached to" in control.description
            await pilot.press("a")
            await pilot.pause()
            await fill(pilot, "name", "from-tui")
            await fill(pilot, "url", local_sites.http_url("/"))
            await fill(pilot, "interval", "1")
            await pilot.press("ctrl+s")
            await until(lambda: check_count(pipeline, "from-tui") >= 2, 40, "checks by headless")
        await control.close()
        assert 'name = "from-tui"' in pipeline.targets_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    agents = pipeline.query("SELECT DISTINCT agent FROM samples_v")
    assert agents == [(pipeline.agent,)]
    check_agents = pipeline.query("SELECT DISTINCT agent FROM checks_v")
    assert check_agents == [(pipeline.agent,)]


HOSTILE_BOLD = "[bold]x[/bold]"
HOSTILE_CLICK = "[@click=app.quit]y"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


async def test_real_binary_in_tmux_shows_targets_rates_and_hostile_text_literally(
    pipeline: Pipeline, local_sites: LocalSites, tmp_path: Path
) -> None:
    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1000)
        writer.write(b"\x1b]0;owned\x07 not http\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(hostile, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipeline.write_targets(
        [
            {"name": "home", "url": local_sites.http_url("/"), "interval": 1},
            {"name": HOSTILE_BOLD, "url": f"http://127.0.0.1:{port}/", "interval": 1},
            {"name": HOSTILE_CLICK, "url": f"http://127.0.0.1:{port}/x", "interval": 1},
        ]
    )
    session = f"mt{os.getpid()}"
    exit_file = tmp_path / "exit"
    # COLUMNS/LINES from the test process would pin the app's size: let tmux's pane decide.
    cmd = "env -u COLUMNS -u LINES " + " ".join(
        metrictui_cmd("--config", str(pipeline.config_path))
    )
    tmux(
        "new-session", "-d", "-s", session, "-x", "120", "-y", "40", f"{cmd}; echo $? > {exit_file}"
    )
    try:
        screen = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            screen = tmux("capture-pane", "-p", "-t", session)
            inserted = re.search(r"inserted\s+([\d.]+)", screen)
            if "home" in screen and inserted and float(inserted.group(1)) > 0:
                break
        else:
            pytest.fail(f"no targets and rates on screen:\n{screen}")
        await asyncio.sleep(3)
        screen = tmux("capture-pane", "-p", "-t", session)
        assert HOSTILE_BOLD in screen and HOSTILE_CLICK in screen, screen
        # The detail view of the first (hostile) row shows the full error text: the escape
        # sequence appears as text, and the terminal title does not change.
        tmux("send-keys", "-t", session, "Enter")
        await asyncio.sleep(2)
        detail = tmux("capture-pane", "-p", "-t", session)
        assert "owned" in detail, detail
        assert tmux("display", "-p", "-t", session, "#{pane_title}").strip() != "owned"
        assert not exit_file.exists(), "the app must not have quit"
        tmux("send-keys", "-t", session, "Escape")
        await asyncio.sleep(1)
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 20
        while not exit_file.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert exit_file.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        server.close()
