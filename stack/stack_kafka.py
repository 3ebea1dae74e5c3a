"""Kafka: start (or reuse) each KRaft node (broker + controller), wait for it, stop it.

One node by default; `METRICTUI_STACK_BROKERS=3` runs a cluster of three, each node in its own
folder (kafka-1..3) with its own ports. Every function here works on one `KafkaNode`; the
command line (stack.py) loops over the nodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
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
from stack_kafka_probe import kafka_metadata_brokers
from stack_procs import Launch, pid_alive, port_open, read_pid, spawn_daemon, terminate, wait_for
from stack_settings import (
    ENV_KAFKA_PORT,
    HOST,
    KAFKA_HEAP,
    SCRAM_USER,
    KafkaNode,
    Settings,
    say,
)
from stack_tls import tls_fingerprint


def kafka_pid(node: KafkaNode) -> int | None:
    files = KafkaFiles(node.root)
    pid = read_pid(files.pid_file)
    return pid if pid_alive(pid, files.marker) else None


def kafka_started_info(node: KafkaNode) -> dict[str, Any]:
    return read_json(KafkaFiles(node.root).started) if kafka_pid(node) else {}


def kafka_wanted_info(settings: Settings, node: KafkaNode, secure: bool) -> dict[str, Any]:
    """What a running node must have been started with to be reused as is."""
    info: dict[str, Any] = {
        "kafka_port": node.port,
        "controller_port": node.controller_port,
        "secure": secure,
        "tls": tls_fingerprint(settings) if secure else None,
    }
    if settings.cluster:
        info |= {"node_id": node.node_id, "brokers": settings.brokers}
    return info


def kafka_ports(
    settings: Settings, secure: bool, nodes: Sequence[KafkaNode] | None = None
) -> list[tuple[int, str, str]]:
    """Every port the stack's Kafka nodes (or just `nodes`) need, for the "port taken" check."""
    ports = []
    for node in settings.kafka_nodes if nodes is None else nodes:
        what = "Kafka" if not settings.cluster else f"Kafka node {node.node_id}"
        ports += [
            (node.port, what, ENV_KAFKA_PORT),
            (node.controller_port, f"{what} controller, its port + 1", ENV_KAFKA_PORT),
        ]
        if secure:
            ports += [
                (node.ssl_port, f"{what} SSL, its port + 2", ENV_KAFKA_PORT),
                (node.sasl_port, f"{what} SASL_SSL, its port + 3", ENV_KAFKA_PORT),
            ]
    return ports


def cluster_id_to_use(settings: Settings) -> str | None:
    """The id the cluster's formatted nodes share (a node formatted afresh joins it), or None
    when no node has storage yet."""
    if not settings.cluster:
        return None
    for node in settings.kafka_nodes:
        files = KafkaFiles(node.root)
        if (files.data / "meta.properties").exists():
            cluster_id = read_json(files.format_info).get("cluster_id")
            if isinstance(cluster_id, str) and cluster_id:
                return cluster_id
    return None


def start_kafka(
    settings: Settings, node: KafkaNode, secure: bool, cluster_id: str | None
) -> Launch:
    """Reuse a running node with the wanted config; otherwise (re)start it. Does not wait."""
    files = KafkaFiles(node.root)
    wanted = kafka_wanted_info(settings, node, secure)
    action = "started"
    pid = kafka_pid(node)
    if pid:
        if read_json(files.started) == wanted:
            return Launch(node.name, "reused", pid, lambda: _wait_kafka(node, secure, pid, None))
        say(f"Kafka node {node.node_id} (pid {pid}) runs with other settings; restarting it")
        terminate(pid, files.marker)
        action = "restarted"
    java = find_java()
    ensure_kafka_jars()
    files.root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(files.props, kafka_properties(settings, node, files, secure))
    write_text_atomic(files.log4j, LOG4J2_PROPERTIES)
    formatted = (files.data / "meta.properties").exists() and files.format_info.exists()
    if (
        formatted
        and secure
        and SCRAM_USER not in read_json(files.format_info).get("scram_users", [])
    ):
        say("Kafka storage was formatted without the SCRAM users; formatting a fresh one")
        formatted = False
    if formatted and cluster_id and read_json(files.format_info).get("cluster_id") != cluster_id:
        say(f"Kafka node {node.node_id} was formatted for another cluster; formatting it again")
        formatted = False
    if not formatted:
        format_kafka_storage(java, settings, files, cluster_id)
    java_cmd = kafka_java(java, files, heap=KAFKA_HEAP)
    argv = [java_cmd[0], *kafka_cds_args(java), *java_cmd[1:], "kafka.Kafka", str(files.props)]
    proc = spawn_daemon(argv, files.log, files.root)
    write_text_atomic(files.pid_file, f"{proc.pid}\n")
    write_text_atomic(files.started, json.dumps(wanted) + "\n")
    return Launch(node.name, action, proc.pid, lambda: _wait_kafka(node, secure, proc.pid, proc))


def node_ready(node: KafkaNode) -> bool:
    """The node answers Metadata and lists itself: it is registered and unfenced, so it can
    lead and follow partitions (on a cluster that needs a controller quorum, 2 of 3 nodes)."""
    try:
        return node.node_id in {b[0] for b in kafka_metadata_brokers(node.port)}
    except (OSError, ValueError):
        return False


def _wait_kafka(
    node: KafkaNode, secure: bool, pid: int, proc: subprocess.Popen[bytes] | None
) -> float:
    files = KafkaFiles(node.root)
    extra_ports = [node.ssl_port, node.sasl_port] if secure else []

    def ready() -> bool:
        return node_ready(node) and all(port_open(p) for p in extra_ports)

    def alive() -> bool:
        if proc is not None and proc.poll() is not None:
            return False
        return pid_alive(pid, files.marker)

    return wait_for(
        f"Kafka node {node.node_id} (Metadata on {HOST}:{node.port})",
        ready,
        alive=alive,
        log_path=files.log,
    )


def stop_kafka(node: KafkaNode, *, kill: bool = False) -> bool:
    return stop_kafka_nodes([node], kill=kill) > 0


def stop_kafka_nodes(nodes: Sequence[KafkaNode], *, kill: bool = False) -> int:
    """Stop nodes and wait until each is gone and its ports are closed; returns how many ran.
    With `kill`, every node gets its SIGKILL before any wait, so a cluster loses them at the
    same moment (two of three down at once: below min ISR, and no controller quorum)."""
    running = [(node, pid) for node in nodes if (pid := kafka_pid(node))]
    if kill:
        for _, pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for node, pid in running:
        files = KafkaFiles(node.root)
        info = read_json(files.started)
        ports = [int(info.get("kafka_port", 0)), int(info.get("controller_port", 0))]
        label = "Kafka" if node.root.name == "kafka" else f"Kafka node {node.node_id}"
        print(f"stopping {label} (pid {pid}{', SIGKILL' if kill else ''}) ...", end="", flush=True)
        started = time.monotonic()
        terminate(pid, files.marker, kill=kill)
        _wait_ports_closed([p for p in ports if p])
        files.pid_file.unlink(missing_ok=True)
        print(f" stopped ({time.monotonic() - started:.1f} s)", flush=True)
    return len(running)


def _wait_ports_closed(ports: Sequence[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(port_open(p, 0.2) for p in ports):
        time.sleep(0.1)
