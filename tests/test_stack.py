"""The local stack launcher (stack/stack.py) against the real servers it runs.

These use the shared dev stack (started by `make test` before pytest, or by the first test here);
checks that must not disturb it run in a separate stack dir with their own ports.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest

from engine.config import load_config
from engine.targets import load_targets

REPO = Path(__file__).resolve().parent.parent
STACK_PY = REPO / "stack" / "stack.py"
STACK_ENV_VARS = (
    "METRICTUI_STACK_DIR",
    "METRICTUI_STACK_KAFKA_PORT",
    "METRICTUI_STACK_PG_PORT",
    "METRICTUI_STACK_WEB_PORT",
)

pytestmark = pytest.mark.integration


def stack_cmd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(STACK_PY), *args],
        capture_output=True,
        text=True,
        env=env if env is not None else dict(os.environ),
        timeout=600,
    )


def load_stack_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("metrictui_stack_launcher", STACK_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stack_env() -> dict[str, Any]:
    """Bring the shared stack up (a no-op when `make test` already did) and read env.json."""
    proc = stack_cmd("up")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env_json = Path(os.environ.get("METRICTUI_STACK_DIR") or REPO / ".stack") / "env.json"
    data: dict[str, Any] = json.loads(env_json.read_text())
    return data


def status_json() -> dict[str, Any]:
    proc = stack_cmd("status", "--json")
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def free_port_block(size: int) -> int:
    """A port p with p..p+size-1 all bindable right now (ports the stack would use)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + size > 65535:
            continue
        ok = True
        for port in range(base, base + size):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise AssertionError("no block of free ports found")


