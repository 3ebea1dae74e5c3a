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
from pathlib import Path

import psycopg
import pytest

from bench.cluster import Cluster, ClusterError, start_cluster
from helpers.sites import local_sites  # noqa: F401 - registers the fixture
from helpers.stack import ROOT, Pipeline, StackInfo


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
