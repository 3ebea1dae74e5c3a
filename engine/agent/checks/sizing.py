"""How many check worker processes an agent runs (``[agent] check_workers = "auto"``).

Workers cost CPU of their own: each result crosses a pipe (encoded in the worker, read back
in the engine), and three event loops wake where one would. At 1,000 plain-HTTP checks a
second on a 2-core box the whole agent used about 0.34 ms of CPU a check with two workers
against 0.25-0.30 in one process (`python -m bench.peers --only checks`). So "auto" keeps the
checks in the engine process until they would take a real share of its core, and only then
spreads them over workers, one per core at most.

The share is estimated from the targets: a plain-HTTP check costs about `HTTP_CHECK_S` of CPU,
an HTTPS check about `HTTPS_CHECK_S` (the client's side of the TLS handshake; both measured on
the 2-core bench machine against a local nginx). With the dashboard in the same process the
budget is half as large: its repaints share the event loop with the checks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

from engine.targets import Target

HTTP_CHECK_S = 0.0003
"""CPU of one plain-HTTP check (new connection, request, response, Kafka event)."""

HTTPS_CHECK_S = 0.0013
"""CPU of one HTTPS check: the same plus the client's side of a TLS handshake."""

IN_PROCESS_SHARE = 0.5
"""Checks stay in the engine process while they need at most this much of a core."""

IN_PROCESS_SHARE_WITH_DASHBOARD = 0.25
"""The same when the dashboard runs in the engine process (`metrictui` without --headless)."""

WORKER_SHARE = 0.5
"""Each worker is given about this much of a core's checks (more workers past it, up to one
per core), so a worker keeps headroom for bursts and slow targets."""


def check_load(targets: Iterable[Target]) -> float:
    """The share of one core that checking the enabled `targets` is expected to take."""
    load = 0.0
    for target in targets:
        if target.enabled:
            cost = HTTPS_CHECK_S if target.url[:6].lower() == "https:" else HTTP_CHECK_S
            load += cost / target.interval
    return load


def worker_count(
    setting: int | str,
    targets: Iterable[Target],
    cpus: int | None = None,
    *,
    dashboard: bool = False,
) -> int:
    """Worker processes for `targets` under ``[agent] check_workers`` (0 = in the engine
    process). A count of 0 or 1 means in-process: one worker would only add the pipe."""
    if setting != "auto":
        count = int(setting)
        return count if count >= 2 else 0
    load = check_load(targets)
    budget = IN_PROCESS_SHARE_WITH_DASHBOARD if dashboard else IN_PROCESS_SHARE
    if load <= budget:
        return 0
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    count = min(cpus, max(2, math.ceil(load / WORKER_SHARE - 1e-9)))  # 1e-9: float sums
    return count if count >= 2 else 0
