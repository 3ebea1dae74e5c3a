"""The fleet's heartbeats in PostgreSQL: the latest per agent, in `agents` (read via agents_v).

Only the newest heartbeat per agent matters, so it is upserted (an older one, replayed late
from a spool, never overwrites a newer one). Like every event it is also recorded once in
`events` (kind 'heartbeat'), in the same transaction and by the same claim as metrics and
check events (`engine.sink.claims`), so "every event on the topics is in PostgreSQL exactly
once" holds for heartbeats too. The sink needs UPDATE on `agents` for the upsert besides
INSERT (README, least privilege).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

import psycopg
from psycopg import sql

from engine.envelope import CheckEvent, HeartbeatEvent
from engine.records.heartbeats import FleetAgent
from engine.sink.claims import claim_events
from engine.sink.store import Store
from engine.stats import Stats

_COLUMNS = (
    "agent",
    "host",
    "location",
    "version",
    "role",
    "last_seen",
    "targets_assigned",
    "idle",
    "spool_depth",
    "errors_total",
    "send_errors_total",
    "last_check_at",
    "interval_s",
    "stale_after_s",
    "offline_after_s",
)
_TYPES = (
    "text", "text", "text", "text", "text", "timestamptz", "int", "bool", "bigint", "bigint",
    "bigint", "timestamptz", "real", "real", "real",
)  # fmt: skip


def latest_per_agent(beats: Sequence[HeartbeatEvent]) -> list[HeartbeatEvent]:
    """The newest heartbeat of each agent in a batch (one upsert may not touch a row twice)."""
    newest: dict[str, HeartbeatEvent] = {}
    for beat in beats:
        seen = newest.get(beat.agent)
        if seen is None or beat.observed_at > seen.observed_at:
            newest[beat.agent] = beat
    return list(newest.values())


def _row(e: HeartbeatEvent) -> tuple[Any, ...]:
    b = e.heartbeat
    return (
        e.agent, e.host, b.location, b.version, b.role, e.observed_at, b.targets_assigned,
        b.idle, b.spool_depth, b.errors_total, b.send_errors_total, b.last_check_at,
        b.interval_s, b.stale_after_s, b.offline_after_s,
    )  # fmt: skip


async def upsert_heartbeats(
    conn: psycopg.AsyncConnection[Any], schema: str, beats: Sequence[HeartbeatEvent]
) -> int:
    """Store the newest heartbeat per agent; returns how many agents' rows changed."""
    rows = [_row(e) for e in latest_per_agent(beats)]
    if not rows:
        return 0
    columns = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
    unnest = sql.SQL(", ").join(sql.SQL(f"%s::{t}[]") for t in _TYPES)
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in _COLUMNS[1:]
    )
    query = sql.SQL(
        "INSERT INTO {table} ({columns}) SELECT * FROM unnest({unnest})"
        " ON CONFLICT (agent) DO UPDATE SET {updates}"
        " WHERE {table}.last_seen < excluded.last_seen"
    ).format(
        table=sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier("agents")),
        columns=columns,
        unnest=unnest,
        updates=updates,
    )
    params = [list(col) for col in zip(*rows, strict=True)]
    async with conn.transaction():
        await claim_events(conn, schema, beats)
        cur = await conn.execute(query, params)
    return cur.rowcount


class HeartbeatKeeper:
    """Collects the heartbeats the sink decodes (`pending`) and stores them with each batch.

    Heartbeats decoded for the next batch may be stored with this one: storing is idempotent
    (the event id is claimed once, an older heartbeat never wins), so that is harmless.
    """

    def __init__(self, store: Store, stats: Stats) -> None:
        self.store = store
        self.stats = stats
        self.pending: list[HeartbeatEvent] = []

    async def keep(self, checks: Sequence[CheckEvent]) -> bool:
        """Store the pending heartbeats, then show the fleet what this batch says about it.

        Raises what PostgreSQL raised, with the heartbeats still pending: the sink retries
        this like a batch write (said once, state down, back-off) and holds the offsets."""
        beats = list(self.pending)
        if beats:
            if self.store.conn is None:
                raise psycopg.OperationalError("not connected to PostgreSQL")
            days = {e.observed_at.astimezone(UTC).date() for e in beats}
            await self.store.ensure_partitions(days)
            await upsert_heartbeats(self.store.conn, self.store.schema, beats)
            del self.pending[: len(beats)]
        note_fleet(self.stats, beats, checks)
        return True


def note_fleet(stats: Stats, beats: Sequence[HeartbeatEvent], checks: Sequence[CheckEvent]) -> None:
    """Show what this batch says about the fleet: each agent's newest heartbeat, and per target
    and location whether its latest check was up (the dashboard's "up in k of L locations")."""
    for e in latest_per_agent(beats):
        seen = stats.fleet.get(e.agent)
        if seen is not None and seen.last_seen >= e.observed_at:
            continue
        b = e.heartbeat
        stats.fleet[e.agent] = FleetAgent(
            e.agent, e.host, b.location, b.version, b.role, e.observed_at, b.targets_assigned,
            b.idle, b.spool_depth, b.errors_total, b.stale_after_s, b.offline_after_s,
        )  # fmt: skip
    for c in checks:
        location = c.row[-1]
        if location is not None:
            stats.target_locations.setdefault(c.row[0], {})[location] = c.row[3]
