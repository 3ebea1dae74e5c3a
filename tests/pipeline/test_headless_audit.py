"""A headless engine with a dashboard attached: the log names who attached and what they
changed, and stopping with a client attached is clean (no ERROR, no traceback)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest

from engine.control.client import SocketControl
from engine.targets.model import Target
from helpers.sites import LocalSites
from helpers.stack import Pipeline, metrictui_cmd
from helpers.waiting import wait_for_async as until

pytestmark = pytest.mark.integration


async def test_attach_and_edits_are_logged_and_shutdown_with_a_client_is_clean(
    pipeline: Pipeline, local_sites: LocalSites, tmp_path: Path
) -> None:
    log = tmp_path / "headless.log"
    proc = subprocess.Popen(
        metrictui_cmd("--config", str(pipeline.config_path), "--headless"),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    sock = pipeline.dir / "control.sock"
    control: SocketControl | None = None
    try:
        await until(sock.exists, 40, "the control socket")
        control = await SocketControl.connect(sock)
        await control.add_target(Target("audited", local_sites.http_url("/"), interval=5.0))
        await control.set_target_enabled("audited", False)
        await control.set_metric_enabled("swap", False)
        await control.delete_target("audited")
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        if control is not None:
            await control.close()
    text = log.read_text()
    assert "control client attached" in text, text
    for line in ("added target audited", "disabled target audited", "disabled metric swap"):
        assert line in text, text
    assert "deleted target audited" in text
    assert "ERROR" not in text and "Traceback" not in text and "CancelledError" not in text, text
