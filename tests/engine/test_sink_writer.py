"""The sink's writer threads (engine/sink/row_writer.py) and the order the sink keeps around them.

A thread exists so that PostgreSQL never waits for the event loop between one batch's
transaction and the next: these tests block the loop outright and expect two queued batches
to be committed meanwhile. There are several so that one batch's wait does not hold up the
next: a batch stuck behind another transaction must not stop its neighbour's commit. They also
hold it to the rest of its contract on real PostgreSQL: an event already stored stops its
transaction with nothing written, a lost connection sends batches the careful way for a while
and is then made again, and a batch's Kafka offsets are committed only after every earlier
batch is in.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiokafka import TopicPartition

from engine.config import load_config
from engine.db.migrate import migrate
from engine.envelope import CheckEvent, MetricsEvent
from engine.sink import row_writer
from engine.sink.consume import Sink, writer_count
from engine.sink.decode import Batch
from engine.sink.row_writer import RowWriter, RowWriters
from engine.sink.store import Encoded, Store, WriteResult
from engine.stats import Stats
from helpers.records import check_event
from helpers.stack import Pipeline

SAMPLES = [("load.1m", "{}", 0.5, ""), ("load.5m", "{}", 0.7, ""), ("mem.used", "{}", 3.0, "B")]


def _metrics(n: int, at: datetime) -> list[MetricsEvent]:
    return [
        MetricsEvent.of(uuid.uuid4(), "agent-w", "host-w", at + timedelta(seconds=i), SAMPLES)
        for i in range(n)
    ]


async def _prepared(store: Store, metrics: list[MetricsEvent], checks: list[CheckEvent]) -> Encoded:
    encoded = store.encode(metrics, checks)
    await store.prepare(encoded)  # partitions and series, as the sink does before submitting
    return encoded


@pytest.fixture
async def ends(pipeline: Pipeline) -> AsyncIterator[tuple[Store, RowWriter]]:
    """A migrated schema, the store (for series and partitions) and a writer on it."""
    await migrate(pipeline.stack.dsn, pipeline.schema)
    store = Store(pipeline.stack.dsn, pipeline.schema)
    await store.connect()
    writer = RowWriter(pipeline.stack.dsn, pipeline.schema)
    try:
        yield store, writer
    finally:
        await writer.close()
        await store.close()


def _count(pipeline: Pipeline) -> tuple[int, int, int]:
    (row,) = pipeline.query(
        "SELECT (SELECT count(*) FROM samples), (SELECT count(*) FROM checks),"
        " (SELECT count(*) FROM events)"
    )
    return row


async def test_queued_batches_are_committed_while_the_event_loop_is_busy(
    pipeline: Pipeline, ends: tuple[Store, RowWriter]
) -> None:
    store, writer = ends
    at = datetime.now(UTC).replace(microsecond=0)
    first_m, second_m = _metrics(4, at), _metrics(3, at + timedelta(minutes=1))
    first_c = [check_event("agent-w", at, "web", True, 12.5)]
    first = writer.submit(first_m, first_c, [], await _prepared(store, first_m, first_c))
    second = writer.submit(second_m, [], [], await _prepared(store, second_m, []))
    assert first is not None and second is not None
    # Block the event loop (as a fetch's burst does, only longer): the thread goes on.
    deadline = time.monotonic() + 20
    while _count(pipeline) != (21, 1, 8) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _count(pipeline) == (21, 1, 8), "both batches committed with the loop blocked"
    one, two = await first, await second
    assert (one.events, one.rows, two.events, two.rows) == (5, 13, 3, 9)
    assert two.newest_observed_at == second_m[-1].observed_at


async def test_an_event_already_stored_stops_the_transaction_with_nothing_written(
    pipeline: Pipeline, ends: tuple[Store, RowWriter]
) -> None:
    store, writer = ends
    at = datetime.now(UTC)
    old, new = _metrics(2, at), _metrics(2, at + timedelta(minutes=1))
    stored = writer.submit(old, [], [], await _prepared(store, old, []))
    assert stored is not None
    await stored
    replay = writer.submit([*new, *old], [], [], await _prepared(store, [*new, *old], []))
    assert replay is not None
    with pytest.raises(psycopg.errors.UniqueViolation):
        await replay
    assert _count(pipeline) == (6, 0, 2), "the new events of the replay were not written"
    # A replay is no connection trouble: the next batch takes the fast path at once.
    after = writer.submit(new, [], [], await _prepared(store, new, []))
    assert after is not None
    assert (await after).events == 2
    assert _count(pipeline) == (12, 0, 4)


async def test_a_lost_connection_rests_the_fast_path_then_connects_again(
    pipeline: Pipeline, ends: tuple[Store, RowWriter], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(row_writer, "REST_S", 1.0)
    store, writer = ends
    batches = [_metrics(2, datetime.now(UTC) + timedelta(seconds=10 * i)) for i in range(2)]
    encoded = [await _prepared(store, b, []) for b in batches]
    first = writer.submit(batches[0], [], [], encoded[0])
    assert first is not None
    await first
    assert writer._conn is not None
    with psycopg.connect(pipeline.stack.dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (writer._conn.info.backend_pid,))
    lost = writer.submit(batches[1], [], [], encoded[1])
    assert lost is not None
    with pytest.raises(psycopg.OperationalError):
        await lost
    assert writer.submit(batches[1], [], [], encoded[1]) is None, "resting"
    await asyncio.sleep(1.2)
    again = writer.submit(batches[1], [], [], encoded[1])
    assert again is not None
    assert (await again).events == 2
    assert _count(pipeline) == (12, 0, 4)


async def test_two_writers_commit_side_by_side_and_a_held_batch_waits_alone(
    pipeline: Pipeline, ends: tuple[Store, RowWriter]
) -> None:
    store, _ = ends
    writers = RowWriters(pipeline.stack.dsn, pipeline.schema, 2)
    at = datetime.now(UTC).replace(microsecond=0)
    held_m, free_m = _metrics(3, at), _metrics(2, at + timedelta(minutes=1))
    held_e, free_e = await _prepared(store, held_m, []), await _prepared(store, free_m, [])
    # Another session holds the first event's ledger key, uncommitted: its batch must wait.
    other = psycopg.connect(pipeline.stack.dsn)
    try:
        first = held_m[0]
        other.execute(
            f'INSERT INTO "{pipeline.schema}".events (event_id, observed_at, kind, agent)'
            " VALUES (%s, %s, 'metrics', 'agent-w')",
            (first.event_id, first.observed_at),
        )
        one, two = writers.next_writer(), writers.next_writer()
        assert one is not None and two is not None and one is not two
        held = one.submit(held_m, [], [], held_e)
        free = two.submit(free_m, [], [], free_e)
        assert held is not None and free is not None
        done = await asyncio.wait_for(free, 20)
        assert done.events == 2 and not held.done(), "the second writer went on alone"
        assert _count(pipeline) == (6, 0, 2)
        other.rollback()  # the key is free again: the held batch goes in whole
        assert (await asyncio.wait_for(held, 20)).events == 3
        assert _count(pipeline) == (15, 0, 5)
    finally:
        other.close()
        await writers.close()


def test_writers_stay_within_the_connection_budget(pipeline: Pipeline) -> None:
    config = load_config(pipeline.config_path, {})
    assert writer_count(config) == 2, "the default: two writers and the store's connection"
    for pool_max, writers, expected in ((1, 2, 0), (2, 2, 1), (8, 3, 3), (8, 0, 0)):
        env = {
            "METRICTUI_POSTGRES__POOL_MAX": str(pool_max),
            "METRICTUI_CONSUMER__WRITERS": str(writers),
        }
        assert writer_count(load_config(pipeline.config_path, env)) == expected
    assert RowWriters("postgresql://unused", "s", 0).next_writer() is None


def test_a_deadlock_between_batches_is_no_reason_to_rest() -> None:
    assert not row_writer._connection_trouble(psycopg.errors.DeadlockDetected("deadlock"))
    assert not row_writer._connection_trouble(psycopg.errors.UniqueViolation("duplicate"))
    assert row_writer._connection_trouble(psycopg.OperationalError("server closed"))


TP = TopicPartition("t", 0)


def _batch(offset: int) -> Batch:
    return Batch([], [], [], {TP: offset}, {TP: offset - 1}, Encoded())


async def test_offsets_are_committed_only_after_every_earlier_batch(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = Sink(load_config(pipeline.config_path, {}), Stats("consumer", "test"), "test")
    committed: list[dict[TopicPartition, int]] = []
    careful: list[int] = []

    async def commit(offsets: dict[TopicPartition, int]) -> None:
        committed.append(offsets)

    async def written(*args: Any) -> WriteResult:
        careful.append(len(args))
        return WriteResult(events=1, rows=1)

    async def keep(checks: Any) -> bool:
        return True

    monkeypatch.setattr(sink, "_commit", commit)
    monkeypatch.setattr(sink, "_write_until_done", written)
    monkeypatch.setattr(sink.fleet, "keep", keep)
    earlier_in = asyncio.Event()

    async def earlier() -> bool:
        await earlier_in.wait()
        return True

    async def stopped_first() -> bool:
        return False

    try:
        fast: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        fast.set_result(WriteResult(events=1, rows=1))
        later = asyncio.create_task(sink._store(_batch(5), fast, asyncio.create_task(earlier())))
        await asyncio.sleep(0.3)
        assert committed == [] and not later.done(), "its rows are in, an earlier batch's not"
        earlier_in.set()
        assert await later is True and committed == [{TP: 5}]
        assert careful == [], "the writer thread's result was taken"
        # An earlier batch that never got in (the sink stopped) holds these offsets back.
        held = sink._store(_batch(9), None, asyncio.create_task(stopped_first()))
        assert await held is False and committed == [{TP: 5}]
        # A fast write that failed (a replay, say) is written the careful way.
        failed: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        failed.set_exception(psycopg.errors.UniqueViolation("duplicate key"))
        assert await sink._store(_batch(12), failed, None) is True
        assert len(careful) == 2 and committed[-1] == {TP: 12}
    finally:
        await sink.close()
