"""Secrets stay secret (issue 4, case 16): the SCRAM password, the PostgreSQL password and the
client key never appear in logs (debug level, human and JSON), status lines, /metrics,
/healthz, control-socket snapshots or the dashboard, also while connections fail."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest

from engine.control.client import SocketControl
from engine.control.snapshot_wire import snapshot_to_dict
from helpers.fake_control import screen_text
from helpers.faults import (
    Agents,
    Servers,
    SinkRole,
    config_variant,
    free_port,
    migrate_as_owner,
    run_briefly,
    sasl_kafka,
    ssl_kafka,
    stored_count,
)
from helpers.sites import LocalSites
from helpers.stack import Pipeline
from helpers.waiting import wait_for
from tui.app import MetricTuiApp

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def _get(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:  # /healthz answers 503 while unhealthy
        return str(exc.read().decode())


async def _screens(sock: Path) -> tuple[str, list[str]]:
    """The control socket's snapshot (JSON) and what the attached dashboard shows."""
    control = await SocketControl.connect(sock)
    texts = []
    try:
        app = MetricTuiApp(control)
        async with app.run_test(size=(140, 50)) as pilot:
            for _ in range(20):
                await pilot.pause(0.2)
                if control.snapshot() is not None:
                    break
            await pilot.pause(0.5)
            texts.append(screen_text(app))
            for key in ("question_mark", "m"):
                await pilot.press(key)
                await pilot.pause(0.3)
                texts.append(screen_text(app))
                await pilot.press("escape")
                await pilot.pause(0.2)
        snapshot = control.snapshot()
        assert snapshot is not None
        return orjson.dumps(snapshot_to_dict(snapshot)).decode(), texts
    finally:
        await control.close()


def test_secrets_never_appear_in_any_output(
    pipeline: Pipeline,
    agents: Agents,
    servers: Servers,
    local_sites: LocalSites,
    sink_role: SinkRole,
) -> None:
    env = pipeline.stack.env
    migrate_as_owner(pipeline)
    sink_role.grant()
    key_lines = [
        ln
        for ln in Path(env["tls_client_key"]).read_text().splitlines()
        if ln and not ln.startswith("-----")
    ]
    secrets = [env["kafka_sasl_password"], sink_role.password, quote(sink_role.password)]
    secrets += key_lines
    assert len(key_lines) > 5
    ports = {"producer": free_port(), "consumer": free_port()}
    socks = {role: pipeline.dir / f"{role[0]}.sock" for role in ports}
    producer_cfg = config_variant(
        pipeline,
        "producer.toml",
        kafka=ssl_kafka(pipeline),
        headless={
            "listen": f"127.0.0.1:{ports['producer']}",
            "control_socket": str(socks["producer"]),
            "log_level": "debug",
        },
    )
    consumer_cfg = config_variant(
        pipeline,
        "consumer.toml",
        kafka=sasl_kafka(pipeline, "SCRAM-SHA-512"),
        postgres={"dsn": sink_role.dsn(env["pg_dsn_tls"]), "migrate_on_start": False},
        headless={
            "listen": f"127.0.0.1:{ports['consumer']}",
            "control_socket": str(socks["consumer"]),
            "log_level": "debug",
            "log_format": "json",
        },
    )
    pipeline.write_targets([{"name": "home", "url": local_sites.http_url("/"), "interval": 0.5}])
    consumer = agents.start("consumer", config=consumer_cfg)
    producer = agents.start("producer", config=producer_cfg)
    wait_for(lambda: stored_count(pipeline) >= 10, 60, "events over TLS and SCRAM")
    # A connection failure while running: PostgreSQL restarts under the sink.
    servers.pg_stop(kill=True)
    wait_for(lambda: consumer.last_status().get("postgres") == "down", 30, "the outage seen")
    outputs: list[str] = []
    for port in ports.values():
        outputs += [_get(port, "/metrics"), _get(port, "/healthz")]
    servers.pg_start()
    wait_for(lambda: consumer.last_status().get("postgres") == "connected", 30, "reconnect")
    for role, port in ports.items():
        outputs += [_get(port, "/metrics"), _get(port, "/healthz")]
        snapshot, screens = asyncio.run(_screens(socks[role]))
        outputs += [snapshot, *screens]
        assert "errors" in snapshot and "Kafka" in screens[0], screens[0]
    assert any("PostgreSQL" in o for o in outputs), "the failure is visible somewhere"
    assert sum("metrictui_info" in o for o in outputs) == 4
    for agent in (producer, consumer):
        code, _ = agent.stop()
        assert code == 0, agent.tail()
    outputs += [producer.text(), consumer.text()]
    assert "DEBUG" in producer.text() and '"level": "debug"' in consumer.text()
    assert "aiokafka" in producer.text() + consumer.text(), "library debug logs are on too"
    assert "SaslAuthenticateRequest" in consumer.text()
    assert "sasl_auth_bytes=<redacted>" in consumer.text(), "SCRAM proofs are not logged"
    # Failures at start, at debug level: wrong PostgreSQL password, wrong SCRAM password.
    wrong_pg = "Wr0ng-Pg-Pa55word"
    pipeline.write_config(
        postgres={"dsn": sink_role.with_password(wrong_pg)},
        headless={"log_level": "debug"},
    )
    code, output, _ = run_briefly(pipeline, "consumer")
    assert code == 1 and "password authentication failed" in output, output
    outputs.append(output)
    secrets.append(wrong_pg)
    for text in outputs:
        for secret in secrets:
            assert secret not in text, f"a secret leaked: ...{text[-300:]}"


def test_sasl_plain_password_in_aiokafka_debug_logs_is_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With PLAIN, aiokafka's debug log of the SASL request would be the password itself."""
    import logging

    from aiokafka.protocol.admin import SaslAuthenticateRequest_v1

    from engine.config import KafkaConfig, Secret
    from engine.kafka.settings import client_kwargs

    password = "Plain-Text-Pa55word"
    cfg = KafkaConfig(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="user",
        sasl_password=Secret(password),
    )
    assert client_kwargs(cfg, "t")["sasl_plain_password"] == password
    request = SaslAuthenticateRequest_v1(b"\x00user\x00" + password.encode())
    assert password in repr(request)
    with caplog.at_level(logging.DEBUG, logger="aiokafka"):
        logging.getLogger("aiokafka.conn").debug("Request to %s:%d %d: %s", "h", 1, 2, request)
    assert caplog.records and password not in caplog.text
    assert "sasl_auth_bytes=<redacted>" in caplog.text
