"""Small measuring helpers shared by the benchmark parts."""

from __future__ import annotations

import math
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


def best(runs: Sequence[Throughput]) -> Throughput:
    """The fastest run: on a shared machine the slower ones measured the neighbours."""
    return max(runs, key=lambda r: (r.rows_per_s, r.items_per_s))


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
