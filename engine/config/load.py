"""Loading the configuration: TOML file + METRICTUI_* environment overrides -> a frozen `Config`.

Everything is validated here, before anything connects, so a typo is one clear line naming
the file (or environment variable), the key, the problem and what is expected, and the CLI
exits with code 2. Secrets (the PostgreSQL DSN, the Kafka SASL password) are wrapped in
`Secret` so they never reach a message, a log line or a repr by accident.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.config.keys import Given, PathKey, Problem, SecretKey
from engine.config.model import (
    SCHEMA_KEYS,
    SECRET_FILES,
    SECTIONS,
    TOP_KEYS,
    Config,
    KafkaConfig,
    build_section,
    control_socket_for,
)
from engine.config.rules import suggest
from engine.config.secret import Secret
from engine.errors import ConfigError, escape_controls
from engine.files import read_toml

ENV_PREFIX = "METRICTUI_"
# Variables under our prefix that belong to other tools (the CLI, the local stack launcher).
IGNORED_ENV_NAMES = frozenset({"METRICTUI_CONFIG"})
IGNORED_ENV_PREFIXES = ("METRICTUI_STACK_",)

Where = Callable[[str, str], str]


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
    sections = tuple(SCHEMA_KEYS)
    for name, value in doc.items():
        if name in TOP_KEYS:
            continue
        if name == "targets":
            raise ConfigError(
                f"{label}: [[targets]]: targets belong in the targets file "
                "(targets_file, default targets.toml beside this file), not in the main config"
            )
        if name not in SCHEMA_KEYS:
            hint = suggest(name, [*sections, *TOP_KEYS])
            what = (
                f"[{name}]: unknown section" if isinstance(value, dict) else f"{name}: unknown key"
            )
            raise ConfigError(escape_controls(f"{label}: {what}; {hint}"))
        if not isinstance(value, dict):
            raise ConfigError(f"{label}: {name}: must be a table ([{name}] section)")
        keys = tuple(SCHEMA_KEYS[name])
        for key in value:
            if key not in SCHEMA_KEYS[name]:
                hint = suggest(key, keys)
                if key in TOP_KEYS:
                    hint = f"{key} is a top-level key: put it above the first [section]"
                for other, other_keys in SCHEMA_KEYS.items():
                    if key in other_keys:
                        hint = f"{key} belongs in [{other}]"
                raise ConfigError(escape_controls(f"{label}: [{name}] {key}: unknown key; {hint}"))


def _env_key(var: str, label: str) -> tuple[str, str]:
    """(section, key) that METRICTUI_<SECTION>__<KEY> or METRICTUI_<TOPKEY> names."""
    rest = var[len(ENV_PREFIX) :]
    if "__" in rest:
        section, _, key = rest.partition("__")
        section, key = section.lower(), key.lower()
        if section not in SCHEMA_KEYS:
            hint = suggest(section, tuple(SCHEMA_KEYS))
            raise ConfigError(escape_controls(f"{label}: unknown section {section!r}; {hint}"))
        keys = SCHEMA_KEYS[section]
        if key not in keys:
            raise ConfigError(
                escape_controls(
                    f"{label}: unknown key {key!r} in [{section}]; {suggest(key, tuple(keys))}"
                )
            )
        return section, key
    key = rest.lower()
    if key not in TOP_KEYS:
        valid = [f"{ENV_PREFIX}{k.upper()}" for k in TOP_KEYS]
        raise ConfigError(
            escape_controls(
                f"{label}: unknown variable; expected {ENV_PREFIX}<SECTION>__<KEY> "
                f"or one of {', '.join(valid)}"
            )
        )
    return "", key


def _env_overrides(
    env: Mapping[str, str], given: dict[tuple[str, str], Given]
) -> dict[tuple[str, str], Given]:
    """METRICTUI_<SECTION>__<KEY> and METRICTUI_<TOPKEY> values, parsed to each key's type."""
    cwd = Path.cwd()
    found: dict[tuple[str, str], Given] = {}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in IGNORED_ENV_NAMES:
            continue
        if var.startswith(IGNORED_ENV_PREFIXES):
            continue
        label = f"{var} (environment)"
        section, key = _env_key(var, label)
        spec = SCHEMA_KEYS[section][key] if section else TOP_KEYS[key]
        try:
            value = spec.parse_env(env[var])
        except Problem as exc:
            raise ConfigError(escape_controls(f"{label}: {exc}")) from None
        if (section, key) in found:
            other = found[(section, key)].label.removesuffix(" (environment)")
            raise ConfigError(f"{label}: sets the same key as {other}; keep only one of them")
        found[(section, key)] = Given(value, label, cwd, text=env[var])
    # An env secret replaces the file's secret however it was given (inline or *_file).
    for (section, key), file_key in SECRET_FILES.items():
        for mine, other in ((key, file_key), (file_key, key)):
            if (section, mine) in found and (section, other) not in found:
                given.pop((section, other), None)
    return found


