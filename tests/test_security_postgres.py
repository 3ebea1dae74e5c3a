"""PostgreSQL security (issue 4, cases 15 and 19): TLS with sslmode=verify-full, and a sink
that runs under a role allowed only to SELECT and INSERT while migrations run as the owner.

The grants below are the ones README ("Least privilege") tells operators to run; daily
partitions come from `ensure_day_partitions()` (sql/002), which runs with the owner's rights.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from conftest import Pipeline, metrictui_cmd
from faults import (
    Agents,
    agents_fixture,  # noqa: F401 - fixture
    assert_conserved,
    config_variant,
    run_briefly,
    stored_count,
    wait_for,
)
from kafka_tools import send_raw
from sites import LocalSites

from engine.envelope import encode_event

pytestmark = [pytest.mark.faults, pytest.mark.integration]

# Run as the schema owner (the role that applies the migrations), once per sink role.
SINK_GRANTS = """
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {schema} TO {role};
GRANT EXECUTE ON FUNCTION {schema}.ensure_day_partitions(date[]) TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT ON TABLES TO {role};
"""


def _with_user(dsn: str, user: str, password: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password)}@{host}"))


class SinkRole:
    """A LOGIN role created for one test (by the superuser) and dropped afterwards."""

    def __init__(self, p: Pipeline) -> None:
        assert p.stack.admin_dsn, "the stack's env.json names the superuser DSN"
        self.p = p
        self.name = f"sink_{p.schema}"
        self.password = secrets.token_urlsafe(18)
        self.owner = urlsplit(p.stack.dsn).username or ""
        self._admin(f"CREATE ROLE {self.name} LOGIN PASSWORD '{self.password}'")

    def _admin(self, statement: str) -> list[tuple[object, ...]]:
        """As the superuser, in the application's database."""
        assert self.p.stack.admin_dsn is not None
        admin = urlsplit(self.p.stack.admin_dsn)
        dsn = urlunsplit(admin._replace(path=urlsplit(self.p.stack.dsn).path))
        with psycopg.connect(dsn, autocommit=True) as conn:
            cur = conn.execute(statement.encode())
            return cur.fetchall() if cur.description else []

    def sessions_use_tls(self) -> list[bool]:
        return [
            bool(row[0])
            for row in self._admin(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                f" WHERE a.usename = '{self.name}'"
            )
        ]

    def grant(self, *, execute: bool = True) -> None:
        """The documented grants, run as the owner (SET ROLE from the superuser)."""
        lines = SINK_GRANTS.format(schema=self.p.schema, role=self.name).strip().splitlines()
        if not execute:
            lines = [ln for ln in lines if "EXECUTE" not in ln]
        self._admin(f"SET ROLE {self.owner}; " + " ".join(lines))

    def grant_execute(self) -> None:
        line = next(ln for ln in SINK_GRANTS.splitlines() if "EXECUTE" in ln)
        self._admin(f"SET ROLE {self.owner}; " + line.format(schema=self.p.schema, role=self.name))

    def dsn(self, base: str | None = None) -> str:
        return _with_user(base or self.p.stack.dsn, self.name, self.password)

    def drop(self) -> None:
        self._admin(f"DROP OWNED BY {self.name}; DROP ROLE IF EXISTS {self.name}")


@pytest.fixture
def sink_role(pipeline: Pipeline) -> Iterator[SinkRole]:
    role = SinkRole(pipeline)
    try:
        yield role
    finally:
        role.drop()


def _migrate_as_owner(p: Pipeline) -> None:
    proc = subprocess.run(
        metrictui_cmd("--config", str(p.config_path), "migrate"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "002_partition_function.sql" in proc.stdout


def _old_event(days: int) -> bytes:
    """A valid metrics event observed `days` ago: its day's partitions do not exist yet."""
    when = datetime.now(UTC) - timedelta(days=days)
    return encode_event("metrics", "late-agent", "h", when, {"samples": [["m", {}, 1.0, ""]]})


def test_sink_under_an_insert_select_role_stores_everything_and_cannot_drop_or_delete(
    pipeline: Pipeline, agents: Agents, local_sites: LocalSites, sink_role: SinkRole
) -> None:
    _migrate_as_owner(pipeline)
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
    _migrate_as_owner(pipeline)
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


def test_restricted_role_cannot_migrate_and_says_so_in_one_line(
    pipeline: Pipeline, sink_role: SinkRole
) -> None:
    _migrate_as_owner(pipeline)
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
