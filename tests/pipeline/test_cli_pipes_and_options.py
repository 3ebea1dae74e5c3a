"""The real CLI: quiet on a closed output pipe, and global options before or after a subcommand."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers.stack import metrictui_cmd


def _valid_config(tmp_path: Path) -> Path:
    config = tmp_path / "metrictui.toml"
    config.write_text('[postgres]\ndsn = "postgresql://u@127.0.0.1:1/db"\n')
    (tmp_path / "targets.toml").write_text('[[targets]]\nname = "a"\nurl = "http://127.0.0.1/"\n')
    for f in (config, tmp_path / "targets.toml"):
        f.chmod(0o600)
    return config


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose reader is already gone (`| head -1` after its line)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            metrictui_cmd(*args), stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "command",
    [
        ["check-config"],
        ["--help"],
        ["report", "--help"],
        ["--version"],
    ],
    ids=lambda c: " ".join(c),
)
def test_a_closed_output_pipe_ends_the_command_quietly(tmp_path: Path, command: list[str]) -> None:
    config = _valid_config(tmp_path)
    proc = run_into_closed_pipe("--config", str(config), *command)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.stderr == ""
    assert proc.returncode in (0, 141)  # argparse's help/version ignore the closed pipe


def test_init_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    proc = run_into_closed_pipe("init", "--path", str(tmp_path / "new" / "config.toml"))
    assert proc.stderr == "" and proc.returncode == 141


@pytest.mark.parametrize(
    "order",
    [
        ("--log-format", "json", "check-config", "--config", "{missing}"),
        ("check-config", "--log-format", "json", "--config", "{missing}"),
        ("--config", "{missing}", "--log-format", "json", "migrate"),
        ("--log-format", "json", "--config", "{missing}", "report"),
    ],
    ids=["before", "after", "before-migrate", "before-report"],
)
def test_log_format_works_before_or_after_the_subcommand(
    tmp_path: Path, order: tuple[str, ...]
) -> None:
    missing = str(tmp_path / "nope.toml")
    args = [a.format(missing=missing) for a in order]
    proc = subprocess.run(metrictui_cmd(*args), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    doc = json.loads(line)
    assert "nope.toml" in doc["msg"]


def _check_config(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        metrictui_cmd("--config", str(config), "check-config"),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_says_one_target_in_the_singular(tmp_path: Path) -> None:
    proc = _check_config(_valid_config(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "(1 target in" in proc.stdout and proc.stderr == ""


def test_check_config_warns_when_the_dsn_is_missing(tmp_path: Path) -> None:
    config = _valid_config(tmp_path)
    config.write_text("[agent]\nname = 'a'\n")
    proc = _check_config(config)
    assert proc.returncode == 0
    [warning] = proc.stderr.splitlines()
    assert "warning" in warning and "[postgres] dsn is not set" in warning


def test_check_config_warns_when_the_targets_file_is_missing(tmp_path: Path) -> None:
    config = _valid_config(tmp_path)
    (tmp_path / "targets.toml").unlink()
    proc = _check_config(config)
    assert proc.returncode == 0
    [warning] = proc.stderr.splitlines()
    assert "targets.toml: targets file not found" in warning
    assert "(0 targets in" in proc.stdout
