"""SIGTERM to a dashboard (in-process engine or attached) exits like `q` does.

The real binary runs in a tmux pane; after `kill -TERM` the pane must be back at the shell
(alternate screen and mouse tracking off), the exit code 0, and an in-process engine must
say it flushes.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from helpers.sites import LocalSites
from helpers.stack import Pipeline, metrictui_cmd
from helpers.tmux_pane import Pane
from helpers.waiting import wait_for_async as until

pytestmark = pytest.mark.integration


async def _term_and_expect_clean_exit(pane: Pane) -> str:
    assert pane.flag("alternate_on") == "1"
    os.kill(pane.pid, signal.SIGTERM)
    assert await pane.wait_exit(30) == 0
    assert pane.flag("alternate_on") == "0", "the terminal is left in the alternate screen"
    assert pane.flag("mouse_any_flag") == "0", "mouse tracking is left on"
    return pane.text()


async def test_sigterm_to_an_in_process_dashboard_restores_the_terminal_and_flushes(
    pipeline: Pipeline, local_sites: LocalSites
) -> None:
    pipeline.write_targets([{"name": "home", "url": local_sites.http_url("/"), "interval": 1}])
    pane = Pane(metrictui_cmd("--config", str(pipeline.config_path)), pipeline.dir)
    try:
        await pane.wait_for(lambda s: "home" in s and "up" in s, 60, "the dashboard")
        after = await _term_and_expect_clean_exit(pane)
        assert "stopping: flushing" in after, after
    finally:
        pane.close()


async def test_sigterm_to_an_attached_dashboard_restores_the_terminal(
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
    pane: Pane | None = None
    try:
        await until(sock.exists, 40, "the control socket")
        pane = Pane(metrictui_cmd("--attach", str(sock)), pipeline.dir)
        await pane.wait_for(lambda s: "home" in s, 30, "the attached dashboard")
        await _term_and_expect_clean_exit(pane)
        assert proc.poll() is None, "the headless engine keeps running"
    finally:
        if pane is not None:
            pane.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
