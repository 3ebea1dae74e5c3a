"""Realistic events for the benchmark, shaped like what the agents really send.

A metrics event carries what `HostCollector` really collects on this machine (every collector,
taken twice so the rates exist), with values jittered per agent and tick. Check events are
`CheckResult.to_payload()` of plausible results (half https with a certificate). The mix is the
agent profile of the issue: all metrics every second and 20 targets every 10 s, that is one
metrics event to two check events.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from engine.agent.collector_names import COLLECTOR_NAMES
from engine.agent.collectors import HostCollector
from engine.envelope import encode_event, metrics_payload
from engine.records.check_result import CheckResult

CHECKS_PER_METRICS_EVENT = 2
TARGETS_PER_AGENT = 20


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One event before encoding: what the engine hands to `encode_event`."""

    kind: str
    agent: str
    host: str
    observed_at: datetime
    payload: dict[str, Any]
    key: bytes
    rows: int
    """Rows this event becomes in PostgreSQL (its samples, or one check row)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One encoded Kafka message."""

    is_metrics: bool
    key: bytes
    value: bytes
    rows: int


def sample_template() -> list[list[Any]]:
    """The samples of one real collection on this machine, as the metrics payload lists them."""
    collector = HostCollector(COLLECTOR_NAMES)
    collector.collect()
    time.sleep(0.3)
    payload = metrics_payload(collector.collect())
    samples: list[list[Any]] = payload["samples"]
    return samples


def check_payload(
    rng: random.Random, agent: str, index: int, started_at: datetime
) -> dict[str, Any]:
    """A plausible successful (or, 1 in 20, failed) check of target `index` of `agent`."""
    https = index % 2 == 0
    ok = rng.random() > 0.05
    connect = rng.uniform(0.2, 30.0)
    tls = rng.uniform(5.0, 60.0) if https else None
    ttfb = rng.uniform(1.0, 200.0)
    result = CheckResult(
        target=f"{agent}-site-{index:02d}",
        url=f"{'https' if https else 'http'}://site-{index:02d}.example.net/health?from={agent}",
        method="GET",
        started_at=started_at,
        ok=ok,
        status_code=200 if ok else 503,
        reason=None if ok else "status_mismatch",
        error=None if ok else "expected status 2xx or 3xx, got 503",
        dns_ms=rng.uniform(0.1, 20.0),
        connect_ms=connect,
        tls_ms=tls,
        ttfb_ms=ttfb,
        total_ms=connect + (tls or 0.0) + ttfb + rng.uniform(0.1, 5.0),
        content_match=True if index % 3 == 0 else None,
        cert_expires_at=started_at + timedelta(days=40 + index) if https else None,
        resolved_ip=f"192.0.2.{index + 1}",
    )
    return result.to_payload()


def _jittered(template: list[list[Any]], rng: random.Random) -> list[list[Any]]:
    out = []
    for metric, labels, value, unit in template:
        if value:
            value = value * (0.8 + 0.4 * rng.random())
        out.append([metric, labels, value, unit])
    return out


def iter_workload(
    template: list[list[Any]],
    *,
    sample_rows: int,
    agents: int,
    end: datetime | None = None,
    seed: int = 7,
) -> Iterator[EventSpec]:
    """Events in time order until at least `sample_rows` sample rows; ticks are 1 s apart,
    ending at `end` (default now), each tick one metrics and two check events per agent."""
    rng = random.Random(seed)
    per_event = len(template)
    metrics_events = math.ceil(sample_rows / per_event)
    ticks = math.ceil(metrics_events / agents)
    end = end or datetime.now(UTC)
    start = end - timedelta(seconds=ticks)
    names = [f"bench-agent-{i:02d}" for i in range(agents)]
    emitted = 0
    for tick in range(ticks):
        for a, agent in enumerate(names):
            if emitted >= metrics_events:
                return
            observed = start + timedelta(seconds=tick, milliseconds=a)
            host = f"{agent}.example.net"
            yield EventSpec(
                "metrics",
                agent,
                host,
                observed,
                {"samples": _jittered(template, rng)},
                agent.encode(),
                per_event,
            )
            emitted += 1
            for j in range(CHECKS_PER_METRICS_EVENT):
                index = (tick * CHECKS_PER_METRICS_EVENT + j) % TARGETS_PER_AGENT
                payload = check_payload(rng, agent, index, observed)
                yield EventSpec(
                    "check", agent, host, observed, payload, payload["target"].encode(), 1
                )


def days_of(messages: Sequence[Message]) -> set[date]:
    """The UTC days the events of `messages` (in time order) were observed on."""
    if not messages:
        return set()
    first, last = (
        datetime.fromisoformat(orjson.loads(m.value)["observed_at"]).astimezone(UTC).date()
        for m in (messages[0], messages[-1])
    )
    return {first + timedelta(days=n) for n in range((last - first).days + 1)}


def encode(spec: EventSpec) -> Message:
    value = encode_event(spec.kind, spec.agent, spec.host, spec.observed_at, spec.payload)
    return Message(spec.kind == "metrics", spec.key, value, spec.rows)
