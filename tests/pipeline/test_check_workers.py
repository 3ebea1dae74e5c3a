"""Check worker processes against real local sites (and, end to end, the real Kafka stack):
every field measured in a worker arrives intact, edits apply at runtime, a killed worker is
reported once and replaced, and stopping leaves no process behind."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psutil
import pytest

from engine.agent.checks.pool import CheckWorkerPool, WorkerSetup, shard_of
from engine.config import load_config
from engine.engine import Engine
from engine.envelope import decode_event
from engine.records.check_result import CheckResult
from engine.targets import Target
from helpers.kafka_tools import read_topic
from helpers.sites import LocalSites
from helpers.stack import Pipeline, metrictui_cmd

INTERVAL = 0.5


class Results:
    """Collects what the pool hands to the engine, per target, with arrival times."""

    def __init__(self) -> None:
        self.by_target: dict[str, list[tuple[float, CheckResult, float, bytes]]] = defaultdict(list)
        self.errors: list[str] = []

    def on_result(self, result: CheckResult, lateness: float, event: bytes) -> None:
        self.by_target[result.target].append((time.monotonic(), result, lateness, event))

    def count_since(self, name: str, since: float) -> int:
        return sum(1 for at, *_ in self.by_target.get(name, []) if at >= since)

    async def wait(self, predicate: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            await asyncio.sleep(0.1)
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


@asynccontextmanager
async def running_pool(
    targets: list[Target], workers: int = 2
) -> AsyncIterator[tuple[CheckWorkerPool, Results]]:
    results = Results()
    setup = WorkerSetup("agent-w", "host-w", 1_048_576, 64)
    pool = CheckWorkerPool(workers, setup, results.on_result, results.errors.append)
    pool.set_targets(targets)
    pool.start()
    try:
        yield pool, results
    finally:
        pids = pool.pids()
        await pool.stop()
        for pid in pids:
            assert not _alive(pid), f"worker {pid} outlived stop()"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def names_on_each_worker(prefix: str, workers: int = 2) -> list[str]:
    """One target name per worker (the shard hash decides, so pick names that differ)."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < workers:
        found.setdefault(shard_of(f"{prefix}{i}", workers), f"{prefix}{i}")
        i += 1
    return [found[w] for w in range(workers)]


async def test_every_field_measured_in_a_worker_arrives_intact(local_sites: LocalSites) -> None:
    sites = local_sites
    plain, tls = names_on_each_worker("site-")
    targets = [
        Target(name=plain, url=sites.http_url("/"), interval=INTERVAL, regex="all good"),
        Target(
            name=tls,
            url=sites.https_url("/", host="localhost"),
            interval=INTERVAL,
            ca_file=str(sites.ca_file),
        ),
        Target(name="http500", url=sites.http_url("/status/500"), interval=INTERVAL),
        Target(name="refused", url=sites.refused_url, interval=INTERVAL, timeout=3),
    ]
    async with running_pool(targets) as (pool, got):
        await got.wait(
            lambda: all(len(got.by_target[t.name]) >= 2 for t in targets), 30, "two rounds"
        )
        assert len(pool.pids()) == 2
    for _, result, lateness, event in got.by_target[plain]:
        assert result.ok and result.status_code == 200 and result.content_match is True
        assert result.dns_ms is None and result.tls_ms is None  # an IP literal over http
        assert result.connect_ms is not None and result.connect_ms > 0
        assert result.ttfb_ms is not None and 0 < result.ttfb_ms <= (result.total_ms or 0)
        assert result.resolved_ip == "127.0.0.1" and result.cert_expires_at is None
        assert 0 <= lateness < INTERVAL
        _assert_event_is(result, event)
    for _, result, _, event in got.by_target[tls]:
        assert result.ok and result.status_code == 200
        assert result.dns_ms is not None and result.dns_ms >= 0  # "localhost" is resolved
        assert result.tls_ms is not None and result.tls_ms > 0
        assert result.cert_expires_at is not None
        assert abs(result.cert_expires_at - sites.https_cert_expires_at) < timedelta(seconds=1)
        _assert_event_is(result, event)
    assert {r.reason for _, r, _, _ in got.by_target["http500"]} == {"status_mismatch"}
    assert {r.reason for _, r, _, _ in got.by_target["refused"]} == {"connect_error"}
    assert got.errors == []