@pytest.fixture
def isolated_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a second, private stack dir with its own free ports."""
    env = {k: v for k, v in os.environ.items() if k not in STACK_ENV_VARS}
    env["METRICTUI_STACK_DIR"] = str(tmp_path / "stack")
    env["METRICTUI_STACK_KAFKA_PORT"] = str(free_port_block(4))
    env["METRICTUI_STACK_PG_PORT"] = str(free_port_block(1))
    env["METRICTUI_STACK_WEB_PORT"] = str(free_port_block(1))
    yield env


def test_up_twice_reuses_the_running_servers(stack_env: dict[str, Any]) -> None:
    before = status_json()
    started = time.monotonic()
    proc = stack_cmd("up")
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = status_json()
    for name in ("kafka", "postgres", "web"):
        assert before[name]["running"] and after[name]["running"], name
        assert after[name]["pid"] == before[name]["pid"], name
    assert proc.stdout.count("reused") == 3, proc.stdout
    assert elapsed < 10, f"`up` on a running stack took {elapsed:.1f} s"


def test_env_json_names_the_running_servers(stack_env: dict[str, Any]) -> None:
    for key in (
        "kafka_bootstrap",
        "pg_dsn",
        "pg_admin_dsn",
        "pg_bin",
        "pg_data",
        "kafka_port",
        "pg_port",
        "pg_superuser_run_as",
        "web_url",
    ):
        assert stack_env[key], key
    assert stack_env["kafka_bootstrap"] == f"127.0.0.1:{stack_env['kafka_port']}"
    assert f"@127.0.0.1:{stack_env['pg_port']}/metrictui" in stack_env["pg_dsn"]
    assert Path(stack_env["pg_bin"], "pg_ctl").exists()
    assert Path(stack_env["pg_data"], "PG_VERSION").exists()
    status = status_json()
    assert status["kafka"]["port"] == stack_env["kafka_port"]
    assert status["postgres"]["port"] == stack_env["pg_port"]


def test_kafka_answers_a_metadata_request(stack_env: dict[str, Any]) -> None:
    stack = load_stack_module()
    brokers = stack.kafka_metadata_brokers(stack_env["kafka_port"])
    assert brokers == [(1, "127.0.0.1", stack_env["kafka_port"])]


def test_app_dsn_connects_as_the_owner_of_its_database(stack_env: dict[str, Any]) -> None:
    with psycopg.connect(stack_env["pg_dsn"], connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT current_user, current_database(), pg_get_userbyid(d.datdba),"
            " r.rolcreatedb, r.rolcreaterole, r.rolsuper"
            " FROM pg_database d, pg_roles r"
            " WHERE d.datname = current_database() AND r.rolname = current_user"
        ).fetchone()
    assert row == ("metrictui", "metrictui", "metrictui", True, True, False)


def test_admin_dsn_is_a_superuser_with_a_password(stack_env: dict[str, Any]) -> None:
    with psycopg.connect(stack_env["pg_admin_dsn"], connect_timeout=10) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == (True,)
    wrong = stack_env["pg_admin_dsn"].replace("postgres:", "postgres:wrong", 1)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)


def test_demo_site_serves_its_pages(stack_env: dict[str, Any]) -> None:
    base = stack_env["web_url"].rstrip("/")
    with urllib.request.urlopen(f"{base}/", timeout=5) as resp:
        assert resp.status == 200
        assert b"metrictui demo" in resp.read()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/status/500", timeout=5)
    assert err.value.code == 500


@pytest.mark.parametrize(
    ("taken_var", "offset"),
    [
        ("METRICTUI_STACK_PG_PORT", 0),
        ("METRICTUI_STACK_KAFKA_PORT", 0),
        ("METRICTUI_STACK_KAFKA_PORT", 1),  # the controller port is Kafka's + 1
        ("METRICTUI_STACK_WEB_PORT", 0),
    ],
)
def test_port_taken_by_another_program_is_one_clear_line(
    isolated_env: dict[str, str], taken_var: str, offset: int
) -> None:
    port = int(isolated_env[taken_var]) + offset
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        proc = stack_cmd("up", env=isolated_env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"port {port}" in lines[0]
    assert taken_var in lines[0]
    # Refused before anything started: no data dirs were created.
    stack_dir = Path(isolated_env["METRICTUI_STACK_DIR"])
    assert not (stack_dir / "kafka").exists()
    assert not (stack_dir / "pg").exists()


def test_commands_are_no_ops_when_nothing_runs(isolated_env: dict[str, str]) -> None:
    down = stack_cmd("down", env=isolated_env)
    assert down.returncode == 0, down.stderr
    assert "nothing running" in down.stdout
    status = stack_cmd("status", "--json", env=isolated_env)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert not any(info[name]["running"] for name in ("kafka", "postgres", "web"))


def test_dev_config_is_loadable_and_never_overwrites_targets(
    stack_env: dict[str, Any], isolated_env: dict[str, str]
) -> None:
    stack_dir = Path(isolated_env["METRICTUI_STACK_DIR"])
    stack_dir.mkdir(parents=True)
    (stack_dir / "env.json").write_text(json.dumps(stack_env))
    proc = stack_cmd("dev-config", env=isolated_env)
    assert proc.returncode == 0, proc.stderr

    config = load_config(stack_dir / "metrictui.toml", {})
    assert config.kafka.bootstrap_servers == stack_env["kafka_bootstrap"]
    assert config.postgres.dsn is not None
    assert config.postgres.dsn.reveal() == stack_env["pg_dsn"]
    assert config.agent.spool_dir == stack_dir / "spool"
    assert config.agent.metrics_interval == 5
    assert config.headless.status_interval == 5
    assert config.headless.control_socket.parent == stack_dir
    targets = {t.name: t for t in load_targets(config.targets_file)}
    assert set(targets) == {"demo-home", "demo-500", "demo-slow", "kafka-port"}
    assert targets["demo-home"].regex == "metrictui demo"
    assert targets["kafka-port"].url == f"http://{stack_env['kafka_bootstrap']}/"

    edited = config.targets_file.read_text() + '\n[[targets]]\nname = "mine"\nurl = "http://x/"\n'
    config.targets_file.write_text(edited)
    again = stack_cmd("dev-config", env=isolated_env)
    assert again.returncode == 0, again.stderr
    assert config.targets_file.read_text() == edited
