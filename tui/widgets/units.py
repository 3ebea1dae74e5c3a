"""Numbers as people read them: bytes in kB/MB, rates per second, ages in s/m/h/d.

Ages are computed against the snapshot's `taken_at`, never the wall clock, so a screen rendered
from a fixed snapshot is always the same (snapshot tests rely on it).
"""

from __future__ import annotations

from datetime import datetime

_BYTE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")
_COUNT_UNITS = ("", "k", "M", "G", "T")


def human_bytes(value: float | None) -> str:
    """1536 -> '1.5 kB', 250000 -> '250 kB' (decimal units, like `df -H` and network tools)."""
    if value is None:
        return "—"
    amount = float(value)
    for unit in _BYTE_UNITS:
        if abs(amount) < 1000 or unit == _BYTE_UNITS[-1]:
            precise = unit != "B" and abs(amount) < 10
            return f"{amount:.1f} {unit}" if precise else f"{amount:.0f} {unit}"
        amount /= 1000
    raise AssertionError("unreachable")


def human_count(value: float | None) -> str:
    """12345 -> '12.3k'; small numbers keep one decimal only when they have one."""
    if value is None:
        return "—"
    amount = float(value)
    for unit in _COUNT_UNITS:
        if abs(amount) < 1000 or unit == _COUNT_UNITS[-1]:
            if unit == "" and amount == int(amount):
                return f"{int(amount)}"
            return f"{amount:.1f}{unit}"
        amount /= 1000
    raise AssertionError("unreachable")


def human_byte_rate(value: float | None) -> str:
    """Bytes per second: '1.5 MB/s'."""
    return "—" if value is None else f"{human_bytes(value)}/s"


def human_seconds(value: float | None) -> str:
    """A duration: '850 ms', '12.3 s', '4m 05s', '3h 12m', '2d 4h'."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    whole = int(value)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def human_ms(value: float | None) -> str:
    """Milliseconds as measured: '123 ms', '1.2 s'."""
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.1f} s"


def human_age(at: datetime | None, now: datetime) -> str:
    """How long before `now` the moment `at` was: '5s ago', '3m ago'; '—' when never."""
    if at is None:
        return "—"
    seconds = max(0.0, (now - at).total_seconds())
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h ago"
    return f"{seconds // 86400:.0f}d ago"


def human_percent(value: float | None) -> str:
    """'12.5%'."""
    return "—" if value is None else f"{value:.1f}%"
