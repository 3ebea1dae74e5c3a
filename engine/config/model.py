"""The configuration, declared once: each key is a dataclass field with its `Key` beside it.

Everything else is derived from these declarations: the schema the loader checks files and
METRICTUI_* variables against, the unknown-key suggestions, the secret-from-file keys and
the test that config.example.toml documents every key.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from engine.agent.collector_names import COLLECTOR_NAMES
from engine.config import rules
from engine.config.keys import (
    BoolKey,
    FloatKey,
    IntKey,
    Key,
    ListKey,
    PathKey,
    Problem,
    SecretKey,
    ServersKey,
    StrKey,
    WorkersKey,
)
from engine.config.secret import Secret
from engine.targets.model import location_problem

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSIONS = ("none", "gzip", "lz4", "zstd")
LOG_FORMATS = ("human", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
TARGETS_SOURCES = ("file", "kafka")

T = TypeVar("T")
_KEY = "metrictui.key"


def setting(key: Key, default: T = MISSING, *, factory: Callable[[], T] | None = None) -> T:  # type: ignore[assignment]
    """A dataclass field that is also a config key: its default and how it is checked."""
    if factory is not None:
        return field(default_factory=factory, metadata={_KEY: key})
    return field(default=default, metadata={_KEY: key})


def default_spool_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    state = env.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "metrictui" / "spool"


def default_control_socket(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        return Path(runtime) / "metrictui" / "control.sock"
    return Path(f"/tmp/metrictui-{os.getuid()}") / "control.sock"


def control_socket_for(config_path: Path, env: Mapping[str, str] | None = None) -> Path:
    """The default control socket of the engine that runs `config_path`.

    Derived from the config file's absolute path, so `metrictui --config B.toml` never finds
    (and attaches to) the engine of A.toml, while a second `metrictui` on the same config does.
    """
    digest = hashlib.sha256(str(config_path.resolve()).encode()).hexdigest()[:12]
    return default_control_socket(env).with_name(f"control-{digest}.sock")


def _location(value: str) -> None:
    problem = location_problem(value)
    if problem is not None:
        raise Problem(problem)


def _topic() -> StrKey:
    return StrKey(rule=rules.topic)


@dataclass(frozen=True)
class KafkaConfig:
    """How to reach Kafka and how to produce to it (shared by producer and consumer)."""

    bootstrap_servers: str = setting(ServersKey(), "127.0.0.1:9092")
    metrics_topic: str = setting(_topic(), "metrictui.metrics")
    checks_topic: str = setting(_topic(), "metrictui.checks")
    targets_topic: str = setting(_topic(), "metrictui.targets")
    """The fleet's compacted targets topic (used when targets_source = "kafka")."""
    targets_partitions: int = setting(IntKey(lo=1, hi=10000), 60)
    """Partitions of the targets topic when created: the most agents one location can use."""
    security_protocol: str = setting(StrKey(choices=SECURITY_PROTOCOLS), "PLAINTEXT")
    ssl_cafile: Path | None = setting(PathKey(optional=True), None)
    ssl_certfile: Path | None = setting(PathKey(optional=True), None)
    ssl_keyfile: Path | None = setting(PathKey(optional=True), None)
    ssl_check_hostname: bool = setting(BoolKey(), True)
    sasl_mechanism: str | None = setting(StrKey(choices=SASL_MECHANISMS, optional=True), None)
    sasl_username: str | None = setting(StrKey(rule=rules.nonempty, optional=True), None)
    sasl_password: Secret | None = setting(
        SecretKey(optional=True, rule=rules.nonempty, file_key="sasl_password_file"), None
    )
    create_topics: bool = setting(BoolKey(), True)
    partitions: int = setting(IntKey(lo=1, hi=10000), 3)
    replication_factor: int = setting(IntKey(lo=1, hi=1000), 1)
    compression: str = setting(StrKey(choices=COMPRESSIONS), "zstd")
    linger_ms: int = setting(IntKey(lo=0, hi=60000), 20)
    max_batch_bytes: int = setting(IntKey(lo=1024, hi=64 * 1024 * 1024), 1048576)
    request_timeout_s: float = setting(FloatKey(lo=0, hi=600), 15.0)


@dataclass(frozen=True)
class PostgresConfig:
    """Where the sink writes; `dsn` is a libpq URI or key=value string."""

    dsn: Secret | None = setting(
        SecretKey(optional=True, rule=rules.dsn, file_key="dsn_file"), None
    )
    schema: str = setting(StrKey(rule=rules.schema), "metrictui")
    migrate_on_start: bool = setting(BoolKey(), True)
    pool_max: int = setting(IntKey(lo=1, hi=1000), 4)
    retention_days: int = setting(IntKey(lo=0, hi=36500), 0)


