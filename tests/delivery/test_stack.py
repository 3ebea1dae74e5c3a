"""The local stack launcher (stack/stack.py) against the real servers it runs.

These use the shared dev stack (started by `make test` before pytest, or by the first test here);
checks that must not disturb it run in a separate stack dir with their own ports.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import ssl
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
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from engine.config import load_config
from engine.targets import load_targets

REPO = Path(__file__).resolve().parents[2]
STACK_PY = REPO / "stack" / "stack.py"
STACK_ENV_VARS = (
    "METRICTUI_STACK_DIR",
    "METRICTUI_STACK_KAFKA_PORT",
    "METRICTUI_STACK_PG_PORT",
    "METRICTUI_STACK_WEB_PORT",
    "METRICTUI_STACK_SECURE",
    "METRICTUI_STACK_BROKERS",
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


# --- --secure: TLS, client certificates and SCRAM (the shared stack stays secure afterwards;
# its plain listeners keep working, so other tests are unaffected).


@pytest.fixture(scope="module")
def secure_env() -> dict[str, Any]:
    proc = stack_cmd("up", "--secure")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env_json = Path(os.environ.get("METRICTUI_STACK_DIR") or REPO / ".stack") / "env.json"
    data: dict[str, Any] = json.loads(env_json.read_text())
    assert data["secure"] is True
    return data


def client_context(ca: str, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def test_secure_stack_hands_out_aiven_style_files(secure_env: dict[str, Any]) -> None:
    tls_dir = Path(secure_env["tls_dir"])
    for name in ("ca.pem", "service.cert", "service.key"):
        assert (tls_dir / name).is_file(), name
        assert (tls_dir / "wrong" / name).is_file(), name
    assert secure_env["tls_ca"] == str(tls_dir / "ca.pem")
    assert secure_env["kafka_ssl_port"] == secure_env["kafka_port"] + 2
    assert secure_env["kafka_sasl_ssl_port"] == secure_env["kafka_port"] + 3
    assert (tls_dir / "service.key").stat().st_mode & 0o077 == 0


def test_kafka_ssl_listener_admits_only_our_client_certificate(
    secure_env: dict[str, Any],
) -> None:
    stack = load_stack_module()
    port = secure_env["kafka_ssl_port"]
    ca, cert, key = (
        secure_env["tls_ca"],
        secure_env["tls_client_cert"],
        secure_env["tls_client_key"],
    )
    good = client_context(ca, cert, key)
    assert stack.kafka_metadata_brokers(port, timeout=10, ssl_context=good) == [
        (1, "127.0.0.1", port)
    ]
    no_cert = client_context(ca)
    wrong_cert = client_context(
        ca, secure_env["tls_wrong_client_cert"], secure_env["tls_wrong_client_key"]
    )
    for refused in (no_cert, wrong_cert):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            stack.kafka_metadata_brokers(port, timeout=10, ssl_context=refused)
    wrong_ca = client_context(secure_env["tls_wrong_ca"], cert, key)
    with pytest.raises(ssl.SSLCertVerificationError):
        stack.kafka_metadata_brokers(port, timeout=10, ssl_context=wrong_ca)


async def sasl_bootstrap(env: dict[str, Any], mechanism: str, password: str) -> list[int]:
    producer = AIOKafkaProducer(
        bootstrap_servers=env["kafka_sasl_ssl_bootstrap"],
        security_protocol="SASL_SSL",
        ssl_context=client_context(env["tls_ca"]),
        sasl_mechanism=mechanism,
        sasl_plain_username=env["kafka_sasl_username"],
        sasl_plain_password=password,
        request_timeout_ms=10000,
    )
    try:
        await producer.start()
        metadata = await producer.client.fetch_all_metadata()
        return sorted(broker.port for broker in metadata.brokers())
    finally:
        await producer.stop()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_kafka_sasl_ssl_admits_the_scram_user(
    secure_env: dict[str, Any], mechanism: str
) -> None:
    ports = await sasl_bootstrap(secure_env, mechanism, secure_env["kafka_sasl_password"])
    assert ports == [secure_env["kafka_sasl_ssl_port"]]


async def test_kafka_sasl_ssl_refuses_a_wrong_password(secure_env: dict[str, Any]) -> None:
    with pytest.raises(KafkaError):
        await sasl_bootstrap(secure_env, "SCRAM-SHA-256", "not-the-password")


def test_postgres_tls_is_verified_against_our_ca(secure_env: dict[str, Any]) -> None:
    with psycopg.connect(secure_env["pg_dsn_tls"], connect_timeout=10) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row == (True,)
    wrong = secure_env["pg_dsn_tls"].replace(secure_env["tls_ca"], secure_env["tls_wrong_ca"])
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(wrong, connect_timeout=10)


def test_plain_listeners_keep_working_when_secure(secure_env: dict[str, Any]) -> None:
    stack = load_stack_module()
    assert stack.kafka_metadata_brokers(secure_env["kafka_port"])
    plain = secure_env["pg_dsn"] + "?sslmode=disable"
    with psycopg.connect(plain, connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_dev_config_secure_connects_like_an_aiven_client(
    secure_env: dict[str, Any], isolated_env: dict[str, str]
) -> None:
    stack_dir = Path(isolated_env["METRICTUI_STACK_DIR"])
    stack_dir.mkdir(parents=True)
    (stack_dir / "env.json").write_text(json.dumps(secure_env))
    proc = stack_cmd("dev-config", "--secure", env=isolated_env)
    assert proc.returncode == 0, proc.stderr
    config = load_config(stack_dir / "metrictui.toml", {})
    assert config.kafka.security_protocol == "SSL"
    assert config.kafka.bootstrap_servers == secure_env["kafka_ssl_bootstrap"]
    assert config.kafka.ssl_cafile == Path(secure_env["tls_ca"])
    assert config.kafka.ssl_certfile == Path(secure_env["tls_client_cert"])
    assert config.kafka.ssl_keyfile == Path(secure_env["tls_client_key"])
    assert config.postgres.dsn is not None
    assert "sslmode=verify-full" in config.postgres.dsn.reveal()


def test_three_brokers_are_a_cluster_on_their_own_ports_with_replication_3_min_isr_2(
    tmp_path: Path,
) -> None:
    load_stack_module()  # puts stack/ on sys.path for its sibling modules
    import stack_kafka_config
    import stack_settings

    env = {"METRICTUI_STACK_DIR": str(tmp_path), "METRICTUI_STACK_BROKERS": "3"}
    settings = stack_settings.Settings.from_env(env)
    nodes = settings.kafka_nodes
    assert [n.port for n in nodes] == [19192, 19196, 19200]  # clear of the single node's 19092
    assert settings.bootstrap == "127.0.0.1:19192,127.0.0.1:19196,127.0.0.1:19200"
    props = stack_kafka_config.kafka_properties(
        settings, nodes[1], stack_kafka_config.KafkaFiles(nodes[1].root), secure=False
    )
    assert "node.id=2" in props
    assert "controller.quorum.voters=1@127.0.0.1:19193,2@127.0.0.1:19197,3@127.0.0.1:19201" in props
    for line in ("default.replication.factor=3", "min.insync.replicas=2"):
        assert line in props.splitlines()
    single = stack_settings.Settings.from_env({"METRICTUI_STACK_DIR": str(tmp_path)})
    assert [n.port for n in single.kafka_nodes] == [19092]
    with pytest.raises(stack_settings.StackError, match="METRICTUI_STACK_BROKERS"):
        stack_settings.Settings.from_env({**env, "METRICTUI_STACK_BROKERS": "two"})
