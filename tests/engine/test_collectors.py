"""Host collectors: plausible values, rates from the second reading on, runtime toggles."""

from __future__ import annotations

import time
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from engine.agent.collector_names import COLLECTOR_NAMES
from engine.agent.collectors import (
    HostCollector,
    Sample,
    _busy_percent,
    _Counters,
    _cpu_steps,
)

UNITS = {
    "cpu.percent": "%",
    "cpu.mode_percent": "%",
    "load.1m": "",
    "load.5m": "",
    "load.15m": "",
    "memory.total_bytes": "bytes",
    "memory.used_bytes": "bytes",
    "memory.available_bytes": "bytes",
    "memory.percent": "%",
    "swap.total_bytes": "bytes",
    "swap.used_bytes": "bytes",
    "swap.percent": "%",
    "disk.total_bytes": "bytes",
    "disk.used_bytes": "bytes",
    "disk.free_bytes": "bytes",
    "disk.percent": "%",
    "diskio.read_bytes_per_s": "bytes/s",
    "diskio.write_bytes_per_s": "bytes/s",
    "diskio.read_ops_per_s": "ops/s",
    "diskio.write_ops_per_s": "ops/s",
    "diskio.read_bytes_total": "bytes",
    "diskio.write_bytes_total": "bytes",
    "net.recv_bytes_per_s": "bytes/s",
    "net.sent_bytes_per_s": "bytes/s",
    "net.recv_bytes_total": "bytes",
    "net.sent_bytes_total": "bytes",
    "net.errors_per_s": "count/s",
    "net.drops_per_s": "count/s",
    "processes.count": "count",
    "uptime.seconds": "s",
}
RATES = {m for m, unit in UNITS.items() if unit.endswith("/s")}


def by_metric(samples: list[Sample]) -> dict[str, list[Sample]]:
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        grouped[sample.metric].append(sample)
    return grouped


def two_readings(collector: HostCollector) -> tuple[list[Sample], list[Sample]]:
    first = collector.collect()
    time.sleep(0.3)
    return first, collector.collect()


def test_every_sample_uses_a_contract_metric_name_unit_and_float() -> None:
    first, second = two_readings(HostCollector(COLLECTOR_NAMES))
    for sample in first + second:
        assert UNITS[sample.metric] == sample.unit, sample
        assert isinstance(sample.value, float), sample
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in sample.labels)


def test_rates_appear_on_the_second_reading_and_are_not_negative() -> None:
    first, second = two_readings(HostCollector(["diskio", "net", "cpu"]))
    assert not RATES & {s.metric for s in first}
    assert not any(s.metric.startswith("cpu.") for s in first)
    metrics = by_metric(second)
    assert {"net.recv_bytes_per_s", "net.sent_bytes_per_s"} <= set(metrics)
    assert metrics["net.recv_bytes_total"], "raw counters are kept next to the rates"
    for sample in second:
        if sample.metric in RATES:
            assert sample.value >= 0, sample


def test_cpu_percent_total_and_per_core_between_0_and_100() -> None:
    _, second = two_readings(HostCollector(["cpu"]))
    cpu = by_metric(second)
    cores = {dict(s.labels)["cpu"] for s in cpu["cpu.percent"]}
    assert cores == {"total"} | {str(i) for i in range(len(psutil.cpu_times(percpu=True)))}
    for sample in cpu["cpu.percent"] + cpu["cpu.mode_percent"]:
        assert 0.0 <= sample.value <= 100.0, sample
    modes = {dict(s.labels)["mode"] for s in cpu["cpu.mode_percent"]}
    assert {"user", "system", "idle"} <= modes
    assert sum(s.value for s in cpu["cpu.mode_percent"]) == pytest.approx(100.0, abs=0.5)


def test_gauges_have_plausible_values() -> None:
    metrics = by_metric(HostCollector(COLLECTOR_NAMES).collect())
    assert metrics["memory.total_bytes"][0].value > 0
    assert 0 <= metrics["memory.percent"][0].value <= 100
    assert metrics["swap.total_bytes"][0].value >= 0
    assert metrics["uptime.seconds"][0].value > 0
    assert metrics["processes.count"][0].value >= 1
    assert [len(metrics[m]) for m in ("load.1m", "load.5m", "load.15m")] == [1, 1, 1]
    assert all(metrics[m][0].value >= 0 for m in ("load.1m", "load.5m", "load.15m"))


