"""Kafka connection settings in one place, shared by producer, consumer and admin client.

Aiven hands out ca.pem / service.cert / service.key (SSL) or a CA plus SCRAM credentials
(SASL_SSL); both map onto aiokafka's ssl_context and sasl_* arguments here. Hostname checking
stays on unless the config turns it off, and there is never a plaintext fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from dataclasses import dataclass
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError
from aiokafka.protocol.metadata import MetadataRequest

from engine.config import KafkaConfig
from engine.errors import ConfigError
from engine.stats import Problem


def ssl_context(cfg: KafkaConfig) -> ssl.SSLContext:
    """TLS context from the configured CA and client certificate files."""
    try:
        ctx = ssl.create_default_context(
            cafile=str(cfg.ssl_cafile) if cfg.ssl_cafile else None,
        )
        if cfg.ssl_certfile:
            ctx.load_cert_chain(
                str(cfg.ssl_certfile), str(cfg.ssl_keyfile) if cfg.ssl_keyfile else None
            )
    except (OSError, ssl.SSLError) as exc:
        detail = (
            getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
        )
        raise ConfigError(
            f"[kafka] cannot load the CA or client certificate/key ({detail});"
            " check ssl_cafile, ssl_certfile and ssl_keyfile"
        ) from None
    ctx.check_hostname = cfg.ssl_check_hostname
    return ctx


class _RedactSaslBytes(logging.Filter):
    """aiokafka logs every request and response at debug level, SASL ones included: with
    PLAIN their bytes are the password itself, with SCRAM the proof derived from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "sasl_auth_bytes" in message:
            record.msg = _SASL_BYTES.sub("sasl_auth_bytes=<redacted>", message)
            record.args = ()
        return True


_SASL_BYTES = re.compile(r"sasl_auth_bytes=b(['\"]).*?(?<!\\)\1")
_REDACTOR = _RedactSaslBytes()


def redact_sasl_logs() -> None:
    """Install the redaction on aiokafka's connection logger (idempotent)."""
    logger = logging.getLogger("aiokafka.conn")
    if _REDACTOR not in logger.filters:
        logger.addFilter(_REDACTOR)


def client_kwargs(cfg: KafkaConfig, client_id: str) -> dict[str, Any]:
    """Keyword arguments common to AIOKafkaProducer, AIOKafkaConsumer and the admin client."""
    redact_sasl_logs()
    kwargs: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "client_id": client_id,
        "security_protocol": cfg.security_protocol,
        "request_timeout_ms": int(cfg.request_timeout_s * 1000),
        "connections_max_idle_ms": 540_000,
        "metadata_max_age_ms": 60_000,
    }
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = ssl_context(cfg)
    if cfg.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = cfg.sasl_mechanism
        kwargs["sasl_plain_username"] = cfg.sasl_username
        kwargs["sasl_plain_password"] = cfg.sasl_password.reveal() if cfg.sasl_password else None
    return kwargs


@dataclass(frozen=True, slots=True)
class Probe:
    """What one look at the bootstrap servers found."""

    problem: Problem | None
    """The setting to fix, in one secret-free line, if our settings are the reason."""
    reached: bool
    """A bootstrap server accepted our settings and answered a metadata request."""


async def connection_problem(cfg: KafkaConfig, timeout: float = 10.0) -> str | None:
    """Why the bootstrap servers cannot be used, if retrying will not help; else None.

    aiokafka reports every failed bootstrap as "Unable to bootstrap" and keeps the cause to
    itself, so a wrong CA would look like a broker that is down (and be retried forever). This
    connects to each bootstrap server the way the clients do, sends one metadata request, and
    turns certificate, TLS and SASL failures into one line naming the setting to fix. A server
    that is merely unreachable gives None: the caller spools or retries as usual.
    """
    problem = (await probe_settings(cfg, timeout)).problem
    return None if problem is None else problem.line


