"""`python -m bench.peers`: metrictui against the systems a user would pick instead.

    python -m bench.peers [--scale full|smoke] [--systems metrictui,telegraf,connect]
                          [--only drain,checks] [--rows N] [--rounds N] [--output PATH]

The same samples (bench/workload.py) are pre-filled once per system in its natural wire format
(bench/peers/wire.py); then each system drains its topic into a fresh schema, in rounds whose
order alternates, and rows/s, tool CPU and PostgreSQL CPU are read the same way for all
(bench/peers/drain.py). Checks: metrictui's agent and Telegraf's http_response on the same
targets of one local nginx (bench/peers/checks.py). Writes bench/results/peers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.checks_parts import targets
from bench.env import ROOT, BenchEnv, child_env, stack_endpoints
from bench.kafka_parts import raw_send
from bench.peers import connect, systems, telegraf, wire
from bench.peers.checks import measure_checks
from bench.peers.drain import Drain, run_drain
from bench.peers.procstat import postmaster_pid
from bench.peers.report import PREFIX, checks_figures, comparisons, drain_figures, table
from bench.peers.scale import SCALES, PeerScale
from bench.run import environment
from bench.scale import SCALES as BENCH_SCALES
from bench.webserver import LocalWebServer
from bench.workload import Message, iter_workload, sample_template

SYSTEMS = ("metrictui", "telegraf", "connect")
PARTS = ("drain", "checks")
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "peers.json"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pg_pid() -> int | None:
    """The local stack's postmaster, for PostgreSQL's CPU (None with external servers)."""
    if os.environ.get("METRICTUI_POSTGRES__DSN"):
        return None
    stack_dir = Path(os.environ.get("METRICTUI_STACK_DIR", ROOT / ".stack"))
    data = json.loads((stack_dir / "env.json").read_text())["pg_data"]
    return postmaster_pid(Path(data))


class PeerRun:
    """One run: the environment, the peers' binaries, the pre-filled topics and the results."""

    def __init__(
        self, scale: PeerScale, env: BenchEnv, chosen: list[str], pg_pid: int | None
    ) -> None:
        self.scale, self.env, self.systems, self.pg_pid = scale, env, chosen, pg_pid
        self.expected_rows = 0
        self.results: dict[str, Any] = {"scale": scale.name, "versions": {}}
        self.drains: dict[str, list[Drain]] = {s: [] for s in chosen}
        self.topics: dict[str, str] = {}
        self.tools: dict[str, Path] = {}

    def prepare_tools(self) -> None:
        """Build or fetch the peers once (cached outside the repository)."""
        v = self.results["versions"]
        if "telegraf" in self.systems:
            self.tools["telegraf"] = telegraf.ensure_telegraf(say)
            v["telegraf"] = telegraf.VERSION
        if "connect" in self.systems:
            self.tools["connect"] = connect.ensure_connect(say)
            v["connect"], v["debezium"] = connect.versions()

    async def prefill(self) -> None:
        """Each system's topic, filled with the same samples in its own format."""
        s = self.scale
        template = sample_template()
        specs = [
            e
            for e in iter_workload(template, sample_rows=s.sample_rows, agents=s.agents)
            if e.kind == "metrics"
        ]
        self.expected_rows = sum(e.rows for e in specs)
        r = self.results
        r.update(sample_rows=self.expected_rows, agent_ticks=len(specs), agents=s.agents)
        r["samples_per_tick"] = len(template)
        formats = {
            "metrictui": wire.for_metrictui,
            "telegraf": wire.for_telegraf,
            "connect": wire.for_connect,
        }
        for system in self.systems:
            messages: list[Message] = formats[system](specs)
            config, _ = self.env.config(f"{system}-data", self.env.names(f"{system}-data"))
            await self.env.create_topics(config)
            fill = await raw_send(config.kafka, messages)
            self.topics[system] = config.kafka.metrics_topic
            r[f"{PREFIX[system]}_messages"] = len(messages)
            r[f"{PREFIX[system]}_avg_message_bytes"] = round(
                sum(len(m.value) for m in messages) / len(messages)
            )
            say(f"  {system}: {len(messages):,} messages pre-filled in {fill.seconds:.1f} s")

    def argv(self, system: str, part: str) -> tuple[list[str], str]:
        if system == "metrictui":
            return systems.metrictui_sink(self.env, part, f"{system}-data", self.scale.batch_max)
        if system == "telegraf":
            return systems.telegraf_sink(self.env, part, self.topics[system], self.tools[system])
        return systems.connect_sink(self.env, part, self.topics[system], self.tools[system])

    async def drain_once(self, system: str, part: str) -> tuple[Drain, str]:
        """One drain of `system`'s pre-filled topic into a fresh schema (returned too)."""
        argv, schema = self.argv(system, part)
        d = await asyncio.to_thread(
            run_drain,
            system,
            argv,
            workdir=self.env.workdir / part,
            dsn=self.env.endpoints.dsn,
            schema=schema,
            expected_rows=self.expected_rows,
            pg_pid=self.pg_pid,
            timeout_s=self.scale.timeout_s,
            env=child_env(),
            fatal=connect.TASK_DIED if system == "connect" else None,
        )
        self.drains[system].append(d)
        return d, schema

    async def drain(self) -> None:
        for i in range(self.scale.rounds):
            order = self.systems if i % 2 == 0 else self.systems[::-1]
            for system in order:
                d, _ = await self.drain_once(system, f"{system}{i}")
                say(
                    f"  {system:<10} {d.rows_per_s_steady:>10,.0f} rows/s steady"
                    f" {d.rows_per_s_from_start:>10,.0f} from start,"
                    f" {d.tool_cpu_us_per_row:.2f} µs CPU/row, PostgreSQL"
                    f" {d.pg_cpu_us_per_row:.2f} µs/row"
                )
        for system, drains in self.drains.items():
            self.results[f"{PREFIX[system]}_runs"] = [d.as_dict() for d in drains]
            self.results.update(drain_figures(system, drains))
        self.results.update(comparisons(self.results))

    async def checks(self) -> None:
        s, env, r = self.scale, self.env, self.results
        r.update(check_targets=s.check_targets, check_interval_s=s.check_interval_s)
        async with LocalWebServer() as server:
            r["web_server"] = server.kind
            urls = targets(server.url, s.check_targets, s.check_interval_s)
            for system in [x for x in ("metrictui", "telegraf") if x in self.systems]:
                part = f"{system}-checks"
                names = env.names(part)
                extra: dict[str, Any] = {
                    "agent": {"metrics": [], "metrics_interval": 3600.0},
                    "headless": {"status_interval": 3600.0, "listen": ""},
                }
                config, path = env.config(part, names, targets=urls, **extra)
                await env.create_topics(config)
                if system == "metrictui":
                    metrictui = str(Path(sys.executable).parent / "metrictui")
                    argv = [metrictui, "--headless", "--role", "producer", "--config", str(path)]
                else:
                    conf = path.parent / "telegraf.conf"
                    conf.write_text(
                        telegraf.checks_config(
                            [u["url"] for u in urls],
                            s.check_interval_s,
                            env.endpoints.bootstrap,
                            names.checks_topic,
                        )
                    )
                    argv = [str(self.tools["telegraf"]), "--config", str(conf)]
                run = await measure_checks(
                    system,
                    argv,
                    workdir=path.parent,
                    bootstrap=env.endpoints.bootstrap,
                    topic=names.checks_topic,
                    partitions=config.kafka.partitions,
                    warmup_s=s.check_warmup_s,
                    window_s=s.check_window_s,
                    env=child_env(),
                )
                say(f"  {system:<10} {run.per_s:,.1f} checks/s, {run.cpu_ms_per_check:.3f} ms CPU")
                r.setdefault("checks_runs", []).append(run.as_dict())
                r.update(checks_figures(run))


