"""Main config: each mistake is one line naming the file or variable and the key."""

from __future__ import annotations

import copy
import os
import pickle
import re
import socket
from pathlib import Path

import pytest

from engine.agent.collector_names import COLLECTOR_NAMES
from engine.config import (
    Config,
    Secret,
    load_config,
    resolve_config_path,
)
from engine.errors import ConfigError
from engine.targets import load_targets
from helpers.bad_configs import BAD_CONFIGS, DSN, SECRET

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def load_all(
    tmp_path: Path, toml: str, targets: str | None = None, env: dict[str, str] | None = None
) -> Config:
    """Load the config and then its targets file, as the engine does at start."""
    config = write(tmp_path / "metrictui.toml", toml)
    if targets is not None:
        write(tmp_path / "targets.toml", targets)
    cfg = load_config(config, env or {})
    load_targets(cfg.targets_file)
    return cfg


@pytest.mark.parametrize(
    ("toml", "targets", "env", "fragments"),
    [case[1:] for case in BAD_CONFIGS],
    ids=[case[0] for case in BAD_CONFIGS],
)
def test_bad_config_is_one_line_naming_the_key(
    tmp_path: Path, toml: str, targets: str | None, env: dict[str, str], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_all(tmp_path, toml, targets, env)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert SECRET not in message
    assert caught.value.exit_code == 2


def test_bad_config_table_is_large_enough() -> None:
    assert len(BAD_CONFIGS) >= 20


def test_missing_config_file_names_path_and_suggests_init(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "metrictui.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, {})
    message = str(caught.value)
    assert str(missing) in message and "metrictui init" in message and "--config" in message
    assert "\n" not in message


def test_empty_config_gives_contract_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "metrictui.toml", "")
    cfg = load_config(path, {"XDG_STATE_HOME": "/var/state", "XDG_RUNTIME_DIR": "/run/user/1234"})
    assert cfg.source == path.resolve()
    assert cfg.targets_file == path.resolve().parent / "targets.toml"
    assert cfg.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert cfg.kafka.security_protocol == "PLAINTEXT"
    assert cfg.kafka.compression == "zstd"
    assert (cfg.kafka.partitions, cfg.kafka.replication_factor) == (3, 1)
    assert cfg.kafka.sasl_password is None and cfg.postgres.dsn is None
    assert cfg.postgres.schema == "metrictui"
    assert cfg.agent.name == socket.gethostname()
    assert cfg.agent.metrics == COLLECTOR_NAMES
    assert cfg.agent.metrics_interval == 10.0
    assert cfg.agent.spool_dir == Path("/var/state/metrictui/spool")
    assert cfg.headless.control_socket.parent == Path("/run/user/1234/metrictui")
    assert re.fullmatch(r"control-[0-9a-f]{12}\.sock", cfg.headless.control_socket.name)
    assert cfg.consumer.group_id == "metrictui-sink"
    assert cfg.tui.refresh_hz == 3.0
    assert cfg.warnings == ()


def test_default_control_socket_without_runtime_dir_is_per_user_tmp(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "metrictui.toml", ""), {})
    assert cfg.headless.control_socket.parent == Path(f"/tmp/metrictui-{os.getuid()}")


def test_env_overrides_win_over_file_and_are_parsed_to_the_key_type(tmp_path: Path) -> None:
    path = write(
        tmp_path / "metrictui.toml",
        "[kafka]\npartitions = 3\ncreate_topics = true\n[agent]\nmetrics_interval = 10\n",
    )
    cfg = load_config(
        path,
        {
            "METRICTUI_KAFKA__PARTITIONS": "6",
            "METRICTUI_KAFKA__CREATE_TOPICS": "no",
            "METRICTUI_KAFKA__Bootstrap_Servers": "k1:9092, k2:9093",
            "METRICTUI_AGENT__METRICS_INTERVAL": "2.5",
            "METRICTUI_AGENT__METRICS": "cpu, net",
            "METRICTUI_HEADLESS__LOG_LEVEL": "DEBUG",
            "METRICTUI_CONFIG": "/somewhere/else.toml",
            "METRICTUI_STACK_KAFKA_PORT": "19092",
            "OTHER": "x",
        },
    )
    assert cfg.kafka.partitions == 6
    assert cfg.kafka.create_topics is False
    assert cfg.kafka.bootstrap_servers == "k1:9092,k2:9093"
    assert cfg.agent.metrics_interval == 2.5
    assert cfg.agent.metrics == ("cpu", "net")
    assert cfg.headless.log_level == "debug"


