"""Which engine is which: the identity a control socket announces, and when to attach.

`metrictui --config B.toml` must never steer the engine of A.toml. Attaching is right only
when the engine runs the same config file, or a config with the same identity (agent, where
its targets come from, topics and brokers), because then it is the very engine we would start.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.config import Config

IDENTITY_KEYS = ("agent", "targets", "metrics_topic", "checks_topic", "bootstrap")


def engine_identity(config: Config) -> dict[str, str]:
    """What a control socket's `hello` says about the engine's config (no secrets)."""
    return {
        "config": str(config.source) if config.source is not None else "",
        "agent": config.agent.name,
        "targets": str(config.targets_file.resolve()),
        "metrics_topic": config.kafka.metrics_topic,
        "checks_topic": config.kafka.checks_topic,
        "bootstrap": config.kafka.bootstrap_servers,
    }


def same_engine(ours: Mapping[str, str], theirs: Mapping[str, object]) -> bool:
    """True when attaching to `theirs` is what starting our own engine would have been."""
    if ours.get("config") and ours.get("config") == theirs.get("config"):
        return True
    return all(ours.get(key) == theirs.get(key) for key in IDENTITY_KEYS)


def describe(hello: Mapping[str, object]) -> str:
    """'agent a (pid 12) running /etc/metrictui.toml' for messages and the header."""
    config = hello.get("config") or "an unknown config"
    return f"agent {hello.get('agent', '?')} (pid {hello.get('pid', '?')}) running {config}"
