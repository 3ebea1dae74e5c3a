"""The same samples in each system's natural wire format.

The bench workload (bench/workload.py) yields metrics events of the 63 samples one agent really
collects per tick. Each system gets exactly those samples (same agents, metrics, labels, values
and timestamps), shaped the way a user of that system would send them:

- metrictui: its own events (`bench.workload.encode`), one per agent tick;
- Telegraf: influx line protocol, one Kafka message per agent tick holding one line per sample
  (measurement `samples`; agent, host, metric, unit and the labels as tags; field `value`);
- Kafka Connect: one JsonConverter record with its schema per sample (row), as the JDBC sink
  needs a schema to create and fill a table.

Only samples are compared: check rows have no counterpart in the peers' sinks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

import orjson

from bench.workload import EventSpec, Message, encode

MEASUREMENT = "samples"
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\\": "\\\\"})


def _tag(text: str) -> str:
    return text.translate(_TAG_ESCAPES)


def _ns(ts: datetime) -> int:
    return int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000


def influx_lines(spec: EventSpec) -> bytes:
    """One agent tick as influx lines, one per sample (empty tag values are left out, as the
    line protocol has no empty tag)."""
    ts = _ns(spec.observed_at)
    lines = []
    for metric, labels, value, unit in spec.payload["samples"]:
        tags = {"agent": spec.agent, "host": spec.host, "metric": metric, "unit": unit}
        for key, label in labels.items():
            if key in tags:
                raise ValueError(f"label {key!r} of {metric} collides with a fixed tag")
            tags[key] = label
        tag_text = ",".join(f"{_tag(k)}={_tag(v)}" for k, v in sorted(tags.items()) if v)
        lines.append(f"{MEASUREMENT},{tag_text} value={float(value)!r} {ts}")
    return ("\n".join(lines) + "\n").encode()


CONNECT_SCHEMA = {
    "type": "struct",
    "name": "metrictui.bench.Sample",
    "optional": False,
    "fields": [
        {
            "field": "ts",
            "type": "int64",
            "name": "org.apache.kafka.connect.data.Timestamp",
            "version": 1,
            "optional": False,
        },
        {"field": "agent", "type": "string", "optional": False},
        {"field": "host", "type": "string", "optional": False},
        {"field": "metric", "type": "string", "optional": False},
        {"field": "labels", "type": "string", "optional": False},
        {"field": "value", "type": "double", "optional": False},
        {"field": "unit", "type": "string", "optional": False},
    ],
}


def connect_records(spec: EventSpec) -> Iterator[bytes]:
    """One JsonConverter record (schema + payload) per sample; labels travel as JSON text, the
    way a JDBC sink user flattens a map into one column."""
    ts_ms = int(spec.observed_at.timestamp() * 1000)
    for metric, labels, value, unit in spec.payload["samples"]:
        payload = {
            "ts": ts_ms,
            "agent": spec.agent,
            "host": spec.host,
            "metric": metric,
            "labels": orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode(),
            "value": float(value),
            "unit": unit,
        }
        yield orjson.dumps({"schema": CONNECT_SCHEMA, "payload": payload})


def for_metrictui(specs: Iterable[EventSpec]) -> list[Message]:
    return [encode(s) for s in specs]


def for_telegraf(specs: Iterable[EventSpec]) -> list[Message]:
    return [Message(True, s.key, influx_lines(s), s.rows) for s in specs]


def for_connect(specs: Iterable[EventSpec]) -> list[Message]:
    return [Message(True, s.key, record, 1) for s in specs for record in connect_records(s)]
