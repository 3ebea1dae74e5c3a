"""Retention drops whole daily partitions older than retention_days, and nothing younger.

Back-dated events are written through the sink's own Store (so the partitions are the ones
production creates), then retention runs: directly, through `metrictui retention`, and as the
consumer's start-up task.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from engine.db.migrate import migrate
from engine.db.retention import (
    RETENTION_LOCK,
    Partition,
    apply_retention,
    expired_partitions,
)
from engine.envelope import CheckEvent, MetricsEvent
from engine.records.check_result import CHECK_FIELDS
from engine.sink.store import Store
from helpers.stack import Pipeline, metrictui_cmd


def test_only_days_that_ended_before_the_cutoff_expire() -> None:
    parts = [Partition(date(2026, 3, d), "samples", f"samples_202603{d:02d}") for d in (1, 2, 3)]
    cutoff = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert [p.day.day for p in expired_partitions(parts, cutoff)] == [1, 2]
    cutoff = datetime(2026, 3, 2, 23, 59, tzinfo=UTC)  # March 2 still has a minute to keep
    assert [p.day.day for p in expired_partitions(parts, cutoff)] == [1]


def _events(agent: str, at: datetime) -> tuple[MetricsEvent, CheckEvent]:
    metrics = MetricsEvent.of(
        uuid.uuid4(), agent, "h", at, [("memory.percent", orjson.dumps({}).decode(), 50.0, "%")]
    )
    values: dict[str, Any] = dict.fromkeys(CHECK_FIELDS)
    values.update(target="web", url="http://x/", method="GET", ok=True, status_code=200)
    check = CheckEvent(uuid.uuid4(), agent, "h", at, tuple(values[f] for f in CHECK_FIELDS))
    return metrics, check


AGES_DAYS = (40, 10, 8, 6, 1, 0)  # retention 7: 40, 10 and 8 days old go; 6, 1 and 0 stay


async def _seed(p: Pipeline, now: datetime) -> dict[int, date]:
    """One metrics and one check event per age; returns age -> UTC day of its partition."""
    await migrate(p.stack.dsn, p.schema)
    store = Store(p.stack.dsn, p.schema)
    await store.connect()
    days = {}
    try:
        for age in AGES_DAYS:
            at = now - timedelta(days=age)
            metrics, check = _events(p.agent, at)
            await store.write_batch([metrics], [check], [])
            days[age] = at.date()
    finally:
        await store.close()
    return days


def _partitions(p: Pipeline) -> set[str]:
    rows = p.query(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
        (p.schema,),
    )
    return {r[0] for r in rows}


def _names(days: list[date]) -> set[str]:
    return {f"{t}_{d:%Y%m%d}" for d in days for t in ("events", "samples", "checks")}


def _stored_days(p: Pipeline) -> dict[str, set[date]]:
    return {
        "samples": {r[0].astimezone(UTC).date() for r in p.query("SELECT ts FROM samples_v")},
        "checks": {r[0].astimezone(UTC).date() for r in p.query("SELECT ts FROM checks_v")},
        "events": {r[0].astimezone(UTC).date() for r in p.query("SELECT observed_at FROM events")},
    }


@pytest.mark.integration
async def test_retention_drops_old_day_partitions_and_keeps_recent_data(
    pipeline: Pipeline,
) -> None:
    now = datetime.now(UTC)
    days = await _seed(pipeline, now)
    old = [days[a] for a in (40, 10, 8)]
    kept = [days[a] for a in (6, 1, 0)]
    assert _names(old + kept) <= _partitions(pipeline)

    async with await psycopg.AsyncConnection.connect(pipeline.stack.dsn, autocommit=True) as conn:
        dry = await apply_retention(conn, pipeline.schema, 7, now=now, dry_run=True)
        assert {p.name for p in dry.expired} == _names(old) and dry.dropped == []
        assert _names(old) <= _partitions(pipeline)

        result = await apply_retention(conn, pipeline.schema, 7, now=now)
    assert set(result.dropped) == _names(old) and not result.busy
    assert not _names(old) & _partitions(pipeline)
    assert _names(kept) <= _partitions(pipeline)
    for table, stored in _stored_days(pipeline).items():
        assert stored == set(kept), table


@pytest.mark.integration
async def test_retention_waits_its_turn_when_another_consumer_holds_the_lock(
    pipeline: Pipeline,
) -> None:
    now = datetime.now(UTC)
    await _seed(pipeline, now)
    before = _partitions(pipeline)
    dsn = pipeline.stack.dsn
    async with (
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as other,
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn,
    ):
        await other.execute(
            "SELECT pg_advisory_lock(%s, hashtext(%s))", (RETENTION_LOCK, pipeline.schema)
        )
        result = await apply_retention(conn, pipeline.schema, 7, now=now)
        assert result.skipped_locked and result.dropped == []
        assert _partitions(pipeline) == before
        await other.execute(
            "SELECT pg_advisory_unlock(%s, hashtext(%s))", (RETENTION_LOCK, pipeline.schema)
        )
        assert (await apply_retention(conn, pipeline.schema, 7, now=now)).dropped


@pytest.mark.integration
async def test_retention_times_out_on_a_busy_table_instead_of_stalling(
    pipeline: Pipeline,
) -> None:
    now = datetime.now(UTC)
    days = await _seed(pipeline, now)
    dsn = pipeline.stack.dsn
    async with (
        await psycopg.AsyncConnection.connect(dsn) as reader,  # holds a lock until rollback
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn,
    ):
        await reader.execute(f'SELECT count(*) FROM "{pipeline.schema}".samples_v'.encode())
        started = time.monotonic()
        result = await apply_retention(conn, pipeline.schema, 7, now=now)
        assert time.monotonic() - started < 30
        assert set(result.busy) == _names([days[a] for a in (40, 10, 8)])
        await reader.rollback()
        assert set((await apply_retention(conn, pipeline.schema, 7, now=now)).dropped) == set(
            result.busy
        )


@pytest.mark.integration
async def test_retention_command_dry_run_lists_then_drops(pipeline: Pipeline) -> None:
    days = await _seed(pipeline, datetime.now(UTC))
    pipeline.write_config(postgres={"retention_days": 7})
    cfg = str(pipeline.config_path)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            metrictui_cmd("--config", cfg, "retention", *args),
            capture_output=True,
            text=True,
            timeout=60,
        )

    dry = cli("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would drop 9 partitions" in dry.stdout and f"samples_{days[40]:%Y%m%d}" in dry.stdout
    assert len(_partitions(pipeline)) == 18
    real = cli()
    assert real.returncode == 0 and "dropped 9 partitions" in real.stdout
    assert len(_partitions(pipeline)) == 9
    again = cli("--days", "1")
    assert "dropped 3 partitions" in again.stdout  # the 6-day-old ones; yesterday's is kept
    pipeline.write_config(postgres={"retention_days": 0})
    off = cli()
    assert off.returncode == 0 and "retention is off" in off.stdout
    assert len(_partitions(pipeline)) == 6


@pytest.mark.integration
async def test_consumer_applies_retention_at_start(pipeline: Pipeline, tmp_path: Path) -> None:
    days = await _seed(pipeline, datetime.now(UTC))
    pipeline.write_config(postgres={"retention_days": 7})
    log = tmp_path / "consumer.log"
    proc = subprocess.Popen(
        metrictui_cmd("--config", str(pipeline.config_path), "--headless", "--role", "consumer"),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        old = _names([days[a] for a in (40, 10, 8)])
        while old & _partitions(pipeline) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert not old & _partitions(pipeline), log.read_text()[-2000:]
        assert _names([days[a] for a in (6, 1, 0)]) <= _partitions(pipeline)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
    text = log.read_text()
    assert "retention: dropped 9 partitions" in text, text[-2000:]
