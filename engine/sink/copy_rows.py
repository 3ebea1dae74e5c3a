"""PostgreSQL binary COPY rows, built by hand for the sink's hot path.

psycopg's `write_row` costs several microseconds a row, and a batch-second holds a million
sample rows, so the rows are packed here with `struct`: the stream is the signature, then per
row the field count and (length, value) of each column, then the trailer.
"""

from __future__ import annotations

import operator
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import sql

from engine.envelope import CheckEvent, MetricsEvent
from engine.records.check_result import CHECK_FIELDS, ROW_SPECS, Kind

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_TRAILER = b"\xff\xff"
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# A check row: the fixed head is (field count, ts, event_id), the rest is built per value.
_CHECK_HEAD = struct.Struct("!hiqi")
_NULL = b"\xff\xff\xff\xff"
_BOOL = {True: b"\x00\x00\x00\x01\x01", False: b"\x00\x00\x00\x01\x00", None: _NULL}
_INT4 = struct.Struct("!ii").pack
_FLOAT4 = struct.Struct("!if").pack
_TS = struct.Struct("!iq").pack
_LEN = struct.Struct("!i").pack


def pg_micros(ts: datetime) -> int:
    """Microseconds since 2000-01-01 UTC, PostgreSQL's binary timestamptz (aware `ts`)."""
    delta = ts - _PG_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return _LEN(len(data)) + data


def _real(value: float | None) -> bytes:
    return _NULL if value is None else _FLOAT4(4, value)


def _opt_int4(value: int | None) -> bytes:
    return _NULL if value is None else _INT4(4, value)


def _opt_ts(value: datetime | None) -> bytes:
    return _NULL if value is None else _TS(8, pg_micros(value))


# One binary encoder per kind of check field; the fields themselves come from `CheckResult`.
_ENCODERS: dict[Kind, Callable[[Any], bytes]] = {
    Kind.TEXT: _text,
    Kind.OPT_TEXT: _text,
    Kind.BOOL: _BOOL.__getitem__,
    Kind.OPT_BOOL: _BOOL.__getitem__,
    Kind.STATUS: _opt_int4,
    Kind.MS: _real,
    Kind.OPT_TIME: _opt_ts,
}
_ROW_ENCODERS = tuple(_ENCODERS[spec.kind] for spec in ROW_SPECS)
_CHECK_COLUMNS = 3 + len(CHECK_FIELDS)  # ts, event_id, agent, then the result's fields


def check_copy_row(e: CheckEvent) -> bytes:
    """One `checks` row in binary COPY format, in the column order of `copy_checks`.

    The envelope decoder guarantees the types (and that timings fit a `real`)."""
    head = _CHECK_HEAD.pack(_CHECK_COLUMNS, 8, pg_micros(e.observed_at), 16)
    fields = map(operator.call, _ROW_ENCODERS, e.row)
    return b"".join((head, e.event_id.bytes, _text(e.agent), *fields))


_EVENT_HEAD = struct.Struct("!hi").pack(4, 16)
_KIND = {MetricsEvent: _text("metrics"), CheckEvent: _text("check")}


def event_copy_row(e: MetricsEvent | CheckEvent) -> bytes:
    """One `events` row (event_id, observed_at, kind, agent) in binary COPY format."""
    return b"".join(
        (
            _EVENT_HEAD,
            e.event_id.bytes,
            _TS(8, pg_micros(e.observed_at)),
            _KIND[type(e)],
            _text(e.agent),
        )
    )


# A sample row is (field count 3, ts, series_id, value), each field after its length. Per event
# only ts and the values change: the rest of a row is two constant byte strings, so `pack`
# gets four arguments a row instead of seven (half its time).
_SAMPLE_HEAD = struct.pack("!hi", 3, 8)
_SAMPLE_SERIES = struct.Struct("!iqi")


class SampleRows:
    """The (ts, series_id, value) rows of the metrics events of one agent, host and shape.

    Within such events only the time and the values change, so the whole event is one
    `struct.pack` against an argument list made once, with the series ids in place (as
    bytes, with the lengths around them): per event the time and the values are slotted in
    by two slice assignments, and no Python bytecode runs per row."""

    __slots__ = ("_args", "_rows", "_struct")

    def __init__(self, series_ids: Sequence[int]) -> None:
        self._rows = len(series_ids)
        self._struct = struct.Struct("!" + "6sq16sd" * self._rows)
        self._args: list[bytes | float] = []
        for series_id in series_ids:
            self._args += (_SAMPLE_HEAD, 0, _SAMPLE_SERIES.pack(8, series_id, 8), 0.0)

    def pack(self, micros: int, values: Sequence[float]) -> bytes:
        """The rows of one event at `micros` (`pg_micros`) with `values` in shape order."""
        args = self._args.copy()
        args[1::4] = [micros] * self._rows
        args[3::4] = values  # ValueError if the values do not fit the shape
        return self._struct.pack(*args)


# The statements the rows above are made for; the store's careful path and the writer thread's
# fast path (engine/sink/row_writer.py) send the same ones.


def qualified(schema: str, name: str) -> sql.Composed:
    """`schema.name`, both quoted: the schema is the operator's to choose."""
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def copy_events(schema: str) -> sql.Composed:
    """COPY of `event_copy_row` rows into the `events` ledger."""
    statement = sql.SQL("COPY {} (event_id, observed_at, kind, agent) FROM STDIN (FORMAT BINARY)")
    return statement.format(qualified(schema, "events"))


def copy_samples(schema: str) -> sql.Composed:
    """COPY of `SampleRows.pack` rows into `samples`."""
    statement = sql.SQL("COPY {} (ts, series_id, value) FROM STDIN (FORMAT BINARY)")
    return statement.format(qualified(schema, "samples"))


def copy_checks(schema: str) -> sql.Composed:
    """COPY of `check_copy_row` rows into `checks`."""
    columns = sql.SQL(", ").join(
        sql.Identifier(c) for c in ("ts", "event_id", "agent", *CHECK_FIELDS)
    )
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)")
    return statement.format(qualified(schema, "checks"), columns)


def copy_stream(
    rows: Mapping[uuid.UUID, bytes], events: Iterable[MetricsEvent | CheckEvent]
) -> bytes:
    """One binary COPY stream: the rows of `events`, in their order, from `rows` by event id."""
    return b"".join([COPY_SIGNATURE, *(rows[e.event_id] for e in events), COPY_TRAILER])
