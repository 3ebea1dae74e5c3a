"""Kafka trouble is logged with the broker address and the real cause, never as
`KafkaConnectionError: KafkaConnectionError`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from aiokafka.errors import KafkaConnectionError

from engine.kafka.settings import describe_kafka_error
from helpers.stack import metrictui_cmd


def test_a_bare_client_error_names_its_cause() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
        except OSError as cause:
            raise KafkaConnectionError() from cause
    except KafkaConnectionError as exc:
        line = describe_kafka_error(exc)
    assert "KafkaConnectionError: KafkaConnectionError" not in line
    assert "caused by ConnectionRefusedError" in line and "Connect call failed" in line


def test_the_error_name_is_said_once() -> None:
    line = describe_kafka_error(KafkaConnectionError("Unable to bootstrap from [x]"))
    assert line == "KafkaConnectionError: Unable to bootstrap from [x]"


def test_headless_without_kafka_logs_the_address_and_the_cause(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "127.0.0.1:1"\nrequest_timeout_s = 2.0\n'
        f'[agent]\nspool_dir = "{tmp_path}/spool"\n[headless]\ncontrol_socket = ""\n'
    )
    config.chmod(0o600)
    proc = subprocess.Popen(
        metrictui_cmd("--config", str(config), "--headless", "--role", "producer"),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "spooling" in line or len(lines) > 20:
            break
    proc.terminate()
    proc.wait(timeout=30)
    text = "".join(lines)
    assert "unreachable at 127.0.0.1:1" in text, text
    assert "Unable to bootstrap" in text
    assert "KafkaConnectionError: KafkaConnectionError" not in text
