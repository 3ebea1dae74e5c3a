"""Small measuring helpers shared by the benchmark parts."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Throughput:
    """`items` (messages or events) and `rows` handled in `seconds`."""

    items: int
    rows: int
    seconds: float
    cpu_s: float | None = None
    """CPU time of this process over the same window, where measured."""

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def median_of(runs: Sequence[Throughput], rate: str) -> float:
    """Median of one rate (`rows_per_s` or `items_per_s`) over runs."""
    values: list[float] = [getattr(r, rate) for r in runs]
    return round(statistics.median(values))


def paired(ours: Sequence[Throughput], theirs: Sequence[Throughput], rate: str) -> float | None:
    """Median over rounds of ours/theirs: runs of one round were back to back, so each ratio
    saw the same machine, whatever the neighbours did between rounds."""
    if not ours or not all(getattr(b, rate) for b in theirs):
        return None
    ratios: list[float] = [
        getattr(a, rate) / getattr(b, rate) for a, b in zip(ours, theirs, strict=True)
    ]
    return statistics.median(ratios)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b
