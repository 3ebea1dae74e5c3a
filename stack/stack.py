#!/usr/bin/env python3
"""The local Kafka + PostgreSQL stack that `make run`, the tests and the benchmarks use.

One command starts, reuses, inspects and stops it:

    python3 stack/stack.py up [--secure]   start what is not running, reuse what is; write env.json
    python3 stack/stack.py down            stop everything (no-op when nothing runs)
    python3 stack/stack.py status [--json] what runs where
    python3 stack/stack.py dev-config      .stack/metrictui.toml + targets.toml for `make run`
    python3 stack/stack.py kafka-stop [--node N] [--kill] | kafka-start [--node N]
                           | pg-stop [--kill] | pg-start
                                           fault-test helpers; each returns once that state holds

Kafka 4.x (KRaft, combined broker+controller nodes: one, or three with METRICTUI_STACK_BROKERS=3,
replication 3 and min ISR 2, as managed Kafka runs) runs from the jars that stack/pom.xml resolves
into stack/lib; PostgreSQL runs from the machine's binaries (installed with apt-get if missing),
as the `postgres` user when we are root. A demo website gives `make run` real targets.
Everything listens on 127.0.0.1 and lives under .stack/ (or $METRICTUI_STACK_DIR).

Stdlib only, so it runs before the virtualenv exists. This file is the command line; the work
is done by the sibling stack_*.py modules (settings, files, procs, tls, kafka*, pg*, postgres,
web, env_json, status, dev_config), imported by plain name from this directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

# Run as a script, this directory is sys.path[0]; loaded from its path (tests), it may not be.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))

from stack_dev_config import cmd_dev_config
from stack_env_json import write_env_json
from stack_files import read_json, read_or_empty, stack_lock
from stack_kafka import (
    cluster_id_to_use,
    kafka_pid,
    kafka_ports,
    kafka_started_info,
    start_kafka,
    stop_kafka,
    stop_kafka_nodes,
)
from stack_kafka_config import KafkaFiles, kafka_uuid
from stack_kafka_probe import kafka_metadata_brokers as kafka_metadata_brokers  # tests use it
from stack_pg_files import pg_files, pg_pid, pg_running_port
from stack_postgres import start_pg, stop_pg
from stack_procs import port_free
from stack_settings import (
    ENV_PG_PORT,
    ENV_SECURE,
    ENV_WEB_PORT,
    HOST,
    KafkaNode,
    Settings,
    StackError,
    say,
)
from stack_status import cmd_status
from stack_tls import ensure_tls
from stack_web import start_web, stop_web, web_pid


def check_ports(wanted: Sequence[tuple[int, str, str]], ours: set[int]) -> None:
    """One clear line (and exit 1) when something that is not our stack holds a port we need."""
    for port, what, env_name in wanted:
        if port in ours:
            continue
        if not port_free(port):
            raise StackError(
                f"port {port} ({what}) on {HOST} is taken by another program; "
                f"set {env_name} to a free port"
            )


def our_ports(settings: Settings) -> set[int]:
    """Ports held by our own running servers: they are free again once we restart those."""
    ports: set[int] = set()
    for node in settings.kafka_nodes:
        info = kafka_started_info(node)
        if info:
            k = int(info.get("kafka_port", 0))
            ports |= {k, k + 1, k + 2, k + 3} if info.get("secure") else {k, k + 1}
    files = pg_files(settings)
    if pg_pid(files):
        port = pg_running_port(files)
        if port:
            ports.add(port)
    if web_pid(settings):
        ports.add(int(read_json(settings.web_dir / "started.json").get("web_port", 0)))
    return ports


def running_secure(settings: Settings) -> bool:
    """A plain `up` keeps a secure stack secure (its plain listeners work as well)."""
    if any(kafka_started_info(node).get("secure") for node in settings.kafka_nodes):
        return True
    files = pg_files(settings)
    return pg_pid(files) is not None and "ssl = on" in read_or_empty(files.conf)


def cmd_up(settings: Settings, secure_flag: bool) -> int:
    started = time.monotonic()
    with stack_lock(settings):
        secure = secure_flag or settings.secure_env or running_secure(settings)
        ports = [
            *kafka_ports(settings, secure),
            (settings.pg_port, "PostgreSQL", ENV_PG_PORT),
            (settings.web_port, "demo website", ENV_WEB_PORT),
        ]
        for node in settings.other_layout_nodes:
            if kafka_pid(node):
                say(f"the stack now runs {settings.brokers} Kafka node(s); stopping {node.root}")
                stop_kafka(node)
        check_ports(ports, our_ports(settings))
        if secure:
            ensure_tls(settings)
        cluster_id = cluster_id_to_use(settings) or (kafka_uuid() if settings.cluster else None)
        kafka = [start_kafka(settings, n, secure, cluster_id) for n in settings.kafka_nodes]
        launches = [start_pg(settings, secure), *kafka, start_web(settings)]
        for launch in launches:
            launch.wait()
        env = write_env_json(settings, secure)
    for launch in launches:
        pid = launch.pid or pg_pid(pg_files(settings))
        say(f"{launch.name:<9} {launch.action:<9} pid {pid}")
    kafka = env["kafka_bootstrap"]
    if secure:
        kafka += f" (SSL {env['kafka_ssl_bootstrap']}, SASL_SSL {env['kafka_sasl_ssl_bootstrap']})"
    if settings.cluster:
        kafka += (
            f", {settings.brokers} nodes, replication {settings.replication_factor}"
            f", min ISR {settings.min_insync_replicas}"
        )
    pg = f"{HOST}:{env['pg_port']}" + (" (TLS)" if secure else "")
    say(
        f"stack up in {time.monotonic() - started:.1f} s: Kafka {kafka}, PostgreSQL {pg}, "
        f"demo web {env['web_url']}; see {settings.env_json}"
    )
    return 0


def cmd_down(settings: Settings) -> int:
    with stack_lock(settings):
        nodes = [*settings.kafka_nodes, *settings.other_layout_nodes]
        stopped = [stop_web(settings), *(stop_kafka(n) for n in nodes), stop_pg(settings)]
    if not any(stopped):
        say("stack: nothing running")
    return 0


def _nodes(settings: Settings, node_ids: list[int] | None) -> list[KafkaNode]:
    return settings.kafka_nodes if not node_ids else [settings.kafka_node(n) for n in node_ids]


def cmd_kafka_start(settings: Settings, node_ids: list[int] | None) -> int:
    """Start the named nodes (default: every node) at once and wait until each answers."""
    nodes = _nodes(settings, node_ids)
    secure = any(bool(read_json(KafkaFiles(n.root).started).get("secure")) for n in nodes)
    with stack_lock(settings):
        stopped = [n for n in nodes if kafka_pid(n) is None]
        check_ports(kafka_ports(settings, secure, stopped), set())
        cluster_id = cluster_id_to_use(settings)
        launches = [start_kafka(settings, n, secure, cluster_id) for n in nodes]
        for launch in launches:
            launch.wait()
    for launch in launches:
        say(f"{launch.name} {launch.action} (pid {launch.pid})")
    return 0


def cmd_kafka_stop(settings: Settings, node_ids: list[int] | None, kill: bool) -> int:
    """Stop the named nodes (default: every node); with --kill, all SIGKILLed before any wait,
    so a cluster loses them at the same moment."""
    with stack_lock(settings):
        if not stop_kafka_nodes(_nodes(settings, node_ids), kill=kill):
            say("kafka: not running")
    return 0


def cmd_pg_start(settings: Settings) -> int:
    secure = running_secure(settings) or settings.secure_env
    with stack_lock(settings):
        if pg_pid(pg_files(settings)) is None:
            check_ports([(settings.pg_port, "PostgreSQL", ENV_PG_PORT)], set())
        launch = start_pg(settings, secure)
        launch.wait()
    say(f"postgres {launch.action} (pid {pg_pid(pg_files(settings))})")
    return 0


def cmd_pg_stop(settings: Settings, kill: bool) -> int:
    with stack_lock(settings):
        if not stop_pg(settings, kill=kill):
            say("postgres: not running")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stack.py",
        description="Local Kafka + PostgreSQL (+ demo website) for metrictui development.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start (or reuse) the stack and write .stack/env.json")
    up.add_argument(
        "--secure",
        action="store_true",
        help=f"also TLS/SCRAM listeners and PostgreSQL TLS (or {ENV_SECURE}=1)",
    )
    sub.add_parser("down", help="stop everything (no-op when nothing runs)")
    status = sub.add_parser("status", help="what runs where")
    status.add_argument("--json", action="store_true", help="machine-readable")
    dev = sub.add_parser("dev-config", help="write .stack/metrictui.toml and .stack/targets.toml")
    dev.add_argument(
        "--secure", action="store_true", help="connect over SSL (client cert) and PostgreSQL TLS"
    )
    ks = sub.add_parser("kafka-stop", help="stop Kafka (SIGTERM; --kill: SIGKILL) and wait")
    ks.add_argument("--kill", action="store_true")
    ks.add_argument(
        "--node", type=int, action="append", help="only this node of a cluster (repeatable)"
    )
    kst = sub.add_parser("kafka-start", help="start Kafka and wait until it answers")
    kst.add_argument(
        "--node", type=int, action="append", help="only this node of a cluster (repeatable)"
    )
    ps = sub.add_parser("pg-stop", help="stop PostgreSQL (fast; --kill: immediate) and wait")
    ps.add_argument("--kill", action="store_true")
    sub.add_parser("pg-start", help="start PostgreSQL and wait until it accepts connections")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stderr) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        if args.command == "up":
            return cmd_up(settings, args.secure)
        if args.command == "down":
            return cmd_down(settings)
        if args.command == "status":
            return cmd_status(settings, args.json)
        if args.command == "dev-config":
            return cmd_dev_config(settings, args.secure)
        if args.command == "kafka-stop":
            return cmd_kafka_stop(settings, args.node, args.kill)
        if args.command == "kafka-start":
            return cmd_kafka_start(settings, args.node)
        if args.command == "pg-stop":
            return cmd_pg_stop(settings, args.kill)
        if args.command == "pg-start":
            return cmd_pg_start(settings)
    except StackError as exc:
        if exc.log_tail:
            print(f"--- last lines ---\n{exc.log_tail}\n---", file=out)
        print(f"stack: {exc}", file=out)
        return 1
    except KeyboardInterrupt:
        print("stack: interrupted", file=out)
        return 130
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
