"""The sink's fast path into PostgreSQL: threads of their own copy batch after batch.

Why a thread. On the event loop, the next batch's write could only begin once the loop came
round to it: after the previous batch's Kafka offset commit and after the fetch of the batch
after, in which aiokafka makes an object of each of thousands of records in one go (15-25 ms).
PostgreSQL idled through both, about a tenth of a backlog's drain. Here a batch is queued while
the one before it is written, and its transaction starts the moment that one commits; libpq
waits for PostgreSQL with the GIL released.

Only the common case comes here: every event new, no dead letters, every series known (the
sink resolves them first). Anything else raises and the sink writes that batch the careful
way on the store's connection (engine/sink/store.py), which tells a replay from new events,
sets rejected content aside, and says and retries what is wrong with PostgreSQL. After a
connection failure the fast path rests a few seconds, so an outage costs no extra attempts.

Why more than one. One connection's COPY keeps one PostgreSQL backend busy, and that backend
is then the drain's limit while Python has time to spare. `RowWriters` runs a few of them side
by side (`[consumer] writers`), each batch on the next one in turn; the sink still commits
Kafka offsets in batch order (engine/sink/consume.py).

Exactly-once is the store's: the ledger rows are copied first in the same transaction, and an
event already there stops it (`UniqueViolation`) with nothing written. An event in two batches
written at once is no exception: the later transaction waits on the earlier one's index entry
and fails the same way once that one commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from engine.envelope import CheckEvent, MetricsEvent
from engine.sink.copy_rows import copy_checks, copy_events, copy_samples, copy_stream
from engine.sink.store import DeadLetter, Encoded, WriteResult

log = logging.getLogger("metrictui.sink")

REST_S = 5.0  # after a connection failure, batches go the careful way this long
APPLICATION_NAME = "metrictui-sink-rows"  # its line in pg_stat_activity
_Job = Callable[[], Any]


class RowWriter:
    """One PostgreSQL connection, used by one daemon thread, which writes in submission order.

    A daemon thread (not an executor's): a write stuck on a vanished server must not hold up
    the process's exit; the caller has stopped waiting for it by then."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema
        self._jobs: queue.SimpleQueue[tuple[_Job, asyncio.Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None  # the thread's alone
        self._rest_until = 0.0
        self._closed = False

    def submit(
        self,
        metrics: Sequence[MetricsEvent],
        checks: Sequence[CheckEvent],
        dead: Sequence[DeadLetter],
        encoded: Encoded,
    ) -> asyncio.Future[WriteResult] | None:
        """Queue the batch's transaction behind the one in flight; None when it must go the
        careful way (dead letters, series left to resolve, resting, or closed)."""
        if dead or encoded.unknown or self._closed or time.monotonic() < self._rest_until:
            return None
        return self._run(lambda: self._write(metrics, checks, encoded))

    def _run(self, job: _Job) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="sink-rows", daemon=True)
            self._thread.start()
        self._jobs.put((job, future))
        return future

    def _serve(self) -> None:
        """The thread: run jobs in order, handing each outcome to its future's loop."""
        while (item := self._jobs.get()) is not None:
            job, future = item
            try:
                outcome: Any = job()
            except Exception as exc:  # the caller decides; nothing is lost here
                _settle(future, None, exc)
            else:
                _settle(future, outcome, None)
        self._disconnect()

    def _write(
        self, metrics: Sequence[MetricsEvent], checks: Sequence[CheckEvent], encoded: Encoded
    ) -> WriteResult:
        """In the thread: the batch's one transaction, ledger first."""
        started = time.perf_counter()
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(copy_events(self.schema)) as copy:
                    copy.write(encoded.claims)
                rows = self._copy_rows(cur, metrics, checks, encoded)
        except psycopg.Error as exc:
            if _connection_trouble(exc) or self._conn_lost():
                self._rest_until = time.monotonic() + REST_S
                self._disconnect()
            raise
        times = [e.observed_at for e in metrics] + [e.observed_at for e in checks]
        return WriteResult(
            events=len(times),
            rows=rows,
            newest_observed_at=max(times, default=None),
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    def _copy_rows(
        self,
        cur: psycopg.Cursor[Any],
        metrics: Sequence[MetricsEvent],
        checks: Sequence[CheckEvent],
        encoded: Encoded,
    ) -> int:
        """The batch's rows, inside its transaction once its events are claimed."""
        if metrics:
            with cur.copy(copy_samples(self.schema)) as copy:
                copy.write(copy_stream(encoded.samples, metrics))
        if checks:
            with cur.copy(copy_checks(self.schema)) as copy:
                copy.write(copy_stream(encoded.checks, checks))
        return sum(len(e.values) for e in metrics) + len(checks)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn_lost():
            self._disconnect()
        if self._conn is None:
            self._conn = psycopg.Connection.connect(
                self.dsn, autocommit=True, connect_timeout=10, application_name=APPLICATION_NAME
            )
        return self._conn

    def _conn_lost(self) -> bool:
        return self._conn is not None and (self._conn.closed or self._conn.broken)

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    async def close(self, timeout: float = 5.0) -> None:
        """Let the write in flight finish (bounded), then close the connection in the thread."""
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._jobs.put(None)
        await asyncio.to_thread(thread.join, timeout)  # bounded: exit never waits on a stuck write
        if thread.is_alive():
            log.warning("a batch write did not finish within %.0f s of stopping", timeout)


class RowWriters:
    """`count` writers, one batch to each in turn; with none, every batch goes the careful way.

    Turn by turn rather than to the least busy: batches are about the same size, and the order
    stays plain to follow in pg_stat_activity."""

    def __init__(self, dsn: str, schema: str, count: int) -> None:
        self.writers = [RowWriter(dsn, schema) for _ in range(count)]
        self._turn = 0

    def __len__(self) -> int:
        return len(self.writers)

    def next_writer(self) -> RowWriter | None:
        """The writer whose turn it is; None when there are none."""
        if not self.writers:
            return None
        writer = self.writers[self._turn % len(self.writers)]
        self._turn += 1
        return writer

    async def close(self) -> None:
        await asyncio.gather(*(w.close() for w in self.writers))


def _connection_trouble(exc: psycopg.Error) -> bool:
    """Worth a rest: the server or the link, not a deadlock or serialization failure between
    two batches (SQLSTATE class 40), after which the connection is as good as before."""
    rolled_back = (exc.sqlstate or "").startswith("40")
    return isinstance(exc, psycopg.OperationalError) and not rolled_back


def _settle(future: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    """Hand a job's outcome to the loop that waits for it (if that loop still runs)."""

    def settle() -> None:
        if future.cancelled():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)

    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
        future.get_loop().call_soon_threadsafe(settle)
