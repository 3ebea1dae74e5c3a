"""The headless engine serves its control socket by default, and a second engine configured
with the same socket keeps its pipeline running instead of failing over the socket."""

from __future__ import annotations

import asyncio
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from engine.control.client import SocketControl
from helpers.stack import Pipeline, metrictui_cmd

pytestmark = pytest.mark.integration


def _start(p: Pipeline, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        metrictui_cmd("--config", str(p.config_path), "--headless", "--role", "producer"),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def test_headless_serves_an_owner_only_control_socket_and_removes_it(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    sock = pipeline.dir / "control.sock"
    log = tmp_path / "first.log"
    first = _start(pipeline, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert sock.exists(), log.read_text()[-2000:]
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600

        control = await SocketControl.connect(sock)
        try:
            assert control.hello["role"] == "producer" and control.hello["pid"] == first.pid
            while control.snapshot() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            snap = control.snapshot()
            assert snap is not None and snap.agent == pipeline.agent
            await control.set_metric_enabled("swap", False)  # a command reaches the engine
            while (s := control.snapshot()) and s.metrics_enabled.get("swap"):
                assert time.monotonic() < deadline, "swap still enabled"
                await asyncio.sleep(0.1)
        finally:
            await control.close()

        second_log = tmp_path / "second.log"
        second = _start(pipeline, second_log)
        deadline = time.monotonic() + 60
        while "running without a control socket" not in second_log.read_text():
            assert second.poll() is None, second_log.read_text()[-2000:]
            assert time.monotonic() < deadline, second_log.read_text()[-2000:]
            await asyncio.sleep(0.2)
        assert "another metrictui engine already serves" in second_log.read_text()
        await asyncio.sleep(2)
        assert second.poll() is None  # the pipeline runs on without the socket
    finally:
        for proc in (second, first):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
    assert not sock.exists()


def test_empty_control_socket_turns_it_off(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.write_config(headless={"control_socket": ""})
    log = tmp_path / "off.log"
    proc = _start(pipeline, log)
    try:
        deadline = time.monotonic() + 60
        while "running; send SIGTERM" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        time.sleep(1)
        assert not list(pipeline.dir.glob("*.sock"))
        assert "control socket" not in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
