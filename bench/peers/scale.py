"""Sizes of a peer benchmark run: `full` for `make bench-peers`, `smoke` for `make test`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeerScale:
    name: str
    sample_rows: int
    """Sample rows every system drains (63 per agent tick, the bench workload's samples)."""
    agents: int
    rounds: int
    """Drains per system; the order of systems alternates between rounds, rates are medians."""
    batch_max: int
    """metrictui's `[consumer] batch_max`; the peers batch 5,000 rows (their natural knob)."""
    timeout_s: float
    """Longest a drain may take before the tool is called stalled."""
    check_targets: int
    check_interval_s: float
    check_warmup_s: float
    check_window_s: float


SCALES = {
    "smoke": PeerScale(
        name="smoke",
        sample_rows=2_000,
        agents=2,
        rounds=1,
        batch_max=200,
        timeout_s=240.0,
        check_targets=100,
        check_interval_s=2.0,
        check_warmup_s=3.0,
        check_window_s=3.0,
    ),
    "full": PeerScale(
        name="full",
        sample_rows=1_000_000,
        agents=20,
        rounds=4,
        batch_max=5_000,
        timeout_s=900.0,
        check_targets=10_000,
        check_interval_s=10.0,
        check_warmup_s=12.0,
        check_window_s=30.0,
    ),
}
