"""All writes to PostgreSQL: one transaction per Kafka batch, rows loaded with binary COPY.

Exactly-once: every event id is inserted into `events` first (ON CONFLICT DO NOTHING RETURNING);
only events that were new get their rows copied. A Kafka message replayed after a crash, a
rebalance or a spool re-send is therefore counted as a duplicate and stored once. The caller
commits Kafka offsets only after `write_batch` returned (the transaction is committed).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import repeat
from typing import Any

import orjson
import psycopg
from psycopg import sql

from engine.envelope import CheckEvent, MetricsEvent
from engine.records.samples import Shape
from engine.sink.claims import claim_events
from engine.sink.copy_rows import (
    COPY_SIGNATURE,
    COPY_TRAILER,
    SampleRows,
    check_copy_row,
    copy_checks,
    copy_events,
    copy_samples,
    copy_stream,
    event_copy_row,
    pg_micros,
    qualified,
)

log = logging.getLogger("metrictui.sink")

_PARTITIONED = ("events", "samples", "checks")
_PARTITION_LOCK = 0x6D747570
_SHAPES_MAX = 4096


class _AlreadyClaimed(Exception):
    """An event of the batch is in `events` already: its transaction is rolled back and
    written again with the replay path of `Store._claim_events`."""


def first_of_each(events: Iterable[Any], ids: set[uuid.UUID]) -> list[Any]:
    """Events whose id is in `ids`, each id once: an event repeated within one batch (a spool
    re-send next to the original) is claimed once, so its rows must be copied once."""
    left = set(ids)
    out = []
    for e in events:
        if e.event_id in left:
            left.discard(e.event_id)
            out.append(e)
    return out


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    reason: str
    payload: bytes | None


@dataclass(slots=True)
class WriteResult:
    events: int = 0
    rows: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    newest_observed_at: datetime | None = None
    elapsed_ms: float = 0.0


@dataclass(slots=True)
class Encoded:
    """A batch's rows in binary COPY form, made ahead of its transaction by `Store.encode`.

    Pure CPU, so the sink makes it while PostgreSQL still writes the previous batch. Events
    with a series that is not cached yet are left in `unknown`; `write_batch` resolves them.
    """

    samples: dict[uuid.UUID, bytes] = field(default_factory=dict)
    checks: dict[uuid.UUID, bytes] = field(default_factory=dict)
    unknown: list[MetricsEvent] = field(default_factory=list)
    claims: bytes = b""
    """The batch's `events` ledger rows (its metrics, then its checks) as one COPY stream."""
    days: set[date] = field(default_factory=set)
    """The UTC days of its events, whose partitions the write needs."""


