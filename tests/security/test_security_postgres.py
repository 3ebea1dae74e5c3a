"""PostgreSQL security (issue 4, cases 15 and 19): TLS with sslmode=verify-full, and a sink
that runs under a role allowed only to SELECT and INSERT while migrations run as the owner.

The grants (faults.SINK_GRANTS) are the ones README ("Least privilege") tells operators to
run; daily partitions come from `ensure_day_partitions()` (sql/002), with the owner's rights.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import psycopg
import pytest

from engine.envelope import encode_event, encode_heartbeat
from engine.records.heartbeats import Heartbeat
from helpers.faults import (
    Agents,
    SinkRole,
    assert_conserved,
    config_variant,
    migrate_as_owner,
    run_briefly,
    stored_count,
)
from helpers.kafka_tools import send_raw
from helpers.sites import LocalSites
from helpers.stack import Pipeline, metrictui_cmd
from helpers.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def _old_event(days: int) -> bytes:
    """A valid metrics event observed `days` ago: its day's partitions do not exist yet."""
    when = datetime.now(UTC) - timedelta(days=days)
    return encode_event("metrics", "late-agent", "h", when, {"samples": [["m", {}, 1.0, ""]]})


def test_sink_under_an_insert_select_role_stores_everything_and_cannot_drop_or_delete(
    pipeline: Pipeline, agents: Agents, local_sites: LocalSites, sink_role: SinkRole
) -> None:
    migrate_as_owner(pipeline)
    sink_role.grant()
    # The restricted sink also talks to PostgreSQL over TLS, verify-full (case 15).
    restricted = config_variant(
        pipeline,
        "sink.toml",
        postgres={
            "dsn": sink_role.dsn(pipeline.stack.env["pg_dsn_tls"]),
            "migrate_on_start": False,
        },
    )
    pipeline.write_targets([{"name": "home", "url": local_sites.http_url("/"), "interval": 0.5}])
    consumer = agents.start("consumer", config=restricted)
    producer = agents.start("producer")
    wait_for(lambda: stored_count(pipeline) >= 10, 60, "events written by the restricted sink")
    asyncio.run(send_raw(pipeline.stack.bootstrap, pipeline.metrics_topic, [_old_event(3)]))
    time.sleep(1)
    code, _ = producer.stop()
    assert code == 0, producer.tail()
    assert_conserved(pipeline, min_events=10)
    tls = sink_role.sessions_use_tls()
    assert tls and all(tls), "the sink's connection is TLS"
    day = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y%m%d")
    owners = pipeline.query(
        "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s"
        " AND c.relname LIKE %s",
        (pipeline.schema, f"%\\_{day}"),
    )
    assert {r[0] for r in owners} == {f"events_{day}", f"samples_{day}", f"checks_{day}"}
    assert {r[1] for r in owners} == {sink_role.owner}, "partitions belong to the owner"
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()
    assert "permission denied" not in consumer.text()
    agents.assert_clean()

    s = pipeline.schema
    forbidden = [
        f"DELETE FROM {s}.events",
        f"UPDATE {s}.series SET unit = 'x'",
        f"TRUNCATE {s}.samples",
        f"DROP TABLE {s}.checks",
        f"DROP VIEW {s}.samples_v",
        f"ALTER TABLE {s}.events ADD COLUMN x int",
        f"CREATE TABLE {s}.mine (x int)",
        f"CREATE TABLE {s}.events_20990101 PARTITION OF {s}.events"
        " FOR VALUES FROM ('2099-01-01') TO ('2099-01-02')",
        f"DROP FUNCTION {s}.ensure_day_partitions(date[])",
        f"CREATE SCHEMA {s}_other",
    ]
    with psycopg.connect(sink_role.dsn(), autocommit=True) as conn:
        for statement in forbidden:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement.encode())
        # What it may do: read, and insert (the sink's whole job).
        assert conn.execute(f"SELECT count(*) FROM {s}.samples_v".encode()).fetchone()
    assert stored_count(pipeline) >= 10, "nothing was deleted"


