"""PostgreSQL-side baselines: the raw binary COPY ceiling and a naive one-commit-per-message sink.

Both write into a schema made by the real migrations (same tables, same indexes, same daily
partitions) and get their series ids resolved before the clock starts, which only favours them.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from bench.kafka_parts import TIMEOUT_S
from bench.measure import Throughput
from bench.pgbinary import copy_data
from bench.workload import Message
from engine.config import Config
from engine.db.migrate import migrate
from engine.envelope import CheckEvent, MetricsEvent, decode_event
from engine.records.check_result import CHECK_FIELDS
from engine.sink.copy_rows import (
    COPY_SIGNATURE,
    COPY_TRAILER,
    copy_checks,
    copy_events,
    copy_samples,
    event_copy_row,
)
from engine.sink.store import Store

SAMPLE_TYPES = ("timestamptz", "int8", "float8")
CHECK_TYPES = (
    *("timestamptz", "uuid", "text", "text", "text", "text", "bool", "int4", "text", "text"),
    *("float4", "float4", "float4", "float4", "float4", "bool", "timestamptz", "text", "text"),
)
SeriesKey = tuple[str, str, str, str, str]


def decode_all(messages: Sequence[Message]) -> list[MetricsEvent | CheckEvent]:
    now = datetime.now(UTC)
    events = [decode_event(m.value, now=now, max_age=timedelta(days=30)) for m in messages]
    return [e for e in events if isinstance(e, MetricsEvent | CheckEvent)]


async def prepared_store(config: Config, events: Sequence[MetricsEvent | CheckEvent]) -> Store:
    """A migrated schema with partitions and every series of `events` in place."""
    assert config.postgres.dsn is not None
    dsn = config.postgres.dsn.reveal()
    await migrate(dsn, config.postgres.schema)
    store = Store(dsn, config.postgres.schema)
    await store.connect()
    await store.ensure_partitions({e.observed_at.astimezone(UTC).date() for e in events})
    await store.resolve_series(
        (e.agent, e.host, s[0], s[1], s[3])
        for e in events
        if isinstance(e, MetricsEvent)
        for s in e.samples
    )
    return store


@dataclass(frozen=True, slots=True)
class CopyData:
    """The whole data set as binary COPY streams, one (samples, checks) pair per batch."""

    chunks: list[tuple[bytes, bytes]]
    ledgers: list[bytes]
    """Per batch, its events' rows of the `events` ledger (the sink's exactly-once claims)."""
    messages: int
    rows: int
    days: set[date]


def copy_data_of(messages: Sequence[Message], batch: int) -> CopyData:
    """Built once, untimed. Series ids are numbered here: `samples` has no foreign key, so the
    numbers cost PostgreSQL exactly what the sink's ids cost it."""
    events = decode_all(messages)
    series: dict[SeriesKey, int] = {}
    chunks: list[tuple[bytes, bytes]] = []
    ledgers: list[bytes] = []
    for i in range(0, len(events), batch):
        part = events[i : i + batch]
        ledgers.append(b"".join([COPY_SIGNATURE, *map(event_copy_row, part), COPY_TRAILER]))
        samples = [
            (e.observed_at, series.setdefault((e.agent, e.host, m, lab, u), len(series) + 1), v)
            for e in part
            if isinstance(e, MetricsEvent)
            for m, lab, v, u in e.samples
        ]
        checks = [
            (e.observed_at, e.event_id, e.agent, *e.row) for e in part if isinstance(e, CheckEvent)
        ]
        chunks.append((copy_data(samples, SAMPLE_TYPES), copy_data(checks, CHECK_TYPES)))
    days = {e.observed_at.astimezone(UTC).date() for e in events}
    return CopyData(chunks, ledgers, len(messages), sum(m.rows for m in messages), days)


