"""Kafka connection settings in one place, shared by producer, consumer and admin client.

Aiven hands out ca.pem / service.cert / service.key (SSL) or a CA plus SCRAM credentials
(SASL_SSL); both map onto aiokafka's ssl_context and sasl_* arguments here. Hostname checking
stays on unless the config turns it off, and there is never a plaintext fallback.
"""

from __future__ import annotations

import ssl
from typing import Any

from engine.config import KafkaConfig
from engine.errors import ConfigError


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


def client_kwargs(cfg: KafkaConfig, client_id: str) -> dict[str, Any]:
    """Keyword arguments common to AIOKafkaProducer, AIOKafkaConsumer and the admin client."""
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
