"""Kafka: start (or reuse) the KRaft broker+controller, wait for it, stop it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from stack_files import read_json, write_text_atomic
from stack_kafka_config import (
    LOG4J2_PROPERTIES,
    KafkaFiles,
    format_kafka_storage,
    kafka_java,
    kafka_properties,
)
from stack_kafka_jars import ensure_kafka_jars, find_java, kafka_cds_args
from stack_kafka_probe import kafka_ready
from stack_procs import Launch, pid_alive, port_open, read_pid, spawn_daemon, terminate, wait_for
from stack_settings import ENV_KAFKA_PORT, HOST, KAFKA_HEAP, SCRAM_USER, Settings, say
from stack_tls import tls_fingerprint


def kafka_pid(settings: Settings) -> int | None:
    files = KafkaFiles(settings.kafka_dir)
    pid = read_pid(files.pid_file)
    return pid if pid_alive(pid, files.marker) else None


def kafka_started_info(settings: Settings) -> dict[str, Any]:
    return read_json(KafkaFiles(settings.kafka_dir).started) if kafka_pid(settings) else {}


def kafka_wanted_info(settings: Settings, secure: bool) -> dict[str, Any]:
    """What a running Kafka must have been started with to be reused as is."""
    return {
        "kafka_port": settings.kafka_port,
        "controller_port": settings.controller_port,
        "secure": secure,
        "tls": tls_fingerprint(settings) if secure else None,
    }


def kafka_ports(settings: Settings, secure: bool) -> list[tuple[int, str, str]]:
    ports = [
        (settings.kafka_port, "Kafka", ENV_KAFKA_PORT),
        (settings.controller_port, "Kafka controller, Kafka port + 1", ENV_KAFKA_PORT),
    ]
    if secure:
        ports += [
            (settings.kafka_ssl_port, "Kafka SSL, Kafka port + 2", ENV_KAFKA_PORT),
            (settings.kafka_sasl_port, "Kafka SASL_SSL, Kafka port + 3", ENV_KAFKA_PORT),
        ]
    return ports


def start_kafka(settings: Settings, secure: bool) -> Launch:
    """Reuse a running Kafka with the wanted config; otherwise (re)start it. Does not wait."""
    files = KafkaFiles(settings.kafka_dir)
    wanted = kafka_wanted_info(settings, secure)
    action = "started"
    pid = kafka_pid(settings)
    if pid:
        if read_json(files.started) == wanted:
            return Launch("kafka", "reused", pid, lambda: _wait_kafka(settings, secure, pid, None))
        say(f"Kafka (pid {pid}) runs with other settings; restarting it")
        terminate(pid, files.marker)
        action = "restarted"
    java = find_java()
    ensure_kafka_jars()
    files.root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(files.props, kafka_properties(settings, files, secure))
    write_text_atomic(files.log4j, LOG4J2_PROPERTIES)
    formatted = (files.data / "meta.properties").exists() and files.format_info.exists()
    if (
        formatted
        and secure
        and SCRAM_USER not in read_json(files.format_info).get("scram_users", [])
    ):
        say("Kafka storage was formatted without the SCRAM users; formatting a fresh one")
        formatted = False
    if not formatted:
        format_kafka_storage(java, settings, files)
    java_cmd = kafka_java(java, files, heap=KAFKA_HEAP)
    argv = [java_cmd[0], *kafka_cds_args(java), *java_cmd[1:], "kafka.Kafka", str(files.props)]
    proc = spawn_daemon(argv, files.log, files.root)
    write_text_atomic(files.pid_file, f"{proc.pid}\n")
    write_text_atomic(files.started, json.dumps(wanted) + "\n")
    return Launch("kafka", action, proc.pid, lambda: _wait_kafka(settings, secure, proc.pid, proc))


def _wait_kafka(
    settings: Settings, secure: bool, pid: int, proc: subprocess.Popen[bytes] | None
) -> float:
    files = KafkaFiles(settings.kafka_dir)
    extra_ports = [settings.kafka_ssl_port, settings.kafka_sasl_port] if secure else []

    def ready() -> bool:
        return kafka_ready(settings.kafka_port) and all(port_open(p) for p in extra_ports)

    def alive() -> bool:
        if proc is not None and proc.poll() is not None:
            return False
        return pid_alive(pid, files.marker)

    return wait_for(
        f"Kafka (Metadata on {HOST}:{settings.kafka_port})",
        ready,
        alive=alive,
        log_path=files.log,
    )


def stop_kafka(settings: Settings, *, kill: bool = False) -> bool:
    files = KafkaFiles(settings.kafka_dir)
    pid = kafka_pid(settings)
    if not pid:
        return False
    print(f"stopping Kafka (pid {pid}{', SIGKILL' if kill else ''}) ...", end="", flush=True)
    started = time.monotonic()
    terminate(pid, files.marker, kill=kill)
    _wait_ports_closed([settings.kafka_port, settings.controller_port])
    files.pid_file.unlink(missing_ok=True)
    print(f" stopped ({time.monotonic() - started:.1f} s)", flush=True)
    return True


def _wait_ports_closed(ports: Sequence[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(port_open(p, 0.2) for p in ports):
        time.sleep(0.1)
