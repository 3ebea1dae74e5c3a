"""How each system is started on its own topic, consumer group and schema for one drain.

Each returns the argv of one process and writes its config under `workdir`. Schemas for the
peers are made empty beforehand (each tool creates its own tables, as in real use); metrictui's
sink migrates its schema itself on start (`migrate_on_start`).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from bench.env import BenchEnv
from bench.peers import connect, telegraf
from engine.config import Config
from engine.sink.consume import writer_count

# Connections a metrictui sink holds with the default config: its own and its writers'.
SINK_CONNECTIONS = writer_count(Config()) + 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def metrictui_sink(
    env: BenchEnv, part: str, topics_of: str, batch_max: int
) -> tuple[list[str], str]:
    """`metrictui --headless --role consumer`, the way it runs next to the database."""
    names = env.names(part, topics_of=topics_of)
    _, path = env.config(
        part,
        names,
        consumer={"batch_max": batch_max},
        headless={"status_interval": 3600.0, "listen": ""},
    )
    metrictui = str(Path(sys.executable).parent / "metrictui")
    return [metrictui, "--headless", "--role", "consumer", "--config", str(path)], names.schema


def telegraf_sink(env: BenchEnv, part: str, topic: str, binary: Path) -> tuple[list[str], str]:
    names = env.names(part, topics_of=part)
    make_schema(env.endpoints.dsn, names.schema)
    folder = env.workdir / part
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "telegraf.conf"
    conf.write_text(
        telegraf.sink_config(
            env.endpoints.bootstrap,
            topic,
            names.group_id,
            env.endpoints.dsn,
            names.schema,
            SINK_CONNECTIONS,
        )
    )
    return [str(binary), "--config", str(conf)], names.schema


def connect_sink(env: BenchEnv, part: str, topic: str, jars: Path) -> tuple[list[str], str]:
    names = env.names(part, topics_of=part)
    make_schema(env.endpoints.dsn, names.schema)
    folder = env.workdir / part
    folder.mkdir(parents=True, exist_ok=True)
    worker = folder / "worker.properties"
    worker.write_text(connect.worker_properties(env.endpoints.bootstrap, folder, jars, free_port()))
    connector = folder / "jdbc-sink.properties"
    connector.write_text(
        connect.connector_properties(names.group_id, topic, env.endpoints.dsn, names.schema)
    )
    return connect.connect_argv(jars, folder, worker, connector), names.schema
