"""The benchmark cannot rot: a tiny `python -m bench` run against the real stack, every part.

Only the shape of the result is asserted (every key of the issue present and measured); the
figures of a tiny run on a shared machine say nothing, and no wall-clock goal is checked here.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.measure import percentile
from bench.run import KEYS
from helpers.stack import ROOT, StackInfo

pytestmark = pytest.mark.integration


def test_tiny_bench_measures_every_key(stack: StackInfo, tmp_path: Path) -> None:
    output = tmp_path / "latest.json"
    env = {
        **os.environ,
        "METRICTUI_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap,
        "METRICTUI_POSTGRES__DSN": stack.dsn,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "tiny", "--output", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    results = json.loads(output.read_text())
    missing = [k for k in KEYS if results.get(k) is None]
    assert not missing, f"not measured: {missing}; errors: {results.get('errors')}"
    assert all(isinstance(results[k], int | float) and math.isfinite(results[k]) for k in KEYS)
    # Counts of things that must not happen are measured as 0 when all is well.
    zero_is_good = {"check_drift_p99_ms", "fleet_double_checks", "fleet_missed_checks"}
    assert all(results[k] > 0 for k in KEYS if k not in zero_is_good)
    assert all(results[k] >= 0 for k in zero_is_good)
    assert results["scale"] == "tiny" and results["errors"] == {}
    # The fleet's scale case, small: shares within the goal's band, the table far under 50 MB.
    assert results["fleet_balance_worst_pct"] <= 20, results
    assert results["fleet_table_memory_mb"] < 50, results
    assert "| sink vs raw binary COPY (rows/s) |" in proc.stdout


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None