def test_missing_grant_holds_the_batch_instead_of_dead_lettering_it(
    pipeline: Pipeline, agents: Agents, local_sites: LocalSites, sink_role: SinkRole
) -> None:
    """Permission denied is the operator's to fix, not the events' fault: no dead letters,
    no offset commits; once EXECUTE is granted, everything lands."""
    migrate_as_owner(pipeline)
    sink_role.grant(execute=False)
    restricted = config_variant(
        pipeline, "sink.toml", postgres={"dsn": sink_role.dsn(), "migrate_on_start": False}
    )
    pipeline.write_targets([{"name": "home", "url": local_sites.http_url("/"), "interval": 0.5}])
    consumer = agents.start("consumer", config=restricted)
    producer = agents.start("producer")
    wait_for(lambda: "permission denied" in consumer.text(), 60, "the permission error")
    time.sleep(3)
    assert consumer.running, consumer.tail()
    assert pipeline.query("SELECT count(*) FROM dead_letters")[0][0] == 0
    assert stored_count(pipeline) == 0
    assert consumer.last_status()["postgres"] == "down"
    errors = [ln for ln in consumer.text().splitlines() if "permission denied" in ln]
    assert len(errors) == 1, "said once, not once per retry"
    sink_role.grant_execute()
    wait_for(lambda: stored_count(pipeline) >= 10, 60, "events once EXECUTE is granted")
    code, _ = producer.stop()
    assert code == 0, producer.tail()
    assert_conserved(pipeline, min_events=10)
    assert pipeline.query("SELECT count(*) FROM dead_letters")[0][0] == 0
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()


def test_a_heartbeat_that_cannot_be_stored_is_said_once_and_held_until_granted(
    pipeline: Pipeline, agents: Agents, sink_role: SinkRole
) -> None:
    """A batch of only heartbeats (an idle fleet agent) meets the same missing grant: the
    sink says why once, shows PostgreSQL down, commits nothing, and stores it once granted.
    (It once logged this at debug and stalled silently, so the grant error never showed.)"""
    migrate_as_owner(pipeline)
    sink_role.grant(execute=False)
    restricted = config_variant(
        pipeline, "sink.toml", postgres={"dsn": sink_role.dsn(), "migrate_on_start": False}
    )
    consumer = agents.start("consumer", config=restricted)
    wait_for(lambda: consumer.last_status().get("kafka") == "connected", 60, "the consumer up")
    beat = Heartbeat("eu", "0.1.0", "producer", 0, True, 0, 0, 0, None, 5.0, 10.0, 30.0)
    raw = encode_heartbeat("idle-agent", "idle-host", datetime.now(UTC), beat)
    asyncio.run(send_raw(pipeline.stack.bootstrap, pipeline.metrics_topic, [raw]))
    wait_for(lambda: "permission denied" in consumer.text(), 60, "the permission error")
    wait_for(lambda: consumer.last_status().get("postgres") == "down", 30, "postgres down")
    time.sleep(2)
    errors = [ln for ln in consumer.text().splitlines() if "permission denied" in ln]
    assert len(errors) == 1, "said once, not once per retry"
    assert pipeline.query("SELECT count(*) FROM agents_v")[0][0] == 0
    sink_role.grant_execute()
    wait_for(
        lambda: pipeline.query("SELECT count(*) FROM agents_v WHERE agent = 'idle-agent'")[0][0],
        60,
        "the heartbeat once EXECUTE is granted",
    )
    assert pipeline.query("SELECT count(*) FROM events WHERE kind = 'heartbeat'")[0][0] == 1
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()


def test_restricted_role_cannot_migrate_and_says_so_in_one_line(
    pipeline: Pipeline, sink_role: SinkRole
) -> None:
    migrate_as_owner(pipeline)
    sink_role.grant()
    pipeline.write_config(postgres={"dsn": sink_role.dsn(), "migrate_on_start": True})
    code, output, took = run_briefly(pipeline, "consumer")
    errors = [ln for ln in output.splitlines() if ln.startswith("metrictui: ")]
    assert code == 1 and took < 20, output
    assert len(errors) == 1 and "42501" in errors[0], output
    assert sink_role.password not in output and "Traceback" not in output


def test_verify_full_with_the_wrong_ca_fails_with_one_line(pipeline: Pipeline) -> None:
    env = pipeline.stack.env
    wrong = env["pg_dsn_tls"].replace(quote(env["tls_ca"], safe="/"), env["tls_wrong_ca"])
    assert wrong != env["pg_dsn_tls"]
    pipeline.write_config(postgres={"dsn": wrong})
    code, output, took = run_briefly(pipeline, "consumer")
    errors = [ln for ln in output.splitlines() if ln.startswith("metrictui: ")]
    assert code == 1 and took < 20, output
    assert len(errors) == 1 and "certificate verify failed" in errors[0], output
    assert "[postgres] dsn" in errors[0]
    password = urlsplit(env["pg_dsn"]).password
    assert password and f":{password}@" not in output
    proc = subprocess.run(
        metrictui_cmd("--config", str(pipeline.config_path), "migrate"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "certificate verify failed" in proc.stderr
