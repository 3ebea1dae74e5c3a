"""Host metrics from psutil: one small registered function per collector, toggleable at runtime.

`HostCollector.collect()` is blocking (psutil reads /proc); the engine runs it in a thread.
Counters (disk io, network, cpu times) become per-second rates computed from the previous
reading and the elapsed monotonic time, so the first call has no rates and a counter that went
backwards (device re-added, counter wrapped) is skipped instead of producing a huge spike.
CPU percentages are computed from `cpu_times` deltas owned by the collector rather than from
`psutil.cpu_percent(interval=None)`, whose "previous reading" is process-global state shared
by every caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psutil

from engine.agent.collector_names import COLLECTOR_NAMES

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured value: `metric` name, `value`, its `unit`, and labels naming the series."""

    metric: str
    value: float
    unit: str
    labels: Labels = ()


class _Counters:
    """Previous counter readings, turned into per-second rates on the next reading.

    Keys not read during a collection are forgotten, so a vanished device or a disabled
    collector starts afresh (no rate) when it comes back.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, ...], tuple[float, float]] = {}
        self._seen: set[tuple[str, ...]] = set()
        self.now = 0.0

    def begin(self, now: float) -> None:
        self.now = now
        self._seen = set()

    def delta(self, key: tuple[str, ...], value: float) -> tuple[float, float] | None:
        """(value change, seconds elapsed) since the last reading; None if unknown or reset."""
        self._seen.add(key)
        previous = self._last.get(key)
        self._last[key] = (value, self.now)
        if previous is None:
            return None
        change, elapsed = value - previous[0], self.now - previous[1]
        if change < 0 or elapsed <= 0:
            return None
        return change, elapsed

    def step(self, key: tuple[str, ...], value: float) -> float | None:
        """Change since the last reading, never below 0; None on first sight.

        For counters the kernel lets slip back a little instead of resetting them: Linux's
        per-CPU iowait can decrease between two reads, which must not drop the CPU figures.
        """
        self._seen.add(key)
        previous = self._last.get(key)
        self._last[key] = (value, self.now)
        return None if previous is None else max(0.0, value - previous[0])

    def rate(self, key: tuple[str, ...], value: float) -> float | None:
        """Per-second rate of a monotonically growing counter, or None on first sight/reset."""
        found = self.delta(key, value)
        return None if found is None else found[0] / found[1]

    def end(self) -> None:
        for key in set(self._last) - self._seen:
            del self._last[key]


CollectorFn = Callable[[_Counters], list[Sample]]
_REGISTRY: dict[str, CollectorFn] = {}


def _collector(name: str) -> Callable[[CollectorFn], CollectorFn]:
    def register(fn: CollectorFn) -> CollectorFn:
        _REGISTRY[name] = fn
        return fn

    return register


def _rate_samples(
    counters: _Counters, metric: str, unit: str, labels: Labels, value: float
) -> list[Sample]:
    rate = counters.rate((metric, *(v for _, v in labels)), value)
    return [] if rate is None else [Sample(metric, rate, unit, labels)]


# Linux counts guest time inside user/nice too; psutil's cpu_percent subtracts it the same way.
_GUEST_FIELDS = ("guest", "guest_nice")


def _cpu_parts(times: Any) -> dict[str, float]:
    parts = {name: float(getattr(times, name)) for name in times._fields}
    for name in _GUEST_FIELDS:
        parts.pop(name, None)
    return parts


def _cpu_steps(counters: _Counters, cpu: str, parts: dict[str, float]) -> dict[str, float] | None:
    """Seconds spent in each mode by `cpu` since its previous reading; None on the first one."""
    found = {mode: counters.step(("cpu.mode", cpu, mode), value) for mode, value in parts.items()}
    steps = {mode: step for mode, step in found.items() if step is not None}
    return steps if len(steps) == len(found) and sum(steps.values()) > 0 else None


def _busy_percent(steps: dict[str, float]) -> float:
    """Busy percent: everything but idle and iowait."""
    total = sum(steps.values())
    idle = steps.get("idle", 0.0) + steps.get("iowait", 0.0)
    return min(100.0, max(0.0, 100.0 * (total - idle) / total))


@_collector("cpu")
def collect_cpu(counters: _Counters) -> list[Sample]:
    """cpu.percent for the total and each core, cpu.mode_percent per mode (total only)."""
    samples: list[Sample] = []
    steps = _cpu_steps(counters, "total", _cpu_parts(psutil.cpu_times()))
    if steps is not None:
        samples.append(Sample("cpu.percent", _busy_percent(steps), "%", (("cpu", "total"),)))
        total = sum(steps.values())
        for mode, step in steps.items():
            percent = min(100.0, 100.0 * step / total)
            samples.append(Sample("cpu.mode_percent", percent, "%", (("mode", mode),)))
    for index, times in enumerate(psutil.cpu_times(percpu=True)):
        core = _cpu_steps(counters, str(index), _cpu_parts(times))
        if core is not None:
            samples.append(Sample("cpu.percent", _busy_percent(core), "%", (("cpu", str(index)),)))
    return samples


@_collector("load")
def collect_load(counters: _Counters) -> list[Sample]:
    """Load averages over 1, 5 and 15 minutes."""
    one, five, fifteen = psutil.getloadavg()
    return [
        Sample("load.1m", float(one), ""),
        Sample("load.5m", float(five), ""),
        Sample("load.15m", float(fifteen), ""),
    ]


@_collector("memory")
def collect_memory(counters: _Counters) -> list[Sample]:
    """Physical memory: total, used, available (bytes) and percent used."""
    mem = psutil.virtual_memory()
    return [
        Sample("memory.total_bytes", float(mem.total), "bytes"),
        Sample("memory.used_bytes", float(mem.used), "bytes"),
        Sample("memory.available_bytes", float(mem.available), "bytes"),
        Sample("memory.percent", float(mem.percent), "%"),
    ]


@_collector("swap")
def collect_swap(counters: _Counters) -> list[Sample]:
    """Swap: total and used bytes, percent used."""
    swap = psutil.swap_memory()
    return [
        Sample("swap.total_bytes", float(swap.total), "bytes"),
        Sample("swap.used_bytes", float(swap.used), "bytes"),
        Sample("swap.percent", float(swap.percent), "%"),
    ]


@_collector("disk")
def collect_disk(counters: _Counters) -> list[Sample]:
    """Usage of each real mounted filesystem; mounts we cannot read are left out."""
    samples: list[Sample] = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.mountpoint in seen:
            continue
        seen.add(part.mountpoint)
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue  # unreadable or vanished mount (PermissionError is an OSError)
        if usage.total <= 0:
            continue
        labels = (("device", part.device), ("fstype", part.fstype), ("mount", part.mountpoint))
        samples += [
            Sample("disk.total_bytes", float(usage.total), "bytes", labels),
            Sample("disk.used_bytes", float(usage.used), "bytes", labels),
            Sample("disk.free_bytes", float(usage.free), "bytes", labels),
            Sample("disk.percent", float(usage.percent), "%", labels),
        ]
    return samples


# Loop and RAM block devices are artefacts of snaps and initramfs, not disks people watch.
_SKIPPED_DISK_PREFIXES = ("loop", "ram")


@_collector("diskio")
def collect_diskio(counters: _Counters) -> list[Sample]:
    """Per device: bytes and operations per second, and the raw byte counters."""
    samples: list[Sample] = []
    per_disk = psutil.disk_io_counters(perdisk=True) or {}
    for device, io in sorted(per_disk.items()):
        if device.startswith(_SKIPPED_DISK_PREFIXES):
            continue
        labels = (("device", device),)
        samples += _rate_samples(
            counters, "diskio.read_bytes_per_s", "bytes/s", labels, io.read_bytes
        )
        samples += _rate_samples(
            counters, "diskio.write_bytes_per_s", "bytes/s", labels, io.write_bytes
        )
        samples += _rate_samples(counters, "diskio.read_ops_per_s", "ops/s", labels, io.read_count)
        samples += _rate_samples(
            counters, "diskio.write_ops_per_s", "ops/s", labels, io.write_count
        )
        samples.append(Sample("diskio.read_bytes_total", float(io.read_bytes), "bytes", labels))
        samples.append(Sample("diskio.write_bytes_total", float(io.write_bytes), "bytes", labels))
    return samples


@_collector("net")
def collect_net(counters: _Counters) -> list[Sample]:
    """Per interface: bytes/s each way, errors/s and drops/s, and the raw byte counters."""
    samples: list[Sample] = []
    for interface, io in sorted(psutil.net_io_counters(pernic=True).items()):
        labels = (("interface", interface),)
        samples += _rate_samples(counters, "net.recv_bytes_per_s", "bytes/s", labels, io.bytes_recv)
        samples += _rate_samples(counters, "net.sent_bytes_per_s", "bytes/s", labels, io.bytes_sent)
        samples += _rate_samples(
            counters, "net.errors_per_s", "count/s", labels, io.errin + io.errout
        )
        samples += _rate_samples(
            counters, "net.drops_per_s", "count/s", labels, io.dropin + io.dropout
        )
        samples.append(Sample("net.recv_bytes_total", float(io.bytes_recv), "bytes", labels))
        samples.append(Sample("net.sent_bytes_total", float(io.bytes_sent), "bytes", labels))
    return samples


@_collector("processes")
def collect_processes(counters: _Counters) -> list[Sample]:
    """Number of processes on the host."""
    return [Sample("processes.count", float(len(psutil.pids())), "count")]


@_collector("uptime")
def collect_uptime(counters: _Counters) -> list[Sample]:
    """Seconds since the host booted."""
    return [Sample("uptime.seconds", max(0.0, time.time() - psutil.boot_time()), "s")]


assert tuple(_REGISTRY) == COLLECTOR_NAMES, "every collector name needs exactly one function"


class HostCollector:
    """Runs the enabled collectors and remembers counters between calls to compute rates.

    Not shared between threads for `collect()`; `set_enabled` may be called from another
    thread (it swaps an immutable set).
    """

    def __init__(self, enabled: Iterable[str] = COLLECTOR_NAMES) -> None:
        names = frozenset(enabled)
        for name in names:
            _check_name(name)
        self._enabled = names
        self._counters = _Counters()
        self._errors: tuple[tuple[str, str], ...] = ()

    @property
    def enabled(self) -> frozenset[str]:
        """Names of the collectors that run on the next `collect()`."""
        return self._enabled

    @property
    def last_errors(self) -> tuple[tuple[str, str], ...]:
        """(collector, message) for each collector that failed during the last `collect()`."""
        return self._errors

    def set_enabled(self, name: str, on: bool) -> None:
        """Turn one collector on or off; unknown names raise ValueError."""
        _check_name(name)
        self._enabled = self._enabled | {name} if on else self._enabled - {name}

    def collect(self) -> list[Sample]:
        """One reading of every enabled collector (blocking; run it in a thread).

        A collector that fails (psutil or OS error) is left out of this reading and reported
        in `last_errors`, so one broken source does not blank the others.
        """
        enabled = self._enabled
        counters = self._counters
        counters.begin(time.monotonic())
        samples: list[Sample] = []
        errors: list[tuple[str, str]] = []
        for name in COLLECTOR_NAMES:
            if name not in enabled:
                continue
            try:
                samples += _REGISTRY[name](counters)
            except (OSError, psutil.Error, RuntimeError) as exc:
                errors.append((name, f"{type(exc).__name__}: {exc}"))
        counters.end()
        self._errors = tuple(errors)
        return samples


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown collector {name!r}; expected one of {', '.join(COLLECTOR_NAMES)}"
        )
