"""Where the benchmark runs: the local stack, and the topics, schemas and configs of one run.

Every part of a run gets its own topics, consumer group and PostgreSQL schema (named after a
random run tag), so parts never see each other's data; `cleanup()` drops them all at the end.
Configs are written as real TOML files and loaded with
`engine.config.load_config`, exactly like the program loads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import tomli_w
from aiokafka.admin import AIOKafkaAdminClient

from engine.config import Config, load_config
from engine.kafka.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Endpoints:
    bootstrap: str
    dsn: str


def stack_endpoints() -> Endpoints:
    """The servers named by the environment, else the local stack (started if needed)."""
    bootstrap = os.environ.get("METRICTUI_KAFKA__BOOTSTRAP_SERVERS")
    dsn = os.environ.get("METRICTUI_POSTGRES__DSN")
    if bootstrap and dsn:
        return Endpoints(bootstrap, dsn)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stack" / "stack.py"), "up"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench: the local stack did not start:\n{proc.stdout}\n{proc.stderr}")
    stack_dir = Path(os.environ.get("METRICTUI_STACK_DIR", ROOT / ".stack"))
    env = json.loads((stack_dir / "env.json").read_text())
    return Endpoints(env["kafka_bootstrap"], env["pg_dsn"])


def child_env() -> dict[str, str]:
    """Environment for child processes: no METRICTUI_<SECTION>__<KEY> overrides leak in."""
    return {k: v for k, v in os.environ.items() if not (k.startswith("METRICTUI_") and "__" in k)}


@dataclass(frozen=True, slots=True)
class Names:
    """Topics, consumer group and schema of one part of the run."""

    metrics_topic: str
    checks_topic: str
    group_id: str
    schema: str

    @property
    def topics(self) -> tuple[str, str]:
        return (self.metrics_topic, self.checks_topic)


class BenchEnv:
    """Owns the run tag, the work directory and everything to clean up afterwards."""

    def __init__(self, endpoints: Endpoints, workdir: Path, batch_max: int) -> None:
        self.endpoints = endpoints
        self.workdir = workdir
        self.batch_max = batch_max
        self.tag = uuid.uuid4().hex[:8]
        self._topics: list[str] = []
        self._schemas: list[str] = []

    def names(self, part: str, *, topics_of: str | None = None) -> Names:
        """Fresh names for `part`; `topics_of` reuses the topics of another part."""
        t = f"bench-{self.tag}-{topics_of or part}"
        schema = f"bench_{self.tag}_{part}".replace("-", "_")
        self._schemas.append(schema)
        if topics_of is None:
            self._topics += [f"{t}.metrics", f"{t}.checks"]
        return Names(f"{t}.metrics", f"{t}.checks", f"bench-{self.tag}-{part}", schema)

    def config(
        self, part: str, names: Names, *, targets: list[dict[str, Any]] | None = None, **extra: Any
    ) -> tuple[Config, Path]:
        """Write `<workdir>/<part>/metrictui.toml` (+ targets.toml) and load it."""
        folder = self.workdir / part
        folder.mkdir(parents=True, exist_ok=True)
        doc: dict[str, Any] = {
            "targets_file": str(folder / "targets.toml"),
            "kafka": {
                "bootstrap_servers": self.endpoints.bootstrap,
                "metrics_topic": names.metrics_topic,
                "checks_topic": names.checks_topic,
                "partitions": 3,
            },
            "postgres": {"dsn": self.endpoints.dsn, "schema": names.schema},
            "agent": {"name": f"bench-{part}", "spool_dir": str(folder / "spool")},
            "consumer": {"group_id": names.group_id, "batch_max": self.batch_max},
            "headless": {"control_socket": str(folder / "control.sock")},
        }
        for section, values in extra.items():
            doc.setdefault(section, {}).update(values)
        path = folder / "metrictui.toml"
        path.write_text(tomli_w.dumps(doc))
        path.chmod(0o600)
        (folder / "targets.toml").write_text(tomli_w.dumps({"targets": targets or []}))
        return load_config(path, env={}), path

    async def create_topics(self, config: Config) -> None:
        await ensure_topics(config.kafka)

    async def cleanup(self) -> None:
        """Drop every schema and topic this run made; best effort, never raises."""
        with contextlib.suppress(psycopg.Error, OSError):
            async with await psycopg.AsyncConnection.connect(
                self.endpoints.dsn, autocommit=True
            ) as conn:
                for schema in self._schemas:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())
        if not self._topics:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self.endpoints.bootstrap)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                await admin.start()
                try:
                    existing = set(await admin.list_topics())
                    doomed = [t for t in self._topics if t in existing]
                    if doomed:
                        await admin.delete_topics(doomed)
                finally:
                    await admin.close()
