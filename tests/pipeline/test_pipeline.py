"""End to end on the real stack: producer and consumer processes, PostgreSQL as the judge."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from datetime import UTC
from pathlib import Path

import orjson
import pytest

from helpers.kafka_tools import event_ids, read_topic, send_raw
from helpers.sites import NORMAL_BODY, LocalSites
from helpers.stack import Pipeline, metrictui_cmd
from helpers.waiting import wait_for

pytestmark = pytest.mark.integration


def start(p: Pipeline, role: str, log: Path) -> subprocess.Popen[bytes]:
    """The real `metrictui --headless --role ROLE` as a child process."""
    return subprocess.Popen(
        metrictui_cmd("--config", str(p.config_path), "--headless", "--role", role),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> tuple[int, float]:
    started = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(timeout=30)
    return code, time.monotonic() - started


def schema_fingerprint(p: Pipeline) -> list[tuple[object, ...]]:
    return p.query(
        "SELECT c.relname, c.relkind, a.attname, a.atttypid::regtype::text"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
        f" WHERE n.nspname = '{p.schema}' ORDER BY 1, 3"
    )


def test_migrate_creates_schema_once_and_second_run_changes_nothing(pipeline: Pipeline) -> None:
    cfg = str(pipeline.config_path)
    first = subprocess.run(
        metrictui_cmd("--config", cfg, "migrate"), capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    assert "001_init.sql" in first.stdout
    before = schema_fingerprint(pipeline)
    assert {"samples_v", "checks_v", "dead_letters"} <= {r[0] for r in before}
    second = subprocess.run(
        metrictui_cmd("--config", cfg, "migrate"), capture_output=True, text=True
    )
    assert second.returncode == 0 and "up to date" in second.stdout
    assert schema_fingerprint(pipeline) == before
    columns = pipeline.query(
        "SELECT column_name, data_type FROM information_schema.columns"
        f" WHERE table_schema = '{pipeline.schema}' AND table_name = 'checks_v'"
        " ORDER BY ordinal_position"
    )
    assert [c[0] for c in columns] == [
        "ts", "agent", "target", "url", "ok", "status_code", "reason", "dns_ms", "connect_ms",
        "tls_ms", "ttfb_ms", "total_ms", "content_match", "cert_expires_at", "location",
    ]  # fmt: skip


def _targets(sites: LocalSites) -> list[dict[str, object]]:
    return [
        {
            "name": "match",
            "url": sites.http_url("/"),
            "regex": "metrictui test page",
            "interval": 2,
        },
        {"name": "nomatch", "url": sites.http_url("/"), "regex": "not on the page", "interval": 2},
        {"name": "http500", "url": sites.http_url("/status/500"), "interval": 2},
        {"name": "refused", "url": sites.refused_url, "interval": 2, "timeout": 3},
        {
            "name": "tls",
            "url": sites.https_url("/", host="localhost"),
            "ca_file": str(sites.ca_file),
            "interval": 2,
        },
    ]


def test_separate_producer_and_consumer_processes_fill_postgres(
    pipeline: Pipeline, local_sites: LocalSites, tmp_path: Path
) -> None:
    assert "metrictui test page" in NORMAL_BODY
    pipeline.write_targets(_targets(local_sites))
    log = tmp_path / "procs.log"
    consumer = start(pipeline, "consumer", log)
    producer = start(pipeline, "producer", log)
    try:
        time.sleep(30)
        code, took = stop(producer)
        assert code == 0 and took < 10, log.read_text()[-3000:]
        produced = asyncio.run(read_topic(pipeline.stack.bootstrap, pipeline.metrics_topic))
        produced += asyncio.run(read_topic(pipeline.stack.bootstrap, pipeline.checks_topic))
        ids = set(event_ids(produced))
        assert len(ids) > 50, "the producer should have sent events for 30 s"
        wait_for(
            lambda: pipeline.count("events") >= len(ids),
            30,
            "every produced event in PostgreSQL",
        )
        code, took = stop(consumer)
        assert code == 0 and took < 10, log.read_text()[-3000:]
    finally:
        for proc in (producer, consumer):
            if proc.poll() is None:
                proc.kill()
    stored = {str(r[0]) for r in pipeline.query("SELECT event_id FROM events")}
    assert stored == ids

    agent = pipeline.agent
    metrics = {
        r[0]: (r[1], r[2])
        for r in pipeline.query(
            "SELECT metric, min(value), max(value) FROM samples_v WHERE agent = %s GROUP BY 1",
            (agent,),
        )
    }
    for name in (
        "cpu.percent",
        "memory.percent",
        "disk.percent",
        "load.1m",
        "net.recv_bytes_per_s",
    ):
        assert name in metrics, sorted(metrics)
    assert 0 <= metrics["cpu.percent"][0] <= metrics["cpu.percent"][1] <= 100
    assert 0 < metrics["memory.percent"][1] <= 100
    assert metrics["net.recv_bytes_per_s"][0] >= 0
    units = dict(pipeline.query("SELECT DISTINCT metric, unit FROM samples_v"))
    assert units["cpu.percent"] == "%" and units["net.recv_bytes_per_s"] == "bytes/s"

    rows = pipeline.query(
        "SELECT target, ok, status_code, content_match, reason, tls_ms, ttfb_ms, cert_expires_at"
        " FROM checks_v WHERE agent = %s",
        (agent,),
    )
    by_target: dict[str, list[tuple[object, ...]]] = {}
    for row in rows:
        by_target.setdefault(str(row[0]), []).append(row[1:])
    assert set(by_target) == {"match", "nomatch", "http500", "refused", "tls"}
    assert all(r[:4] == (True, 200, True, None) for r in by_target["match"])
    assert all(r[:4] == (False, 200, False, "content_mismatch") for r in by_target["nomatch"])
    assert all(r[:4] == (False, 500, None, "status_mismatch") for r in by_target["http500"])
    assert all(r[:4] == (False, None, None, "connect_error") for r in by_target["refused"])
    expiry = local_sites.https_cert_expires_at.astimezone(UTC)
    for ok, status, _match, _reason, tls_ms, ttfb_ms, cert in by_target["tls"]:
        assert ok is True and status == 200
        assert tls_ms is not None and tls_ms > 0 and ttfb_ms is not None and ttfb_ms > 0
        assert cert is not None and abs((cert - expiry).total_seconds()) < 1
    assert all(len(v) >= 5 for v in by_target.values()), {k: len(v) for k, v in by_target.items()}


def test_consumer_sigkill_mid_stream_loses_and_duplicates_nothing(
    pipeline: Pipeline, local_sites: LocalSites, tmp_path: Path
) -> None:
    pipeline.write_config(consumer={"batch_max": 50})
    pipeline.write_targets(
        [{"name": f"t{i}", "url": local_sites.http_url("/"), "interval": 0.5} for i in range(8)]
    )
    log = tmp_path / "procs.log"
    producer = start(pipeline, "producer", log)
    consumer = start(pipeline, "consumer", log)
    try:
        wait_for(
            lambda: pipeline.count("events") > 50,
            60,
            "the consumer to write events",
        )
        consumer.kill()
        consumer.wait(timeout=10)
        time.sleep(3)
        consumer = start(pipeline, "consumer", log)
        time.sleep(8)
        code, _ = stop(producer)
        assert code == 0
        produced = asyncio.run(read_topic(pipeline.stack.bootstrap, pipeline.metrics_topic))
        produced += asyncio.run(read_topic(pipeline.stack.bootstrap, pipeline.checks_topic))
        ids = event_ids(produced)
        assert len(ids) > 50, "the producer should have sent events"
        wait_for(
            lambda: pipeline.count("events") >= len(set(ids)),
            30,
            "the restarted consumer to catch up",
        )
        stop(consumer)
    finally:
        for proc in (producer, consumer):
            if proc.poll() is None:
                proc.kill()
    stored = [str(r[0]) for r in pipeline.query("SELECT event_id FROM events")]
    assert len(stored) == len(set(stored))
    missing, extra = set(ids) - set(stored), set(stored) - set(ids)
    assert not missing and not extra, (
        len(ids),
        len(set(ids)),
        len(stored),
        len(missing),
        len(extra),
    )
    checks = pipeline.query("SELECT count(*), count(DISTINCT event_id) FROM checks")[0]
    check_events = sum(1 for v in produced if orjson.loads(v)["type"] == "check")
    assert checks == (check_events, check_events)
    expected_samples = sum(
        len(orjson.loads(v)["payload"]["samples"])
        for v in produced
        if orjson.loads(v)["type"] == "metrics"
    )
    assert pipeline.query("SELECT count(*) FROM samples")[0][0] == expected_samples


MALFORMED: dict[str, bytes | None] = {
    "not json": b"this is not json",
    "binary garbage": os.urandom(512),
    "json array": b"[1, 2, 3]",
    "digits": b"7" * 100_000,
    "unknown version": orjson.dumps({"v": "9.0", "id": "x"}),
    "missing fields": orjson.dumps({"v": "1.0"}),
    "wrong types": b'{"v":"1.0","id":"8c1d5d9e-7c3a-4c49-9d2b-3f1f7f0b1a11","type":"metrics",'
    b'"agent":1,"host":"h","observed_at":"2026-01-01T00:00:00+00:00","payload":{}}',
    "bad timestamp": b'{"v":"1.0","id":"8c1d5d9e-7c3a-4c49-9d2b-3f1f7f0b1a12","type":"metrics",'
    b'"agent":"a","host":"h","observed_at":"yesterday","payload":{"samples":[]}}',
    "years off": b'{"v":"1.0","id":"8c1d5d9e-7c3a-4c49-9d2b-3f1f7f0b1a13","type":"metrics",'
    b'"agent":"a","host":"h","observed_at":"1999-01-01T00:00:00+00:00","payload":{"samples":[]}}',
    "tombstone": None,
}


def test_malformed_messages_go_to_dead_letters_and_good_events_keep_flowing(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    assert len(MALFORMED) == 10
    log = tmp_path / "procs.log"
    producer = start(pipeline, "producer", log)
    consumer = start(pipeline, "consumer", log)
    try:
        wait_for(
            lambda: pipeline.count("events") >= 2,
            60,
            "first good events",
        )
        asyncio.run(
            send_raw(pipeline.stack.bootstrap, pipeline.metrics_topic, list(MALFORMED.values()))
        )
        wait_for(
            lambda: pipeline.count("dead_letters") >= 10,
            30,
            "ten dead letters",
        )
        before = pipeline.count("events")
        wait_for(
            lambda: pipeline.count("events") >= before + 2,
            30,
            "good events after the bad ones",
        )
    finally:
        for proc in (producer, consumer):
            if proc.poll() is None:
                stop(proc)
    dead = pipeline.query('SELECT reason, "offset", partition, topic FROM dead_letters')
    assert len(dead) == 10
    assert all(r[0] and r[3] == pipeline.metrics_topic for r in dead)
    reasons = {r[0].split(":")[0] for r in dead}
    assert {"not_json", "unknown_version", "missing_field", "bad_timestamp"} <= reasons
    assert "timestamp_out_of_range" in reasons and "empty_message" in reasons


def _headless_fails(p: Pipeline, role: str = "producer") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        metrictui_cmd("--config", str(p.config_path), "--headless", "--role", role),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_topic_creation_refused_by_the_cluster_is_one_clear_line(pipeline: Pipeline) -> None:
    pipeline.write_config(kafka={"replication_factor": 3})  # the local cluster has one broker
    proc = _headless_fails(pipeline)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("metrictui: Kafka refused to create topic(s)")
    assert "InvalidReplicationFactor" in last and pipeline.metrics_topic in last
    assert "Traceback" not in proc.stderr


def test_missing_topics_with_create_topics_off_is_one_clear_line(pipeline: Pipeline) -> None:
    pipeline.write_config(kafka={"create_topics": False})
    proc = _headless_fails(pipeline, "consumer")
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "do not exist" in last and "create_topics" in last
    assert "Traceback" not in proc.stderr