def test_disk_usage_is_reported_per_real_mount() -> None:
    disks = by_metric(HostCollector(["disk"]).collect())
    assert disks["disk.total_bytes"], "expected at least one real mount"
    for sample in disks["disk.total_bytes"]:
        labels = dict(sample.labels)
        assert set(labels) == {"mount", "device", "fstype"}
        assert sample.value > 0
    assert all(0 <= s.value <= 100 for s in disks["disk.percent"])


def test_unreadable_mount_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [
        SimpleNamespace(device="/dev/a", mountpoint="/secret", fstype="ext4"),
        SimpleNamespace(device="/dev/b", mountpoint="/data", fstype="xfs"),
    ]
    usage = SimpleNamespace(total=100, used=40, free=60, percent=40.0)

    def disk_usage(mount: str) -> Any:
        if mount == "/secret":
            raise PermissionError(13, "Permission denied")
        return usage

    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: parts)
    monkeypatch.setattr(psutil, "disk_usage", disk_usage)
    collector = HostCollector(["disk"])
    samples = collector.collect()
    assert {dict(s.labels)["mount"] for s in samples} == {"/data"}
    assert collector.last_errors == ()


def test_counter_reset_is_skipped_then_rates_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([1000, 500, 1500])

    def net_io_counters(pernic: bool = False) -> dict[str, Any]:
        value = next(readings)
        return {
            "eth0": SimpleNamespace(
                bytes_recv=value, bytes_sent=value, errin=0, errout=0, dropin=0, dropout=0
            )
        }

    monkeypatch.setattr(psutil, "net_io_counters", net_io_counters)
    collector = HostCollector(["net"])
    assert "net.recv_bytes_per_s" not in by_metric(collector.collect())
    time.sleep(0.01)
    after_reset = by_metric(collector.collect())
    assert "net.recv_bytes_per_s" not in after_reset
    assert after_reset["net.recv_bytes_total"][0].value == 500.0
    time.sleep(0.01)
    resumed = by_metric(collector.collect())
    assert resumed["net.recv_bytes_per_s"][0].value > 0


def test_set_enabled_toggles_collectors_at_runtime() -> None:
    collector = HostCollector(["memory", "uptime"])
    assert collector.enabled == frozenset({"memory", "uptime"})
    collector.set_enabled("memory", False)
    collector.set_enabled("processes", True)
    assert collector.enabled == frozenset({"uptime", "processes"})
    metrics = {s.metric.split(".")[0] for s in collector.collect()}
    assert metrics == {"uptime", "processes"}
    collector.set_enabled("memory", True)
    assert "memory" in {s.metric.split(".")[0] for s in collector.collect()}


def test_unknown_collector_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="gpu"):
        HostCollector(["cpu", "gpu"])
    collector = HostCollector([])
    with pytest.raises(ValueError, match="unknown collector 'gpu'"):
        collector.set_enabled("gpu", True)
    assert collector.collect() == []


def test_one_failing_collector_does_not_blank_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> tuple[float, float, float]:
        raise OSError("no loadavg here")

    monkeypatch.setattr(psutil, "getloadavg", broken)
    collector = HostCollector(["load", "memory"])
    metrics = by_metric(collector.collect())
    assert "load.1m" not in metrics and "memory.total_bytes" in metrics
    assert collector.last_errors == (("load", "OSError: no loadavg here"),)


def test_iowait_slipping_back_keeps_the_cpu_figures() -> None:
    """Linux's per-CPU iowait can decrease between reads; that is not a counter reset."""
    counters = _Counters()
    counters.begin(0.0)
    assert _cpu_steps(counters, "0", {"user": 10.0, "idle": 50.0, "iowait": 5.0}) is None
    counters.begin(1.0)
    steps = _cpu_steps(counters, "0", {"user": 10.5, "idle": 50.5, "iowait": 4.9})
    assert steps == {"user": 0.5, "idle": 0.5, "iowait": 0.0}
    assert _busy_percent(steps) == pytest.approx(50.0)
