"""Writing a batch that PostgreSQL rejected, event by event: poison events become dead letters
(counted, with the database's reason) and the rest of the batch still lands."""

from __future__ import annotations

import logging

import psycopg

from engine.db.pg_errors import postgres_error_line, rejects_content
from engine.envelope import CheckEvent, MetricsEvent
from engine.sink.store import DeadLetter, Store, WriteResult

log = logging.getLogger("metrictui.sink")


async def write_one_by_one(
    store: Store,
    metrics: list[MetricsEvent],
    checks: list[CheckEvent],
    dead: list[DeadLetter],
    first_error: psycopg.Error,
) -> WriteResult:
    """Isolate events the database rejects (poison) so the rest of the batch lands.

    An error that is not about an event's content propagates: the whole batch is retried.
    """
    log.warning(
        "batch rejected by PostgreSQL (%s); writing event by event",
        postgres_error_line(first_error),
    )
    total = WriteResult()
    rejected: list[DeadLetter] = []
    events: list[MetricsEvent | CheckEvent] = [*metrics, *checks]
    for event in events:
        try:
            r = await store.write_batch(
                [event] if isinstance(event, MetricsEvent) else [],
                [event] if isinstance(event, CheckEvent) else [],
                [],
            )
        except psycopg.Error as exc:
            if not rejects_content(exc):
                raise
            reason = f"db_rejected: {getattr(exc, 'sqlstate', None) or type(exc).__name__}"
            rejected.append(DeadLetter("(sink)", -1, -1, reason, str(event.event_id).encode()))
            continue
        total.events += r.events
        total.rows += r.rows
        total.duplicates += r.duplicates
        if r.newest_observed_at and (
            total.newest_observed_at is None or r.newest_observed_at > total.newest_observed_at
        ):
            total.newest_observed_at = r.newest_observed_at
    if dead or rejected:
        r = await store.write_batch([], [], [*dead, *rejected])
        total.dead_letters = r.dead_letters + len(rejected)
    return total
