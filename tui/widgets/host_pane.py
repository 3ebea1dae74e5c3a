"""Latest host values of this agent: cpu, load, memory, swap, disk per mount, disk io, net."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical

from engine.stats import LatestSample, StatsSnapshot
from tui.widgets.line import Line
from tui.widgets.safe_text import safe_text
from tui.widgets.units import human_byte_rate, human_count, human_percent, human_seconds

_LOOPBACK = frozenset({"lo", "lo0"})
HOST_LINES = 6


def _labels(sample: LatestSample) -> dict[str, str]:
    return dict(sample.labels)


def _find(metrics: Iterable[LatestSample], metric: str, **labels: str) -> float | None:
    for sample in metrics:
        if sample.metric == metric and all(_labels(sample).get(k) == v for k, v in labels.items()):
            return sample.value
    return None


def _sum(metrics: Iterable[LatestSample], metric: str, skip: frozenset[str]) -> float | None:
    values = [
        s.value for s in metrics if s.metric == metric and _labels(s).get("interface") not in skip
    ]
    return sum(values) if values else None


def _label(label: str) -> Text:
    return Text(f"{label:<6}", "bold")


def _off() -> Text:
    return Text("off", "dim")


def _disks(metrics: tuple[LatestSample, ...]) -> Text:
    """'/ 71%  /home 33%': every mount on one line (the pane cuts it with an ellipsis)."""
    disks = sorted(
        (_labels(s).get("mount", "?"), s.value) for s in metrics if s.metric == "disk.percent"
    )
    if not disks:
        return Text("—")
    parts = [safe_text(mount, max_chars=20) + Text(f" {pct:.0f}%") for mount, pct in disks]
    return Text("  ").join(parts)


def host_lines(metrics: tuple[LatestSample, ...], enabled: Mapping[str, bool]) -> list[Text]:
    """Six lines; a collector switched off shows 'off' rather than stale numbers."""

    def on(name: str) -> bool:
        return enabled.get(name, True)

    cpu = Text(human_percent(_find(metrics, "cpu.percent", cpu="total"))) if on("cpu") else _off()
    loads = [_find(metrics, f"load.{w}") for w in ("1m", "5m", "15m")]
    load = Text(" ".join("—" if v is None else f"{v:.2f}" for v in loads)) if on("load") else _off()
    memory = Text(human_percent(_find(metrics, "memory.percent"))) if on("memory") else _off()
    swap = Text(human_percent(_find(metrics, "swap.percent"))) if on("swap") else _off()
    read = _sum(metrics, "diskio.read_bytes_per_s", frozenset())
    write = _sum(metrics, "diskio.write_bytes_per_s", frozenset())
    rx = _sum(metrics, "net.recv_bytes_per_s", _LOOPBACK)
    tx = _sum(metrics, "net.sent_bytes_per_s", _LOOPBACK)
    io = Text(f"r {human_byte_rate(read)}  w {human_byte_rate(write)}") if on("diskio") else _off()
    net = Text(f"rx {human_byte_rate(rx)}  tx {human_byte_rate(tx)}") if on("net") else _off()
    procs = _find(metrics, "processes.count") if on("processes") else None
    uptime = _find(metrics, "uptime.seconds") if on("uptime") else None
    return [
        Text.assemble(_label("cpu"), cpu, ("  load ", "bold"), load),
        Text.assemble(_label("mem"), memory, ("  swap ", "bold"), swap),
        Text.assemble(_label("disk"), _disks(metrics) if on("disk") else _off()),
        Text.assemble(_label("io"), io),
        Text.assemble(_label("net"), net),
        Text.assemble(
            _label("procs"), human_count(procs), ("  up ", "bold"), human_seconds(uptime)
        ),
    ]


class HostPane(Vertical):
    """The right pane of the dashboard: one `Line` per row, each repainted only when it changes."""

    DEFAULT_CSS = """
    HostPane { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "host"
        self._lines: list[Line] = []

    def compose(self) -> ComposeResult:
        self._lines = [Line(id=f"host-{index}") for index in range(HOST_LINES)]
        yield from self._lines

    def apply(self, s: StatsSnapshot) -> None:
        """Show snapshot `s`."""
        for line, text in zip(self._lines, host_lines(s.metrics, s.metrics_enabled), strict=True):
            line.show(text)
