"""engine.db.history against the real PostgreSQL: rows written by the sink's Store, read back
through the public views only (checks_v, samples_v)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import orjson
import psycopg
import pytest

from engine.db.history import fetch_host_summaries, fetch_target_history
from engine.db.migrate import migrate
from engine.envelope import MetricsEvent
from engine.sink.store import Store
from helpers.records import CERT_EXPIRY, check_event
from helpers.stack import Pipeline

pytestmark = pytest.mark.integration


@dataclass
class SeededSchema:
    dsn: str
    schema: str
    agent: str

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)


_check = check_event


def _metrics(agent: str, at: datetime, cpu: float, memory: float) -> MetricsEvent:
    labels = orjson.dumps({"cpu": "total"}, option=orjson.OPT_SORT_KEYS).decode()
    samples = [
        ("cpu.percent", labels, cpu, "%"),
        ("cpu.percent", orjson.dumps({"cpu": "0"}).decode(), 99.0, "%"),
        ("memory.percent", "{}", memory, "%"),
    ]
    return MetricsEvent.of(uuid.uuid4(), agent, "host-1", at, samples)


@pytest.fixture
async def pg_schema_with_checks(pipeline: Pipeline) -> SeededSchema:
    """A migrated schema holding a known hour of checks for target "web" (plus noise)."""
    await migrate(pipeline.stack.dsn, pipeline.schema)
    now = datetime.now(UTC)
    agent = pipeline.agent
    checks = [
        _check(agent, now - timedelta(minutes=50 - 5 * i), "web", True, 100.0 + 10 * i)
        for i in range(10)
    ]
    checks += [
        _check(agent, now - timedelta(minutes=31), "web", False, None),
        _check(agent, now - timedelta(minutes=32), "web", False, 5.0, reason="connect_error"),
        _check(agent, now - timedelta(minutes=33), "web", False, 8.0, reason="connect_error"),
        _check(agent, now - timedelta(hours=3), "web", False, None),  # outside the hour
        _check(agent, now - timedelta(minutes=10), "other", True, 9999.0),
    ]
    metrics = [
        _metrics(agent, now - timedelta(minutes=3), cpu=10.0, memory=40.0),
        _metrics(agent, now - timedelta(minutes=2), cpu=30.0, memory=60.0),
        _metrics("someone-else", now - timedelta(minutes=2), cpu=80.0, memory=90.0),
    ]
    store = Store(pipeline.stack.dsn, pipeline.schema)
    await store.connect()
    try:
        await store.write_batch(metrics, checks, [])
    finally:
        await store.close()
    return SeededSchema(pipeline.stack.dsn, pipeline.schema, agent)


async def test_target_history_summarises_the_last_hour(
    pg_schema_with_checks: SeededSchema,
) -> None:
    seeded = pg_schema_with_checks
    async with await seeded.connect() as conn:
        history = await fetch_target_history(conn, seeded.schema, "web", 3600)

    assert history.name == "web"
    assert history.checks == 13
    assert history.uptime_pct == pytest.approx(100 * 10 / 13)
    # percentiles over successful checks only: totals 100, 110, ..., 190
    assert history.p50_ms == pytest.approx(145.0)
    assert history.p95_ms == pytest.approx(185.5)
    assert history.p99_ms == pytest.approx(189.1)
    assert history.failures_by_reason == (("connect_error", 2), ("timeout", 1))
    assert history.cert_expires_at == CERT_EXPIRY


async def test_latency_series_has_one_point_per_minute_with_gaps_as_none(
    pg_schema_with_checks: SeededSchema,
) -> None:
    seeded = pg_schema_with_checks
    async with await seeded.connect() as conn:
        history = await fetch_target_history(conn, seeded.schema, "web", 3600)

    minutes = [at for at, _ in history.latency_series]
    assert 60 <= len(minutes) <= 61
    assert all(b - a == timedelta(minutes=1) for a, b in pairwise(minutes))
    values = [v for _, v in history.latency_series if v is not None]
    assert sorted(values) == [100.0 + 10 * i for i in range(10)]


async def test_unknown_target_has_empty_history(pg_schema_with_checks: SeededSchema) -> None:
    seeded = pg_schema_with_checks
    async with await seeded.connect() as conn:
        history = await fetch_target_history(conn, seeded.schema, "nope'; DROP TABLE x", 3600)

    assert history.checks == 0
    assert history.uptime_pct is None
    assert history.p50_ms is None
    assert history.failures_by_reason == ()
    assert all(v is None for _, v in history.latency_series)
    assert history.cert_expires_at is None


async def test_host_summaries_average_cpu_total_and_memory_per_agent(
    pg_schema_with_checks: SeededSchema,
) -> None:
    seeded = pg_schema_with_checks
    async with await seeded.connect() as conn:
        summaries = await fetch_host_summaries(conn, seeded.schema, 3600)
        only = await fetch_host_summaries(conn, seeded.schema, 3600, agent=seeded.agent)
    by_agent = {s.agent: s for s in summaries}

    mine = by_agent[seeded.agent]
    assert mine.host == "host-1"
    assert mine.cpu_avg_pct == pytest.approx(20.0)  # per-core 99% is not "total"
    assert mine.cpu_max_pct == pytest.approx(30.0)
    assert mine.memory_avg_pct == pytest.approx(50.0)
    assert mine.memory_max_pct == pytest.approx(60.0)
    assert by_agent["someone-else"].cpu_max_pct == pytest.approx(80.0)
    assert [s.agent for s in only] == [seeded.agent]