def _assert_event_is(result: CheckResult, event: bytes) -> None:
    decoded = decode_event(event, now=datetime.now(UTC), max_age=timedelta(days=1))
    assert decoded.agent == "agent-w" and decoded.host == "host-w"
    assert orjson.loads(event)["payload"] == orjson.loads(orjson.dumps(result.to_payload()))


async def test_target_edits_apply_to_the_workers_at_runtime(local_sites: LocalSites) -> None:
    sites = local_sites
    one, two = names_on_each_worker("edit-")
    first = [
        Target(name=one, url=sites.http_url("/"), interval=INTERVAL),
        Target(name=two, url=sites.http_url("/"), interval=INTERVAL),
    ]
    async with running_pool(first) as (pool, got):
        await got.wait(lambda: got.by_target[one] and got.by_target[two], 30, "first results")
        # add
        pool.set_targets([*first, Target(name="added", url=sites.http_url("/"), interval=INTERVAL)])
        await got.wait(lambda: got.by_target["added"], 10, "the added target")
        # edit one (new URL), disable the other, delete the added one
        edited = replace(first[0], url=sites.http_url("/status/201"))
        pool.set_targets([edited, replace(first[1], enabled=False)])
        changed = time.monotonic()
        await got.wait(
            lambda: any(r.status_code == 201 for _, r, _, _ in got.by_target[one]),
            10,
            "the edited URL",
        )
        await asyncio.sleep(3 * INTERVAL)
        settled = time.monotonic()
        await asyncio.sleep(4 * INTERVAL)
        assert got.count_since(two, settled) == 0, "a disabled target still ran"
        assert got.count_since("added", settled) == 0, "a deleted target still ran"
        late = [r for at, r, _, _ in got.by_target[one] if at >= changed]
        assert late and all(r.url == edited.url for r in late[1:])
        # enable again
        pool.set_targets([edited, first[1]])
        again = time.monotonic()
        await got.wait(lambda: got.count_since(two, again) > 0, 10, "the re-enabled target")


async def test_a_killed_worker_is_said_once_replaced_and_its_targets_resume(
    local_sites: LocalSites, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="metrictui.checks")
    names = names_on_each_worker("kill-")
    targets = [Target(name=n, url=local_sites.http_url("/"), interval=INTERVAL) for n in names]
    async with running_pool(targets) as (pool, got):
        await got.wait(lambda: all(got.by_target[n] for n in names), 30, "first results")
        victim = pool.pids()[0]
        os.kill(victim, signal.SIGKILL)
        await got.wait(lambda: got.errors, 10, "the death to be noticed")
        killed = time.monotonic()
        await got.wait(
            lambda: all(got.count_since(n, killed + 0.1) >= 2 for n in names),
            30,
            "every target checked again after the restart",
        )
        assert pool.restarts == 1 and victim not in pool.pids() and len(pool.pids()) == 2
    (line,) = got.errors
    assert line.startswith("check worker 0 (pid ") and "exited with code -9" in line
    assert "restarting it" in line and "\n" not in line
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged == [line]


async def test_stop_is_prompt_and_leaves_no_process(local_sites: LocalSites) -> None:
    targets = [
        Target(name=f"s{i}", url=local_sites.http_url("/sleep/30"), interval=INTERVAL, timeout=60)
        for i in range(20)
    ]
    results = Results()
    pool = CheckWorkerPool(2, WorkerSetup("a", "h", 1024, 64), results.on_result)
    pool.set_targets(targets)
    pool.start()
    deadline = time.monotonic() + 30
    while len(pool.pids()) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # checks are in flight now (each waits 30 s for its headers)
    pids = pool.pids()
    started = time.monotonic()
    await pool.stop()
    assert time.monotonic() - started < 5
    assert len(pids) == 2 and not any(_alive(pid) for pid in pids)


