"""Helpers for the fault tests: stop/kill/restart the real servers, run real agents, judge.

Servers are stopped and started only through stack/stack.py (the same launcher the `stack`
fixture uses, with the same environment), and the `servers` fixture restores both servers in
its teardown whatever the test did, so a failing fault test never leaves a broken stack for
the tests after it.

The judge is always PostgreSQL: `assert_conserved` reads every event id from the topics and
demands that the `events` table holds exactly that set, each once, with the matching rows in
`samples` and `checks`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import orjson
import psycopg
import pytest

from helpers.kafka_tools import read_topic
from helpers.stack import ROOT, Pipeline, metrictui_cmd
from helpers.waiting import wait_for

STACK_SCRIPT = ROOT / "stack" / "stack.py"


def stack_cmd(*args: str, timeout: float = 180.0) -> None:
    """Run one stack.py command (kafka-stop, pg-start, ...); fail the test if it fails."""
    proc = subprocess.run(
        [sys.executable, str(STACK_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        pytest.fail(f"stack.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


class Servers:
    """Stops and starts the stack's Kafka and PostgreSQL; remembers what it must restore."""

    # Kafka takes 8-15 s to answer after `kafka-start` here: launched this long before the
    # end of an outage window, it is back at the end of it, not 10 s later.
    KAFKA_START_S = 8.0

    def __init__(self) -> None:
        self.kafka_down = False
        self.pg_down = False
        self._starting: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self.kafka_back_at: float | None = None

    def kafka_stop(self, *, kill: bool = False) -> None:
        self.kafka_down = True
        stack_cmd("kafka-stop", *(["--kill"] if kill else []))

    def kafka_start(self) -> None:
        stack_cmd("kafka-start")
        self.kafka_down = False
        self.kafka_back_at = time.monotonic()

    def kafka_back_after(self, down_at: float, outage_s: float) -> None:
        """Start Kafka in the background so it answers no sooner than `outage_s - 1` s after
        `down_at` (and a few seconds later at most, depending on how fast it starts)."""

        def start() -> None:
            # Start a second before the window ends: however fast Kafka starts, it is away for
            # at least `outage_s - 1` s (a start that was too early made a 27 s "30 s" outage).
            time.sleep(max(0.0, down_at + outage_s - 1.0 - time.monotonic()))
            try:
                self.kafka_start()
            except BaseException as exc:  # pytest.fail() in a thread: re-raised by the join
                self._start_error = exc

        self._starting = threading.Thread(target=start, name="kafka-start", daemon=True)
        self._starting.start()

    def wait_kafka_back(self, timeout: float = 180.0) -> float:
        """Wait for kafka_back_after(); returns when Kafka answered (monotonic)."""
        assert self._starting is not None
        self._starting.join(timeout)
        self._starting = None
        if self._start_error is not None:
            raise self._start_error
        assert self.kafka_back_at is not None and not self.kafka_down
        return self.kafka_back_at

    def pg_stop(self, *, kill: bool = False) -> None:
        self.pg_down = True
        stack_cmd("pg-stop", *(["--kill"] if kill else []))

    def pg_start(self) -> None:
        stack_cmd("pg-start")
        self.pg_down = False

    def restore(self) -> None:
        """Bring back whatever this test stopped (idempotent: a running server is reused)."""
        if self._starting is not None:
            self._starting.join(180)
        if self.kafka_down:
            self.kafka_start()
        if self.pg_down:
            self.pg_start()


@pytest.fixture(name="servers")
def servers_fixture(stack: object) -> Iterator[Servers]:
    """Stop/start the real servers in a test; always restored afterwards."""
    s = Servers()
    try:
        yield s
    finally:
        s.restore()


# -- agent processes ---------------------------------------------------------------------------

_STATUS = re.compile(r"status (role=\S+.*)$")


@dataclass
class Agent:
    """One real `metrictui --headless --role ROLE` child process and its log file."""

    pipeline: Pipeline
    role: str
    log: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    program: tuple[str, ...] = ()  # instead of the metrictui console script
    config: Path | None = None  # instead of the pipeline's metrictui.toml
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Agent:
        config = self.config or self.pipeline.config_path
        args = ("--config", str(config), "--headless", "--role", self.role)
        cmd = [*self.program, *args] if self.program else metrictui_cmd(*args)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*cmd, *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.extra_env},
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> tuple[int, float]:
        """Signal and wait; returns (exit code, seconds it took)."""
        assert self.proc is not None
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, chars: int = 4000) -> str:
        return self.text()[-chars:]

    def statuses(self) -> list[dict[str, str]]:
        """Every headless status line so far, as key -> value."""
        out = []
        for line in self.text().splitlines():
            m = _STATUS.search(line)
            if m:
                out.append(dict(p.split("=", 1) for p in m.group(1).split() if "=" in p))
        return out

    def last_status(self) -> dict[str, str]:
        statuses = self.statuses()
        return statuses[-1] if statuses else {}


