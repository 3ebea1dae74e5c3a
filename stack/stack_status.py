"""`stack.py status`: what runs where (text or --json)."""

from __future__ import annotations

import json
from typing import Any

from stack_files import read_json, read_or_empty
from stack_kafka import kafka_pid
from stack_kafka_config import KafkaFiles
from stack_kafka_probe import kafka_ready
from stack_pg_files import pg_files, pg_pid, pg_running_port
from stack_settings import HOST, Settings, say
from stack_web import web_pid


def status_info(settings: Settings) -> dict[str, Any]:
    kfiles = KafkaFiles(settings.kafka_dir)
    kpid = kafka_pid(settings)
    kinfo = read_json(kfiles.started) if kpid else {}
    pfiles = pg_files(settings)
    ppid = pg_pid(pfiles)
    wpid = web_pid(settings)
    winfo = read_json(settings.web_dir / "started.json") if wpid else {}
    return {
        "kafka": {
            "running": kpid is not None,
            "pid": kpid,
            "port": kinfo.get("kafka_port"),
            "controller_port": kinfo.get("controller_port"),
            "secure": bool(kinfo.get("secure")),
            "ready": bool(kpid) and kafka_ready(int(kinfo.get("kafka_port", 0))),
            "log": str(kfiles.log),
        },
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
    k, p, w = info["kafka"], info["postgres"], info["web"]
    if k["running"]:
        extra = f" SSL :{k['port'] + 2} SASL_SSL :{k['port'] + 3}" if k["secure"] else ""
        state = "ready" if k["ready"] else "not answering"
        say(
            f"kafka     running  pid {k['pid']:<8} {HOST}:{k['port']} ({state}; controller "
            f":{k['controller_port']}{extra})  log {k['log']}"
        )
    else:
        say("kafka     stopped")
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
