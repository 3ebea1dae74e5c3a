"""The main configuration: TOML file + METRICTUI_* environment overrides -> a frozen `Config`.

Everything is validated here, before anything connects, so a typo is one clear line naming
the file (or environment variable), the key, the problem and what is expected, and the CLI
exits with code 2. Secrets (the PostgreSQL DSN, the Kafka SASL password) are wrapped in
`Secret` so they never reach a message, a log line or a repr by accident.
"""

from __future__ import annotations

import difflib
import hmac
import math
import os
import re
import socket
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engine.agent.collectors import COLLECTOR_NAMES
from engine.errors import ConfigError
from engine.targets.model import location_problem, one_line, read_toml

ENV_PREFIX = "METRICTUI_"
# Variables under our prefix that belong to other tools (the CLI, the local stack launcher).
IGNORED_ENV_NAMES = frozenset({"METRICTUI_CONFIG"})
IGNORED_ENV_PREFIXES = ("METRICTUI_STACK_",)

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSIONS = ("none", "gzip", "lz4", "zstd")
LOG_FORMATS = ("human", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
TARGETS_SOURCES = ("file", "kafka")


class Secret:
    """A string that must not be printed: repr/str show '***'; `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself; call it only where the value is handed to a client library."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self  # immutable, and copying must not go through pickling (refused below)

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("Secret values are not pickled")


def _default_spool_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    state = env.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "metrictui" / "spool"


def _default_control_socket(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        return Path(runtime) / "metrictui" / "control.sock"
    return Path(f"/tmp/metrictui-{os.getuid()}") / "control.sock"


@dataclass(frozen=True)
class KafkaConfig:
    """How to reach Kafka and how to produce to it (shared by producer and consumer)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    metrics_topic: str = "metrictui.metrics"
    checks_topic: str = "metrictui.checks"
    targets_topic: str = "metrictui.targets"
    """The fleet's compacted targets topic (used when targets_source = "kafka")."""
    targets_partitions: int = 60
    """Partitions of the targets topic when created: the most agents one location can use."""
    security_protocol: str = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    create_topics: bool = True
    partitions: int = 3
    replication_factor: int = 1
    compression: str = "zstd"
    linger_ms: int = 20
    max_batch_bytes: int = 1048576
    request_timeout_s: float = 15.0


@dataclass(frozen=True)
class PostgresConfig:
    """Where the sink writes; `dsn` is a libpq URI or key=value string."""

    dsn: Secret | None = None
    schema: str = "metrictui"
    migrate_on_start: bool = True
    pool_max: int = 4
    retention_days: int = 0


@dataclass(frozen=True)
class AgentConfig:
    """What this host collects and checks, and where events wait while Kafka is away."""

    name: str = field(default_factory=socket.gethostname)
    metrics_interval: float = 10.0
    metrics: tuple[str, ...] = COLLECTOR_NAMES
    spool_dir: Path = field(default_factory=_default_spool_dir)
    spool_max_mb: int = 256
    check_body_max_kb: int = 1024
    check_concurrency: int = 256
    check_workers: int | str = "auto"
    """Processes that run website checks: "auto", or a count (0 or 1: in this process)."""
    location: str = "default"
    """Fleet location: the agents of one location share the targets among themselves."""
    heartbeat_interval: float = 5.0
    stale_after: float = 0.0
    """Seconds without a heartbeat before the agent shows stale; 0 = 2 x heartbeat_interval."""
    offline_after: float = 30.0
    session_timeout_s: float = 3.0
    """Kafka group session timeout: how soon a killed agent's targets move to survivors."""

    @property
    def stale_after_s(self) -> float:
        return self.stale_after or 2 * self.heartbeat_interval


@dataclass(frozen=True)
class ConsumerConfig:
    """The sink's consumer group and batching."""

    group_id: str = "metrictui-sink"
    batch_max: int = 5000
    flush_ms: int = 200
    max_event_age_days: int = 30


@dataclass(frozen=True)
class HeadlessConfig:
    """Headless mode: status line, /metrics listener, control socket, logging."""

    status_interval: float = 10.0
    listen: str = ""
    control_socket: Path = field(default_factory=_default_control_socket)
    log_format: str = "human"
    log_level: str = "info"


@dataclass(frozen=True)
class TuiConfig:
    """The dashboard's redraw rate."""

    refresh_hz: float = 3.0


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
    targets_file: Path = Path("targets.toml")
    targets_source: str = "file"
    """Where targets live: "file" (targets_file) or "kafka" (the fleet's targets topic)."""
    warnings: tuple[str, ...] = ()


# --- the schema ------------------------------------------------------------------------------


class _Problem(Exception):
    """What is wrong with one value, without the file/key prefix."""


@dataclass(frozen=True, slots=True)
class _Key:
    """How one key is typed and checked.

    kind: str | int | float | bool | path | list | secret | servers | workers.
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    empty_means_off: bool = False  # a path key where "" turns the feature off
    rule: Callable[[Any], None] | None = None
    expected: str = ""


def _str_key(rule: Callable[[Any], None] | None = None, *, optional: bool = False) -> _Key:
    return _Key("str", rule=rule, optional=optional)


def _int_key(lo: int, hi: int) -> _Key:
    return _Key("int", lo=lo, hi=hi)


def _float_key(lo: float, hi: float, *, lo_open: bool = True) -> _Key:
    return _Key("float", lo=lo, hi=hi, lo_open=lo_open)


def _enum_key(choices: tuple[str, ...], *, optional: bool = False) -> _Key:
    return _Key("str", choices=choices, optional=optional)


_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")
_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_HOST_RE = re.compile(r"[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]")


def _nonempty(value: str) -> None:
    if not value.strip():
        raise _Problem("must not be empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise _Problem(f"must not contain control characters, got {value!r}")


def _topic(value: str) -> None:
    if not _TOPIC_RE.fullmatch(value) or value in (".", ".."):
        raise _Problem(
            f"must be a Kafka topic name (letters, digits, '.', '_', '-'), got {value!r}"
        )


def _schema(value: str) -> None:
    if not _SCHEMA_RE.fullmatch(value):
        raise _Problem(
            f"must be a lowercase SQL identifier (a-z, 0-9, _; at most 63), got {value!r}"
        )


def split_host_port(text: str) -> tuple[str, int]:
    """Split 'host:port' (host may be [IPv6]); raises ValueError with a short reason."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError("no host or no port")
    if not _HOST_RE.fullmatch(host):
        raise ValueError(f"invalid host {host!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be 1..65535, got {port_text!r}")
    return host.strip("[]"), int(port_text)


def _listen(value: str) -> None:
    if value == "":
        return
    try:
        split_host_port(value)
    except ValueError as exc:
        raise _Problem(
            f"must be host:port like '127.0.0.1:9108' or empty for off ({exc}), got {value!r}"
        ) from None


def _location(value: str) -> None:
    problem = location_problem(value)
    if problem is not None:
        raise _Problem(problem)


def _metrics(value: tuple[str, ...]) -> None:
    for name in value:
        if name not in COLLECTOR_NAMES:
            raise _Problem(f"unknown metric {name!r}; {_suggest(name, COLLECTOR_NAMES)}")


def _dsn(value: str) -> None:
    # The DSN holds the password: no message here may include the value.
    text = value.strip()
    if text.lower().startswith(("postgresql://", "postgres://")):
        try:
            parts = urlsplit(text)
            _ = parts.port
        except ValueError:
            raise _Problem("is not a valid postgresql:// URI (value not shown)") from None
        return
    if not re.search(r"(?:^|\s)[A-Za-z_]+\s*=", text):
        raise _Problem(
            "must be a postgresql://user@host/db URI or libpq key=value pairs (value not shown)"
        )


_SCHEMA_KEYS: dict[str, dict[str, _Key]] = {
    "kafka": {
        "bootstrap_servers": _Key("servers"),
        "metrics_topic": _str_key(_topic),
        "checks_topic": _str_key(_topic),
        "targets_topic": _str_key(_topic),
        "targets_partitions": _int_key(1, 10000),
        "security_protocol": _enum_key(SECURITY_PROTOCOLS),
        "ssl_cafile": _Key("path", optional=True),
        "ssl_certfile": _Key("path", optional=True),
        "ssl_keyfile": _Key("path", optional=True),
        "ssl_check_hostname": _Key("bool"),
        "sasl_mechanism": _enum_key(SASL_MECHANISMS, optional=True),
        "sasl_username": _str_key(_nonempty, optional=True),
        "sasl_password": _Key("secret", optional=True, rule=_nonempty),
        "sasl_password_file": _Key("path", optional=True),
        "create_topics": _Key("bool"),
        "partitions": _int_key(1, 10000),
        "replication_factor": _int_key(1, 1000),
        "compression": _enum_key(COMPRESSIONS),
        "linger_ms": _int_key(0, 60000),
        "max_batch_bytes": _int_key(1024, 64 * 1024 * 1024),
        "request_timeout_s": _float_key(0, 600),
    },
    "postgres": {
        "dsn": _Key("secret", optional=True, rule=_dsn),
        "dsn_file": _Key("path", optional=True),
        "schema": _str_key(_schema),
        "migrate_on_start": _Key("bool"),
        "pool_max": _int_key(1, 1000),
        "retention_days": _int_key(0, 36500),
    },
    "agent": {
        "name": _str_key(_nonempty),
        "metrics_interval": _float_key(0, 86400),
        "metrics": _Key("list", rule=_metrics),
        "spool_dir": _Key("path"),
        "spool_max_mb": _int_key(1, 1024 * 1024),
        "check_body_max_kb": _int_key(1, 1024 * 1024),
        "check_concurrency": _int_key(1, 100000),
        "check_workers": _Key("workers", lo=0, hi=64),
        "location": _str_key(_location),
        "heartbeat_interval": _float_key(0, 3600),
        "stale_after": _float_key(0, 86400, lo_open=False),
        "offline_after": _float_key(0, 86400),
        "session_timeout_s": _float_key(0, 300),
    },
    "consumer": {
        "group_id": _str_key(_nonempty),
        "batch_max": _int_key(1, 1_000_000),
        "flush_ms": _int_key(1, 60000),
        "max_event_age_days": _int_key(1, 36500),
    },
    "headless": {
        "status_interval": _float_key(0, 86400),
        "listen": _str_key(_listen),
        "control_socket": _Key("path", empty_means_off=True),
        "log_format": _enum_key(LOG_FORMATS),
        "log_level": _enum_key(LOG_LEVELS),
    },
    "tui": {
        "refresh_hz": _float_key(2, 10, lo_open=False),
    },
}
_TOP_KEYS: dict[str, _Key] = {
    "targets_file": _Key("path"),
    "targets_source": _enum_key(TARGETS_SOURCES),
}
# A secret given by file: `<key>_file` names a file whose stripped content is the value.
_SECRET_FILES = {("kafka", "sasl_password"): "sasl_password_file", ("postgres", "dsn"): "dsn_file"}


def _suggest(word: str, valid: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word.lower(), list(valid), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"expected one of: {', '.join(valid)}"


def _expected(spec: _Key) -> str:
    """What a key wants, in words, for 'must be ...' messages."""
    if spec.choices:
        return "one of " + ", ".join(spec.choices)
    if spec.kind in ("int", "float"):
        noun = "an integer" if spec.kind == "int" else "a number"
        low = f"> {spec.lo:g}" if spec.lo_open else f">= {spec.lo:g}"
        return f"{noun} {low} and <= {spec.hi:g}"
    if spec.kind == "workers":
        return f'"auto" or an integer >= {spec.lo:g} and <= {spec.hi:g}'
    return {
        "str": "a string",
        "bool": "true or false",
        "path": "a path string",
        "list": "an array of strings",
        "secret": "a string",
        "servers": "host:port or a list of host:port",
    }[spec.kind]


def _shown(value: object) -> str:
    """A TOML value as a message shows it (never called for secrets)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _type_error(spec: _Key, value: object) -> _Problem:
    shown = "a value of the wrong type" if spec.kind == "secret" else _shown(value)
    return _Problem(f"must be {_expected(spec)}, got {shown}")


@dataclass(frozen=True, slots=True)
class _Given:
    """One value as the user gave it, with where it came from (for messages and paths)."""

    value: object
    label: str
    base_dir: Path
    text: str | None = None  # the environment variable's text, shown in messages as given


def _from_env_text(spec: _Key, text: str) -> object:
    """Parse an environment variable's text into the TOML type the key wants."""
    if spec.optional and text == "":
        return None
    if spec.kind == "int":
        try:
            return int(text.strip())
        except ValueError:
            raise _Problem(f"must be {_expected(spec)}, got {text!r}") from None
    if spec.kind == "float":
        try:
            return float(text.strip())
        except ValueError:
            raise _Problem(f"must be {_expected(spec)}, got {text!r}") from None
    if spec.kind == "bool":
        word = text.strip().lower()
        if word in ("true", "1", "yes"):
            return True
        if word in ("false", "0", "no"):
            return False
        raise _Problem(f"must be true/false/1/0/yes/no, got {text!r}")
    if spec.kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    if spec.kind == "workers" and text.strip().lstrip("-").isdigit():
        return int(text.strip())
    return text


def _convert(spec: _Key, given: _Given) -> object:
    """Type-check one value, apply its rule, and return the value the dataclass holds."""
    value = given.value
    if value is None:
        return None
    got = repr(given.text) if given.text is not None else repr(value)
    kind = spec.kind
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(spec, value)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(spec, value)
        value = float(value)
        if not math.isfinite(value):
            raise _Problem(f"must be {_expected(spec)}, got {got}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _type_error(spec, value)
    elif kind in ("str", "secret"):
        if not isinstance(value, str):
            raise _type_error(spec, value)
    elif kind == "path":
        if not isinstance(value, str):
            raise _type_error(spec, value)
        if not value.strip():
            if spec.empty_means_off:
                return Path("")  # callers treat "" (shown as ".") as off
            raise _Problem("must not be empty; expected a path")
        path = Path(value).expanduser()
        return path if path.is_absolute() else given.base_dir / path
    elif kind == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _type_error(spec, value)
        value = tuple(dict.fromkeys(value))
    elif kind == "servers":
        value = _servers(spec, value)
    elif kind == "workers":
        value = _workers(spec, value, got)
    if kind in ("int", "float"):
        assert isinstance(value, int | float) and spec.lo is not None and spec.hi is not None
        too_low = value <= spec.lo if spec.lo_open else value < spec.lo
        if too_low or value > spec.hi:
            raise _Problem(f"must be {_expected(spec)}, got {got}")
    if spec.choices:
        assert isinstance(value, str)
        value = _choice(spec.choices, value)
    if spec.rule is not None:
        spec.rule(value)
    return Secret(value) if kind == "secret" and isinstance(value, str) else value


def _workers(spec: _Key, value: object, got: str) -> int | str:
    """``"auto"`` or a process count within the key's bounds."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(spec, value)
    assert spec.lo is not None and spec.hi is not None
    if not spec.lo <= value <= spec.hi:
        raise _Problem(f"must be {_expected(spec)}, got {got}")
    return value


def _choice(choices: tuple[str, ...], value: str) -> str:
    for choice in choices:
        if choice.lower() == value.lower():
            return choice
    raise _Problem(f"must be one of {', '.join(choices)}, got {value!r}")


def _servers(spec: _Key, value: object) -> str:
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [item.strip() for item in value]
    else:
        raise _type_error(spec, value)
    if not any(items):
        raise _Problem("must list at least one host:port")
    for item in items:
        try:
            split_host_port(item)
        except ValueError as exc:
            raise _Problem(f"must be host:port[,host:port...] ({exc}), got {item!r}") from None
    return ",".join(items)


# --- finding and loading the file ----------------------------------------------------------


def resolve_config_path(cli_path: str | None, env: Mapping[str, str]) -> Path:
    """Which config file to use: --config, $METRICTUI_CONFIG, ./metrictui.toml, user config.

    The last candidate is returned even if it does not exist, so the error can name it.
    """
    if cli_path:
        return Path(cli_path).expanduser()
    if env.get("METRICTUI_CONFIG"):
        return Path(env["METRICTUI_CONFIG"]).expanduser()
    local = Path("metrictui.toml")
    if local.exists():
        return local
    xdg = env.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"
    return base / "metrictui" / "config.toml"


def _check_structure(doc: Mapping[str, Any], label: str) -> None:
    """Reject unknown sections and keys before looking at any value."""
    sections = tuple(_SCHEMA_KEYS)
    for name, value in doc.items():
        if name in _TOP_KEYS:
            continue
        if name == "targets":
            raise ConfigError(
                f"{label}: [[targets]]: targets belong in the targets file "
                "(targets_file, default targets.toml beside this file), not in the main config"
            )
        if name not in _SCHEMA_KEYS:
            hint = _suggest(name, [*sections, *_TOP_KEYS])
            what = (
                f"[{name}]: unknown section" if isinstance(value, dict) else f"{name}: unknown key"
            )
            raise ConfigError(one_line(f"{label}: {what}; {hint}"))
        if not isinstance(value, dict):
            raise ConfigError(f"{label}: {name}: must be a table ([{name}] section)")
        keys = tuple(_SCHEMA_KEYS[name])
        for key in value:
            if key not in _SCHEMA_KEYS[name]:
                hint = _suggest(key, keys)
                if key in _TOP_KEYS:
                    hint = f"{key} is a top-level key: put it above the first [section]"
                for other, other_keys in _SCHEMA_KEYS.items():
                    if key in other_keys:
                        hint = f"{key} belongs in [{other}]"
                raise ConfigError(one_line(f"{label}: [{name}] {key}: unknown key; {hint}"))


def _env_overrides(
    env: Mapping[str, str], given: dict[tuple[str, str], _Given]
) -> dict[tuple[str, str], _Given]:
    """METRICTUI_<SECTION>__<KEY> and METRICTUI_<TOPKEY> values, parsed to each key's type."""
    cwd = Path.cwd()
    found: dict[tuple[str, str], _Given] = {}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in IGNORED_ENV_NAMES:
            continue
        if var.startswith(IGNORED_ENV_PREFIXES):
            continue
        label = f"{var} (environment)"
        rest = var[len(ENV_PREFIX) :]
        if "__" in rest:
            section, _, key = rest.partition("__")
            section, key = section.lower(), key.lower()
            if section not in _SCHEMA_KEYS:
                hint = _suggest(section, tuple(_SCHEMA_KEYS))
                raise ConfigError(one_line(f"{label}: unknown section {section!r}; {hint}"))
            keys = _SCHEMA_KEYS[section]
            if key not in keys:
                raise ConfigError(
                    one_line(
                        f"{label}: unknown key {key!r} in [{section}]; {_suggest(key, tuple(keys))}"
                    )
                )
            spec = keys[key]
        else:
            section, key = "", rest.lower()
            if key not in _TOP_KEYS:
                valid = [f"{ENV_PREFIX}{k.upper()}" for k in _TOP_KEYS]
                raise ConfigError(
                    one_line(
                        f"{label}: unknown variable; expected {ENV_PREFIX}<SECTION>__<KEY> "
                        f"or one of {', '.join(valid)}"
                    )
                )
            spec = _TOP_KEYS[key]
        try:
            value = _from_env_text(spec, env[var])
        except _Problem as exc:
            raise ConfigError(one_line(f"{label}: {exc}")) from None
        if (section, key) in found:
            other = found[(section, key)].label.removesuffix(" (environment)")
            raise ConfigError(f"{label}: sets the same key as {other}; keep only one of them")
        found[(section, key)] = _Given(value, label, cwd, text=env[var])
    # An env secret replaces the file's secret however it was given (inline or *_file).
    for (section, key), file_key in _SECRET_FILES.items():
        for mine, other in ((key, file_key), (file_key, key)):
            if (section, mine) in found and (section, other) not in found:
                given.pop((section, other), None)
    return found


def _permission_warning(path: Path) -> str | None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if mode & 0o044:
        return (
            f"{path}: readable by group/others (mode {mode:04o}); "
            f"it may hold secrets, run: chmod 600 {path}"
        )
    return None


def _read_secret_file(path: Path, label: str) -> Secret:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(one_line(f"{label}: file not found: {path}")) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(one_line(f"{label}: cannot read {path}: {reason}")) from None
    if not text:
        raise ConfigError(one_line(f"{label}: file is empty: {path}"))
    return Secret(text)


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate the config; raises ConfigError."""
    env = os.environ if env is None else env
    label = str(path)
    if not path.exists():
        raise ConfigError(
            f"{label}: config file not found; create one with `metrictui init` "
            "or pass --config PATH (or set METRICTUI_CONFIG)"
        )
    doc = read_toml(path, label)
    _check_structure(doc, label)
    base_dir = path.resolve().parent

    given: dict[tuple[str, str], _Given] = {}
    for key in _TOP_KEYS:
        if key in doc:
            given[("", key)] = _Given(doc[key], f"{label}: {key}", base_dir)
    for section in _SCHEMA_KEYS:
        for key, value in doc.get(section, {}).items():
            key_label = f"{label}: [{section}] {key}"
            given[(section, key)] = _Given(value, key_label, base_dir)
    given.update(_env_overrides(env, given))

    values: dict[tuple[str, str], object] = {}
    specs = [(("", k), s) for k, s in _TOP_KEYS.items()]
    specs += [((sec, k), s) for sec, keys in _SCHEMA_KEYS.items() for k, s in keys.items()]
    for where_key, spec in specs:
        if where_key in given:
            item = given[where_key]
            try:
                values[where_key] = _convert(spec, item)
            except _Problem as exc:
                raise ConfigError(one_line(f"{item.label}: {exc}")) from None

    def where(section: str, key: str) -> str:
        item = given.get((section, key))
        if item is not None:
            return item.label
        return f"{label}: [{section}] {key}" if section else f"{label}: {key}"

    warnings: list[str] = []
    secrets: dict[tuple[str, str], Secret | None] = {}
    for (section, key), file_key in _SECRET_FILES.items():
        inline = values.get((section, key))
        secret_path = values.get((section, file_key))
        if inline is not None and secret_path is not None:
            raise ConfigError(
                f"{where(section, file_key)}: give either {key} or {file_key}, not both"
            )
        if isinstance(secret_path, Path):
            secrets[(section, key)] = _read_secret_file(secret_path, where(section, file_key))
            warnings.append(_permission_warning(secret_path) or "")
        else:
            secrets[(section, key)] = inline if isinstance(inline, Secret) else None
    if (dsn := secrets[("postgres", "dsn")]) is not None:
        try:
            _dsn(dsn.reveal())
        except _Problem as exc:
            raise ConfigError(f"{where('postgres', 'dsn_file')}: {exc}") from None

    def pick(section: str, names: list[str]) -> dict[str, Any]:
        return {n: values[(section, n)] for n in names if (section, n) in values}

    kafka_keys = [
        k for k in _SCHEMA_KEYS["kafka"] if k not in ("sasl_password", "sasl_password_file")
    ]
    kafka = KafkaConfig(
        **pick("kafka", kafka_keys), sasl_password=secrets[("kafka", "sasl_password")]
    )
    postgres = PostgresConfig(
        **pick("postgres", ["schema", "migrate_on_start", "pool_max", "retention_days"]),
        dsn=secrets[("postgres", "dsn")],
    )
    agent_values = pick("agent", list(_SCHEMA_KEYS["agent"]))
    agent_values.setdefault("spool_dir", _default_spool_dir(env))
    agent = AgentConfig(**agent_values)
    headless_values = pick("headless", list(_SCHEMA_KEYS["headless"]))
    headless_values.setdefault("control_socket", _default_control_socket(env))
    headless = HeadlessConfig(**headless_values)
    consumer = ConsumerConfig(**pick("consumer", list(_SCHEMA_KEYS["consumer"])))
    tui = TuiConfig(**pick("tui", list(_SCHEMA_KEYS["tui"])))
    targets_file = values.get(("", "targets_file"))
    if not isinstance(targets_file, Path):
        targets_file = base_dir / "targets.toml"
    if targets_file.is_dir():
        raise ConfigError(f"{where('', 'targets_file')}: {targets_file} is a directory")
    targets_source = values.get(("", "targets_source"), "file")
    assert isinstance(targets_source, str)

    warnings.extend(_check_kafka_security(kafka, where))
    warnings.append(_permission_warning(path) or "")
    warnings.append(_permission_warning(targets_file) or "")
    if kafka.ssl_keyfile is not None and kafka.security_protocol in ("SSL", "SASL_SSL"):
        warnings.append(_permission_warning(kafka.ssl_keyfile) or "")
    return Config(
        source=path.resolve(),
        kafka=kafka,
        postgres=postgres,
        agent=agent,
        consumer=consumer,
        headless=headless,
        tui=tui,
        targets_file=targets_file,
        targets_source=targets_source,
        warnings=tuple(w for w in dict.fromkeys(warnings) if w),
    )


def _check_kafka_security(kafka: KafkaConfig, where: Callable[[str, str], str]) -> list[str]:
    """Cross-key rules for TLS and SASL; returns warnings for settings that will be ignored."""
    warnings: list[str] = []
    protocol = kafka.security_protocol
    ssl_files = {
        "ssl_cafile": kafka.ssl_cafile,
        "ssl_certfile": kafka.ssl_certfile,
        "ssl_keyfile": kafka.ssl_keyfile,
    }
    if protocol in ("SSL", "SASL_SSL"):
        for key, file in ssl_files.items():
            if file is None:
                continue
            if not file.is_file():
                raise ConfigError(one_line(f"{where('kafka', key)}: file not found: {file}"))
            if not os.access(file, os.R_OK):
                raise ConfigError(one_line(f"{where('kafka', key)}: file is not readable: {file}"))
        if (kafka.ssl_certfile is None) != (kafka.ssl_keyfile is None):
            missing = "ssl_keyfile" if kafka.ssl_keyfile is None else "ssl_certfile"
            raise ConfigError(
                f"{where('kafka', missing)}: required when "
                f"{'ssl_certfile' if missing == 'ssl_keyfile' else 'ssl_keyfile'} is set "
                "(client certificate and key go together)"
            )
    else:
        for key, file in ssl_files.items():
            if file is not None:
                warnings.append(
                    f"{where('kafka', key)}: ignored because security_protocol is {protocol}"
                )
    sasl_values = {
        "sasl_mechanism": kafka.sasl_mechanism,
        "sasl_username": kafka.sasl_username,
        "sasl_password": kafka.sasl_password,
    }
    if protocol.startswith("SASL_"):
        for key, value in sasl_values.items():
            if value is None:
                how = ""
                if key == "sasl_password":
                    how = (
                        "; set it inline, with sasl_password_file or METRICTUI_KAFKA__SASL_PASSWORD"
                    )
                raise ConfigError(
                    f"{where('kafka', key)}: required when security_protocol is {protocol}{how}"
                )
    else:
        for key, value in sasl_values.items():
            if value is not None:
                warnings.append(
                    f"{where('kafka', key)}: ignored because security_protocol is {protocol}"
                )
    return warnings
