"""Untrusted names are data, never SQL (issue 4, case 18): target names, URLs, error texts,
agent and host names, metric names, label keys and values full of quotes, semicolons, SQL,
format placeholders, control characters and unicode go through the real envelope decoder and
`Store.write_batch` and come back from PostgreSQL byte for byte (property test)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.db.migrate import migrate
from engine.envelope import CheckEvent, MetricsEvent, decode_event, encode_event
from engine.sink.store import Store
from helpers.stack import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.integration]

NASTY = [
    "'",
    '"',
    ";",
    "--",
    "/*",
    "'; DROP TABLE events; --",
    "Robert'); DROP TABLE samples;--",
    "' OR '1'='1",
    "\\",
    "\\x00",
    "%s",
    "%(x)s",
    "{}",
    "$1",
    "$$",
    "$tag$",
    "E'",
    "\u202e",  # right-to-left override
    "\ufeff",
    "🙂",
    "Ωμέγα",
    "中文",
    "\n",
    "\r\n",
    "\t",
    "\x1b[31m",
    "[bold]x[/bold]",
    "<script>alert(1)</script>",
    "null",
    '{"a": 1}',
    "\\N",  # COPY's NULL marker in text format
]
_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_piece = st.one_of(st.sampled_from(NASTY), st.text(alphabet=_chars, max_size=12))


def _nasty(min_size: int = 0, max_len: int = 120) -> st.SearchStrategy[str]:
    joined = st.lists(_piece, min_size=1, max_size=5).map("".join)
    return joined.filter(lambda s: min_size <= len(s) <= max_len)


@st.composite
def _case(draw: st.DrawFn) -> dict[str, object]:
    return {
        "agent": draw(_nasty(1)),
        "host": draw(_nasty()),
        "metric": draw(_nasty(1)),
        "labels": draw(st.dictionaries(_nasty(), _nasty(), max_size=3)),
        "unit": draw(_nasty(max_len=40)),
        "target": draw(_nasty(1)),
        "url": "https://example.com/" + draw(_nasty()),
        "error": draw(_nasty()),
    }


def test_hostile_names_labels_and_urls_are_stored_verbatim(pipeline: Pipeline) -> None:
    loop = asyncio.new_event_loop()
    store = Store(pipeline.stack.dsn, pipeline.schema)
    loop.run_until_complete(migrate(pipeline.stack.dsn, pipeline.schema))
    loop.run_until_complete(store.connect())
    values = itertools.count(1)
    reader = psycopg.connect(pipeline.stack.dsn, autocommit=True)
    reader.execute(f'SET search_path TO "{pipeline.schema}"'.encode())
    now = datetime.now(UTC)

    @settings(
        max_examples=60,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=_case())
    def roundtrip(case: dict[str, object]) -> None:
        value = float(next(values))
        agent, host = str(case["agent"]), str(case["host"])
        metric, unit = str(case["metric"]), str(case["unit"])
        labels = dict(case["labels"])  # type: ignore[call-overload]
        raw_metrics = encode_event(
            "metrics", agent, host, now, {"samples": [[metric, labels, value, unit]]}
        )
        check = {
            "target": case["target"],
            "url": case["url"],
            "method": "GET",
            "ok": False,
            "reason": "error",
            "error": case["error"],
        }
        raw_check = encode_event("check", agent, host, now, check)
        m = decode_event(raw_metrics, now=now, max_age=timedelta(days=1))
        c = decode_event(raw_check, now=now, max_age=timedelta(days=1))
        assert isinstance(m, MetricsEvent) and isinstance(c, CheckEvent)
        result = loop.run_until_complete(store.write_batch([m], [c], []))
        assert result.events == 2
        row = reader.execute(
            "SELECT agent, host, metric, labels, unit FROM samples_v WHERE value = %s", (value,)
        ).fetchall()
        assert row == [(agent, host, metric, labels, unit)]
        stored = reader.execute(
            "SELECT target, url, agent, error FROM checks WHERE event_id = %s",
            (c.event_id,),
        ).fetchall()
        assert stored == [(case["target"], case["url"], agent, case["error"])]
        in_view = reader.execute(
            "SELECT count(*) FROM checks_v WHERE target = %s AND url = %s",
            (case["target"], case["url"]),
        ).fetchone()
        assert in_view is not None and in_view[0] >= 1
        # The labels' JSON is canonical JSON of the same object, nothing escaped twice.
        text = reader.execute(
            "SELECT labels::text FROM samples_v WHERE value = %s", (value,)
        ).fetchone()
        assert text is not None and orjson.loads(text[0]) == labels

    try:
        roundtrip()
        tables = reader.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (pipeline.schema,)
        ).fetchone()
        assert tables is not None and tables[0] >= 5, "every table is still there"
    finally:
        reader.close()
        loop.run_until_complete(store.close())
        loop.close()
