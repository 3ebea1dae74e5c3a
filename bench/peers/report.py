"""From drains and check runs to `peers.json`'s figures and the printed Markdown table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from bench.peers.checks import ChecksRun
from bench.peers.drain import Drain

PREFIX = {"metrictui": "sink", "telegraf": "telegraf", "connect": "connect"}
"""peers.json key prefix of each system (the issue's names)."""


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def drain_figures(system: str, drains: Sequence[Drain]) -> dict[str, Any]:
    """Medians over a system's rounds; the headline rate is steady state (10 %-90 % of rows)."""
    p = PREFIX[system]
    return {
        f"{p}_rows_per_s": round(_median([d.rows_per_s_steady for d in drains])),
        f"{p}_rows_per_s_from_start": round(_median([d.rows_per_s_from_start for d in drains])),
        f"{p}_first_rows_s": round(_median([d.first_rows_s for d in drains]), 2),
        f"{p}_cpu_us_per_row": round(_median([d.tool_cpu_us_per_row for d in drains]), 2),
        f"{p}_pg_cpu_us_per_row": round(_median([d.pg_cpu_us_per_row for d in drains]), 2),
    }


def _paired(r: dict[str, Any], best: str, key: str) -> float:
    """The median over rounds of the sink's `key` over the best peer's in the same round.

    The two ran back to back in each round (order alternating), so a round shares the box's
    mood; rates on this box move by a fifth between rounds, which a ratio of medians taken
    over different rounds carries into the ratio. Without per-round runs: ratio of medians."""
    sink_runs, peer_runs = r.get("sink_runs") or [], r.get(f"{best}_runs") or []
    pairs = [
        a[key] / b[key] for a, b in zip(sink_runs, peer_runs, strict=False) if a[key] and b[key]
    ]
    if pairs:
        return _median(pairs)
    field = {"rows_per_s_steady": "rows_per_s", "rows_per_s_from_start": "rows_per_s_from_start"}
    return float(r[f"sink_{field[key]}"] / r[f"{best}_{field[key]}"])


def comparisons(r: dict[str, Any]) -> dict[str, Any]:
    """The sink against the best peer present (by steady rows/s): per-round ratios' medians."""
    peers = [p for p in ("telegraf", "connect") if r.get(f"{p}_rows_per_s")]
    if not peers or not r.get("sink_rows_per_s"):
        return {}
    best = max(peers, key=lambda p: r[f"{p}_rows_per_s"])
    out: dict[str, Any] = {
        "best_peer": best,
        "sink_vs_best_peer": round(_paired(r, best, "rows_per_s_steady"), 3),
        "sink_vs_best_peer_from_start": round(_paired(r, best, "rows_per_s_from_start"), 3),
        "sink_cpu_vs_best_peer": round(r["sink_cpu_us_per_row"] / r[f"{best}_cpu_us_per_row"], 3),
    }
    return out


def checks_figures(run: ChecksRun) -> dict[str, Any]:
    p = "" if run.system == "metrictui" else f"{run.system}_"
    return {
        f"{p}checks_per_s": round(run.per_s, 1),
        f"{p}checks_cpu_ms_per_check": round(run.cpu_ms_per_check, 3),
    }


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def table(r: dict[str, Any]) -> str:
    """Markdown: one line per system for rows, one per checker for checks."""
    v = r.get("versions", {})
    names = {
        "sink": f"metrictui sink ({r.get('git_commit', '')}), exactly-once",
        "telegraf": f"Telegraf {v.get('telegraf', '')} kafka_consumer → postgresql, at-least-once",
        "connect": (
            f"Kafka Connect {v.get('connect', '')} + Debezium JDBC sink"
            f" {v.get('debezium', '')}, at-least-once"
        ),
    }
    lines: list[str] = []
    header = [
        "| system | rows/s steady | rows/s from start | first rows after | tool CPU µs/row"
        " | PostgreSQL CPU µs/row |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for p, label in names.items():
        if r.get(f"{p}_rows_per_s") is None:
            continue
        lines += header if not lines else []
        lines.append(
            f"| {label} | {_n(r[f'{p}_rows_per_s'])} | {_n(r[f'{p}_rows_per_s_from_start'])}"
            f" | {_n(r[f'{p}_first_rows_s'], 1)} s | {_n(r[f'{p}_cpu_us_per_row'], 2)}"
            f" | {_n(r[f'{p}_pg_cpu_us_per_row'], 2)} |"
        )
    if r.get("sink_vs_best_peer") is not None:
        lines.append(
            f"| **sink vs best peer ({r['best_peer']})** | **{r['sink_vs_best_peer']:.2f}x** |"
            f" {r['sink_vs_best_peer_from_start']:.2f}x | | CPU {r['sink_cpu_vs_best_peer']:.2f}x |"
            " |"
        )
    if r.get("checks_per_s") is not None or r.get("telegraf_checks_per_s") is not None:
        lines += [
            "",
            f"| checker ({r.get('check_targets', 0):,} targets every"
            f" {r.get('check_interval_s', 0):g} s, {r.get('web_server', '')}) | checks/s"
            " | CPU ms/check |",
            "|---|---:|---:|",
            f"| metrictui agent | {_n(r.get('checks_per_s'), 1)}"
            f" | {_n(r.get('checks_cpu_ms_per_check'), 3)} |",
            f"| Telegraf http_response | {_n(r.get('telegraf_checks_per_s'), 1)}"
            f" | {_n(r.get('telegraf_checks_cpu_ms_per_check'), 3)} |",
        ]
    return "\n".join(lines)