def permission_warning(path: Path) -> str | None:
    """A warning when a file that may hold secrets is readable by group or others."""
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
        raise ConfigError(escape_controls(f"{label}: file not found: {path}")) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(escape_controls(f"{label}: cannot read {path}: {reason}")) from None
    if not text:
        raise ConfigError(escape_controls(f"{label}: file is empty: {path}"))
    return Secret(text)


def _given_values(
    doc: Mapping[str, Any], label: str, base_dir: Path
) -> dict[tuple[str, str], Given]:
    given: dict[tuple[str, str], Given] = {}
    for key in TOP_KEYS:
        if key in doc:
            given[("", key)] = Given(doc[key], f"{label}: {key}", base_dir)
    for section in SCHEMA_KEYS:
        for key, value in doc.get(section, {}).items():
            given[(section, key)] = Given(value, f"{label}: [{section}] {key}", base_dir)
    return given


def _resolve_secrets(
    values: dict[tuple[str, str], object], where: Where, warnings: list[str]
) -> None:
    """Replace each `<key>_file` by the secret it names (its rule applied), in `values`."""
    for (section, key), file_key in SECRET_FILES.items():
        inline = values.pop((section, key), None)
        secret_path = values.pop((section, file_key), None)
        if inline is not None and secret_path is not None:
            raise ConfigError(
                f"{where(section, file_key)}: give either {key} or {file_key}, not both"
            )
        if isinstance(secret_path, Path):
            secret = _read_secret_file(secret_path, where(section, file_key))
            spec = SCHEMA_KEYS[section][key]
            assert isinstance(spec, SecretKey)
            if spec.rule is not None:
                try:
                    spec.rule(secret.reveal())
                except Problem as exc:
                    raise ConfigError(f"{where(section, file_key)}: {exc}") from None
            warnings.append(permission_warning(secret_path) or "")
            values[(section, key)] = secret
        elif isinstance(inline, Secret):
            values[(section, key)] = inline


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
    given = _given_values(doc, label, base_dir)
    given.update(_env_overrides(env, given))

    values: dict[tuple[str, str], object] = {}
    specs = [(("", k), s) for k, s in TOP_KEYS.items()]
    specs += [((sec, k), s) for sec, keys in SCHEMA_KEYS.items() for k, s in keys.items()]
    for where_key, spec in specs:
        if where_key in given:
            item = given[where_key]
            try:
                values[where_key] = spec.convert(item)
            except Problem as exc:
                raise ConfigError(escape_controls(f"{item.label}: {exc}")) from None
        elif isinstance(spec, PathKey) and spec.env_default is not None:
            values[where_key] = spec.env_default(env)
    if ("headless", "control_socket") not in given:
        values[("headless", "control_socket")] = control_socket_for(path, env)

    def where(section: str, key: str) -> str:
        item = given.get((section, key))
        if item is not None:
            return item.label
        return f"{label}: [{section}] {key}" if section else f"{label}: {key}"

    warnings: list[str] = []
    _resolve_secrets(values, where, warnings)
    sections: dict[str, Any] = {
        name: build_section(cls, {k: v for (s, k), v in values.items() if s == name})
        for name, cls in SECTIONS.items()
    }
    targets_file = values.get(("", "targets_file"))
    if not isinstance(targets_file, Path):
        targets_file = base_dir / "targets.toml"
    if targets_file.is_dir():
        raise ConfigError(f"{where('', 'targets_file')}: {targets_file} is a directory")

    kafka = sections["kafka"]
    assert isinstance(kafka, KafkaConfig)
    warnings.extend(_check_kafka_security(kafka, where))
    warnings.append(permission_warning(path) or "")
    warnings.append(permission_warning(targets_file) or "")
    if kafka.ssl_keyfile is not None and kafka.security_protocol in ("SSL", "SASL_SSL"):
        warnings.append(permission_warning(kafka.ssl_keyfile) or "")
    return Config(
        source=path.resolve(),
        targets_file=targets_file,
        targets_source=str(values.get(("", "targets_source"), "file")),
        warnings=tuple(w for w in dict.fromkeys(warnings) if w),
        **sections,
    )


def _check_kafka_security(kafka: KafkaConfig, where: Where) -> list[str]:
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
                message = f"{where('kafka', key)}: file not found: {file}"
                raise ConfigError(escape_controls(message))
            if not os.access(file, os.R_OK):
                raise ConfigError(
                    escape_controls(f"{where('kafka', key)}: file is not readable: {file}")
                )
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
