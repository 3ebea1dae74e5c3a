"""env.json: where everything runs and how to connect, for tests, benchmarks and dev-config."""

from __future__ import annotations

import json
import os
import pwd
import urllib.parse
from typing import Any

from stack_files import write_text_atomic
from stack_kafka_config import KafkaFiles
from stack_kafka_jars import kafka_version
from stack_pg_bin import find_pg_bin, pg_run_as
from stack_pg_files import pg_files, pg_superuser_password
from stack_settings import (
    APP_DB,
    APP_PASSWORD,
    APP_ROLE,
    HOST,
    PG_SUPERUSER,
    SCRAM_PASSWORD,
    SCRAM_USER,
    Settings,
)
from stack_tls import TlsFiles


def env_info(settings: Settings, secure: bool) -> dict[str, Any]:
    files = pg_files(settings)
    password = pg_superuser_password(files) if files.password_file.exists() else ""
    pg = f"{HOST}:{settings.pg_port}"
    first = settings.kafka_nodes[0]
    info: dict[str, Any] = {
        "kafka_bootstrap": settings.bootstrap,
        "pg_dsn": f"postgresql://{APP_ROLE}:{APP_PASSWORD}@{pg}/{APP_DB}",
        "pg_admin_dsn": f"postgresql://{PG_SUPERUSER}:{password}@{pg}/postgres",
        "pg_bin": str(find_pg_bin()),
        "pg_data": str(files.data),
        "pg_log": str(files.log),
        "pg_socket_dir": str(files.socket_dir),
        "kafka_port": settings.kafka_port,
        "kafka_controller_port": settings.controller_port,
        "kafka_version": kafka_version(),
        "kafka_log": str(KafkaFiles(first.root).log),
        "kafka_data": str(KafkaFiles(first.root).data),
        "kafka_brokers": settings.brokers,
        "kafka_replication_factor": settings.replication_factor,
        "kafka_min_insync_replicas": settings.min_insync_replicas,
        "kafka_nodes": [
            {
                "node_id": n.node_id,
                "port": n.port,
                "controller_port": n.controller_port,
                "bootstrap": f"{HOST}:{n.port}",
                "log": str(KafkaFiles(n.root).log),
            }
            for n in settings.kafka_nodes
        ],
        "pg_port": settings.pg_port,
        "pg_superuser_run_as": pg_run_as() or pwd.getpwuid(os.geteuid()).pw_name,
        "web_port": settings.web_port,
        "web_url": f"http://{HOST}:{settings.web_port}/",
        "stack_dir": str(settings.stack_dir),
        "secure": secure,
    }
    if secure:
        tls = TlsFiles(settings.tls_dir)
        ca_q = urllib.parse.quote(str(tls.ca), safe="/")
        info |= {
            "tls_dir": str(tls.root),
            "tls_ca": str(tls.ca),
            "tls_client_cert": str(tls.client_cert),
            "tls_client_key": str(tls.client_key),
            "tls_server_cert": str(tls.server_cert),
            "tls_wrong_ca": str(tls.wrong.ca),
            "tls_wrong_client_cert": str(tls.wrong.client_cert),
            "tls_wrong_client_key": str(tls.wrong.client_key),
            "kafka_ssl_port": settings.kafka_ssl_port,
            "kafka_ssl_bootstrap": ",".join(f"{HOST}:{n.ssl_port}" for n in settings.kafka_nodes),
            "kafka_sasl_ssl_port": settings.kafka_sasl_port,
            "kafka_sasl_ssl_bootstrap": ",".join(
                f"{HOST}:{n.sasl_port}" for n in settings.kafka_nodes
            ),
            "kafka_sasl_mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-512"],
            "kafka_sasl_username": SCRAM_USER,
            "kafka_sasl_password": SCRAM_PASSWORD,
            "pg_dsn_tls": (
                f"postgresql://{APP_ROLE}:{APP_PASSWORD}@{pg}/{APP_DB}"
                f"?sslmode=verify-full&sslrootcert={ca_q}"
            ),
        }
    return info


def write_env_json(settings: Settings, secure: bool) -> dict[str, Any]:
    info = env_info(settings, secure)
    # 0600: it holds the superuser password.
    write_text_atomic(settings.env_json, json.dumps(info, indent=2) + "\n", mode=0o600)
    return info
