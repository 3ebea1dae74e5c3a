"""Retention: drop whole daily partitions older than `[postgres] retention_days`.

The sink writes `events`, `samples` and `checks` into daily partitions named `<table>_YYYYMMDD`
(UTC days, engine/sink/store.py). Dropping a partition is one catalog change, however many rows it
holds, and leaves no dead tuples for VACUUM, unlike a row-by-row DELETE. A partition is dropped
only when its whole day is older than the cutoff, so nothing younger than `retention_days` is
ever removed. The consumer runs this at start and hourly; a per-schema advisory lock lets
only one of several consumers do it at a time, and a short lock timeout keeps a busy table
from stalling the sink (the day is simply retried next time).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from engine.config import Config
from engine.stats import Stats

log = logging.getLogger("metrictui.retention")

PARTITIONED = ("events", "samples", "checks")
RETENTION_LOCK = 0x6D747572  # "mtur"; second key is hashtext(schema)
RUN_EVERY_S = 3600.0
RETRY_AFTER_ERROR_S = 300.0
LOCK_TIMEOUT = "5s"
_NAME_RE = re.compile(r"(events|samples|checks)_(\d{8})")


@dataclass(frozen=True, slots=True, order=True)
class Partition:
    day: date
    parent: str
    name: str


@dataclass
class RetentionResult:
    """What one run did (or, in a dry run, would do)."""

    cutoff: datetime
    expired: list[Partition] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # lock timeout: retried next run
    skipped_locked: bool = False  # another consumer holds the retention lock


def cutoff_for(retention_days: int, now: datetime) -> datetime:
    return now.astimezone(UTC) - timedelta(days=retention_days)


def expired_partitions(partitions: Sequence[Partition], cutoff: datetime) -> list[Partition]:
    """Partitions whose whole day ends at or before `cutoff` (a day holds [00:00, 24:00) UTC)."""
    out = []
    for p in partitions:
        day_end = datetime(p.day.year, p.day.month, p.day.day, tzinfo=UTC) + timedelta(days=1)
        if day_end <= cutoff:
            out.append(p)
    return sorted(out)


async def list_partitions(conn: psycopg.AsyncConnection[Any], schema: str) -> list[Partition]:
    """Daily partitions of the partitioned tables in `schema`, oldest first."""
    cur = await conn.execute(
        "SELECT c.relname, p.relname FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND p.relname = ANY(%s)",
        (schema, list(PARTITIONED)),
    )
    out = []
    for name, parent in await cur.fetchall():
        match = _NAME_RE.fullmatch(name)
        if match is None or match.group(1) != parent:
            continue  # not one of ours (hand-made or default partition): never touched
        try:
            day = datetime.strptime(match.group(2), "%Y%m%d").date()
        except ValueError:
            continue
        out.append(Partition(day, parent, name))
    return sorted(out)


async def apply_retention(
    conn: psycopg.AsyncConnection[Any],
    schema: str,
    retention_days: int,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> RetentionResult:
    """Drop (or list, with `dry_run`) the partitions older than `retention_days`.

    `conn` must be in autocommit mode; each day's partitions are dropped in one short
    transaction, so a failure leaves every day either whole or gone.
    """
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1 (0 means keep everything)")
    result = RetentionResult(cutoff_for(retention_days, now or datetime.now(UTC)))
    cur = await conn.execute(
        "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (RETENTION_LOCK, schema)
    )
    row = await cur.fetchone()
    if not row or not row[0]:
        result.skipped_locked = True
        return result
    try:
        result.expired = expired_partitions(await list_partitions(conn, schema), result.cutoff)
        if dry_run:
            return result
        by_day: dict[date, list[Partition]] = {}
        for p in result.expired:
            by_day.setdefault(p.day, []).append(p)
        for parts in by_day.values():
            names = [p.name for p in parts]
            try:
                async with conn.transaction():
                    await conn.execute(
                        sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT))
                    )
                    for p in parts:
                        await conn.execute(
                            sql.SQL("DROP TABLE IF EXISTS {}.{}").format(
                                sql.Identifier(schema), sql.Identifier(p.name)
                            )
                        )
            except psycopg.errors.LockNotAvailable:
                result.busy.extend(names)
                continue
            result.dropped.extend(names)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (RETENTION_LOCK, schema))
    return result


async def run_retention_once(
    dsn: str, schema: str, retention_days: int, *, dry_run: bool = False
) -> RetentionResult:
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, connect_timeout=10, application_name="metrictui-retention"
    ) as conn:
        return await apply_retention(conn, schema, retention_days, dry_run=dry_run)


async def retention_loop(config: Config, stats: Stats, every_s: float = RUN_EVERY_S) -> None:
    """The consumer's retention task: now, then every `every_s` seconds, until cancelled."""
    from engine.db.pg_errors import postgres_error_line

    pg = config.postgres
    assert pg.dsn is not None and pg.retention_days > 0
    if pg.retention_days < config.consumer.max_event_age_days:
        log.info(
            "retention_days (%d) is below [consumer] max_event_age_days (%d): late events"
            " older than %d days are stored, then dropped by the next retention run",
            pg.retention_days,
            config.consumer.max_event_age_days,
            pg.retention_days,
        )
    while True:
        delay = every_s
        try:
            result = await run_retention_once(pg.dsn.reveal(), pg.schema, pg.retention_days)
        except psycopg.Error as exc:
            line = postgres_error_line(exc)
            log.warning("retention run failed: %s; retrying in %.0fs", line, RETRY_AFTER_ERROR_S)
            stats.error("retention", line)
            delay = min(every_s, RETRY_AFTER_ERROR_S)
        else:
            if result.dropped:
                log.info(
                    "retention: dropped %d partitions older than %s: %s",
                    len(result.dropped),
                    f"{result.cutoff:%Y-%m-%d %H:%M} UTC",
                    ", ".join(result.dropped),
                )
            if result.busy:
                log.warning(
                    "retention: %s busy (lock timeout); retrying next run",
                    ", ".join(result.busy),
                )
        await asyncio.sleep(delay)
