"""The soak's verdict, from PostgreSQL alone: what every feeder incarnation made (its marks
file) against what the sink stored or dead-lettered.

An event of a SIGKILLed incarnation may be missing only if it was made within
`IN_MEMORY_WINDOW_S` before the kill: it was still in the shipper's memory (queued or awaiting
Kafka's acknowledgement), the loss the README does not promise against. Every other missing
event is `lost_unexplained`. Duplicates are rows stored twice: check rows per event, sample rows
beyond what the stored metrics events carry.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.soak.feeder import SAMPLES_PER_EVENT
from bench.soak.procs import Incarnation

# Twice the shipper's send timeout (request_timeout_s, 10 s in the soak config) plus slack: a
# record waits at most one send in the queue and one in flight before it is acknowledged or
# spooled.
IN_MEMORY_WINDOW_S = 25.0

_SEQ = "('x' || right(replace(event_id::text, '-', ''), 16))::bit(64)::bigint"


@dataclass
class IncarnationAudit:
    agent: str
    made: int
    stored: int
    dead_lettered: int
    missing: int
    in_memory_at_kill: int
    unexplained: int
    killed: bool
    missing_made_s: tuple[float, float] | None
    """When the missing events were made (first, last), in seconds after the kill (negative:
    before it) or, for an incarnation not killed, after its last mark: a failure says at once
    whether they were the kill's or something else's."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _made_at(marks: list[tuple[int, float]], seq: int) -> float:
    """When event `seq` was made: the time of the first mark that covers it."""
    counts = [m[0] for m in marks]
    i = bisect.bisect_right(counts, seq)
    return marks[min(i, len(marks) - 1)][1]


def audit_incarnation(conn: psycopg.Connection[Any], inc: Incarnation) -> IncarnationAudit:
    marks = inc.marks_list()
    made = marks[-1][0] if marks else 0
    stored, beyond = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {_SEQ} >= %s) FROM events WHERE agent = %s",
        (made, inc.agent),
    ).fetchone() or (0, 0)
    if beyond:
        raise AssertionError(f"{inc.agent}: {beyond} stored events beyond the {made} it made")
    dead = conn.execute(
        "SELECT count(*) FROM dead_letters WHERE convert_from(payload, 'UTF8') LIKE %s",
        (f'%"agent":"{inc.agent}"%',),
    ).fetchone()
    dead_n = int(dead[0]) if dead else 0
    missing_seqs = [
        int(r[0])
        for r in conn.execute(
            f"SELECT s FROM generate_series(0, %s - 1) s EXCEPT "
            f"SELECT {_SEQ} FROM events WHERE agent = %s ORDER BY 1",
            (made, inc.agent),
        ).fetchall()
    ]
    missing = len(missing_seqs) - dead_n
    made_s = None
    if missing_seqs and marks:
        since = inc.killed_at if inc.killed_at is not None else marks[-1][1]
        made_s = (
            round(_made_at(marks, missing_seqs[0]) - since, 3),
            round(_made_at(marks, missing_seqs[-1]) - since, 3),
        )
    in_memory = 0
    if inc.killed_at is not None and missing > 0:
        in_memory = sum(
            1
            for seq in missing_seqs
            if inc.killed_at - IN_MEMORY_WINDOW_S <= _made_at(marks, seq) <= inc.killed_at
        )
        in_memory = min(in_memory, missing)
    return IncarnationAudit(
        agent=inc.agent,
        made=made,
        stored=int(stored),
        dead_lettered=dead_n,
        missing=missing,
        in_memory_at_kill=in_memory,
        unexplained=missing - in_memory,
        killed=inc.killed_at is not None,
        missing_made_s=made_s,
    )


def duplicate_rows(conn: psycopg.Connection[Any], agents: list[str]) -> dict[str, int]:
    """Rows of `agents` stored more than once: check rows per event id, surplus sample rows."""
    checks, distinct = conn.execute(
        "SELECT count(*), count(DISTINCT event_id) FROM checks WHERE agent = ANY(%s)", (agents,)
    ).fetchone() or (0, 0)
    events_n, distinct_events = conn.execute(
        "SELECT count(*), count(DISTINCT event_id) FROM events WHERE agent = ANY(%s)", (agents,)
    ).fetchone() or (0, 0)
    metrics_events = conn.execute(
        "SELECT count(*) FROM events WHERE kind = 'metrics' AND agent = ANY(%s)", (agents,)
    ).fetchone()
    samples = conn.execute(
        "SELECT count(*) FROM samples JOIN series ON series.id = samples.series_id"
        " WHERE series.agent = ANY(%s)",
        (agents,),
    ).fetchone()
    expected_samples = (int(metrics_events[0]) if metrics_events else 0) * SAMPLES_PER_EVENT
    return {
        "events": int(events_n) - int(distinct_events),
        "check_rows": int(checks) - int(distinct),
        "sample_rows": (int(samples[0]) if samples else 0) - expected_samples,
    }


def freshness(conn: psycopg.Connection[Any], agents: list[str]) -> dict[str, float | None]:
    """observed_at -> committed in PostgreSQL, over every stored event (faults included)."""
    row = conn.execute(
        "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY"
        " extract(epoch FROM inserted_at - observed_at)),"
        " max(extract(epoch FROM inserted_at - observed_at)) FROM events WHERE agent = ANY(%s)",
        (agents,),
    ).fetchone()
    if not row or row[0] is None:
        return {"p50_s": None, "p99_s": None, "max_s": None}
    p50, p99 = row[0]
    return {"p50_s": round(p50, 3), "p99_s": round(p99, 3), "max_s": round(float(row[1]), 3)}


def audit(dsn: str, schema: str, incarnations: list[Incarnation]) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}", public'.encode())
        per = [audit_incarnation(conn, inc) for inc in incarnations]
        dups = duplicate_rows(conn, [inc.agent for inc in incarnations])
        fresh = freshness(conn, [inc.agent for inc in incarnations])
        dead_total = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    surplus = max(dups["sample_rows"], 0)
    dup_events = dups["events"] + dups["check_rows"] + -(-surplus // SAMPLES_PER_EVENT)
    return {
        "produced": sum(a.made for a in per),
        "stored": sum(a.stored for a in per),
        "dead_lettered": sum(a.dead_lettered for a in per),
        "dead_letters_in_table": int(dead_total[0]) if dead_total else 0,
        "lost_in_memory_at_sigkill": sum(a.in_memory_at_kill for a in per),
        "lost_unexplained": sum(a.unexplained for a in per),
        "duplicates": dup_events,
        "duplicate_rows": dups,
        "sample_rows_missing": max(-dups["sample_rows"], 0),
        "freshness": fresh,
        "incarnations": [a.as_dict() for a in per],
    }