async def run(scale: PeerScale, chosen: list[str], parts: set[str]) -> dict[str, Any]:
    started = time.monotonic()
    env = BenchEnv(stack_endpoints(), Path(tempfile.mkdtemp(prefix="metrictui-peers-")), 5000)
    peers = PeerRun(scale, env, chosen, pg_pid())
    peers.results.update(environment(BENCH_SCALES["tiny"]), scale=scale.name)
    # The box is shared: its load says how far these figures are from an idle machine's.
    peers.results["load_avg_at_start"] = [round(x, 1) for x in os.getloadavg()]
    try:
        say("== peers: build or fetch (cached)")
        await asyncio.to_thread(peers.prepare_tools)
        if "drain" in parts:
            say("== pre-fill")
            await peers.prefill()
            say("== drain")
            await peers.drain()
        if "checks" in parts:
            say("== checks")
            await peers.checks()
    finally:
        await env.cleanup()
        shutil.rmtree(env.workdir, ignore_errors=True)
    peers.results["duration_s"] = round(time.monotonic() - started, 1)
    peers.results["load_avg_at_end"] = [round(x, 1) for x in os.getloadavg()]
    peers.results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return peers.results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--rows", type=int, help="sample rows to drain (default: the scale's)")
    parser.add_argument("--rounds", type=int, help="drains per system (default: the scale's)")
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    if args.rows or args.rounds:
        rows, rounds = args.rows or scale.sample_rows, args.rounds or scale.rounds
        scale = dataclasses.replace(scale, sample_rows=rows, rounds=rounds)
    chosen = [s for s in SYSTEMS if s in args.systems.split(",")]
    parts = {p for p in args.only.split(",") if p in PARTS}
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    try:
        results = asyncio.run(run(scale, chosen, parts))
    except RuntimeError as exc:
        say(f"bench-peers: {exc}")
        return 1
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(table(results))
    print(f"\n{args.scale} run, {results['duration_s']} s; results in {output}")
    return 0
