"""One sink process or two: does a second `metrictui --headless --role consumer` help?

    python -m bench.sink_processes [--rows N] [--rounds N] [--output PATH]

The consumer group is how the sink scales: two processes in one group split the partitions.
On a small box they also split the CPU with each other and with PostgreSQL, so this measures
it. Both shapes drain the same pre-filled metrics topic (the bench workload's agent ticks, 3
partitions) into a fresh schema each time, alternating 1, 2, 1, 2, ...; rows are timed and
CPU is read exactly as in the peer benchmark (`bench.peers.landing`, `bench.peers.procstat`):
the processes' CPU from launch to the last row, start-up included, and PostgreSQL's over the
same span. Writes `bench/results/sink_processes.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.env import ROOT, BenchEnv, child_env, stack_endpoints
from bench.kafka_parts import raw_send
from bench.peers.drain import stop_process
from bench.peers.landing import watch_landing
from bench.peers.procstat import CpuMeter, tree_cpu_s
from bench.peers.run import pg_pid as find_pg_pid
from bench.run import environment
from bench.scale import SCALES
from bench.workload import encode, iter_workload, sample_template

DEFAULT_OUTPUT = ROOT / "bench" / "results" / "sink_processes.json"
METRICTUI = str(Path(sys.executable).parent / "metrictui")


def _drain(env: BenchEnv, part: str, processes: int, rows: int, pg_pid: int) -> dict[str, Any]:
    """`processes` sinks in one group draining the data topic into a fresh schema."""
    names = env.names(part, topics_of="data")
    paths = [
        env.config(
            f"{part}-{k}",
            names,
            consumer={"batch_max": 5000},
            headless={"status_interval": 3600.0, "listen": ""},
        )[1]
        for k in range(processes)
    ]
    pg = CpuMeter(pg_pid)
    pg.start()
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [METRICTUI, "--headless", "--role", "consumer", "--config", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=child_env(),
        )
        for path in paths
    ]
    try:
        landing = watch_landing(
            env.endpoints.dsn,
            names.schema,
            rows,
            started,
            procs[0],
            name="metrictui",
            timeout_s=600.0,
            log=paths[0].parent / "metrictui.log",
        )
        pg_cpu = pg.stop()
        cpu = sum(tree_cpu_s(p.pid) for p in procs)
    finally:
        for p in procs:
            stop_process(p)
    return {
        "processes": processes,
        "rows_per_s_steady": round(landing.rows_per_s_steady),
        "rows_per_s_from_start": round(landing.rows_per_s_from_start),
        "sink_cpu_us_per_row": round(cpu / rows * 1e6, 2),
        "pg_cpu_us_per_row": round(pg_cpu / rows * 1e6, 2),
    }


def run(rows: int, rounds: int) -> dict[str, Any]:
    env = BenchEnv(stack_endpoints(), Path(tempfile.mkdtemp(prefix="sink-processes-")), 5000)
    specs = iter_workload(sample_template(), sample_rows=rows, agents=20)
    messages = [encode(s) for s in specs if s.kind == "metrics"]
    expected = sum(m.rows for m in messages)
    config, _ = env.config("data", env.names("data"))
    asyncio.run(env.create_topics(config))
    asyncio.run(raw_send(config.kafka, messages))
    pg_pid = find_pg_pid()
    if pg_pid is None:
        raise SystemExit("bench.sink_processes: PostgreSQL of the local stack not found")
    runs: list[dict[str, Any]] = []
    try:
        for i in range(rounds):
            for processes in (1, 2):
                r = _drain(env, f"p{processes}r{i}", processes, expected, pg_pid)
                print(f"  {r}", file=sys.stderr, flush=True)
                runs.append(r)
    finally:
        asyncio.run(env.cleanup())
    out: dict[str, Any] = {
        **environment(SCALES["full"]),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sample_rows": expected,
        "runs": runs,
    }
    for n in (1, 2):
        mine = [r for r in runs if r["processes"] == n]
        for key in ("rows_per_s_steady", "rows_per_s_from_start", "sink_cpu_us_per_row"):
            out[f"p{n}_{key}"] = statistics.median(r[key] for r in mine)
    out["two_vs_one_steady"] = round(out["p2_rows_per_s_steady"] / out["p1_rows_per_s_steady"], 2)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sink_processes")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    result = run(args.rows, args.rounds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