def test_env_targets_file_is_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    path = write(conf_dir / "metrictui.toml", "targets_file = 'sites.toml'\n")
    assert load_config(path, {}).targets_file == conf_dir / "sites.toml"
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path, {"METRICTUI_TARGETS_FILE": "mine.toml"})
    assert cfg.targets_file == tmp_path / "mine.toml"


def test_relative_paths_resolve_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    for name in ("ca.pem", "service.cert", "service.key"):
        write(conf_dir / name, "-----BEGIN CERTIFICATE-----\n")
    path = write(
        conf_dir / "metrictui.toml",
        "[kafka]\nsecurity_protocol = 'SSL'\nssl_cafile = 'ca.pem'\n"
        "ssl_certfile = 'service.cert'\nssl_keyfile = 'service.key'\n"
        "[agent]\nspool_dir = 'spool'\n",
    )
    monkeypatch.chdir(tmp_path)  # somewhere else: must not matter
    cfg = load_config(Path("etc/metrictui.toml"), {})
    assert cfg.kafka.ssl_cafile == conf_dir / "ca.pem"
    assert cfg.kafka.ssl_certfile == conf_dir / "service.cert"
    assert cfg.kafka.ssl_keyfile == conf_dir / "service.key"
    assert cfg.agent.spool_dir == conf_dir / "spool"
    assert cfg.source == path


def test_aiven_sasl_ssl_scram_config_loads(tmp_path: Path) -> None:
    write(tmp_path / "ca.pem", "pem")
    write(tmp_path / "kafka-password.txt", f"  {SECRET}\n")
    path = write(
        tmp_path / "metrictui.toml",
        "[kafka]\nbootstrap_servers = 'kafka-x.aivencloud.com:12350'\n"
        "security_protocol = 'SASL_SSL'\nssl_cafile = 'ca.pem'\n"
        "sasl_mechanism = 'scram-sha-256'\nsasl_username = 'avnadmin'\n"
        "sasl_password_file = 'kafka-password.txt'\n",
    )
    cfg = load_config(path, {})
    assert cfg.kafka.sasl_mechanism == "SCRAM-SHA-256"
    assert cfg.kafka.sasl_password is not None
    assert cfg.kafka.sasl_password.reveal() == SECRET
    assert cfg.warnings == ()


def test_client_certificate_needs_its_key(tmp_path: Path) -> None:
    write(tmp_path / "service.cert", "pem")
    path = write(
        tmp_path / "metrictui.toml",
        "[kafka]\nsecurity_protocol = 'SSL'\nssl_certfile = 'service.cert'\n",
    )
    with pytest.raises(ConfigError, match=r"\[kafka\] ssl_keyfile: required"):
        load_config(path, {})


def test_tls_and_sasl_settings_without_matching_protocol_are_warnings(tmp_path: Path) -> None:
    path = write(
        tmp_path / "metrictui.toml",
        "[kafka]\nssl_cafile = 'missing.pem'\nsasl_username = 'u'\n",
    )
    cfg = load_config(path, {})
    assert any("ssl_cafile: ignored" in w for w in cfg.warnings)
    assert any("sasl_username: ignored" in w for w in cfg.warnings)


def test_secrets_inline_by_env_and_by_file(tmp_path: Path) -> None:
    inline = load_config(write(tmp_path / "a.toml", f"[postgres]\ndsn = '{DSN}'\n"), {})
    assert inline.postgres.dsn is not None and inline.postgres.dsn.reveal() == DSN

    by_env = load_config(
        write(tmp_path / "b.toml", "[postgres]\ndsn_file = 'missing.txt'\n"),
        {"METRICTUI_POSTGRES__DSN": DSN, "METRICTUI_KAFKA__SASL_PASSWORD": SECRET},
    )
    assert by_env.postgres.dsn is not None and by_env.postgres.dsn.reveal() == DSN
    assert by_env.kafka.sasl_password == Secret(SECRET)

    write(tmp_path / "dsn.txt", f"\n{DSN}\n\n")
    by_file = load_config(write(tmp_path / "c.toml", "[postgres]\ndsn_file = 'dsn.txt'\n"), {})
    assert by_file.postgres.dsn is not None and by_file.postgres.dsn.reveal() == DSN

    env_file = load_config(
        write(tmp_path / "d.toml", "[postgres]\ndsn = 'host=x'\n"),
        {"METRICTUI_POSTGRES__DSN_FILE": str(tmp_path / "dsn.txt")},
    )
    assert env_file.postgres.dsn is not None and env_file.postgres.dsn.reveal() == DSN


def test_key_value_dsn_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "metrictui.toml", "[postgres]\ndsn = 'host=/tmp dbname=metrics'\n")
    cfg = load_config(path, {})
    assert cfg.postgres.dsn is not None


