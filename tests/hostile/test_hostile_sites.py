"""Hostile websites (issue 4, case 11), checked by a real agent process all at once: each is a
failed check with the right reason, the agent's memory stays bounded, and a healthy target
checked every second keeps its schedule (largest gap between its checks <= 1.5 s)."""

from __future__ import annotations

import itertools
import time

import psutil
import pytest

from helpers.faults import (
    Agents,
    assert_conserved,
    stored_count,
)
from helpers.sites import LocalSites
from helpers.stack import Pipeline
from helpers.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration]

RUN_S = 20.0


def _hostile(sites: LocalSites) -> dict[str, tuple[dict[str, object], str]]:
    """name -> (target fields, expected reason)."""
    return {
        "endless": ({"url": sites.http_url("/endless")}, "body_too_large"),
        "huge": ({"url": sites.http_url("/bytes/50000000")}, "body_too_large"),
        "drip": ({"url": sites.http_url("/drip")}, "timeout"),
        "silent": ({"url": sites.silent_url}, "timeout"),
        "redirect-loop": ({"url": sites.http_url("/redirect-loop")}, "too_many_redirects"),
        "redos": (
            {"url": sites.http_url("/a-run/100000"), "regex": "(a+)+$"},
            "content_mismatch",
        ),
        "self-signed": ({"url": sites.self_signed_url("/")}, "tls_error"),
        "expired": ({"url": sites.expired_url("/")}, "tls_error"),
        "dns": ({"url": "http://no-such-host.metrictui.invalid/"}, "dns_error"),
        "refused": ({"url": sites.refused_url}, "connect_error"),
        "not-http": ({"url": sites.garbage_url}, "invalid_response"),
    }


def test_hostile_sites_fail_with_their_reason_while_a_healthy_target_keeps_its_schedule(
    pipeline: Pipeline, agents: Agents, local_sites: LocalSites
) -> None:
    hostile = _hostile(local_sites)
    targets: list[dict[str, object]] = [
        {"name": "healthy", "url": local_sites.http_url("/"), "interval": 1, "timeout": 5}
    ]
    targets += [
        {"name": name, "interval": 1, "timeout": 3, **fields}
        for name, (fields, _) in hostile.items()
    ]
    pipeline.write_targets(targets)
    pipeline.write_config(agent={"metrics_interval": 1.0, "check_body_max_kb": 1024})
    consumer = agents.start("consumer")
    producer = agents.start("producer")
    assert producer.proc is not None
    proc = psutil.Process(producer.proc.pid)
    rss: list[int] = []
    started = time.monotonic()
    while time.monotonic() - started < RUN_S:
        rss.append(proc.memory_info().rss)
        time.sleep(0.5)
    assert producer.running, producer.tail()
    code, took = producer.stop()
    assert code == 0 and took < 10, producer.tail()
    wait_for(lambda: stored_count(pipeline) > 0, 30, "events in PostgreSQL")
    assert_conserved(pipeline, min_events=100)
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()
    agents.assert_clean()

    healthy = [
        r[0] for r in pipeline.query("SELECT ts FROM checks_v WHERE target = 'healthy' ORDER BY ts")
    ]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(healthy)]
    assert len(healthy) >= RUN_S - 3
    assert max(gaps) <= 1.5, f"the healthy target's largest gap was {max(gaps):.2f} s"
    ok = pipeline.query("SELECT bool_and(ok) FROM checks_v WHERE target = 'healthy'")[0][0]
    assert ok is True
    for name, (_, reason) in hostile.items():
        rows = pipeline.query(
            "SELECT ok, reason, total_ms FROM checks_v WHERE target = %s", (name,)
        )
        assert rows, f"{name}: never checked"
        assert {r[0] for r in rows} == {False}, f"{name}: a hostile site passed"
        assert {r[1] for r in rows} == {reason}, f"{name}: {sorted({r[1] for r in rows})}"
        # Bounded by its 3 s timeout, however the site behaves.
        assert max(r[2] for r in rows) < 3500, f"{name}: {max(r[2] for r in rows)} ms"
    redos_ms = max(
        r[0] for r in pipeline.query("SELECT total_ms FROM checks_v WHERE target = 'redos'")
    )
    assert redos_ms < 1000, "(a+)+$ on 100 KB of 'a!' runs in linear time"
    # Memory: after the first rounds, the agent does not grow while the hostile sites run.
    warm = rss[len(rss) // 3]
    growth = max(rss[len(rss) // 3 :]) - warm
    print(
        f"RSS {warm / 1e6:.0f} MB after warm-up, +{growth / 1e6:.1f} MB after; gaps max "
        f"{max(gaps):.2f} s over {len(healthy)} checks"
    )
    assert growth < 25 * 1024 * 1024, f"agent memory grew {growth / 1e6:.1f} MB"
    assert max(rss) < 400 * 1024 * 1024
