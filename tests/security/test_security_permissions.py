"""Secrets on disk (issue 4, case 17): a config, targets, key or secret file that group or
others can read gives a warning naming that file (and the fix); owner-only files give none."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers.stack import metrictui_cmd

pytestmark = pytest.mark.faults


def _setup(tmp_path: Path) -> dict[str, Path]:
    files = {
        "config": tmp_path / "metrictui.toml",
        "targets": tmp_path / "targets.toml",
        "key": tmp_path / "service.key",
        "cert": tmp_path / "service.cert",
        "ca": tmp_path / "ca.pem",
        "sasl": tmp_path / "sasl-password.txt",
        "dsn": tmp_path / "pg-dsn.txt",
    }
    files["config"].write_text(
        "[kafka]\n"
        'security_protocol = "SASL_SSL"\n'
        'sasl_mechanism = "SCRAM-SHA-512"\n'
        'sasl_username = "avnadmin"\n'
        f'sasl_password_file = "{files["sasl"]}"\n'
        f'ssl_cafile = "{files["ca"]}"\n'
        f'ssl_certfile = "{files["cert"]}"\n'
        f'ssl_keyfile = "{files["key"]}"\n'
        "[postgres]\n"
        f'dsn_file = "{files["dsn"]}"\n'
    )
    files["targets"].write_text('[[targets]]\nname = "a"\nurl = "https://example.com/"\n')
    files["key"].write_text("-----BEGIN PRIVATE KEY-----\nnot a real key\n")
    files["cert"].write_text("-----BEGIN CERTIFICATE-----\n")
    files["ca"].write_text("-----BEGIN CERTIFICATE-----\n")
    files["sasl"].write_text("hunter2-sasl\n")
    files["dsn"].write_text("postgresql://u:hunter2-pg@127.0.0.1:1/db\n")
    for f in files.values():
        f.chmod(0o600)
    return files


def _warnings(config: Path) -> list[str]:
    proc = subprocess.run(
        metrictui_cmd("--config", str(config), "check-config"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("metrictui: warning:")]


@pytest.mark.parametrize("mode", [0o640, 0o604], ids=["group", "others"])
def test_secret_files_readable_by_group_or_others_are_each_named_in_a_warning(
    tmp_path: Path, mode: int
) -> None:
    files = _setup(tmp_path)
    secret_files = [files[k] for k in ("config", "targets", "key", "sasl", "dsn")]
    for f in secret_files:
        f.chmod(mode)
    warnings = _warnings(files["config"])
    assert len(warnings) == len(secret_files), warnings
    for f in secret_files:
        named = [w for w in warnings if f"{f}:" in w or f"{f} " in w]
        assert len(named) == 1 and "chmod 600" in named[0], (f, warnings)


def test_owner_only_files_and_public_certificates_give_no_warning(tmp_path: Path) -> None:
    files = _setup(tmp_path)
    files["cert"].chmod(0o644)  # certificates are public
    files["ca"].chmod(0o644)
    assert _warnings(files["config"]) == []
