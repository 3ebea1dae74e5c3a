"""Run the whole benchmark, print a table, write bench/results/latest.json.

    python -m bench [--scale tiny|full] [--only sink,producer,...] [--output PATH]

Every figure that is judged is a ratio against a baseline measured in the same run (or an
absolute latency/footprint), because the machine is small and shared. Throughput runs go in
rounds, metrictui and its baselines back to back (order alternating); a ratio is the median
of the rounds' ratios and a rate the median of its runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench.checks_parts import bare_http, measure_agent, measure_checks
from bench.env import ROOT, BenchEnv, stack_endpoints
from bench.fleet_parts import FLEET_KEYS, fleet_sizes, run_fleet, scale_sizes
from bench.fleet_scale import run_scale
from bench.freshness import measure_freshness
from bench.kafka_parts import raw_consume, raw_send, real_producer
from bench.measure import Throughput, median_of, paired, ratio
from bench.pg_parts import copy_data_of, naive_sink, raw_copy
from bench.scale import SCALES, Scale
from bench.sink_parts import sink_drain
from bench.tui_parts import engine_drain
from bench.webserver import LocalWebServer
from bench.workload import Message, days_of, encode, iter_workload, sample_template
from engine.sink.consume import writer_count

PARTS = ("sink", "producer", "freshness", "checks", "agent", "tui", "fleet")
KEYS = (
    "sink_rows_per_s",
    "raw_copy_rows_per_s",
    "raw_copy_ledger_rows_per_s",
    "ledger_vs_copy",
    "raw_copy_parallel_rows_per_s",
    "sink_vs_parallel_copy",
    "raw_consume_msgs_per_s",
    "naive_rows_per_s",
    "sink_vs_copy",
    "sink_vs_consume",
    "sink_vs_naive",
    "producer_events_per_s",
    "raw_send_events_per_s",
    "producer_vs_raw",
    "freshness_p50_ms",
    "freshness_p99_ms",
    "checks_per_s",
    "check_drift_p99_ms",
    "agent_cpu_pct",
    "agent_rss_mb",
    "tui_vs_headless",
    *FLEET_KEYS,
)
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "latest.json"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Run:
    """One benchmark run: its environment, its data and the results gathered so far."""

    def __init__(self, scale: Scale, env: BenchEnv) -> None:
        self.scale = scale
        self.env = env
        self.results: dict[str, Any] = dict.fromkeys(KEYS)
        self.runs: dict[str, list[dict[str, float]]] = {}
        self.errors: dict[str, str] = {}
        self.template = sample_template()
        self._data: tuple[list[Message], Any] | None = None

    def note(self, name: str, t: Throughput) -> Throughput:
        self.runs.setdefault(name, []).append(
            {"items_per_s": round(t.items_per_s, 1), "rows_per_s": round(t.rows_per_s, 1)}
        )
        say(f"  {name:<14} {t.items_per_s:>12,.0f} items/s {t.rows_per_s:>12,.0f} rows/s")
        return t

    async def part(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        say(f"== {name}")
        started = time.monotonic()
        try:
            await body()
        except Exception as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"[:500]
            say(traceback.format_exc())
        say(f"   ({time.monotonic() - started:.1f} s)")

    # -- data -------------------------------------------------------------------------------

    async def data(self) -> tuple[list[Message], Any]:
        """The pre-filled topics (made once): messages and the config naming the topics."""
        if self._data is None:
            s = self.scale
            messages = [
                encode(e)
                for e in iter_workload(self.template, sample_rows=s.sample_rows, agents=s.agents)
            ]
            config, _ = self.env.config("data", self.env.names("data"))
            await self.env.create_topics(config)
            fill = await raw_send(config.kafka, messages)
            r = self.results
            r["messages"] = len(messages)
            r["rows"] = sum(m.rows for m in messages)
            r["sample_rows"] = sum(m.rows for m in messages if m.is_metrics)
            r["samples_per_metrics_event"] = len(self.template)
            r["avg_message_bytes"] = round(sum(len(m.value) for m in messages) / len(messages))
            r["prefill_msgs_per_s"] = round(fill.items_per_s)
            self._data = (messages, config)
        return self._data

    # -- parts ------------------------------------------------------------------------------

    async def sink(self) -> None:
        """Rounds of raw consume, raw COPY and the sink back to back (order alternating); each
        ratio is the median of the rounds' ratios, since a round shares the machine's mood."""
        messages, data_config = await self.data()
        rows, days = sum(m.rows for m in messages), days_of(messages)
        copy_data = copy_data_of(messages, self.scale.batch_max)
        env, r = self.env, self.results
        consume, copy, sink, ledger, parallel = [], [], [], [], []
        writers = writer_count(data_config)
        for i in range(self.scale.repeat):
            steps = ["consume", "copy", "sink", "ledger", "parallel"]
            for step in steps if i % 2 == 0 else steps[::-1]:
                if step == "consume":
                    t = await raw_consume(data_config, len(messages))
                    consume.append(self.note("raw consume", t))
                elif step == "copy":
                    config, _ = env.config(f"copy{i}", env.names(f"copy{i}", topics_of="data"))
                    copy.append(self.note("raw COPY", await raw_copy(config, copy_data)))
                elif step == "ledger":
                    config, _ = env.config(f"led{i}", env.names(f"led{i}", topics_of="data"))
                    t = await raw_copy(config, copy_data, ledger=True)
                    ledger.append(self.note("COPY + ledger", t))
                elif step == "parallel":
                    config, _ = env.config(f"par{i}", env.names(f"par{i}", topics_of="data"))
                    t = await raw_copy(config, copy_data, connections=writers)
                    parallel.append(self.note(f"raw COPY x{writers}", t))
                else:
                    config, _ = env.config(f"sink{i}", env.names(f"sink{i}", topics_of="data"))
                    t = await sink_drain(config, rows, len(messages), days)
                    sink.append(self.note("sink", t))
        config, _ = env.config("naive", env.names("naive", topics_of="data"))
        naive = self.note("naive", await naive_sink(config, messages, self.scale.naive_messages))
        config, _ = env.config("naive_rows", env.names("naive_rows", topics_of="data"))
        limit = self.scale.naive_messages // 5
        by_row = self.note("naive per row", await naive_sink(config, messages, limit, per_row=True))
        r["sink_rows_per_s"] = median_of(sink, "rows_per_s")
        r["sink_events_per_s"] = median_of(sink, "items_per_s")
        r["sink_cpu_us_per_row"] = round(
            statistics.median((t.cpu_s or 0.0) / t.rows * 1e6 for t in sink), 2
        )
        r["raw_copy_rows_per_s"] = median_of(copy, "rows_per_s")
        r["raw_copy_ledger_rows_per_s"] = median_of(ledger, "rows_per_s")
        r["ledger_vs_copy"] = paired(ledger, copy, "rows_per_s")
        r["raw_copy_connections"] = writers
        r["raw_copy_parallel_rows_per_s"] = median_of(parallel, "rows_per_s")
        r["sink_vs_parallel_copy"] = paired(sink, parallel, "rows_per_s")
        r["raw_consume_msgs_per_s"] = median_of(consume, "items_per_s")
        r["naive_rows_per_s"] = round(naive.rows_per_s)
        r["naive_per_row_rows_per_s"] = round(by_row.rows_per_s)
        r["sink_vs_copy"] = paired(sink, copy, "rows_per_s")
        r["sink_vs_consume"] = paired(sink, consume, "items_per_s")
        r["sink_vs_naive"] = ratio(r["sink_rows_per_s"], naive.rows_per_s)
        r["sink_vs_naive_per_row"] = ratio(r["sink_rows_per_s"], by_row.rows_per_s)
        # No sink can beat raw COPY either: its rows/s against the naive sink's is the most
        # any sink can reach against naive with this data's rows per message.
        r["sink_vs_naive_bound"] = ratio(r["raw_copy_rows_per_s"], naive.rows_per_s)
        # No sink that writes through PostgreSQL can beat this: raw COPY's messages per second
        # (at this data's rows per message) against raw consume's.
        r["sink_vs_consume_bound"] = paired(
            [Throughput(c.rows * len(messages) // rows, 0, c.seconds) for c in copy],
            consume,
            "items_per_s",
        )

    async def producer(self) -> None:
        s, env = self.scale, self.env
        config, _ = env.config("send", env.names("send"))
        await env.create_topics(config)
        specs = list(
            islice(
                iter_workload(self.template, sample_rows=s.producer_events * 100, agents=s.agents),
                s.producer_events,
            )
        )
        messages = [encode(e) for e in specs]
        raw, ours = [], []
        for i in range(s.repeat):
            for step in ("raw", "ours") if i % 2 == 0 else ("ours", "raw"):
                if step == "raw":
                    raw.append(self.note("raw send", await raw_send(config.kafka, messages)))
                else:
                    spool = env.workdir / "send" / f"spool{i}"
                    t = await real_producer(config.kafka, specs, spool)
                    ours.append(self.note("producer", t))
        self.results["producer_events_per_s"] = median_of(ours, "items_per_s")
        self.results["raw_send_events_per_s"] = median_of(raw, "items_per_s")
        self.results["producer_vs_raw"] = paired(ours, raw, "items_per_s")

    async def freshness(self) -> None:
        s, env = self.scale, self.env
        config, path = env.config("fresh", env.names("fresh"), consumer={"batch_max": 5000})
        await env.create_topics(config)
        f = await measure_freshness(
            config, path, s.freshness_rate, s.freshness_warmup_s, s.freshness_s
        )
        say(f"  p50 {f.p50_ms} ms, p99 {f.p99_ms} ms over {f.events} events at {f.rate:.0f}/s")
        r = self.results
        r["freshness_p50_ms"] = _round(f.p50_ms)
        r["freshness_p99_ms"] = _round(f.p99_ms)
        r["freshness_max_ms"] = _round(f.max_ms)
        r["freshness_events"] = f.events
        r["freshness_rate"] = round(f.rate)

    async def checks(self, server: LocalWebServer) -> None:
        s = self.scale
        c = await measure_checks(
            self.env, server.url, s.check_targets, s.check_interval_s, s.check_warmup_s, s.check_s
        )
        say(f"  {c}")
        r = self.results
        r["checks_per_s"] = round(c.per_s, 1)
        r["checks_scheduled_per_s"] = s.check_targets / s.check_interval_s
        r["check_drift_p50_ms"] = _round(c.lateness_p50_ms)
        r["check_drift_p99_ms"] = _round(c.lateness_p99_ms)
        r["checks_ok_pct"] = _round(c.ok_pct)
        r["checks_missed_slots"] = c.missed_slots
        r["checks_cpu_ms_per_check"] = _round(c.cpu_ms_per_check, 3)
        count = min(s.check_targets, 5_000)
        ceiling = await bare_http(server.url, count, c.concurrency)
        say(f"  bare aiohttp, new connection each: {ceiling:,.0f} requests/s")
        r["checks_ceiling_per_s"] = round(ceiling, 1)

    async def fleet(self) -> None:
        """Real agent processes sharing targets through Kafka (bench.fleet_parts)."""
        folder = self.env.workdir / "fleet"
        folder.mkdir(parents=True, exist_ok=True)
        e = self.env.endpoints
        async with LocalWebServer() as server:
            sizes = fleet_sizes(self.scale.name)
            figures = await asyncio.to_thread(
                run_fleet, e.bootstrap, e.dsn, server.url, folder, **sizes
            )
            say(f"  {figures}")
            self.results.update(figures)
            sizes = scale_sizes(self.scale.name)
            say(f"  scale: {sizes['agents']} agents, {sizes['targets']:,} targets")
            figures = await asyncio.to_thread(
                run_scale, e.bootstrap, e.dsn, server.url, folder / "scale", **sizes
            )
        say(f"  {figures}")
        self.results.update(figures)

    async def agent(self, server: LocalWebServer) -> None:
        s = self.scale
        a = await measure_agent(
            self.env,
            server.url,
            s.agent_targets,
            s.agent_target_interval_s,
            s.agent_warmup_s,
            s.agent_s,
        )
        say(f"  {a}")
        self.results["agent_cpu_pct"] = round(a.cpu_pct, 2)
        self.results["agent_rss_mb"] = round(a.rss_mb, 1)
        self.results["agent_rss_max_mb"] = round(a.rss_max_mb, 1)

    async def tui(self) -> None:
        """Pairs of drains, headless and attached back to back (which goes first alternates):
        the median of the pairs' ratios, since a pair shares the machine's mood."""
        messages, _ = await self.data()
        rows, events = sum(m.rows for m in messages), len(messages)
        env = self.env
        ratios: list[float] = []
        cpu_ratios: list[float] = []
        for i in range(self.scale.tui_repeat):
            pair: dict[bool, Throughput] = {}
            for tui in (False, True) if i % 2 == 0 else (True, False):
                part = f"{'tui' if tui else 'headless'}{i}"
                config, _ = env.config(part, env.names(part, topics_of="data"))
                t = await engine_drain(config, rows, events, tui=tui)
                pair[tui] = self.note("TUI" if tui else "headless", t)
            ratios.append(pair[True].rows_per_s / pair[False].rows_per_s)
            cpu_ratios.append((pair[False].cpu_s or 0.0) / (pair[True].cpu_s or 1.0))
        self.results["tui_vs_headless"] = statistics.median(ratios)
        self.results["tui_vs_headless_pairs"] = [round(x, 3) for x in ratios]
        # The same drain's CPU in this process, headless over attached: what the TUI costs,
        # much less swayed by the neighbours than the wall clock.
        self.results["tui_vs_headless_cpu"] = statistics.median(cpu_ratios)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# -- report -----------------------------------------------------------------------------------


def _n(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value < 100:
        return f"{value:,.2f}{unit}"
    return f"{value:,.0f}{unit}"


def _ok(value: float | None, good: Callable[[float], bool]) -> str:
    if value is None:
        return "—"
    return "ok" if good(value) else "**miss**"


def table(r: dict[str, Any], scale: Scale) -> str:
    """The Markdown table printed at the end (and pasted into the README)."""
    expected = scale.check_targets / scale.check_interval_s
    rows = [
        ("| measure | metrictui | baseline | ratio | goal | |"),
        ("|---|---:|---:|---:|---|---|"),
        (
            f"| sink vs raw binary COPY (rows/s) | {_n(r['sink_rows_per_s'])} |"
            f" {_n(r['raw_copy_rows_per_s'])} | {_n(r['sink_vs_copy'])} | ≥ 0.75 |"
            f" {_ok(r['sink_vs_copy'], lambda v: v >= 0.75)} |"
        ),
        (
            f"| ↳ at best with the events ledger (raw COPY + ledger vs raw COPY) | |"
            f" {_n(r.get('raw_copy_ledger_rows_per_s'))} | {_n(r.get('ledger_vs_copy'))} | | |"
        ),
        (
            f"| ↳ sink vs raw COPY over as many connections as its writers"
            f" ({r.get('raw_copy_connections')}) | {_n(r['sink_rows_per_s'])} |"
            f" {_n(r.get('raw_copy_parallel_rows_per_s'))} | {_n(r.get('sink_vs_parallel_copy'))}"
            " | | |"
        ),
        (
            f"| ↳ sink process CPU per row (µs, Kafka client included) |"
            f" {_n(r.get('sink_cpu_us_per_row'))} | | | | |"
        ),
        (
            f"| sink vs raw consume (messages/s) | {_n(r.get('sink_events_per_s'))} |"
            f" {_n(r['raw_consume_msgs_per_s'])} | {_n(r['sink_vs_consume'])} |"
            " retired (issue 14) | |"
        ),
        (
            f"| ↳ at best (raw COPY's messages/s vs raw consume) | | | "
            f"{_n(r.get('sink_vs_consume_bound'))} | | |"
        ),
        (
            f"| sink vs naive, one INSERT + commit per message (rows/s) |"
            f" {_n(r['sink_rows_per_s'])} | {_n(r['naive_rows_per_s'])} |"
            f" {_n(r['sink_vs_naive'])} | retired (issue 14) | |"
        ),
        (
            f"| ↳ at best (raw COPY's rows/s vs naive) | | | "
            f"{_n(r.get('sink_vs_naive_bound'))} | | |"
        ),
        (
            f"| ↳ naive inserting row by row, one commit per message | |"
            f" {_n(r.get('naive_per_row_rows_per_s'))} | {_n(r.get('sink_vs_naive_per_row'))}"
            f" | ≥ 30 | {_ok(r.get('sink_vs_naive_per_row'), lambda v: v >= 30)} |"
        ),
        (
            f"| producer vs raw send (events/s) | {_n(r['producer_events_per_s'])} |"
            f" {_n(r['raw_send_events_per_s'])} | {_n(r['producer_vs_raw'])} | ≥ 0.8 |"
            f" {_ok(r['producer_vs_raw'], lambda v: v >= 0.8)} |"
        ),
        (
            f"| freshness p50 / p99 at {_n(r.get('freshness_rate'))} events/s |"
            f" {_n(r['freshness_p50_ms'], ' ms')} / {_n(r['freshness_p99_ms'], ' ms')} | | |"
            f" p99 < 1 s | {_ok(r['freshness_p99_ms'], lambda v: v < 1000)} |"
        ),
        (
            f"| checks/s ({scale.check_targets:,} targets every {scale.check_interval_s:g} s) |"
            f" {_n(r['checks_per_s'])} | {_n(expected)} scheduled | | ≥ {expected:,.0f} |"
            f" {_ok(r['checks_per_s'], lambda v: v >= 0.99 * expected)} |"
        ),
        (
            f"| ↳ bare aiohttp, new connection each (requests/s) | |"
            f" {_n(r.get('checks_ceiling_per_s'))} | | | |"
        ),
        (
            f"| check start lateness p99 | {_n(r['check_drift_p99_ms'], ' ms')} | | |"
            f" < 100 ms | {_ok(r['check_drift_p99_ms'], lambda v: v < 100)} |"
        ),
        (
            f"| agent CPU (one core) / RSS | {_n(r['agent_cpu_pct'], ' %')} /"
            f" {_n(r['agent_rss_mb'], ' MB')} | | | < 2 % / < 100 MB |"
            f" {_ok(r['agent_cpu_pct'], lambda v: v < 2)} /"
            f" {_ok(r['agent_rss_mb'], lambda v: v < 100)} |"
        ),
        (
            f"| TUI attached vs headless (sink rows/s; CPU ratio"
            f" {_n(r.get('tui_vs_headless_cpu'))}) | | | {_n(r['tui_vs_headless'])} |"
            f" ≥ 0.9 | {_ok(r['tui_vs_headless'], lambda v: v >= 0.9)} |"
        ),
    ]
    return "\n".join(rows)


def environment(scale: Scale) -> dict[str, Any]:
    try:
        from aiokafka.record import _crecords  # noqa: F401
        from aiokafka.util import NO_EXTENSIONS

        c_ext = not NO_EXTENSIONS
    except ImportError:
        c_ext = False
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "engine", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "scale": scale.name,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit + ("+dirty" if dirty else ""),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "aiokafka_c_extensions": c_ext,
    }


async def run(scale: Scale, parts: set[str], keep: bool, meta: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    endpoints = stack_endpoints()
    workdir = Path(tempfile.mkdtemp(prefix="metrictui-bench-"))
    env = BenchEnv(endpoints, workdir, scale.batch_max)
    bench = Run(scale, env)
    bench.results.update(meta)
    try:
        if "sink" in parts:
            await bench.part("sink", bench.sink)
        if "producer" in parts:
            await bench.part("producer", bench.producer)
        if "freshness" in parts:
            await bench.part("freshness", bench.freshness)
        if parts & {"checks", "agent"}:
            async with LocalWebServer() as server:
                bench.results["web_server"] = server.kind
                if "checks" in parts:
                    await bench.part("checks", lambda: bench.checks(server))
                if "agent" in parts:
                    await bench.part("agent", lambda: bench.agent(server))
        if "tui" in parts:
            await bench.part("tui", bench.tui)
        if "fleet" in parts:
            await bench.part("fleet", bench.fleet)
    finally:
        if not keep:
            await env.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)
    r = bench.results
    r["duration_s"] = round(time.monotonic() - started, 1)
    r["runs"] = bench.runs
    r["errors"] = bench.errors
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--keep", action="store_true", help="keep topics and schemas")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    if unknown := parts - set(PARTS):
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; known: {', '.join(PARTS)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # aiokafka narrates every new consumer group's coordinator lookup at WARNING.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    scale = SCALES[args.scale]
    try:
        # On uvloop, as `metrictui --headless` and its check workers run (tui/cli.py).
        r = uvloop.run(run(scale, parts, args.keep, environment(scale)))
    except KeyboardInterrupt:
        return 130
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(orjson.dumps(r, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(table(r, scale))
    print(f"\n{scale.name} run, {r['duration_s']} s; results in {output}")
    if r["errors"]:
        say(f"bench: parts failed: {', '.join(r['errors'])}")
        return 1
    return 0
