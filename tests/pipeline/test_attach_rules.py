"""Who attaches to what: one engine per config, never another config's engine.

The default control socket is derived from the config file, `metrictui` attaches only to an
engine of the same config (and says which), a second headless engine of one config refuses,
and `--attach` explains a path that is not a socket.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest

from engine.config import load_config
from engine.control.identity import engine_identity, same_engine
from helpers.sites import LocalSites
from helpers.stack import Pipeline, metrictui_cmd
from helpers.tmux_pane import Pane
from helpers.waiting import wait_for_async as until


def _config(folder: Path, body: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrictui.toml"
    path.write_text(body)
    path.chmod(0o600)
    return path


def test_default_socket_differs_per_config_file(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run")}
    a = load_config(_config(tmp_path / "a"), env).headless.control_socket
    b = load_config(_config(tmp_path / "b"), env).headless.control_socket
    again = load_config(tmp_path / "a" / "metrictui.toml", env).headless.control_socket
    assert a != b and a == again
    assert a.parent == tmp_path / "run" / "metrictui"


def test_an_explicit_control_socket_is_kept(tmp_path: Path) -> None:
    path = _config(tmp_path, f"[headless]\ncontrol_socket = '{tmp_path}/my.sock'\n")
    assert load_config(path, {}).headless.control_socket == tmp_path / "my.sock"


def test_same_engine_means_same_file_or_same_identity(tmp_path: Path) -> None:
    a = engine_identity(load_config(_config(tmp_path / "a", "[agent]\nname = 'x'\n"), {}))
    b = engine_identity(load_config(_config(tmp_path / "b", "[agent]\nname = 'x'\n"), {}))
    assert same_engine(a, a)
    assert not same_engine(a, b), "other targets file: another engine"
    assert same_engine(a, {**b, "config": a["config"]})
    assert same_engine(a, {**a, "config": "/elsewhere/copy.toml"}), "same identity"
    assert not same_engine(a, {**a, "config": "/x.toml", "agent": "y"})


def _attach(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        metrictui_cmd("--attach", str(path)), capture_output=True, text=True, timeout=60
    )


def test_attach_to_a_directory_says_so(tmp_path: Path) -> None:
    proc = _attach(tmp_path)
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert "is a directory" in line and "Connection refused" not in line


def test_attach_to_a_regular_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    proc = _attach(tmp_path / "notes.txt")
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert "regular file, not a control socket" in line


def _headless(p: Pipeline, config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        metrictui_cmd("--config", str(config), "--headless"),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.integration
async def test_one_engine_per_config_and_never_another_configs_engine(
    pipeline: Pipeline, local_sites: LocalSites, tmp_path: Path
) -> None:
    pipeline.write_targets([{"name": "home", "url": local_sites.http_url("/"), "interval": 1}])
    sock = pipeline.dir / "control.sock"
    proc = _headless(pipeline, pipeline.config_path, tmp_path / "a.log")
    panes: list[Pane] = []
    try:
        await until(sock.exists, 40, "the control socket")
        await asyncio.sleep(1)
        second = subprocess.run(
            metrictui_cmd("--config", str(pipeline.config_path), "--headless"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        [line] = second.stderr.splitlines()
        assert "already serves" in line and "control_socket" in line

        # Config B shares the socket path but is another engine (its own targets file).
        other = tmp_path / "other"
        other.mkdir()
        b = other / "metrictui.toml"
        b.write_text(pipeline.config_path.read_text().replace("agent-", "other-agent-"))
        b.chmod(0o600)
        pane_b = Pane(metrictui_cmd("--config", str(b)), other)
        panes.append(pane_b)
        await pane_b.wait_for(lambda s: "in-process engine" in s, 60, "B's own engine")
        assert "home" not in pane_b.text()

        pane_a = Pane(metrictui_cmd("--config", str(pipeline.config_path)), tmp_path)
        panes.append(pane_a)
        screen = await pane_a.wait_for(lambda s: "home" in s, 60, "A's engine, attached")
        assert f"attached to agent {pipeline.agent}" in screen
        pane_a.keys("q")
        assert await pane_a.wait_exit(20) == 0
        assert "ATTACHED to the running engine of this config" in pane_a.text()
    finally:
        for pane in panes:
            if pane.exit_code() is None:
                os.kill(pane.pid, signal.SIGTERM)
                await pane.wait_exit(30)
            pane.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
