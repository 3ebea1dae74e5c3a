"""Kafka security (issue 4, cases 13-14) against the stack's secure listeners: TLS with client
certificates exactly as Aiven hands them out, and SASL_SSL with SCRAM-SHA-256/512. Right
credentials carry events end to end; wrong ones fail fast with one clear line, never a retry
loop that looks like "Kafka is away", never a plaintext fallback."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from helpers.faults import (
    Agents,
    assert_conserved,
    run_briefly,
    sasl_kafka,
    ssl_kafka,
    stored_count,
)
from helpers.sites import LocalSites
from helpers.stack import Pipeline
from helpers.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration]

WRONG_PASSWORD = "wrong-Scram-Pa55word"


def _one_error_line(output: str) -> str:
    """The single `metrictui: ...` error line (log lines and warnings aside)."""
    errors = [
        ln
        for ln in output.splitlines()
        if ln.startswith("metrictui: ") and not ln.startswith("metrictui: warning:")
    ]
    assert len(errors) == 1, output
    assert "Traceback" not in output, output
    return errors[0]


def _topics(p: Pipeline) -> set[str]:
    async def names() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=p.stack.bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(names())


def _run_pipeline(
    p: Pipeline, agents: Agents, sites: LocalSites, kafka: dict[str, object], *, min_events: int
) -> None:
    p.write_config(kafka=kafka, postgres={"dsn": p.stack.env["pg_dsn_tls"]})
    p.write_targets([{"name": "home", "url": sites.http_url("/"), "interval": 0.5}])
    consumer = agents.start("consumer")
    producer = agents.start("producer")
    wait_for(lambda: stored_count(p) >= min_events, 60, f"{min_events} events over TLS")
    code, _ = producer.stop()
    assert code == 0, producer.tail()
    assert_conserved(p, min_events=min_events)
    assert "kafka=connected" in producer.text() and "postgres=connected" in consumer.text()
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()
    agents.assert_clean()


def test_tls_with_ca_pem_service_cert_and_key_carries_events_to_postgres_over_verify_full(
    pipeline: Pipeline, agents: Agents, local_sites: LocalSites
) -> None:
    _run_pipeline(pipeline, agents, local_sites, ssl_kafka(pipeline), min_events=15)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_scram_with_the_right_password_carries_events(
    pipeline: Pipeline, agents: Agents, local_sites: LocalSites, mechanism: str
) -> None:
    _run_pipeline(pipeline, agents, local_sites, sasl_kafka(pipeline, mechanism), min_events=10)


def _bad_tls(p: Pipeline, case: str) -> tuple[dict[str, object], str]:
    """[kafka] keys for one broken TLS setup, and what the one error line must name."""
    env = p.stack.env
    if case == "wrong CA":
        return ssl_kafka(p, ssl_cafile=env["tls_wrong_ca"]), "ssl_cafile"
    if case == "wrong client certificate":
        wrong = {
            "ssl_certfile": env["tls_wrong_client_cert"],
            "ssl_keyfile": env["tls_wrong_client_key"],
        }
        return ssl_kafka(p, **wrong), "ssl_certfile"
    if case == "hostname mismatch":
        # 127.1 is 127.0.0.1 to the resolver, but not a name the broker's certificate is for.
        server = f"127.1:{env['kafka_ssl_port']}"
        return ssl_kafka(p, bootstrap_servers=server), "Hostname mismatch"
    if case == "plaintext client on the TLS port":
        return {"bootstrap_servers": env["kafka_ssl_bootstrap"]}, "speaks TLS"
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "role"),
    [
        ("wrong CA", "producer"),
        ("wrong CA", "consumer"),
        ("wrong client certificate", "producer"),
        ("wrong client certificate", "consumer"),
        ("hostname mismatch", "producer"),
        ("plaintext client on the TLS port", "consumer"),
    ],
)
def test_broken_tls_fails_fast_with_one_clear_line(
    pipeline: Pipeline, case: str, role: str
) -> None:
    kafka, named = _bad_tls(pipeline, case)
    pipeline.write_config(kafka=kafka)
    code, output, took = run_briefly(pipeline, role)
    line = _one_error_line(output)
    assert code == 1, output
    assert took < 15, f"took {took:.1f} s"
    assert line.startswith("metrictui: Kafka ") and named in line, line
    assert "spooling" not in output and "will retry" not in output
    assert pipeline.metrics_topic not in _topics(pipeline), "nothing was created"


def test_tls_client_never_falls_back_to_plaintext(pipeline: Pipeline, agents: Agents) -> None:
    """Pointed at the plaintext listener, a TLS-configured agent connects to nothing."""
    pipeline.write_config(
        kafka=ssl_kafka(pipeline, bootstrap_servers=pipeline.stack.bootstrap),
        agent={"metrics_interval": 0.5},
    )
    producer = agents.start("producer")
    time.sleep(8)
    assert producer.running
    statuses = producer.statuses()
    assert statuses and all(s["kafka"] != "connected" for s in statuses), producer.tail()
    assert int(statuses[-1]["spool"]) > 0, "events are kept for when TLS works"
    assert pipeline.metrics_topic not in _topics(pipeline)
    code, _ = producer.stop()
    assert code == 0, producer.tail()


@pytest.mark.parametrize(
    ("mechanism", "user", "role"),
    [
        ("SCRAM-SHA-256", None, "producer"),
        ("SCRAM-SHA-512", None, "consumer"),
        ("SCRAM-SHA-512", "nobody", "producer"),
    ],
    ids=["256-wrong-password-producer", "512-wrong-password-consumer", "512-unknown-user"],
)
def test_wrong_scram_credentials_fail_fast_with_one_clear_line(
    pipeline: Pipeline, mechanism: str, user: str | None, role: str
) -> None:
    over: dict[str, object] = {"sasl_password": WRONG_PASSWORD}
    if user is not None:
        over["sasl_username"] = user
    pipeline.write_config(kafka=sasl_kafka(pipeline, mechanism, **over))
    code, output, took = run_briefly(pipeline, role, "--log-level", "debug")
    line = _one_error_line(output)
    assert code == 1 and took < 15, (took, output)
    assert "SASL authentication failed" in line and mechanism in line, line
    assert re.search(r"check \[kafka\] sasl_username and sasl_password", line)
    assert WRONG_PASSWORD not in output
    assert pipeline.stack.env["kafka_sasl_password"] not in output