@dataclass
class Agents:
    """Every agent a test started; all killed at teardown so nothing outlives the test."""

    pipeline: Pipeline
    dir: Path
    started: list[Agent] = field(default_factory=list)

    def start(self, role: str, name: str | None = None, **kw: object) -> Agent:
        log = self.dir / f"{name or role}-{len(self.started)}.log"
        agent = Agent(self.pipeline, role, log, **kw).start()  # type: ignore[arg-type]
        self.started.append(agent)
        return agent

    def kill_all(self) -> None:
        for agent in self.started:
            agent.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {a.log.name} ---\n{a.tail()}" for a in self.started)

    def assert_clean(self) -> None:
        """No agent crashed with a traceback or leaked an unobserved task exception."""
        for agent in self.started:
            text = agent.text()
            for bad in ("Traceback", "exception was never retrieved", "Unclosed"):
                assert bad not in text, f"{bad!r} in {agent.log.name}:\n{agent.tail(6000)}"


@pytest.fixture(name="agents")
def agents_fixture(pipeline: Pipeline, tmp_path: Path) -> Iterator[Agents]:
    a = Agents(pipeline, tmp_path / "logs")
    try:
        yield a
    finally:
        a.kill_all()
        # pytest shows a test's captured output only when it fails: then the agents' last lines
        # are in the report, since the tmp dirs holding the whole logs are rotated away.
        print(a.logs())


def config_variant(p: Pipeline, name: str, **sections: dict[str, object]) -> Path:
    """A second config file for one agent (the pipeline's own metrictui.toml is unchanged)."""
    original = p.config_path.read_bytes()
    try:
        p.write_config(**sections)  # type: ignore[arg-type]
        variant = p.dir / name
        variant.write_bytes(p.config_path.read_bytes())
        variant.chmod(0o600)
    finally:
        p.config_path.write_bytes(original)
    return variant


def events_table_ready(p: Pipeline) -> bool:
    return bool(
        p.query(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = 'events'",
            (p.schema,),
        )[0][0]
    )


def stored_count(p: Pipeline) -> int:
    """Events in PostgreSQL (0 while the schema does not exist yet or PostgreSQL is away)."""
    try:
        if not events_table_ready(p):
            return 0
        return int(p.query("SELECT count(*) FROM events")[0][0])
    except Exception:  # PostgreSQL away: nothing to count yet
        return 0


# -- conservation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Conservation:
    """What the topics and PostgreSQL held when the check passed."""

    messages: int  # messages on the topics (re-sends included)
    events: int  # distinct event ids
    metrics_events: int
    check_events: int
    samples: int


def topic_events(p: Pipeline) -> dict[str, dict[str, object]]:
    """Every envelope on the test's two topics, by event id (re-sends collapse)."""
    values = asyncio.run(read_topic(p.stack.bootstrap, p.metrics_topic))
    values += asyncio.run(read_topic(p.stack.bootstrap, p.checks_topic))
    out: dict[str, dict[str, object]] = {}
    for v in values:
        doc = orjson.loads(v)
        out[doc["id"]] = doc
    out["__messages__"] = {"count": len(values)}
    return out


def assert_conserved(p: Pipeline, *, min_events: int = 1, timeout: float = 60.0) -> Conservation:
    """Event ids on the topics == event ids in PostgreSQL, each once, with all their rows."""
    docs = topic_events(p)
    messages = int(docs.pop("__messages__")["count"])  # type: ignore[call-overload]
    ids = set(docs)
    assert len(ids) >= min_events, f"only {len(ids)} events on the topics"
    wait_for(lambda: stored_count(p) >= len(ids), timeout, f"{len(ids)} events in PostgreSQL")
    stored = [str(r[0]) for r in p.query("SELECT event_id FROM events")]
    assert len(stored) == len(set(stored)), "an event id is stored twice"
    missing, extra = ids - set(stored), set(stored) - ids
    assert not missing and not extra, f"missing {len(missing)}, unexpected {len(extra)}"
    checks = [d for d in docs.values() if d["type"] == "check"]
    metrics = [d for d in docs.values() if d["type"] == "metrics"]
    rows = p.query("SELECT count(*), count(DISTINCT event_id) FROM checks")[0]
    assert rows == (len(checks), len(checks)), (rows, len(checks))
    samples = sum(len(d["payload"]["samples"]) for d in metrics)  # type: ignore[index, arg-type]
    assert p.query("SELECT count(*) FROM samples")[0][0] == samples
    return Conservation(messages, len(ids), len(metrics), len(checks), samples)