def test_secret_never_appears_in_messages_or_reprs(tmp_path: Path) -> None:
    secret = Secret(SECRET)
    assert SECRET not in repr(secret) and SECRET not in str(secret) and SECRET not in f"{secret}"
    assert secret.reveal() == SECRET
    assert copy.deepcopy(secret).reveal() == SECRET
    with pytest.raises(TypeError):
        pickle.dumps(secret)

    write(tmp_path / "pw.txt", SECRET)
    path = write(
        tmp_path / "metrictui.toml",
        f"[kafka]\nsecurity_protocol = 'SASL_SSL'\nsasl_mechanism = 'PLAIN'\n"
        f"sasl_username = 'u'\nsasl_password = '{SECRET}'\n[postgres]\ndsn = '{DSN}'\n",
    )
    cfg = load_config(path, {})
    assert SECRET not in repr(cfg) and SECRET not in str(cfg)

    bad_cases: list[tuple[str, dict[str, str]]] = [
        (f"[postgres]\ndsn = '{SECRET}'\n", {}),
        (f"[postgres]\ndsn = '{SECRET}'\ndsn_file = 'pw.txt'\n", {}),
        ("[postgres]\ndsn_file = 'pw.txt'\n", {}),  # file holds a non-DSN
        ("", {"METRICTUI_POSTGRES__DSN": SECRET}),
        (f"[kafka]\nsasl_password = '{SECRET}'\npartitions = 0\n", {}),
        ("[postgres]\ndsn = 5\n", {}),
    ]
    for text, env in bad_cases:
        with pytest.raises(ConfigError) as caught:
            load_config(write(tmp_path / "bad.toml", text), env)
        assert SECRET not in str(caught.value), text
        assert SECRET not in repr(caught.value), text


def test_group_readable_files_give_a_chmod_warning(tmp_path: Path) -> None:
    write(tmp_path / "dsn.txt", DSN, mode=0o640)
    write(tmp_path / "targets.toml", "", mode=0o644)
    path = write(tmp_path / "metrictui.toml", "[postgres]\ndsn_file = 'dsn.txt'\n", mode=0o644)
    cfg = load_config(path, {})
    joined = " | ".join(cfg.warnings)
    for name in ("metrictui.toml", "targets.toml", "dsn.txt"):
        assert any(name in w and "chmod 600" in w for w in cfg.warnings), joined
    assert all("\n" not in w for w in cfg.warnings)

    for name in ("dsn.txt", "targets.toml", "metrictui.toml"):
        (tmp_path / name).chmod(0o600)
    assert load_config(path, {}).warnings == ()


def test_resolve_config_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"METRICTUI_CONFIG": "/env/config.toml", "XDG_CONFIG_HOME": "/xdg"}
    assert resolve_config_path("/cli.toml", env) == Path("/cli.toml")
    assert resolve_config_path(None, env) == Path("/env/config.toml")
    assert resolve_config_path(None, {"XDG_CONFIG_HOME": "/xdg"}) == Path(
        "/xdg/metrictui/config.toml"
    )
    write(tmp_path / "metrictui.toml", "")
    assert resolve_config_path(None, {}) == Path("metrictui.toml")


def test_example_config_loads_and_documents_every_key(tmp_path: Path) -> None:
    from engine.config import model as config_module

    example = (REPO / "config.example.toml").read_text(encoding="utf-8")
    cfg = load_config(write(tmp_path / "metrictui.toml", example), {})
    assert cfg.kafka.bootstrap_servers == "127.0.0.1:9092"

    documented: dict[str, set[str]] = {}
    section = ""
    for line in example.splitlines():
        if header := re.fullmatch(r"\[(\w+)\]", line):
            section = header.group(1)
        elif key := re.match(r"#\s*(\w+)\s*=", line):
            documented.setdefault(section, set()).add(key.group(1))
    for name, keys in config_module.SCHEMA_KEYS.items():
        assert set(keys) <= documented.get(name, set()), name
    assert "targets_file" in documented[""]


def test_example_config_defaults_are_valid_when_uncommented(tmp_path: Path) -> None:
    example = (REPO / "config.example.toml").read_text(encoding="utf-8")
    uncommented = re.sub(r"(?m)^# (\w+ = )", r"\1", example.split("# ====")[0])
    cfg = load_config(write(tmp_path / "metrictui.toml", uncommented), {})
    assert cfg.agent.metrics == COLLECTOR_NAMES
    assert cfg.kafka.ssl_cafile == tmp_path / "ca.pem"
    assert cfg.postgres.dsn is not None
