"""The real attached dashboard when its headless engine dies, and when it comes back.

At 80x24 in tmux: after SIGKILL to the engine a banner says ENGINE GONE with the last contact
time; once an engine serves the same socket again the dashboard re-attaches by itself.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from helpers.sites import LocalSites
from helpers.stack import Pipeline, metrictui_cmd
from helpers.tmux_pane import Pane
from helpers.waiting import wait_for_async as until

pytestmark = pytest.mark.integration


def _headless(p: Pipeline, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        metrictui_cmd("--config", str(p.config_path), "--headless"),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def test_attached_dashboard_shows_a_dead_engine_and_reattaches_when_it_returns(
    pipeline: Pipeline, local_sites: LocalSites, tmp_path: Path
) -> None:
    pipeline.write_targets([{"name": "home", "url": local_sites.http_url("/"), "interval": 1}])
    sock = pipeline.dir / "control.sock"
    first = _headless(pipeline, tmp_path / "first.log")
    second: subprocess.Popen[bytes] | None = None
    pane: Pane | None = None
    try:
        await until(sock.exists, 40, "the control socket")
        pane = Pane(metrictui_cmd("--attach", str(sock)), tmp_path, size=(80, 24))
        await pane.wait_for(lambda s: "home" in s, 30, "the attached dashboard")
        assert "ENGINE GONE" not in pane.text()

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        screen = await pane.wait_for(lambda s: "ENGINE GONE" in s, 15, "the banner")
        assert "last contact" in screen and "UTC" in screen
        assert "q Quit" in screen.splitlines()[-1]

        second = _headless(pipeline, tmp_path / "second.log")
        await pane.wait_for(
            lambda s: "ENGINE GONE" not in s and f"pid {second.pid}" in s, 60, "re-attached"
        )
    finally:
        if pane is not None:
            pane.close()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=20) == 0
