"""`/metrics` and `/healthz`: rendering parsed by the real Prometheus parser, the health rules,
and a real headless process serving both."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.headless.health import HealthJudge
from engine.headless.prom import escape_label_value, render_metrics
from engine.stats import ConnState, Stats, StatsSnapshot, TargetStatus
from helpers.sites import LocalSites
from helpers.stack import Pipeline, metrictui_cmd

NASTY = 'a "quoted" \\back\\slash\nnew line }{,= target'


def _parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Family name -> samples; fails the test if the text is not valid exposition format."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _snapshot(**changes: object) -> StatsSnapshot:
    stats = Stats("all", "agent-1")
    stats.set_kafka_state("producer", ConnState.CONNECTED)
    stats.set_kafka_state("consumer", ConnState.CONNECTED)
    stats.postgres_state = ConnState.CONNECTED
    stats.produced.total = 120
    stats.consumed.total = 118
    stats.inserted.total = 4000
    stats.inserted_events_total = 117
    stats.duplicates_total = 1
    stats.dead_letters_total = 2
    stats.spool_depth = 7
    stats.spool_dropped_total = 3
    stats.errors_total = 5
    stats.lag = {("m.metrics", 0): 4, ("m.checks", 2): 9}
    stats.db_write_ms = 12.5
    stats.targets = {
        NASTY: TargetStatus(
            NASTY, "https://x/", True, 30.0, ok=True, status_code=200, total_ms=250.0,
            cert_days_left=42.5, last_checked=datetime(2030, 1, 1, tzinfo=UTC),
        ),
        "down": TargetStatus("down", "https://y/", True, 30.0, ok=False, reason="timeout"),
        "never": TargetStatus("never", "https://z/", False, 30.0),
    }  # fmt: skip
    return replace(stats.snapshot(), **changes)  # type: ignore[arg-type]


def test_label_values_escape_backslash_quote_and_newline() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'


def test_metrics_text_parses_and_carries_every_counter_and_target() -> None:
    text = render_metrics(_snapshot(), healthy=True)
    samples = _parse(text)
    flat = {name: values[0][1] for name, values in samples.items() if len(values) == 1}
    assert flat["metrictui_produced_total"] == 120
    assert flat["metrictui_consumed_total"] == 118
    assert flat["metrictui_inserted_rows_total"] == 4000
    assert flat["metrictui_inserted_events_total"] == 117
    assert flat["metrictui_duplicates_total"] == 1
    assert flat["metrictui_dead_letters_total"] == 2
    assert flat["metrictui_spool_depth"] == 7
    assert flat["metrictui_spool_dropped_total"] == 3
    assert flat["metrictui_errors_total"] == 5
    assert flat["metrictui_kafka_connected"] == 1 and flat["metrictui_postgres_connected"] == 1
    assert flat["metrictui_healthy"] == 1
    assert flat["metrictui_db_write_seconds"] == pytest.approx(0.0125)
    lag = {(lb["topic"], lb["partition"]): v for lb, v in samples["metrictui_lag"]}
    assert lag == {("m.metrics", "0"): 4, ("m.checks", "2"): 9}
    up = {lb["target"]: v for lb, v in samples["metrictui_target_up"]}
    assert up == {NASTY: 1, "down": 0}  # never checked: no sample rather than a made-up 0
    assert {lb["target"]: v for lb, v in samples["metrictui_target_status_code"]} == {NASTY: 200}
    assert samples["metrictui_target_latency_seconds"] == [({"target": NASTY}, 0.25)]
    assert samples["metrictui_target_cert_days_left"] == [({"target": NASTY}, 42.5)]
    enabled = {lb["target"]: v for lb, v in samples["metrictui_target_enabled"]}
    assert enabled == {NASTY: 1, "down": 1, "never": 0}
    [(info, _)] = samples["metrictui_info"]
    assert info["role"] == "all" and info["agent"] == "agent-1"
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["metrictui_produced"] == "counter" and types["metrictui_lag"] == "gauge"


def test_producer_metrics_have_no_postgres_gauge() -> None:
    samples = _parse(render_metrics(_snapshot(role="producer")))
    assert "metrictui_postgres_connected" not in samples
    assert "metrictui_healthy" not in samples


def test_health_says_starting_then_ok_then_stopping() -> None:
    judge = HealthJudge(stall_after_s=30)
    snap = _snapshot(lag=(), lag_total=None)
    assert judge.verdict(snap, 0).reasons == ("starting",)
    judge.phase = "running"
    verdict = judge.verdict(snap, 1)
    assert verdict.healthy and verdict.text == "ok"
    judge.phase = "stopping"
    assert judge.verdict(snap, 2).text == "unhealthy: stopping"


def test_health_names_the_connection_that_is_down_for_the_role() -> None:
    judge = HealthJudge()
    judge.phase = "running"
    down = judge.verdict(_snapshot(kafka_state="down", postgres_state="down"), 0)
    assert not down.healthy
    assert down.reasons == ("kafka down (7 events spooled)", "postgres down")
    producer = judge.verdict(_snapshot(role="producer", postgres_state="off"), 0)
    assert producer.healthy, producer.reasons


def test_health_flags_a_sink_that_has_lag_and_writes_nothing() -> None:
    judge = HealthJudge(stall_after_s=30)
    judge.phase = "running"
    stuck = _snapshot(lag_total=13)
    for now in range(0, 29):
        judge.observe(stuck, now)
    assert judge.verdict(stuck, 29).healthy
    verdict = judge.verdict(stuck, 31)
    assert not verdict.healthy
    assert verdict.reasons == ("sink stalled: lag 13 messages and nothing written for 31s",)
    moving = _snapshot(lag_total=13, inserted_events_total=118)
    assert judge.verdict(moving, 32).healthy  # a write resets the clock
    assert judge.verdict(moving, 61).healthy
    assert not judge.verdict(moving, 62).healthy
    idle = _snapshot(lag_total=0, inserted_events_total=118)
    assert judge.verdict(idle, 100).healthy  # nothing to do is not a stall
    assert judge.verdict(_snapshot(lag_total=2, inserted_events_total=118), 120).healthy


# -- a real headless process ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _poll(url: str, want: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    last: tuple[int, str] | str = ""
    while time.monotonic() < deadline:
        try:
            last = _get(url)
            if last[0] == want:
                return last[1]
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer {want} within {timeout}s; last: {last}")


def _headless(p: Pipeline, role: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        metrictui_cmd("--config", str(p.config_path), "--headless", "--role", role),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.integration
def test_headless_serves_metrics_and_healthz_from_the_live_pipeline(
    pipeline: Pipeline, local_sites: LocalSites, tmp_path: Path
) -> None:
    port = _free_port()
    name = 'site "A" \\ one'
    pipeline.write_config(headless={"listen": f"127.0.0.1:{port}", "status_interval": 2.0})
    pipeline.write_targets([{"name": name, "url": local_sites.http_url("/"), "interval": 1}])
    log = tmp_path / "headless.log"
    proc = _headless(pipeline, "all", log)
    try:
        assert _poll(f"http://127.0.0.1:{port}/healthz", 200, 60) == "ok\n"

        def inserted() -> dict[str, list[tuple[dict[str, str], float]]]:
            samples = _parse(_get(f"http://127.0.0.1:{port}/metrics")[1])
            if samples["metrictui_inserted_events_total"][0][1] >= 3 and samples["metrictui_lag"]:
                return samples
            return {}

        deadline = time.monotonic() + 60
        while not (samples := inserted()) and time.monotonic() < deadline:
            time.sleep(1)
        assert samples, log.read_text()[-2000:]
        assert samples["metrictui_produced_total"][0][1] >= 3
        assert samples["metrictui_inserted_rows_total"][0][1] > 0
        assert samples["metrictui_target_up"] == [({"target": name}, 1.0)]
        assert samples["metrictui_target_status_code"] == [({"target": name}, 200.0)]
        assert 0 < samples["metrictui_target_latency_seconds"][0][1] < 5
        topics = {lb["topic"] for lb, _ in samples["metrictui_lag"]}
        assert topics == {pipeline.metrics_topic, pipeline.checks_topic}
        assert all(lb["partition"].isdigit() for lb, _ in samples["metrictui_lag"])
        stored = pipeline.query("SELECT count(*) FROM events")[0][0]
        assert stored >= samples["metrictui_inserted_events_total"][0][1]
        assert _get(f"http://127.0.0.1:{port}/nope")[0] == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-2000:]
    with pytest.raises(OSError):
        _get(f"http://127.0.0.1:{port}/healthz")


@pytest.mark.integration
def test_healthz_is_503_with_the_reason_when_kafka_is_unreachable(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    port = _free_port()
    pipeline.write_config(
        kafka={"bootstrap_servers": f"127.0.0.1:{_free_port()}", "request_timeout_s": 2.0},
        headless={"listen": f"127.0.0.1:{port}"},
    )
    log = tmp_path / "headless.log"
    proc = _headless(pipeline, "consumer", log)
    try:
        body = _poll(f"http://127.0.0.1:{port}/healthz", 503, 30)
        deadline = time.monotonic() + 60
        while "kafka down" not in body and time.monotonic() < deadline:
            time.sleep(1)
            body = _get(f"http://127.0.0.1:{port}/healthz")[1]
        assert body.startswith("unhealthy: ") and "kafka down" in body, body
        status, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        samples = _parse(text)
        assert samples["metrictui_kafka_connected"][0][1] == 0
        assert samples["metrictui_healthy"][0][1] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-2000:]


@pytest.mark.integration
def test_busy_listen_port_is_one_line_and_exit_1(pipeline: Pipeline) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        pipeline.write_config(headless={"listen": f"127.0.0.1:{port}"})
        proc = subprocess.run(
            metrictui_cmd("--config", str(pipeline.config_path), "--headless"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("metrictui: ")]
    assert proc.returncode == 1, proc.stderr
    assert errors == [errors[0]] and f"127.0.0.1:{port}" in errors[0]
    assert "[headless] listen" in errors[0] and "Traceback" not in proc.stderr