def metrics_gaps(p: Pipeline, agent: str) -> list[float]:
    """Seconds between consecutive metrics events of `agent` in PostgreSQL, in time order."""
    rows = p.query(
        "SELECT observed_at FROM events WHERE kind = 'metrics' AND agent = %s ORDER BY 1",
        (agent,),
    )
    times: list[datetime] = [r[0] for r in rows]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(times)]


def committed_offsets(bootstrap: str, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """The group's committed offsets, read with a plain admin client."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def read() -> dict[tuple[str, int], int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}

    result = asyncio.run(read())
    return {k: v for k, v in result.items() if k[0] in topics and v >= 0}


def partition_messages(p: Pipeline) -> dict[tuple[str, int], list[tuple[int, str | None]]]:
    """(offset, event id) of every message on the test's topics, per partition."""
    from aiokafka import AIOKafkaConsumer

    async def read() -> dict[tuple[str, int], list[tuple[int, str | None]]]:
        consumer = AIOKafkaConsumer(
            p.metrics_topic,
            p.checks_topic,
            bootstrap_servers=p.stack.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        out: dict[tuple[str, int], list[tuple[int, str | None]]] = {}
        try:
            async with asyncio.timeout(30):
                while len(consumer.assignment()) < 2:
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.5)  # both topics' partitions assigned
                tps = sorted(consumer.assignment())
                end = await consumer.end_offsets(tps)
                while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
                    for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                        for m in msgs:
                            try:
                                event_id = orjson.loads(m.value)["id"]
                            except (orjson.JSONDecodeError, KeyError, TypeError):
                                event_id = None
                            out.setdefault((tp.topic, tp.partition), []).append(
                                (m.offset, event_id)
                            )
        finally:
            await consumer.stop()
        return out

    return asyncio.run(read())


def assert_committed_in_postgres(
    p: Pipeline, committed: dict[tuple[str, int], int]
) -> dict[tuple[str, int], int]:
    """Every message below a committed offset is in PostgreSQL (as an event or a dead letter).

    Returns how many messages per partition that covered.
    """
    messages = partition_messages(p)
    stored = {str(r[0]) for r in p.query("SELECT event_id FROM events")}
    dead = {
        (r[0], r[1], r[2]) for r in p.query('SELECT topic, partition, "offset" FROM dead_letters')
    }
    covered: dict[tuple[str, int], int] = {}
    for (topic, partition), upto in committed.items():
        below = [(o, i) for o, i in messages.get((topic, partition), []) if o < upto]
        for offset, event_id in below:
            in_pg = (event_id is not None and event_id in stored) or (
                (topic, partition, offset) in dead
            )
            assert in_pg, (
                f"offset {offset} of {topic}[{partition}] is committed ({upto})"
                " but its event is not in PostgreSQL"
            )
        covered[(topic, partition)] = len(below)
    return covered


def group_lag(p: Pipeline) -> int:
    """Messages on the topics beyond the group's committed offsets (what an operator sees)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    topics = [p.metrics_topic, p.checks_topic]
    committed = committed_offsets(p.stack.bootstrap, p.group_id, topics)

    async def ends() -> dict[tuple[str, int], int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=p.stack.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(topics)
        finally:
            await admin.close()
        tps = [
            TopicPartition(t["topic"], part["partition"])
            for t in described
            for part in t["partitions"]
        ]
        consumer = AIOKafkaConsumer(bootstrap_servers=p.stack.bootstrap, group_id=None)
        await consumer.start()
        try:
            end = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        return {(tp.topic, tp.partition): off for tp, off in end.items()}

    return sum(off - committed.get(k, 0) for k, off in asyncio.run(ends()).items())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    """Unlabelled samples of a headless engine's /metrics (name -> value)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


# A real consumer process that SIGKILLs itself at a chosen point of the sink's batch cycle:
# "before-db-commit" dies inside the PostgreSQL transaction (rows inserted, not committed),
# on the writer thread's fast path or the store's careful one, whichever writes the batch;
# "after-db-commit" dies once the transaction committed but before the Kafka offset commit.
# The kill comes on the batch after FAULT_CRASH_AFTER good batches.
CRASHING_CONSUMER = """
import os, signal, sys
from engine.sink import consume as sink
from engine.sink import row_writer, store

point = os.environ["FAULT_CRASH_POINT"]
after = int(os.environ["FAULT_CRASH_AFTER"])
calls = [0]

def doomed():
    calls[0] += 1
    return calls[0] > after

def wrap(cls, name, kill_before):
    original = getattr(cls, name)
    async def wrapper(self, *args, **kwargs):
        dies = doomed()
        if dies and kill_before:
            os.kill(os.getpid(), signal.SIGKILL)
        result = await original(self, *args, **kwargs)
        if dies:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(cls, name, wrapper)

def wrap_thread(cls, name):
    original = getattr(cls, name)
    def wrapper(self, *args, **kwargs):
        dies = doomed()
        result = original(self, *args, **kwargs)
        if dies:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(cls, name, wrapper)

if point == "before-db-commit":
    wrap(store.Store, "_claim_events", kill_before=False)  # inside the batch transaction
    wrap_thread(row_writer.RowWriter, "_copy_rows")  # the same, on the writer thread
elif point == "after-db-commit":
    wrap(sink.Sink, "_commit", kill_before=True)  # write_batch has returned: committed
else:
    raise SystemExit(f"unknown crash point {point}")

from tui.cli import main
sys.argv = ["metrictui", *sys.argv[1:]]
main()
"""


# -- secure listeners (stack.py up --secure; paths and ports in env.json) -----------------------


def ssl_kafka(p: Pipeline, **over: object) -> dict[str, object]:
    """[kafka] keys for the SSL listener with client certificates, as Aiven hands them out."""
    env = p.stack.env
    return {
        "bootstrap_servers": env["kafka_ssl_bootstrap"],
        "security_protocol": "SSL",
        "ssl_cafile": env["tls_ca"],
        "ssl_certfile": env["tls_client_cert"],
        "ssl_keyfile": env["tls_client_key"],
        **over,
    }


def sasl_kafka(p: Pipeline, mechanism: str, **over: object) -> dict[str, object]:
    """[kafka] keys for the SASL_SSL listener (SCRAM) with the stack's CA."""
    env = p.stack.env
    return {
        "bootstrap_servers": env["kafka_sasl_ssl_bootstrap"],
        "security_protocol": "SASL_SSL",
        "ssl_cafile": env["tls_ca"],
        "sasl_mechanism": mechanism,
        "sasl_username": env["kafka_sasl_username"],
        "sasl_password": env["kafka_sasl_password"],
        **over,
    }


def run_briefly(
    p: Pipeline, role: str, *args: str, config: Path | None = None, timeout: float = 60.0
) -> tuple[int, str, float]:
    """Run `metrictui --headless --role ROLE` that is expected to exit by itself."""
    started = time.monotonic()
    proc = subprocess.run(
        metrictui_cmd(
            "--config", str(config or p.config_path), "--headless", "--role", role, *args
        ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


# -- PostgreSQL roles (least privilege) ------------------------------------------------------

# Run as the schema owner (the role that applies the migrations), once per sink role.
SINK_GRANTS = """
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {schema} TO {role};
GRANT UPDATE ON {schema}.agents TO {role};
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

    def with_password(self, password: str) -> str:
        """This role's DSN with another password (for wrong-password tests)."""
        return _with_user(self.p.stack.dsn, self.name, password)

    def drop(self) -> None:
        self._admin(f"DROP OWNED BY {self.name}; DROP ROLE IF EXISTS {self.name}")


@pytest.fixture(name="sink_role")
def sink_role_fixture(pipeline: Pipeline) -> Iterator[SinkRole]:
    role = SinkRole(pipeline)
    try:
        yield role
    finally:
        role.drop()


def migrate_as_owner(p: Pipeline) -> None:
    proc = subprocess.run(
        metrictui_cmd("--config", str(p.config_path), "migrate"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "002_partition_function.sql" in proc.stdout