@dataclass
class Store:
    """One PostgreSQL connection used by one sink; caches series ids and known partitions."""

    dsn: str
    schema: str
    conn: psycopg.AsyncConnection[Any] | None = None
    _series: dict[tuple[str, str, str, str, str], int] = field(default_factory=dict)
    _shapes: dict[tuple[str, str, Shape], SampleRows] = field(default_factory=dict)
    """Per (agent, host, shape), its series ids made into COPY rows: one lookup per event."""
    _partitions: set[tuple[str, date]] = field(default_factory=set)

    async def connect(self, timeout: float = 10.0) -> None:
        self.conn = await psycopg.AsyncConnection.connect(
            self.dsn,
            autocommit=True,  # transactions are explicit (conn.transaction()) and short
            connect_timeout=max(1, int(timeout)),
            application_name="metrictui-sink",
        )

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.closed and not self.conn.broken

    def _t(self, name: str) -> sql.Composed:
        return qualified(self.schema, name)

    # -- partitions -------------------------------------------------------------------------

    async def ensure_partitions(self, days: Iterable[date]) -> None:
        """Create daily partitions (UTC days) of the partitioned tables that are missing.

        Through `ensure_day_partitions()` (sql/002), which runs with the schema owner's rights,
        so a sink whose role may only SELECT and INSERT still gets its partitions. A schema
        that predates that function gets the same DDL directly (the sink is the owner there).
        """
        assert self.conn is not None
        missing = sorted({d for d in days if ("samples", d) not in self._partitions})
        if not missing:
            return
        try:
            async with self.conn.transaction():
                await self.conn.execute(
                    sql.SQL("SELECT {}(%s::date[])").format(self._t("ensure_day_partitions")),
                    (missing,),
                )
        except psycopg.errors.UndefinedFunction:
            await self._create_partitions(missing)
        self._partitions.update(("samples", d) for d in missing)

    async def prepare_today(self) -> None:
        """Make today's daily partitions (UTC) ahead of the first batch. Run beside the Kafka
        consumer's group join, it takes their DDL (and its commit) off the way to the first
        rows. Best effort: a failure here only leaves the work to the first batch."""
        if not self.connected:
            return
        try:
            await self.ensure_partitions([datetime.now(UTC).date()])
        except (psycopg.Error, OSError) as exc:
            log.debug("today's partitions left to the first batch: %s", type(exc).__name__)

    async def _create_partitions(self, days: Sequence[date]) -> None:
        assert self.conn is not None
        async with self.conn.transaction():
            await self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
            for day in days:
                lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
                hi = lo + timedelta(days=1)
                for table in _PARTITIONED:
                    await self.conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {} PARTITION OF {}"
                            " FOR VALUES FROM ({}) TO ({})"
                        ).format(
                            self._t(f"{table}_{day:%Y%m%d}"),
                            self._t(table),
                            sql.Literal(lo),
                            sql.Literal(hi),
                        )
                    )

    # -- series -----------------------------------------------------------------------------

    async def resolve_series(self, keys: Iterable[tuple[str, str, str, str, str]]) -> None:
        """Make sure every (agent, host, metric, labels_json, unit) has a committed series id.

        Done in its own short transaction before the batch: ids cached here are always real
        rows, even if the batch transaction later rolls back.
        """
        assert self.conn is not None
        missing = list(set(keys) - self._series.keys())
        if not missing:
            return
        # The keys go as one JSON text, not as five text arrays: psycopg adapts an array
        # element by element, which took longer than PostgreSQL's whole insert (about 30 ms
        # for 1,260 series, twice: a fresh sink's first batch waited on it).
        keys_json = orjson.dumps(missing).decode()
        given = sql.SQL(
            "SELECT x->>0 AS agent, x->>1 AS host, x->>2 AS metric, (x->>3)::jsonb AS labels,"
            " x->>4 AS unit, i FROM json_array_elements(%s::json) WITH ORDINALITY AS a(x, i)"
        )
        insert = sql.SQL(
            "INSERT INTO {series} (agent, host, metric, labels, unit)"
            " SELECT agent, host, metric, labels, unit FROM ({given}) t ON CONFLICT DO NOTHING"
        ).format(series=self._t("series"), given=given)
        select = sql.SQL(
            "SELECT t.i, s.id FROM ({given}) t"
            " JOIN {series} s USING (agent, host, metric, labels, unit)"
        ).format(series=self._t("series"), given=given)
        async with self.conn.transaction():
            await self.conn.execute(insert, [keys_json])
        cur = await self.conn.execute(select, [keys_json])
        for i, series_id in await cur.fetchall():
            self._series[missing[i - 1]] = series_id

    # -- the batch --------------------------------------------------------------------------

    async def write_batch(
        self,
        metrics: Sequence[MetricsEvent],
        checks: Sequence[CheckEvent],
        dead: Sequence[DeadLetter],
        encoded: Encoded | None = None,
    ) -> WriteResult:
        """Write one batch in one transaction; returns what was new and what was a duplicate.

        `encoded` is `encode(metrics, checks)` made earlier (else it is made here)."""
        assert self.conn is not None
        started = time.perf_counter()
        result = WriteResult()
        encoded = encoded if encoded is not None else self.encode(metrics, checks)
        await self.prepare(encoded)
        try:
            await self._write_transaction(metrics, checks, dead, encoded, result)
        except _AlreadyClaimed:
            # The transaction rolled back whole (the claim is its first statement, so nothing
            # else was lost): write it again, telling new events from stored ones one by one.
            result = WriteResult()
            await self._write_transaction(metrics, checks, dead, encoded, result, replay=True)
        result.elapsed_ms = (time.perf_counter() - started) * 1000
        return result

    async def prepare(self, encoded: Encoded) -> None:
        """What a batch's transaction needs committed first: its days' partitions and the
        ids of series `encode` did not know (whose events are encoded here)."""
        await self.ensure_partitions(encoded.days)
        await self._resolve_unknown(encoded)

    async def _write_transaction(
        self,
        metrics: Sequence[MetricsEvent],
        checks: Sequence[CheckEvent],
        dead: Sequence[DeadLetter],
        encoded: Encoded,
        result: WriteResult,
        *,
        replay: bool = False,
    ) -> None:
        """The batch's one transaction: claim its events, copy the rows of the new ones, store
        its dead letters; what it did is counted into `result`."""
        assert self.conn is not None
        events: list[MetricsEvent | CheckEvent] = [*metrics, *checks]
        async with self.conn.transaction():
            new_ids = await self._claim_events(events, encoded, replay=replay) if events else set()
            result.duplicates = len(events) - len(new_ids)
            fresh_metrics = first_of_each(metrics, new_ids)
            fresh_checks = first_of_each(checks, new_ids)
            if fresh_metrics:
                result.rows += await self._copy_samples(fresh_metrics, encoded.samples)
            if fresh_checks:
                result.rows += await self._copy_checks(fresh_checks, encoded.checks)
            if dead:
                result.dead_letters = await self._insert_dead_letters(dead)
        result.events = len(new_ids)
        if fresh_metrics or fresh_checks:
            result.newest_observed_at = max(e.observed_at for e in (*fresh_metrics, *fresh_checks))

    async def _claim_events(
        self, events: Sequence[MetricsEvent | CheckEvent], encoded: Encoded, *, replay: bool = False
    ) -> set[uuid.UUID]:
        """Ids of the events not stored before; the first statement of the batch transaction.

        Usually none was, so the ids are simply copied in (binary COPY: about half the time of
        INSERT ... ON CONFLICT), with no savepoint around it: a savepoint costs two round
        trips per batch, and each waits for the event loop, which the decoding thread holds
        up. If one is there already (a replay, or an event repeated within the batch), the
        primary key stops the copy and `_AlreadyClaimed` rolls the whole transaction back;
        with `replay`, `claim_events` (the claim heartbeats use too) tells the new from the old.
        """
        assert self.conn is not None
        if not replay:
            try:
                await self._copy_events(encoded.claims)
            except psycopg.errors.UniqueViolation:
                raise _AlreadyClaimed from None
            return {e.event_id for e in events}
        return await claim_events(self.conn, self.schema, events)

    async def _copy_events(self, data: bytes) -> None:
        await self._copy(copy_events(self.schema), data)

    async def _copy(self, statement: sql.Composed, data: bytes) -> None:
        assert self.conn is not None
        async with self.conn.cursor() as cur, cur.copy(statement) as copy:
            await copy.write(data)

    def encode(self, metrics: Sequence[MetricsEvent], checks: Sequence[CheckEvent]) -> Encoded:
        """Binary COPY rows of every event, by event id (the first of a repeated event, as
        `first_of_each` copies). Metrics events with an uncached series go to `unknown`."""
        encoded = Encoded()
        rows, unknown_ids = encoded.samples, set()
        for e in metrics:
            if e.event_id in rows or e.event_id in unknown_ids:
                continue
            try:
                rows[e.event_id] = self._encode_samples(e)
            except KeyError:
                encoded.unknown.append(e)
                unknown_ids.add(e.event_id)
        for c in checks:
            encoded.checks.setdefault(c.event_id, check_copy_row(c))
        # Made here, off the event loop: 4-5 ms a batch of 5,000 events that PostgreSQL,
        # waiting at the start of the transaction, spent idle.
        events: list[MetricsEvent | CheckEvent] = [*metrics, *checks]
        encoded.claims = b"".join([COPY_SIGNATURE, *map(event_copy_row, events), COPY_TRAILER])
        encoded.days = {e.observed_at.astimezone(UTC).date() for e in events}
        return encoded

    async def _resolve_unknown(self, encoded: Encoded) -> None:
        """Resolve (and commit) the series `encode` did not know, then encode their events."""
        if not encoded.unknown:
            return
        keys: set[tuple[str, str, str, str, str]] = set()
        # Usually thousands of events of a few dozen (agent, host, shape): each layout once.
        for agent, host, shape in {(e.agent, e.host, e.shape) for e in encoded.unknown}:
            keys.update(zip(repeat(agent), repeat(host), shape.metrics, shape.labels, shape.units))
        await self.resolve_series(keys)
        for e in encoded.unknown:
            encoded.samples.setdefault(e.event_id, self._encode_samples(e))
        encoded.unknown = []

    def _encode_samples(self, e: MetricsEvent) -> bytes:
        """Binary COPY rows (ts, series_id, value) of one event; KeyError for an unknown series.

        The series ids are looked up once per (agent, host, shape), not per row."""
        key = (e.agent, e.host, e.shape)
        rows = self._shapes.get(key)
        if rows is None:
            shape = e.shape
            keys = zip(repeat(e.agent), repeat(e.host), shape.metrics, shape.labels, shape.units)
            rows = SampleRows(list(map(self._series.__getitem__, keys)))
            if len(self._shapes) >= _SHAPES_MAX:
                self._shapes.clear()
            self._shapes[key] = rows
        return rows.pack(pg_micros(e.observed_at), e.values)

    async def _copy_samples(
        self, events: Sequence[MetricsEvent], rows: Mapping[uuid.UUID, bytes]
    ) -> int:
        await self._copy(copy_samples(self.schema), copy_stream(rows, events))
        return sum(len(e.values) for e in events)

    async def _copy_checks(
        self, events: Sequence[CheckEvent], rows: Mapping[uuid.UUID, bytes]
    ) -> int:
        await self._copy(copy_checks(self.schema), copy_stream(rows, events))
        return len(events)

    async def _insert_dead_letters(self, dead: Sequence[DeadLetter]) -> int:
        assert self.conn is not None
        cur = await self.conn.execute(
            sql.SQL(
                'INSERT INTO {} (topic, partition, "offset", reason, payload)'
                " SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::text[],"
                " %s::bytea[]) ON CONFLICT DO NOTHING"
            ).format(self._t("dead_letters")),
            (
                [d.topic for d in dead],
                [d.partition for d in dead],
                [d.offset for d in dead],
                [d.reason for d in dead],
                [d.payload for d in dead],
            ),
        )
        return cur.rowcount
