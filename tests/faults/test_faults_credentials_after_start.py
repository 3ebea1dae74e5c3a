"""Credentials and certificates that go bad AFTER start, against the real stack.

At start a refused password or certificate is fatal with one line (test_security_kafka). Once
running, the agent must keep going instead: spool (nothing lost), keep retrying (operators fix
credentials while it runs), and name the cause once, with what to fix, in the log, the errors
list, the status line, /healthz and the dashboard header; once fixed it reconnects, replays and
the cause clears. Each case breaks the real thing:

- Kafka SASL_SSL: the SCRAM password of the agent's (own) user is changed on the broker with
  Kafka's ConfigCommand, and the broker restarted so the agent must log in again.
- Kafka SSL: the broker is restarted with a certificate from another CA (a provider rotating
  its CA); the operator then installs the new CA file while the agent runs.
- PostgreSQL: the sink role's password is changed (or the CA file in `sslrootcert` replaced),
  and the sink's sessions terminated so it must connect again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from engine.config import KafkaConfig
from engine.control.client import SocketControl
from engine.control.snapshot_wire import snapshot_to_dict
from engine.kafka.settings import Probe
from engine.kafka.watch import SettingsWatch
from engine.stats import Problem, Stats, StatsSnapshot
from helpers.faults import (
    Agent,
    Agents,
    Servers,
    SinkRole,
    assert_conserved,
    config_variant,
    free_port,
    migrate_as_owner,
    sasl_kafka,
    ssl_kafka,
    stored_count,
)
from helpers.sites import LocalSites
from helpers.stack import ROOT, Pipeline
from helpers.waiting import wait_for
from tui.widgets.pipeline_pane import header_text

pytestmark = [pytest.mark.faults, pytest.mark.integration]

# A restarted broker answers in 4-15 s here; the first probes meet it still starting, and the
# back-off between probes is at most 30 s: the cause is named well within this.
NAMED_WITHIN_S = 120.0


# -- helpers -----------------------------------------------------------------------------------


@dataclass
class ScramUser:
    """A SCRAM-SHA-512 user of its own for one test, so the stack's shared user is never
    touched; changed and deleted through Kafka's own ConfigCommand (plaintext listener)."""

    bootstrap: str
    name: str
    password: str

    def set_password(self, password: str) -> None:
        self._config("--add-config", f"SCRAM-SHA-512=[password={password}]")

    def _config(self, *change: str, name: str | None = None) -> None:
        java = shutil.which("java")
        assert java, "the stack runs Kafka, so java is installed"
        proc = subprocess.run(
            [
                *(java, "-Xmx128m", "-cp", str(ROOT / "stack" / "lib" / "*")),
                *("kafka.admin.ConfigCommand", "--bootstrap-server", self.bootstrap, "--alter"),
                *(*change, "--entity-type", "users", "--entity-name", name or self.name),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0 and "Completed" in proc.stdout, proc.stdout + proc.stderr

    def reassert_shared_user(self, name: str, password: str) -> None:
        """Write the stack's shared user's credentials again (same password; one mechanism a
        request, as Kafka refuses two changes of one user in a request)."""
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            self._config("--add-config", f"{mechanism}=[password={password}]", name=name)


@pytest.fixture(name="scram_user")
def scram_user_fixture(pipeline: Pipeline) -> Iterator[ScramUser]:
    """The per-test user is left in place, never deleted: in one clean-clone run, after this
    test deleted its user's SCRAM-SHA-512 credential, the broker (Kafka 4.1) no longer had the
    shared user's SCRAM-SHA-512 credential either, and every later SCRAM-SHA-512 test failed
    to log in. A leftover user in a throwaway test stack costs nothing; the shared user's
    credentials are written again at the end all the same."""
    user = ScramUser(pipeline.stack.bootstrap, f"creds-{pipeline.schema}", secrets.token_hex(12))
    user.set_password(user.password)
    try:
        yield user
    finally:
        env = pipeline.stack.env
        user.reassert_shared_user(env["kafka_sasl_username"], env["kafka_sasl_password"])


def _sections(p: Pipeline, name: str, **over: dict[str, object]) -> dict[str, dict[str, object]]:
    """Config sections for one agent: its own /healthz port and control socket."""
    listen = f"127.0.0.1:{free_port()}"
    sock = str(p.dir / f"{name}.sock")
    return {**over, "headless": {"listen": listen, "control_socket": sock}}


def _start(agents: Agents, p: Pipeline, role: str, sections: dict[str, dict[str, object]]) -> Agent:
    config = config_variant(p, f"{role}.toml", **sections)
    return agents.start(role, config=config)


def _healthz(sections: dict[str, dict[str, object]]) -> str:
    url = f"http://{sections['headless']['listen']}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:  # 503 while unhealthy, with the reasons
        return str(exc.read().decode())


def _snapshot(sections: dict[str, dict[str, object]]) -> StatsSnapshot:
    """What an attached dashboard gets over the control socket (to_dict/from_dict included)."""

    async def read() -> StatsSnapshot:
        control = await SocketControl.connect(Path(str(sections["headless"]["control_socket"])))
        try:
            async with asyncio.timeout(10):
                while (snap := control.snapshot()) is None:
                    await asyncio.sleep(0.1)
            return snap
        finally:
            await control.close()

    return asyncio.run(read())


def _warnings(agent: Agent, text: str) -> list[str]:
    return [ln for ln in agent.text().splitlines() if "WARNING" in ln and text in ln]


def _replace(path: Path, source: str | Path) -> None:
    """Rotate a file the way a deploy tool does: write beside it, then rename over it."""
    tmp = path.with_suffix(".new")
    shutil.copyfile(source, tmp)
    tmp.chmod(0o600)
    os.replace(tmp, path)


def _assert_named(
    agent: Agent, sections: dict[str, dict[str, object]], code: str, cause: str, fix: str
) -> StatsSnapshot:
    """The cause is in the status line (code), /healthz, the errors list, the dashboard
    header and one WARNING line, and it says what to fix."""
    lines = _warnings(agent, cause)
    assert len(lines) == 1 and fix in lines[0], agent.tail()
    health = _healthz(sections)
    assert cause in health and fix in health, health
    snap = _snapshot(sections)
    problem = snap.kafka_problem if code not in _PG_CODES else snap.postgres_problem
    assert problem is not None and problem.code == code, snap
    assert cause in problem.line and fix in problem.line, problem
    assert [e.message for e in snap.errors].count(problem.line) == 1, snap.errors
    assert f"({code})" in header_text(snap).plain
    return snap


_PG_CODES = {"password", "server_certificate", "database", "privileges"}


def _assert_secret_free(outputs: list[str], *secret_values: str) -> None:
    for text in outputs:
        for value in secret_values:
            assert value not in text, "a secret leaked into an output"


# -- Kafka: SCRAM password changed on the broker -------------------------------------------------


def test_scram_password_changed_after_start_is_named_spooled_and_cleared_when_restored(
    pipeline: Pipeline,
    agents: Agents,
    servers: Servers,
    local_sites: LocalSites,
    scram_user: ScramUser,
) -> None:
    p = pipeline
    kafka = sasl_kafka(
        p, "SCRAM-SHA-512", sasl_username=scram_user.name, sasl_password=scram_user.password
    )
    pg = {"dsn": p.stack.env["pg_dsn_tls"]}
    p.write_targets([{"name": "home", "url": local_sites.http_url("/"), "interval": 0.5}])
    cons = _sections(p, "consumer", kafka=kafka, postgres=pg)
    prod = _sections(p, "producer", kafka=kafka, postgres=pg)
    consumer = _start(agents, p, "consumer", cons)
    producer = _start(agents, p, "producer", prod)
    wait_for(lambda: stored_count(p) >= 10, 90, "10 events over SASL_SSL")

    changed = secrets.token_hex(12)
    scram_user.set_password(changed)
    broke_at = time.monotonic()
    servers.kafka_stop()
    servers.kafka_start()  # both clients must log in again, with the old password

    def named(agent: Agent) -> bool:
        return agent.last_status().get("kafka_problem") == "sasl_auth"

    wait_for(lambda: named(producer) and named(consumer), NAMED_WITHIN_S, "the SASL cause")
    took = time.monotonic() - broke_at
    cause, fix = "SASL authentication failed", "check [kafka] sasl_username and sasl_password"
    spooled = int(producer.last_status()["spool"])
    # "connecting" during each reconnect attempt, "down" between them: never "connected".
    assert producer.last_status()["kafka"] in ("down", "connecting") and spooled > 0, (
        producer.tail()
    )
    assert consumer.last_status()["kafka"] == "down", consumer.tail()
    time.sleep(15)  # many reconnect attempts and a probe or two later: still said once
    snaps = [
        _assert_named(a, s, "sasl_auth", cause, fix)
        for a, s in ((producer, prod), (consumer, cons))
    ]
    assert int(producer.last_status()["spool"]) > spooled, "events made meanwhile are spooled"
    outputs = [
        _healthz(prod),
        _healthz(cons),
        *(orjson.dumps(snapshot_to_dict(s)).decode() for s in snaps),
    ]

    scram_user.set_password(scram_user.password)  # the operator fixes it while it runs

    def cleared(agent: Agent) -> bool:
        status = agent.last_status()
        return status.get("kafka") == "connected" and "kafka_problem" not in status

    wait_for(lambda: cleared(producer) and cleared(consumer), NAMED_WITHIN_S, "reconnected")
    wait_for(lambda: producer.last_status().get("spool") == "0", 60, "the spool replayed")
    assert "Kafka accepts the [kafka] settings again" in producer.text()
    assert _healthz(prod) == "ok\n" and _snapshot(prod).kafka_problem is None
    code, _ = producer.stop()
    assert code == 0, producer.tail()
    assert producer.last_status()["spool_dropped"] == "0"
    conserved = assert_conserved(p, min_events=20)
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()
    agents.assert_clean()
    _assert_secret_free([producer.text(), consumer.text(), *outputs], scram_user.password, changed)
    print(f"cause named {took:.0f} s after the change; {spooled}+ events spooled; {conserved}")


# -- Kafka: the broker's CA replaced ------------------------------------------------------------


def _keystore_signed_by(ca_cert: str, ca_key: str, workdir: Path) -> str:
    """A PEM keystore (key, certificate, CA) for 127.0.0.1/localhost signed by another CA."""
    key, csr, crt, ext = (workdir / n for n in ("srv.key", "srv.csr", "srv.crt", "srv.ext"))
    ext.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    serial = str(secrets.randbits(63))
    for argv in (
        [
            *("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key)),
            *("-subj", "/CN=localhost", "-out", str(csr)),
        ],
        [
            *("x509", "-req", "-in", str(csr), "-CA", ca_cert, "-CAkey", ca_key, "-days", "2"),
            *("-set_serial", serial, "-extfile", str(ext), "-out", str(crt)),
        ],
    ):
        proc = subprocess.run(["openssl", *argv], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    return key.read_text() + crt.read_text() + Path(ca_cert).read_text()


@contextlib.contextmanager
def _broker_ca_replaced(p: Pipeline, servers: Servers) -> Iterator[None]:
    """Restart the broker with a certificate from another CA (the stack's "wrong" one), as a
    provider rotating its CA does; the stack's own keystore is put back and Kafka restarted
    afterwards whatever happens (and `stack.py up` would restore it too)."""
    env = p.stack.env
    keystore = Path(env["tls_dir"]) / "server-keystore.pem"
    original = keystore.read_text()
    wrong_dir = Path(env["tls_wrong_ca"]).parent
    other = _keystore_signed_by(env["tls_wrong_ca"], str(wrong_dir / "ca.key"), p.dir)
    servers.kafka_stop()
    try:
        _write_private(keystore, other)
        servers.kafka_start()
        yield
    finally:
        servers.kafka_stop()
        _write_private(keystore, original)
        servers.kafka_start()


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    tmp.chmod(0o600)
    os.replace(tmp, path)


def test_broker_ca_replaced_after_start_is_named_and_cleared_when_the_new_ca_is_installed(
    pipeline: Pipeline, agents: Agents, servers: Servers, local_sites: LocalSites
) -> None:
    """Both clients over SSL with client certificates, each with its own copy of ca.pem.
    The broker comes back with a certificate from another CA: both name ssl_cafile. The
    operator installs the new CA file: both reconnect without a restart (the producer builds
    a new client per reconnect; the consumer is rebuilt once a probe with the file as it is
    now gets through), the spool replays and nothing is lost."""
    p = pipeline
    env = p.stack.env
    p.write_targets([{"name": "home", "url": local_sites.http_url("/"), "interval": 0.5}])
    cas = {role: p.dir / f"{role}-ca.pem" for role in ("producer", "consumer")}
    sections = {}
    for role, ca in cas.items():
        _replace(ca, env["tls_ca"])
        sections[role] = _sections(p, role, kafka=ssl_kafka(p, ssl_cafile=str(ca)))
    consumer = _start(agents, p, "consumer", sections["consumer"])
    producer = _start(agents, p, "producer", sections["producer"])
    wait_for(lambda: stored_count(p) >= 5, 90, "5 events over SSL")
    code = "broker_certificate"
    cause, fix = "the broker's TLS certificate was rejected", "check [kafka] ssl_cafile"

    def named(agent: Agent) -> bool:
        return agent.last_status().get("kafka_problem") == code

    def cleared(agent: Agent) -> bool:
        status = agent.last_status()
        return status.get("kafka") == "connected" and "kafka_problem" not in status

    with _broker_ca_replaced(p, servers):
        wait_for(lambda: named(producer) and named(consumer), NAMED_WITHIN_S, "the TLS cause")
        spooled = int(producer.last_status()["spool"])
        assert spooled > 0 and producer.last_status()["kafka"] in ("down", "connecting"), (
            producer.tail()
        )
        for role in ("producer", "consumer"):
            agent = producer if role == "producer" else consumer
            _assert_named(agent, sections[role], code, cause, fix)
        for ca in cas.values():  # the operator installs the provider's new CA
            _replace(ca, env["tls_wrong_ca"])
        wait_for(lambda: cleared(producer) and cleared(consumer), NAMED_WITHIN_S, "reconnected")
        wait_for(lambda: producer.last_status().get("spool") == "0", 60, "the spool replayed")
        exit_code, _ = producer.stop()
        assert exit_code == 0, producer.tail()
        assert_conserved(p, min_events=10)
        exit_code, _ = consumer.stop()
        assert exit_code == 0, consumer.tail()
    agents.assert_clean()
    key_text = Path(env["tls_client_key"]).read_text()
    body = "".join(key_text.splitlines()[1:3])  # a piece of the key material itself
    _assert_secret_free([producer.text(), consumer.text()], body)


# -- PostgreSQL: password changed, or the CA in sslrootcert replaced ------------------------------


@pytest.mark.parametrize(
    ("broken", "cause", "fix"),
    [
        ("password", "password authentication failed", "check the user and password"),
        ("server_certificate", "certificate verify failed", "check sslrootcert"),
    ],
)
def test_postgres_credentials_changed_after_start_are_named_and_cleared_when_restored(
    pipeline: Pipeline,
    agents: Agents,
    local_sites: LocalSites,
    sink_role: SinkRole,
    broken: str,
    cause: str,
    fix: str,
) -> None:
    p = pipeline
    migrate_as_owner(p)
    sink_role.grant()
    ca = p.dir / "pg-ca.pem"
    _replace(ca, p.stack.env["tls_ca"])
    dsn = sink_role.dsn(f"{p.stack.dsn}?sslmode=verify-full&sslrootcert={ca}")
    p.write_targets([{"name": "home", "url": local_sites.http_url("/"), "interval": 0.5}])
    cons = _sections(p, "consumer", postgres={"dsn": dsn, "migrate_on_start": False})
    consumer = _start(agents, p, "consumer", cons)
    producer = agents.start("producer")
    wait_for(lambda: stored_count(p) >= 10, 90, "10 events through the sink role")

    changed = secrets.token_urlsafe(18)
    if broken == "password":
        sink_role._admin(f"ALTER ROLE {sink_role.name} PASSWORD '{changed}'")
    else:
        _replace(ca, p.stack.env["tls_wrong_ca"])
    sink_role._admin(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{sink_role.name}'"
    )
    wait_for(lambda: consumer.last_status().get("postgres_problem") == broken, 60, "the PG cause")
    stored = stored_count(p)
    time.sleep(8)  # retries with back-off: still said once, nothing written meanwhile
    assert consumer.last_status()["postgres"] == "down", consumer.tail()
    _assert_named(consumer, cons, broken, cause, fix)
    assert stored_count(p) == stored
    outputs = [_healthz(cons)]

    if broken == "password":
        sink_role._admin(f"ALTER ROLE {sink_role.name} PASSWORD '{sink_role.password}'")
    else:
        _replace(ca, p.stack.env["tls_ca"])
    wait_for(
        lambda: (
            consumer.last_status().get("postgres") == "connected"
            and "postgres_problem" not in consumer.last_status()
        ),
        60,
        "PostgreSQL writes again",
    )
    code, _ = producer.stop()
    assert code == 0, producer.tail()
    assert_conserved(p, min_events=20)
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()
    agents.assert_clean()
    _assert_secret_free([consumer.text(), *outputs], sink_role.password, changed)


# -- the watch itself: one probe at a time, backed off, said once ---------------------------------


def test_settings_watch_probes_one_at_a_time_with_back_off_and_says_each_cause_once() -> None:
    """The scheduling rules, with the probe replaced (the cases above use the real one)."""

    async def scenario() -> None:
        stats = Stats("all", "a")
        calls: list[float] = []
        gate = asyncio.Event()
        answer = Probe(Problem("sasl_auth", "Kafka x: SASL authentication failed"), False)

        async def probe(cfg: KafkaConfig, timeout: float) -> Probe:
            calls.append(time.monotonic())
            await gate.wait()
            return answer

        cfg = KafkaConfig()
        producer = SettingsWatch(cfg, stats, "producer", probe, first_pause_s=0.2)
        consumer = SettingsWatch(cfg, stats, "consumer", probe, first_pause_s=0.2)
        for _ in range(50):  # every failed send or reconnect calls down()
            producer.down()
        await asyncio.sleep(0.3)
        producer.down()  # due again, but the first probe has not answered: no second one
        assert len(calls) == 1
        gate.set()
        await asyncio.sleep(0.05)
        assert stats.snapshot().kafka_problem == answer.problem
        assert stats.errors_total == 1
        producer.down()  # due (0.2 s after the first start): the second probe
        await asyncio.sleep(0.05)
        producer.down()  # the pause has doubled to 0.4 s: not yet
        assert len(calls) == 2
        await asyncio.sleep(0.4)
        producer.down()
        await asyncio.sleep(0.05)
        consumer.down()  # role "all": the consumer finds the same cause
        await asyncio.sleep(0.05)
        assert len(calls) == 4
        assert stats.errors_total == 1, "one cause, said once, however often it is found"
        producer.up()
        assert stats.snapshot().kafka_problem == answer.problem, "the consumer is still down"
        consumer.up()
        assert stats.snapshot().kafka_problem is None
        await producer.close()
        await consumer.close()

    asyncio.run(scenario())