@pytest.mark.integration
def test_headless_producer_with_workers_ships_each_check_once_and_stops_cleanly(
    pipeline: Pipeline, local_sites: LocalSites, tmp_path: Path
) -> None:
    """The real `metrictui --headless --role producer` with two check workers: a worker
    killed mid-run is replaced, SIGTERM exits 0 within 10 s leaving no worker behind, and
    Kafka holds every check once, with its fields."""
    pipeline.write_config(agent={"check_workers": 2})
    names = [f"e2e-{i}" for i in range(6)]
    pipeline.write_targets(
        [{"name": n, "url": local_sites.http_url("/"), "interval": 1} for n in names]
        + [
            {
                "name": "e2e-tls",
                "url": local_sites.https_url("/", host="localhost"),
                "ca_file": str(local_sites.ca_file),
                "interval": 1,
            }
        ]
    )
    log = tmp_path / "producer.log"
    proc = subprocess.Popen(
        metrictui_cmd("--config", str(pipeline.config_path), "--headless", "--role", "producer"),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        me = psutil.Process(proc.pid)
        deadline = time.monotonic() + 30
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and len(workers) < 2:
            workers = [
                c for c in me.children() if "engine.agent.checks.worker" in " ".join(c.cmdline())
            ]
            time.sleep(0.2)
        assert len(workers) == 2, log.read_text()[-3000:]
        time.sleep(4)
        workers[0].kill()
        killed_at = datetime.now(UTC)
        time.sleep(8)
        all_children = me.children(recursive=True)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert code == 0 and took < 10, text[-3000:]
    time.sleep(0.5)
    assert not [c.pid for c in all_children if _alive(c.pid)], "orphaned processes"
    deaths = [line for line in text.splitlines() if "check worker" in line and "restarting" in line]
    assert len(deaths) == 1, text[-3000:]

    values = asyncio.run(read_topic(pipeline.stack.bootstrap, pipeline.checks_topic))
    events = [orjson.loads(v) for v in values]
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), "a check was shipped twice"
    by_target: dict[str, list[dict[str, object]]] = defaultdict(list)
    for e in events:
        by_target[e["payload"]["target"]].append(e["payload"])
    assert set(by_target) == {*names, "e2e-tls"}
    for name, payloads in by_target.items():
        starts = [p["started_at"] for p in payloads]
        assert len(starts) == len(set(starts)), f"{name}: the same check twice"
        after = [
            s for s in starts if datetime.fromisoformat(str(s)) > killed_at + timedelta(seconds=3)
        ]
        assert after, f"{name} was not checked after the worker was replaced"
        assert all(p["ok"] is True and p["status_code"] == 200 for p in payloads), payloads
    for p in by_target["e2e-tls"]:
        assert p["tls_ms"] and p["dns_ms"] is not None and p["cert_expires_at"]


@pytest.mark.integration
async def test_engine_target_controls_reach_the_workers(
    pipeline: Pipeline, local_sites: LocalSites
) -> None:
    """The engine's control API (what the dashboard and the control socket call) applies to
    targets checked in worker processes: add, edit, disable, enable and delete."""
    pipeline.write_config(agent={"check_workers": 2, "metrics_interval": 60.0})
    pipeline.write_targets(
        [{"name": "base", "url": local_sites.http_url("/"), "interval": INTERVAL}]
    )
    engine = Engine(load_config(pipeline.config_path, {}), role="producer")
    got = Results()
    original = engine._on_check

    def on_check(result: CheckResult, lateness: float, *event: bytes) -> None:
        got.on_result(result, lateness, event[0] if event else b"")
        original(result, lateness, *event)

    setattr(engine, "_on_check", on_check)  # noqa: B010 - instrumenting an instance
    await engine.start()
    try:
        assert isinstance(engine.scheduler, CheckWorkerPool) and engine.scheduler.workers == 2
        await got.wait(lambda: got.by_target["base"], 30, "the first result")
        assert got.by_target["base"][0][3], "the worker encoded the event"
        await engine.add_target(
            Target(name="new", url=local_sites.http_url("/"), interval=INTERVAL)
        )
        await got.wait(lambda: got.by_target["new"], 15, "the added target")
        await engine.update_target(
            "new", Target(name="new", url=local_sites.http_url("/status/202"), interval=INTERVAL)
        )
        await got.wait(
            lambda: any(r.status_code == 202 for _, r, _, _ in got.by_target["new"]),
            15,
            "the edited target",
        )
        await engine.set_target_enabled("base", False)
        await asyncio.sleep(3 * INTERVAL)
        quiet = time.monotonic()
        await asyncio.sleep(4 * INTERVAL)
        assert got.count_since("base", quiet) == 0
        await engine.set_target_enabled("base", True)
        again = time.monotonic()
        await got.wait(lambda: got.count_since("base", again) > 0, 15, "the re-enabled target")
        await engine.delete_target("new")
        await asyncio.sleep(3 * INTERVAL)
        gone = time.monotonic()
        await asyncio.sleep(4 * INTERVAL)
        assert got.count_since("new", gone) == 0
        snap = engine.snapshot()
        assert snap.checks_total >= sum(len(v) for v in got.by_target.values()) > 0
    finally:
        await engine.stop(timeout=10)
