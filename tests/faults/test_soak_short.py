"""The soak of `make soak` (bench/soak), two minutes of it with one fault of each kind, so
every `make test` proves on the three-node cluster what the 30-minute run proves: under a
broker kill, a PostgreSQL restart, a consumer SIGKILL and a producer SIGKILL with a spool,
every event made is stored exactly once, except those only in memory at a SIGKILL (counted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cluster import Cluster
from bench.soak.faults import KINDS
from bench.soak.run import SoakSettings, run_soak
from helpers.stack import ROOT

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(1500)]


def test_two_minute_soak_with_one_fault_of_each_kind_loses_and_doubles_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    report = run_soak(SoakSettings(minutes=2, rate=2000, faults=4, seed=13, workdir=tmp_path))
    out = ROOT / "bench" / "results" / "soak-short.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    assert report["faults_by_kind"] == {kind: 1 for kind in KINDS}, report["faults"]
    assert report["produced"] >= 2000 * 60, report["produced"]
    missing = [i for i in report["incarnations"] if i["missing"]]
    assert report["lost_unexplained"] == 0, json.dumps(missing)
    assert report["duplicates"] == 0, report["duplicate_rows"]
    assert report["sample_rows_missing"] == 0
    accounted = report["stored"] + report["dead_lettered"] + report["lost_in_memory_at_sigkill"]
    assert report["produced"] == accounted, report
    assert report["ok"]
