"""Benchmark sizes: `tiny` proves the benchmark still runs (seconds), `full` is the real one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scale:
    """Every size and duration of one benchmark run."""

    name: str
    sample_rows: int
    """Sample rows in the pre-filled topic the sink drains (plus one check row per check event)."""
    agents: int
    """Distinct agents (hosts) in the pre-filled data; each has its own metric series."""
    batch_max: int
    """`[consumer] batch_max` of every consumer, baseline or not."""
    repeat: int
    """Rounds of throughput runs (metrictui and its baselines back to back, order alternating);
    ratios are the median of the rounds' ratios."""
    naive_messages: int
    """Messages the naive sink writes (one INSERT + one commit each); it is slow."""
    producer_events: int
    """Events per producer or raw-send run: enough for a run to last seconds, so that one burst
    of the shared box's other work cannot decide a round."""
    freshness_rate: float
    """Events per second fed while measuring freshness."""
    freshness_warmup_s: float
    freshness_s: float
    check_targets: int
    check_interval_s: float
    check_warmup_s: float
    check_s: float
    agent_targets: int
    agent_target_interval_s: float
    agent_warmup_s: float
    agent_s: float
    """The headless agent runs this long in total; CPU is measured after `agent_warmup_s`."""
    tui_repeat: int


SCALES = {
    "tiny": Scale(
        name="tiny",
        sample_rows=20_000,
        agents=4,
        batch_max=200,
        repeat=1,
        naive_messages=60,
        producer_events=3_000,
        freshness_rate=500.0,
        freshness_warmup_s=1.0,
        freshness_s=3.0,
        check_targets=200,
        check_interval_s=1.0,
        check_warmup_s=1.5,
        check_s=2.0,
        agent_targets=20,
        agent_target_interval_s=2.0,
        agent_warmup_s=2.0,
        agent_s=5.0,
        tui_repeat=1,
    ),
    "full": Scale(
        name="full",
        sample_rows=1_000_000,
        agents=20,
        batch_max=5_000,
        repeat=4,
        naive_messages=3_000,
        producer_events=120_000,
        freshness_rate=2_000.0,
        freshness_warmup_s=5.0,
        freshness_s=30.0,
        check_targets=10_000,
        check_interval_s=10.0,
        check_warmup_s=12.0,
        check_s=30.0,
        agent_targets=20,
        agent_target_interval_s=10.0,
        agent_warmup_s=20.0,
        agent_s=120.0,
        tui_repeat=3,
    ),
}