async def probe_settings(cfg: KafkaConfig, timeout: float = 10.0) -> Probe:
    """`connection_problem`, also telling "our settings work" apart from "nobody answered",
    so a watcher can clear a cause it named once the operator has fixed it."""
    try:
        kwargs = client_kwargs(cfg, "metrictui-probe")
    except ConfigError as exc:  # e.g. a rotated CA or key file that cannot be read now
        return Probe(Problem("ssl_files", str(exc)), reached=False)
    for host, port in bootstrap_hosts(cfg.bootstrap_servers):
        conn = None
        try:
            async with asyncio.timeout(timeout):
                conn = await create_conn(
                    host,
                    port,
                    client_id="metrictui-probe",
                    request_timeout_ms=kwargs["request_timeout_ms"],
                    ssl_context=kwargs.get("ssl_context"),
                    security_protocol=cfg.security_protocol,
                    sasl_mechanism=kwargs.get("sasl_mechanism") or "PLAIN",
                    sasl_plain_username=kwargs.get("sasl_plain_username"),
                    sasl_plain_password=kwargs.get("sasl_plain_password"),
                )
                await conn.send(MetadataRequest([]))
            return Probe(None, reached=True)  # whatever failed was not about our settings
        except Exception as exc:
            problem = _fatal_problem(exc, f"{host}:{port}", cfg)
            if problem is not None:
                return Probe(problem, reached=False)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
    return Probe(None, reached=False)


def bootstrap_hosts(servers: str) -> list[tuple[str, int]]:
    out = []
    for item in servers.split(","):
        host, _, port = item.strip().rpartition(":")
        if host and port.isdigit():
            out.append((host.strip("[]"), int(port)))
    return out


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _fatal_problem(exc: BaseException, where: str, cfg: KafkaConfig) -> Problem | None:
    """A one-line, secret-free reason for failures that need a config change, else None."""
    for cause in _causes(exc):
        found = _settings_cause(cause, where, cfg)
        if found is not None:
            return Problem(*found)
    return None


def _settings_cause(cause: BaseException, where: str, cfg: KafkaConfig) -> tuple[str, str] | None:
    """(code, line) if this one exception in the chain is about our settings."""
    if isinstance(cause, ssl.SSLCertVerificationError):
        detail = (cause.verify_message or "verification failed").rstrip(".")
        return "broker_certificate", (
            f"Kafka {where}: the broker's TLS certificate was rejected ({detail}); check"
            " [kafka] ssl_cafile (the CA that signed the broker's certificate) and that"
            " bootstrap_servers uses a name the certificate is for"
        )
    if isinstance(cause, ssl.SSLError):
        reason = cause.reason or type(cause).__name__
        if "ALERT" in reason.upper():
            return "client_certificate", (
                f"Kafka {where} refused our TLS client certificate ({reason}); check"
                " [kafka] ssl_certfile and ssl_keyfile (service.cert and service.key)"
            )
        return "tls_handshake", (
            f"Kafka {where}: TLS handshake failed ({reason}); check [kafka]"
            " security_protocol and the ssl_* files for this listener"
        )
    if isinstance(cause, SaslAuthenticationFailed):
        return "sasl_auth", (
            f"Kafka {where}: SASL authentication failed for user {cfg.sasl_username!r}"
            f" with {cfg.sasl_mechanism}; check [kafka] sasl_username and sasl_password"
        )
    if isinstance(cause, UnsupportedSaslMechanismError):
        return "sasl_mechanism", (
            f"Kafka {where} does not offer SASL mechanism {cfg.sasl_mechanism}; check"
            " [kafka] sasl_mechanism"
        )
    if isinstance(cause, asyncio.IncompleteReadError) and _tls_record(cause.expected):
        return "security_protocol", (
            f"Kafka {where} speaks TLS but [kafka] security_protocol is"
            f" {cfg.security_protocol}; use SSL or SASL_SSL for this listener"
        )
    return None


def _tls_record(length: int | None) -> bool:
    """A plaintext client reads a TLS record header (0x15/0x16, 0x03, ..) as a frame length."""
    return length is not None and length >> 24 in (0x15, 0x16) and (length >> 16) & 0xFF == 3