@dataclass(frozen=True)
class AgentConfig:
    """What this host collects and checks, and where events wait while Kafka is away."""

    name: str = setting(StrKey(rule=rules.nonempty), factory=socket.gethostname)
    metrics_interval: float = setting(FloatKey(lo=0, hi=86400), 10.0)
    metrics: tuple[str, ...] = setting(ListKey(rule=rules.metrics), COLLECTOR_NAMES)
    spool_dir: Path = setting(PathKey(env_default=default_spool_dir), factory=default_spool_dir)
    spool_max_mb: int = setting(IntKey(lo=1, hi=1024 * 1024), 256)
    check_body_max_kb: int = setting(IntKey(lo=1, hi=1024 * 1024), 1024)
    check_concurrency: int = setting(IntKey(lo=1, hi=100000), 256)
    check_workers: int | str = setting(WorkersKey(lo=0, hi=64), "auto")
    """Processes that run website checks: "auto", or a count (0 or 1: in this process)."""
    location: str = setting(StrKey(rule=_location), "default")
    """Fleet location: the agents of one location share the targets among themselves."""
    heartbeat_interval: float = setting(FloatKey(lo=0, hi=3600), 5.0)
    stale_after: float = setting(FloatKey(lo=0, hi=86400, lo_open=False), 0.0)
    """Seconds without a heartbeat before the agent shows stale; 0 = 2 x heartbeat_interval."""
    offline_after: float = setting(FloatKey(lo=0, hi=86400), 30.0)
    session_timeout_s: float = setting(FloatKey(lo=0, hi=300), 3.0)
    """Kafka group session timeout: how soon a killed agent's targets move to survivors."""

    @property
    def stale_after_s(self) -> float:
        return self.stale_after or 2 * self.heartbeat_interval


@dataclass(frozen=True)
class ConsumerConfig:
    """The sink's consumer group and batching."""

    group_id: str = setting(StrKey(rule=rules.nonempty), "metrictui-sink")
    batch_max: int = setting(IntKey(lo=1, hi=1_000_000), 5000)
    flush_ms: int = setting(IntKey(lo=1, hi=60000), 200)
    max_event_age_days: int = setting(IntKey(lo=1, hi=36500), 30)
    writers: int = setting(IntKey(lo=0, hi=16), 2)
    """Connections that copy batches side by side (at most `[postgres] pool_max` - 1)."""


@dataclass(frozen=True)
class HeadlessConfig:
    """Headless mode: status line, /metrics listener, control socket, logging."""

    status_interval: float = setting(FloatKey(lo=0, hi=86400), 10.0)
    listen: str = setting(StrKey(rule=rules.listen), "")
    control_socket: Path = setting(
        PathKey(empty_means_off=True, env_default=default_control_socket),
        factory=default_control_socket,
    )
    log_format: str = setting(StrKey(choices=LOG_FORMATS), "human")
    log_level: str = setting(StrKey(choices=LOG_LEVELS), "info")


@dataclass(frozen=True)
class TuiConfig:
    """The dashboard's redraw rate."""

    refresh_hz: float = setting(FloatKey(lo=2, hi=10, lo_open=False), 3.0)


@dataclass(frozen=True)
class ServeConfig:
    """`metrictui serve`: the dashboard in a browser; a token guards it (tui/serve/settings.py)."""

    listen: str = setting(StrKey(rule=rules.serve_listen), "127.0.0.1:8640")
    token_file: Path | None = setting(PathKey(optional=True), None)
    """Without it, a random token is made at each start; required beyond loopback."""
    public_url: str | None = setting(StrKey(optional=True, rule=rules.public_url), None)
    """The address printed (and used by the page's websocket) behind a reverse proxy."""


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; `warnings` are non-fatal findings to show the user."""

    source: Path | None = None
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    consumer: ConsumerConfig = field(default_factory=ConsumerConfig)
    headless: HeadlessConfig = field(default_factory=HeadlessConfig)
    tui: TuiConfig = field(default_factory=TuiConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    targets_file: Path = setting(PathKey(), Path("targets.toml"))
    """Default: targets.toml beside the config file (the loader resolves it there)."""
    targets_source: str = setting(StrKey(choices=TARGETS_SOURCES), "file")
    """Where targets live: "file" (targets_file) or "kafka" (the fleet's targets topic)."""
    warnings: tuple[str, ...] = ()


def declared_keys(cls: type) -> dict[str, Key]:
    """The keys a section (or the top level, for `Config`) declares, secret-file keys included."""
    out: dict[str, Key] = {}
    for f in fields(cls):
        key = f.metadata.get(_KEY)
        if key is None:
            continue
        out[f.name] = key
        if isinstance(key, SecretKey) and key.file_key:
            out[key.file_key] = PathKey(optional=True)
    return out


SECTIONS: dict[str, type] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in fields(Config)
    if f.default_factory is not MISSING and f.name != "warnings"
}
SCHEMA_KEYS: dict[str, dict[str, Key]] = {
    name: declared_keys(cls) for name, cls in SECTIONS.items()
}
TOP_KEYS: dict[str, Key] = declared_keys(Config)
SECRET_FILES: dict[tuple[str, str], str] = {
    (section, name): key.file_key
    for section, keys in SCHEMA_KEYS.items()
    for name, key in keys.items()
    if isinstance(key, SecretKey) and key.file_key
}


def build_section(cls: type[T], values: Mapping[str, Any]) -> T:
    """A section dataclass from the converted values given for it (the rest keep defaults)."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in values.items() if k in names})
