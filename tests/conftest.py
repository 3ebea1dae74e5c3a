"""Shared fixtures: the real local Kafka + PostgreSQL stack, isolated per test.

The stack is started through the same launcher `make run` uses (stack/stack.py), or taken from
METRICTUI_KAFKA__BOOTSTRAP_SERVERS / METRICTUI_POSTGRES__DSN when both are set. If it cannot be
started, tests that need it FAIL (never skip). Each test gets its own topics, consumer group
and PostgreSQL schema, so tests do not see each other's data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import tomli_w
from sites import local_sites  # noqa: F401 - registers the fixture

from bench.cluster import Cluster, ClusterError, start_cluster

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StackInfo:
    bootstrap: str
    dsn: str
    admin_dsn: str | None
    env: dict[str, Any]


def _stack_dir() -> Path:
    return Path(os.environ.get("METRICTUI_STACK_DIR", ROOT / ".stack"))


@pytest.fixture(scope="session")
def stack() -> StackInfo:
    """The running local stack (started if needed)."""
    bootstrap = os.environ.get("METRICTUI_KAFKA__BOOTSTRAP_SERVERS")
    dsn = os.environ.get("METRICTUI_POSTGRES__DSN")
    if bootstrap and dsn:
        return StackInfo(bootstrap, dsn, None, {})
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stack" / "stack.py"), "up", "--secure"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(f"local stack did not start:\n{proc.stdout}\n{proc.stderr}")
    env = json.loads((_stack_dir() / "env.json").read_text())
    return StackInfo(env["kafka_bootstrap"], env["pg_dsn"], env.get("pg_admin_dsn"), env)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The three-node Kafka cluster (replication 3, min ISR 2) with its own PostgreSQL, in its
    own stack dir and ports (bench/cluster.py), started if needed. Fails if it cannot start."""
    try:
        return start_cluster()
    except ClusterError as exc:
        pytest.fail(f"the three-node cluster did not start: {exc}")


@dataclass
class Pipeline:
    """Names and files of one test's isolated pipeline."""

    stack: StackInfo
    dir: Path
    schema: str
    metrics_topic: str
    checks_topic: str
    group_id: str
    agent: str

    @property
    def config_path(self) -> Path:
        return self.dir / "metrictui.toml"

    @property
    def targets_path(self) -> Path:
        return self.dir / "targets.toml"

    def write_config(self, **sections: dict[str, Any]) -> Path:
        """Write metrictui.toml pointing at the stack; `sections` override/extend keys."""
        doc: dict[str, Any] = {
            "kafka": {
                "bootstrap_servers": self.stack.bootstrap,
                "metrics_topic": self.metrics_topic,
                "checks_topic": self.checks_topic,
                "partitions": 3,
                "request_timeout_s": 5.0,
            },
            "postgres": {"dsn": self.stack.dsn, "schema": self.schema},
            "agent": {
                "name": self.agent,
                "metrics_interval": 1.0,
                "spool_dir": str(self.dir / "spool"),
            },
            "consumer": {"group_id": self.group_id, "flush_ms": 100},
            "headless": {
                "status_interval": 1.0,
                "control_socket": str(self.dir / "control.sock"),
            },
        }
        for name, values in sections.items():
            doc.setdefault(name, {}).update(values)
        self.config_path.write_text(tomli_w.dumps(doc))
        self.config_path.chmod(0o600)
        return self.config_path

    def write_targets(self, targets: list[dict[str, Any]]) -> Path:
        self.targets_path.write_text(tomli_w.dumps({"targets": targets}))
        self.targets_path.chmod(0o600)
        return self.targets_path

    def count(self, table: str) -> int:
        """Rows in one of this test's tables; 0 while the schema does not exist yet."""
        exists = self.query(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = %s",
            (self.schema, table),
        )[0][0]
        return int(self.query(f'SELECT count(*) FROM "{table}"')[0][0]) if exists else 0

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a read query with search_path set to this test's schema."""
        with psycopg.connect(self.stack.dsn, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.schema}", public')
            return conn.execute(sql.encode() if not params else sql, params).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def pipeline(stack: StackInfo, tmp_path: Path) -> Iterator[Pipeline]:
    """A fresh schema, topics and consumer group on the real stack; schema dropped afterwards."""
    tag = uuid.uuid4().hex[:10]
    p = Pipeline(
        stack=stack,
        dir=tmp_path,
        schema=f"t_{tag}",
        metrics_topic=f"t-{tag}.metrics",
        checks_topic=f"t-{tag}.checks",
        group_id=f"g-{tag}",
        agent=f"agent-{tag}",
    )
    p.write_config()
    p.write_targets([])
    yield p
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{p.schema}" CASCADE'.encode())


def metrictui_cmd(*args: str) -> list[str]:
    """The real console script of this venv."""
    return [str(Path(sys.executable).parent / "metrictui"), *args]
