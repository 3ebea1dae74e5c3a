"""`stack.py status`: what runs where (text or --json), each Kafka node on its own line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stack_files import read_json, read_or_empty
from stack_kafka import kafka_pid, node_ready
from stack_kafka_config import KafkaFiles
from stack_pg_files import pg_files, pg_pid, pg_running_port
from stack_settings import HOST, KafkaNode, Settings, say
from stack_web import web_pid


def node_info(node: KafkaNode) -> dict[str, Any]:
    files = KafkaFiles(node.root)
    pid = kafka_pid(node)
    info = read_json(files.started) if pid else {}
    return {
        "node_id": node.node_id,
        "running": pid is not None,
        "pid": pid,
        "port": info.get("kafka_port"),
        "controller_port": info.get("controller_port"),
        "secure": bool(info.get("secure")),
        "ready": bool(pid) and node_ready(node),
        "log": str(files.log),
    }


def status_info(settings: Settings) -> dict[str, Any]:
    # Nodes of the other layout still running (the broker count changed without a restart).
    stray = [n for n in settings.other_layout_nodes if kafka_pid(n)]
    nodes = [node_info(n) for n in [*settings.kafka_nodes, *stray]]
    pfiles = pg_files(settings)
    ppid = pg_pid(pfiles)
    wpid = web_pid(settings)
    winfo = read_json(settings.web_dir / "started.json") if wpid else {}
    return {
        # The first node, as before the cluster existed (tests and scripts read these keys).
        "kafka": {key: value for key, value in nodes[0].items() if key != "node_id"},
        "kafka_nodes": nodes,
        "kafka_brokers": settings.brokers,
        "postgres": {
            "running": ppid is not None,
            "pid": ppid,
            "port": pg_running_port(pfiles) if ppid else None,
            "data": str(pfiles.data),
            "log": str(pfiles.log),
            "ssl": bool(ppid) and "ssl = on" in read_or_empty(pfiles.conf),
        },
        "web": {
            "running": wpid is not None,
            "pid": wpid,
            "port": winfo.get("web_port"),
        },
        "env_json": str(settings.env_json) if settings.env_json.exists() else None,
    }


def cmd_status(settings: Settings, as_json: bool) -> int:
    info = status_info(settings)
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    for k in info["kafka_nodes"]:
        label = "kafka" if Path(k["log"]).parent.name == "kafka" else f"kafka-{k['node_id']}"
        if k["running"]:
            extra = f" SSL :{k['port'] + 2} SASL_SSL :{k['port'] + 3}" if k["secure"] else ""
            state = "ready" if k["ready"] else "not answering"
            say(
                f"{label:<9} running  pid {k['pid']:<8} {HOST}:{k['port']} ({state}; controller "
                f":{k['controller_port']}{extra})  log {k['log']}"
            )
        else:
            say(f"{label:<9} stopped")
    if settings.cluster:
        say(
            f"cluster   {settings.brokers} nodes, replication {settings.replication_factor},"
            f" min ISR {settings.min_insync_replicas}; bootstrap {settings.bootstrap}"
        )
    p, w = info["postgres"], info["web"]
    if p["running"]:
        tls = " (TLS on)" if p["ssl"] else ""
        say(f"postgres  running  pid {p['pid']:<8} {HOST}:{p['port']}{tls}  data {p['data']}")
    else:
        say("postgres  stopped")
    if w["running"]:
        say(f"demo-web  running  pid {w['pid']:<8} http://{HOST}:{w['port']}/")
    else:
        say("demo-web  stopped")
    if info["env_json"]:
        say(f"env       {info['env_json']}")
    return 0