async def raw_copy(
    config: Config, data: CopyData, *, ledger: bool = False, connections: int = 1
) -> Throughput:
    """Binary COPY of exactly the sink's rows, pre-built, one transaction per consumer batch,
    into a freshly migrated schema (same tables, indexes and daily partitions).

    `ledger`: each transaction also copies its events into the `events` ledger, as the sink
    claims them for exactly-once: what that promise costs PostgreSQL, without any Python.
    `connections`: the batches are dealt out in turn to this many connections copying side by
    side, as the sink's `[consumer] writers` do: the ceiling for a sink that writes that way."""
    assert config.postgres.dsn is not None
    dsn = config.postgres.dsn.reveal()
    await migrate(dsn, config.postgres.schema)
    store = Store(dsn, config.postgres.schema)
    await store.connect()
    await store.ensure_partitions(data.days)
    schema = config.postgres.schema  # the sink's own COPY statements (engine/sink/copy_rows.py)
    events, samples, checks = copy_events(schema), copy_samples(schema), copy_checks(schema)
    batches = list(zip(data.chunks, data.ledgers, strict=True))

    async def copy_share(conn: psycopg.AsyncConnection[Any], share: int) -> None:
        for (sample_data, check_data), ledger_data in batches[share::connections]:
            async with conn.transaction(), conn.cursor() as cur:
                if ledger:
                    async with cur.copy(events) as copy:
                        await copy.write(ledger_data)
                async with cur.copy(samples) as copy:
                    await copy.write(sample_data)
                async with cur.copy(checks) as copy:
                    await copy.write(check_data)

    assert store.conn is not None
    conns = [store.conn]
    try:
        for _ in range(connections - 1):
            conns.append(await psycopg.AsyncConnection.connect(dsn, autocommit=True))
        started = time.perf_counter()
        await asyncio.gather(*(copy_share(conn, i) for i, conn in enumerate(conns)))
        elapsed = time.perf_counter() - started
    finally:
        for extra in conns[1:]:
            await extra.close()
        await store.close()
    return Throughput(data.messages, data.rows, elapsed)


async def naive_sink(
    config: Config, messages: Sequence[Message], limit: int, *, per_row: bool = False
) -> Throughput:
    """What simple implementations do: per message, stdlib json, one INSERT, one commit.

    A metrics message is one multi-row INSERT of its samples; with `per_row`, one INSERT per
    sample (still one commit per message). It writes `limit` messages drawn at random (fixed
    seed) from the data, so the mix of metrics and check events is the data's; they are
    taken from memory, as reading them from Kafka costs microseconds against the
    milliseconds of a commit.
    """
    store = await prepared_store(config, decode_all(messages))
    series = dict(store._series)
    await store.close()
    assert config.postgres.dsn is not None
    picked = sorted(random.Random(5).sample(range(len(messages)), min(limit, len(messages))))
    sample = [messages[i] for i in picked]
    schema = config.postgres.schema
    check_columns = ", ".join(f'"{c}"' for c in ("ts", "event_id", "agent", *CHECK_FIELDS))
    check_insert = (
        f'INSERT INTO "{schema}".checks ({check_columns})'
        f" VALUES ({', '.join(['%s'] * (3 + len(CHECK_FIELDS)))})"
    )
    conn = await psycopg.AsyncConnection.connect(config.postgres.dsn.reveal())
    rows = 0
    try:
        async with asyncio.timeout(TIMEOUT_S):
            started = time.perf_counter()
            for m in sample:
                rows += await _naive_write(conn, schema, check_insert, series, m.value, per_row)
            elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    return Throughput(len(sample), rows, elapsed)


async def _naive_write(
    conn: psycopg.AsyncConnection[Any],
    schema: str,
    check_insert: str,
    series: dict[SeriesKey, int],
    value: bytes,
    per_row: bool,
) -> int:
    doc = json.loads(value)
    ts = datetime.fromisoformat(doc["observed_at"])
    agent, host, payload = doc["agent"], doc["host"], doc["payload"]
    if doc["type"] == "metrics":
        params: list[Any] = []
        for metric, labels, v, unit in payload["samples"]:
            key = json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            params += [ts, series[(agent, host, metric, key, unit)], v]
        rows = len(params) // 3
        insert = f'INSERT INTO "{schema}".samples (ts, series_id, value) VALUES '
        if per_row:
            for i in range(rows):
                await conn.execute((insert + "(%s, %s, %s)").encode(), params[3 * i : 3 * i + 3])
        else:
            values = ", ".join(["(%s, %s, %s)"] * rows)
            await conn.execute((insert + values).encode(), params)
    else:
        cert = payload.get("cert_expires_at")
        row = [ts, doc["id"], agent, *(payload.get(c) for c in CHECK_FIELDS)]
        row[3 + CHECK_FIELDS.index("cert_expires_at")] = (
            datetime.fromisoformat(cert) if cert else None
        )
        await conn.execute(check_insert.encode(), row)
        rows = 1
    await conn.commit()
    return rows
