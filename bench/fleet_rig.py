"""A real fleet on the local stack: N agent processes, one sink process, PostgreSQL as judge.

Used by the fleet tests (tests/fleet/, tests/faults/) and by `make bench` (bench/fleet_parts.py,
bench/fleet_scale.py).
Each agent is `metrictui --headless --role producer` with `targets_source = "kafka"`; the
sink is `--role consumer`. Nothing is mocked: the agents form a real Kafka consumer group.
Every figure is read back from `checks_v` / `agents_v` (check start times, agents' names).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import tomli_w
from aiokafka.admin import AIOKafkaAdminClient

from engine.config.model import KafkaConfig
from engine.fleet.publish import publish_targets
from engine.targets.model import target_from_dict

ROOT = Path(__file__).resolve().parent.parent


def metrictui_cmd(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "metrictui"), *args]


@dataclass
class Agent:
    name: str
    location: str
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class FleetRig:
    """One isolated fleet: its own topics, groups (by a unique location prefix) and schema."""

    bootstrap: str
    dsn: str
    web_url: str
    dir: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    agents: dict[str, Agent] = field(default_factory=dict)
    sink: subprocess.Popen[bytes] | None = None
    session_timeout_s: float = 3.0
    targets_partitions: int = 60
    replication_factor: int = 1

    @property
    def schema(self) -> str:
        return f"f_{self.tag}"

    def location(self, name: str) -> str:
        """Locations are per rig, so concurrent rigs never share a consumer group."""
        return f"{name}-{self.tag}"

    def config_doc(self, name: str, location: str, role: str) -> dict[str, Any]:
        return {
            "targets_source": "kafka",
            "targets_file": str(self.dir / "targets.toml"),
            "kafka": {
                "bootstrap_servers": self.bootstrap,
                "metrics_topic": f"f-{self.tag}.metrics",
                "checks_topic": f"f-{self.tag}.checks",
                "targets_topic": f"f-{self.tag}.targets",
                "targets_partitions": self.targets_partitions,
                "replication_factor": self.replication_factor,
                "partitions": 3,
                "request_timeout_s": 5.0,
            },
            "postgres": {"dsn": self.dsn, "schema": self.schema},
            "agent": {
                "name": name,
                "location": location,
                "metrics_interval": 60.0,
                "metrics": ["load"],
                "spool_dir": str(self.dir / f"spool-{name}"),
                "check_workers": 0,
                "heartbeat_interval": 1.0,
                "session_timeout_s": self.session_timeout_s,
            },
            "consumer": {"group_id": f"sink-{self.tag}", "flush_ms": 100},
            "headless": {"status_interval": 60.0, "control_socket": ""},
        }

    def write_config(self, name: str, location: str, role: str = "producer") -> Path:
        path = self.dir / f"{name}.toml"
        path.write_text(tomli_w.dumps(self.config_doc(name, location, role)))
        path.chmod(0o600)
        return path

    # -- processes ----------------------------------------------------------------------

    def start_sink(self) -> None:
        config = self.write_config(f"sink-{self.tag}", self.location("sink"), "consumer")
        log = open(self.dir / "sink.log", "wb")  # noqa: SIM115 - the child owns it
        self.sink = subprocess.Popen(
            metrictui_cmd("--config", str(config), "--headless", "--role", "consumer"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_agent(self, name: str, location: str) -> Agent:
        config = self.write_config(name, self.location(location))
        agent = Agent(name, location, config, self.dir / f"{name}.log")
        out = open(agent.log, "ab")  # noqa: SIM115 - the child owns it
        agent.proc = subprocess.Popen(
            metrictui_cmd("--config", str(config), "--headless", "--role", "producer"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.agents[name] = agent
        return agent

    def signal_agent(self, name: str, sig: int) -> float:
        """Send `sig` to one agent; returns the wall-clock time it was sent."""
        proc = self.agents[name].proc
        assert proc is not None
        at = time.time()
        proc.send_signal(sig)
        return at

    def wait_exit(self, name: str, timeout: float = 20.0) -> int:
        proc = self.agents[name].proc
        assert proc is not None
        return proc.wait(timeout=timeout)

    def stop_all(self) -> None:
        procs = [a.proc for a in self.agents.values() if a.proc is not None]
        if self.sink is not None:
            procs.append(self.sink)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def drop_schema(self) -> None:
        """Drop the schema and delete the topics (many partitions slow a broker's restart)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'.encode())
        with contextlib.suppress(Exception):
            asyncio.run(self._delete_topics())

    async def _delete_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            kafka = self.config_doc("x", "x", "producer")["kafka"]
            topics = [kafka["metrics_topic"], kafka["checks_topic"], kafka["targets_topic"]]
            existing = set(await admin.list_topics())
            await admin.delete_topics([t for t in topics if t in existing])
        finally:
            await admin.close()

    # -- targets ------------------------------------------------------------------------

    def targets(self, count: int, interval: float, prefix: str = "t") -> list[dict[str, Any]]:
        return [
            {
                "name": f"{prefix}{i:05d}",
                "url": f"{self.web_url}?t={prefix}{i}",
                "interval": interval,
            }
            for i in range(count)
        ]

    def import_targets(
        self, targets: list[dict[str, Any]], *extra: str
    ) -> subprocess.CompletedProcess[str]:
        path = self.dir / f"import-{uuid.uuid4().hex[:6]}.toml"
        path.write_text(tomli_w.dumps({"targets": targets}))
        config = self.write_config(f"cli-{self.tag}", self.location("cli"))
        return subprocess.run(
            metrictui_cmd("--config", str(config), "targets", "import", str(path), *extra),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def publish(self, targets: list[dict[str, Any]]) -> float:
        """Publish targets the way `targets import` does, in this process; returns the time
        Kafka confirmed them."""
        doc = self.config_doc("bench", "bench", "producer")
        cfg = KafkaConfig(**{k: v for k, v in doc["kafka"].items() if k != "partitions"})
        parsed = [target_from_dict(t, where="bench", base_dir=self.dir) for t in targets]
        asyncio.run(publish_targets(cfg, parsed))
        return time.time()

    # -- PostgreSQL as judge --------------------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
            ).fetchall()
            if not exists:
                return []
            conn.execute(f'SET search_path TO "{self.schema}", public'.encode())
            try:
                return conn.execute(sql.encode() if not params else sql, params).fetchall()
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):  # migrating
                return []

    def checks_since(self, since: float) -> list[tuple[str, str, float, str | None]]:
        """(target, agent, epoch seconds, location) of every check started at/after `since`."""
        rows = self.query(
            "SELECT target, agent, extract(epoch FROM ts)::float8, location FROM checks_v"
            " WHERE ts >= to_timestamp(%s) ORDER BY ts",
            (since,),
        )
        return [(str(t), str(a), float(ts), loc) for t, a, ts, loc in rows]

    def wait_for(self, what: str, ok: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(0.5)
        raise AssertionError(
            f"timed out after {timeout:g} s waiting for {what}; logs in {self.dir}"
        )


def owners(checks: list[tuple[str, str, float, str | None]]) -> dict[str, str]:
    """target -> the agent that checked it last in `checks`."""
    last: dict[str, str] = {}
    for target, agent, _, _ in checks:
        last[target] = agent
    return last


def failover_delays(
    checks: list[tuple[str, str, float, str | None]], dead: str, dead_targets: set[str], at: float
) -> dict[str, float | None]:
    """Per target the dead agent owned: seconds from `at` to its first check by another agent."""
    first: dict[str, float | None] = dict.fromkeys(dead_targets)
    for target, agent, ts, _ in checks:
        if target in first and first[target] is None and agent != dead and ts >= at:
            first[target] = ts - at
    return first


def handover_gaps(
    checks: list[tuple[str, str, float, str | None]], dead: str, dead_targets: set[str], at: float
) -> list[float]:
    """Per target the dead agent owned: its longest gap between two checks around `at` (its
    last check by `dead`, the first by a survivor). One interval means a seamless hand-over."""
    last: dict[str, float] = {}
    gaps: dict[str, float] = {}
    for target, agent, ts, _ in checks:
        if target not in dead_targets:
            continue
        if agent == dead:
            last[target] = ts
        elif ts >= at and target not in gaps and target in last:
            gaps[target] = ts - last[target]
    return list(gaps.values())


def double_and_missed(
    checks: list[tuple[str, str, float, str | None]], interval: float, start: float, end: float
) -> tuple[int, int]:
    """(double checks, missed slots) per location over [start, end], from gaps between checks.

    A gap under half an interval is a double check; a gap of n intervals (n >= 2, rounded)
    misses n - 1 slots. The window's ends count as gaps too (a target silent throughout
    misses every slot).
    """
    by_key: dict[tuple[str, str | None], list[float]] = defaultdict(list)
    for target, _, ts, location in checks:
        if start <= ts <= end:
            by_key[(target, location)].append(ts)
    doubles = missed = 0
    for times in by_key.values():
        times.sort()
        for a, b in itertools.pairwise(times):
            gap = b - a
            if gap < 0.5 * interval:
                doubles += 1
            elif gap > 1.5 * interval:
                missed += round(gap / interval) - 1
        missed += max(0, round((times[0] - start) / interval) - 1)
        missed += max(0, round((end - times[-1]) / interval) - 1)
    return doubles, missed


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def since_epoch(ts: datetime) -> float:
    return ts.timestamp()
