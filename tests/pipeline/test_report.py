"""`metrictui report`: durations, and the real command against rows in the real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from engine.db.migrate import migrate
from engine.db.report import format_duration, parse_duration
from engine.envelope import MetricsEvent
from engine.sink.store import Store
from helpers.records import CERT_EXPIRY, check_event
from helpers.stack import Pipeline, metrictui_cmd

HOSTILE = 'evil"\\name\n\x1b[31mred'


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("1h", 3600), ("7d", 604800), ("90s", 90), ("2w", 1209600), ("1h30m", 5400)],
)
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "-1h", "0m", "1y", "1h x", "9999d"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|at most|more than 0"):
        parse_duration(text)


def test_durations_format_back_to_the_largest_unit() -> None:
    assert [format_duration(s) for s in (3600, 1800, 604800, 90, 86400 * 3)] == [
        "1h",
        "30m",
        "1w",
        "90s",
        "3d",
    ]


def test_bad_since_is_a_usage_error_naming_the_option(tmp_path: Any) -> None:
    proc = subprocess.run(
        metrictui_cmd("--config", str(tmp_path / "x.toml"), "report", "--since", "soon"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--since" in proc.stderr and "30m, 1h or 7d" in proc.stderr


_check = check_event


def _metrics(agent: str, at: datetime, cpu: float, memory: float) -> MetricsEvent:
    total = orjson.dumps({"cpu": "total"}).decode()
    samples = [("cpu.percent", total, cpu, "%"), ("memory.percent", "{}", memory, "%")]
    return MetricsEvent.of(uuid.uuid4(), agent, "host-1", at, samples)


async def _seed(p: Pipeline) -> None:
    await migrate(p.stack.dsn, p.schema)
    now = datetime.now(UTC)
    a = p.agent
    checks = [_check(a, now - timedelta(minutes=40 - i), "web", True, 100.0 + i) for i in range(9)]
    checks += [
        _check(a, now - timedelta(minutes=20), "web", False, None),
        _check(a, now - timedelta(minutes=21), "web", False, 3.0, reason="connect_error"),
        _check(a, now - timedelta(minutes=22), "web", False, 3.0, reason="connect_error"),
        _check(a, now - timedelta(hours=5), "web", False, None),  # outside 1h, inside 1d
        _check(a, now - timedelta(hours=5), "old", True, 50.0),  # only in the 1d report
        _check(a, now - timedelta(minutes=5), HOSTILE, True, 10.0),
    ]
    metrics = [
        _metrics(a, now - timedelta(minutes=4), cpu=10.0, memory=40.0),
        _metrics(a, now - timedelta(minutes=3), cpu=30.0, memory=60.0),
    ]
    store = Store(p.stack.dsn, p.schema)
    await store.connect()
    try:
        await store.write_batch(metrics, checks, [])
    finally:
        await store.close()


def _report(p: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        metrictui_cmd("--config", str(p.config_path), "report", *args),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.integration
async def test_report_json_gives_uptime_percentiles_failures_cert_and_hosts(
    pipeline: Pipeline,
) -> None:
    await _seed(pipeline)
    proc = _report(pipeline, "--since", "1h", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["since_s"] == 3600
    targets = {t["name"]: t for t in doc["targets"]}
    assert set(targets) == {"web", HOSTILE}
    web = targets["web"]
    assert web["checks"] == 12
    assert web["uptime_pct"] == pytest.approx(75.0)
    assert web["p50_ms"] == pytest.approx(104.0)  # successes only: 100..108
    assert web["p95_ms"] == pytest.approx(107.6)
    assert web["p99_ms"] == pytest.approx(107.92)
    assert web["failures_by_reason"] == {"connect_error": 2, "timeout": 1}
    assert datetime.fromisoformat(web["cert_expires_at"]) == CERT_EXPIRY
    assert web["cert_days_left"] > 365
    [host] = [h for h in doc["hosts"] if h["agent"] == pipeline.agent]
    assert host["host"] == "host-1" and host["samples"] == 4
    assert host["cpu_avg_pct"] == pytest.approx(20.0) and host["cpu_max_pct"] == 30.0
    assert host["memory_avg_pct"] == pytest.approx(50.0) and host["memory_max_pct"] == 60.0

    day = json.loads(_report(pipeline, "--since", "1d", "--json").stdout)
    assert {t["name"] for t in day["targets"]} == {"web", "old", HOSTILE}
    assert {t["name"]: t["checks"] for t in day["targets"]}["web"] == 13


@pytest.mark.integration
async def test_report_for_one_target_and_human_table(pipeline: Pipeline) -> None:
    await _seed(pipeline)
    one = json.loads(_report(pipeline, "--target", "web", "--json").stdout)
    assert [t["name"] for t in one["targets"]] == ["web"] and one["hosts"] == []

    proc = _report(pipeline, "--since", "30m")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "last 30m" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("TARGET"))
    for column in ("CHECKS", "UPTIME", "P50", "P95", "P99", "FAILURES", "CERT EXPIRES"):
        assert column in header
    web = next(line for line in lines if line.startswith("web "))
    # 30m window: successes at -31..-40 min are out except none; failures at -20..-22 are in
    assert "connect_error 2" in web and "timeout 1" in web
    assert "\x1b" not in out and 'evil"\\name\\x0a\\x1b[31mred' in out
    assert any(line.startswith("AGENT") for line in lines)
    assert any(line.startswith(pipeline.agent) and "20.0%" in line for line in lines)


@pytest.mark.integration
@pytest.mark.parametrize("json_out", [False, True])
async def test_report_for_an_unknown_target_is_one_line_and_exit_1(
    pipeline: Pipeline, json_out: bool
) -> None:
    await _seed(pipeline)
    missing = _report(pipeline, "--target", "nope", *(["--json"] if json_out else []))
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.count("\n") == 1, missing.stderr
    assert "no checks of target 'nope'" in missing.stderr and "web" in missing.stderr


@pytest.mark.integration
def test_report_on_an_unmigrated_schema_says_to_migrate(pipeline: Pipeline) -> None:
    proc = _report(pipeline)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "metrictui migrate" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.integration
async def test_report_json_into_a_closed_pipe_is_quiet(pipeline: Pipeline) -> None:
    """`metrictui report --json | head -1`: the reader leaves early, no traceback follows."""
    from test_cli_pipes_and_options import run_into_closed_pipe

    await _seed(pipeline)
    proc = run_into_closed_pipe("--config", str(pipeline.config_path), "report", "--json")
    assert proc.stderr == "" and proc.returncode == 141
