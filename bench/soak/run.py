"""One soak run: the cluster, a real sink, a feeder at a steady rate, a fault every few minutes,
then a drain and the audit (see audit.py). Returns the report that __main__ writes out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import tomli_w
from aiokafka.admin import AIOKafkaAdminClient

from bench.cluster import Cluster, cluster_cmd, fully_replicated, start_cluster
from bench.soak.audit import audit
from bench.soak.faults import FAULTS, Processes, SoakFailure, fault_plan
from bench.soak.procs import Child, Incarnation, RssTrack, spawn_consumer, spawn_feeder, wait_until
from engine.config import load_config
from engine.kafka.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent.parent
DRAIN_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class SoakSettings:
    minutes: float
    rate: float
    faults: int
    seed: int
    workdir: Path
    keep_data: bool = False


def _write_config(workdir: Path, cluster: Cluster, tag: str) -> Path:
    doc: dict[str, Any] = {
        "targets_file": str(workdir / "targets.toml"),
        "kafka": {
            "bootstrap_servers": cluster.bootstrap,
            "metrics_topic": f"soak-{tag}.metrics",
            "checks_topic": f"soak-{tag}.checks",
            "partitions": 3,
            "replication_factor": 3,
            "request_timeout_s": 10.0,
        },
        "postgres": {"dsn": cluster.dsn, "schema": f"soak_{tag}"},
        "agent": {"spool_dir": str(workdir / "spool"), "spool_max_mb": 4096},
        "consumer": {"group_id": f"soak-{tag}"},
        "headless": {"status_interval": 2.0, "control_socket": str(workdir / "control.sock")},
    }
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "targets.toml").write_text(tomli_w.dumps({"targets": []}))
    path = workdir / "metrictui.toml"
    path.write_text(tomli_w.dumps(doc))
    path.chmod(0o600)
    return path


def _kafka_pids() -> dict[str, int]:
    info = json.loads(cluster_cmd("status", "--json"))
    return {f"kafka-{n['node_id']}": n["pid"] for n in info["kafka_nodes"] if n["pid"]}


class Soak:
    """Owns the processes of one run, their RSS tracks, and the fault log."""

    def __init__(self, settings: SoakSettings) -> None:
        self.s = settings
        self.tag = uuid.uuid4().hex[:8]
        self.commit = _git_head()  # the code this run starts with
        self.workdir = settings.workdir / f"soak-{self.tag}"
        self.cluster = start_cluster()
        self.config = _write_config(self.workdir, self.cluster, self.tag)
        loaded = load_config(self.config, env={})
        self.topics = [loaded.kafka.metrics_topic, loaded.kafka.checks_topic]
        self.schema = loaded.postgres.schema
        self.incarnations: list[Incarnation] = []
        self.consumers: list[Child] = []
        self.rss: dict[int, RssTrack] = {}
        self.faults: list[dict[str, Any]] = []
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "metrictui"), "--config", str(self.config), "migrate"],
            check=True,
            capture_output=True,
        )
        asyncio.run(ensure_topics(loaded.kafka))

    def new_feeder(self) -> Incarnation:
        inc = spawn_feeder(self.workdir, self.tag, len(self.incarnations), self.config, self.s.rate)
        self.incarnations.append(inc)
        self.rss[inc.child.proc.pid] = inc.child.rss
        return inc

    def new_consumer(self) -> Child:
        child = spawn_consumer(self.workdir, len(self.consumers), self.config)
        self.consumers.append(child)
        self.rss[child.proc.pid] = child.rss
        return child

    def sample_rss(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, OSError, ValueError):
            for name, pid in _kafka_pids().items():
                self.rss.setdefault(pid, RssTrack(name, pid))
        for track in self.rss.values():
            track.sample()

    def run(self) -> dict[str, Any]:
        started_at = datetime.now(UTC)
        procs = Processes(
            self.new_feeder(), self.new_consumer(), self.new_feeder, self.new_consumer, self.s.rate
        )
        rng = random.Random(self.s.seed)
        plan = fault_plan(self.s.faults, rng)
        duration = self.s.minutes * 60
        start = time.monotonic()
        # Faults at evenly spaced times, none in the first or last slot (warm-up, drain).
        slots = [start + duration * (i + 1) / (len(plan) + 1) for i in range(len(plan))]
        print(
            f"soak {self.tag}: {self.s.minutes:g} min at {self.s.rate:g} events/s, faults {plan}",
            flush=True,
        )
        try:
            # The duration is a minimum: every planned fault happens, even if one overruns.
            while (now := time.monotonic()) < start + duration or slots:
                if slots and now >= slots[0]:
                    slots.pop(0)
                    self._inject(plan[len(self.faults)], procs, start)
                self.sample_rss()
                self._check_alive(procs)
                next_at = slots[0] if slots else start + duration
                time.sleep(min(5.0, max(0.2, next_at - time.monotonic())))
            self.sample_rss()
            drain = self._drain(procs)
        except BaseException:
            self._stop_all()
            if not self.s.keep_data:
                self._drop_data()
            raise
        self._stop_all()
        verdict = audit(self.cluster.dsn, self.schema, self.incarnations)
        report = {
            "tag": self.tag,
            "commit": self.commit,
            "started_at": started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "minutes": self.s.minutes,
            "rate_per_s": self.s.rate,
            "seed": self.s.seed,
            "brokers": len(self.cluster.node_ids),
            "replication_factor": 3,
            "min_insync_replicas": 2,
            "fault_count": len(self.faults),
            "faults_by_kind": {k: sum(f["kind"] == k for f in self.faults) for k in FAULTS},
            "faults": self.faults,
            "drain_s": drain,
            **verdict,
            "rss": [t.report() for t in self.rss.values()],
        }
        report["ok"] = (
            report["lost_unexplained"] == 0
            and report["duplicates"] == 0
            and report["sample_rows_missing"] == 0
            and report["produced"]
            == report["stored"] + report["dead_lettered"] + report["lost_in_memory_at_sigkill"]
        )
        if not self.s.keep_data:
            self._drop_data()
        return report

    def _inject(self, kind: str, procs: Processes, start: float) -> None:
        at = time.monotonic() - start
        print(f"[{at:7.1f} s] fault {len(self.faults) + 1}: {kind} ...", flush=True)
        began = time.monotonic()
        details = FAULTS[kind](self.cluster, procs, self.topics)
        took = time.monotonic() - began
        self.faults.append(
            {"kind": kind, "at_s": round(at, 1), "took_s": round(took, 1), **details}
        )
        print(f"[{time.monotonic() - start:7.1f} s] {kind} over: {details}", flush=True)

    def _check_alive(self, procs: Processes) -> None:
        for child in (procs.feeder.child, procs.consumer):
            if not child.running:
                tail = child.log.read_text(errors="replace")[-3000:]
                raise SoakFailure(f"{child.name} exited ({child.proc.returncode}):\n{tail}")

    def _drain(self, procs: Processes) -> dict[str, float]:
        """Heal the cluster, stop making, let the feeder empty its spool and queue, stop it
        (SIGTERM), then wait for the sink to catch up."""
        began = time.monotonic()
        self.cluster.restore()
        wait_until(lambda: asyncio.run(fully_replicated(self.cluster.bootstrap, self.topics)), 180)
        feeder = procs.feeder
        feeder.child.signal(signal.SIGUSR1)

        def feeder_empty() -> bool:
            st = feeder.read_status()
            return bool(st.get("paused")) and st.get("spool") == 0 and st.get("queued") == 0

        if not wait_until(feeder_empty, DRAIN_TIMEOUT_S):
            raise SoakFailure(f"the feeder did not empty its spool: {feeder.read_status()}")
        time.sleep(1.0)  # the last batch acknowledged
        code = feeder.child.stop()
        if code != 0:
            raise SoakFailure(f"the feeder exited {code} on SIGTERM")
        feeder_s = time.monotonic() - began
        made = sum(inc.marks_list()[-1][0] for inc in self.incarnations if inc.marks_list())
        if not wait_until(lambda: self._sink_settled(made), DRAIN_TIMEOUT_S, 2.0):
            raise SoakFailure("the sink did not catch up")
        code = procs.consumer.stop()
        return {"feeder_s": round(feeder_s, 1), "total_s": round(time.monotonic() - began, 1)}

    _last_count: tuple[int, float] = (-1, 0.0)

    def _sink_settled(self, made: int) -> bool:
        """All made events stored, or the count unchanged for 20 s with lag 0 (events lost in
        a SIGKILL never arrive)."""
        with psycopg.connect(self.cluster.dsn, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.schema}", public'.encode())
            row = conn.execute("SELECT count(*) FROM events").fetchone()
        count = int(row[0]) if row else 0
        if count >= made:
            return True
        if count != self._last_count[0]:
            self._last_count = (count, time.monotonic())
            return False
        lag = self.consumers[-1].last_status().get("lag")
        return lag == "0" and time.monotonic() - self._last_count[1] >= 20.0

    def _stop_all(self) -> None:
        for inc in self.incarnations:
            if inc.child.running:
                inc.child.kill()
        for child in self.consumers:
            if child.running:
                child.kill()

    def _drop_data(self) -> None:
        with (
            contextlib.suppress(psycopg.Error, OSError),
            psycopg.connect(self.cluster.dsn, autocommit=True) as conn,
        ):
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'.encode())

        async def delete_topics() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.cluster.bootstrap)
            await admin.start()
            try:
                await admin.delete_topics(self.topics)
            finally:
                await admin.close()

        with contextlib.suppress(Exception):
            asyncio.run(delete_topics())


def _git_head() -> str:
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip()


def run_soak(settings: SoakSettings) -> dict[str, Any]:
    return Soak(settings).run()
