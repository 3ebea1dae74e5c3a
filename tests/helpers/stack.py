"""The stack handle, one test's isolated `Pipeline`, and the console-script command."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import tomli_w

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StackInfo:
    bootstrap: str
    dsn: str
    admin_dsn: str | None
    env: dict[str, Any]


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


def metrictui_cmd(*args: str) -> list[str]:
    """The real console script of this venv."""
    return [str(Path(sys.executable).parent / "metrictui"), *args]
