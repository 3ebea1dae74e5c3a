"""The command line: one clear line and exit code 2 for each bad config; version; boundary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.bad_configs import BAD_CONFIGS, SECRET
from helpers.stack import metrictui_cmd
from tui.cli import run


@pytest.mark.parametrize(
    ("toml", "targets", "env", "fragments"),
    [case[1:] for case in BAD_CONFIGS],
    ids=[case[0] for case in BAD_CONFIGS],
)
def test_bad_config_through_the_cli_is_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    toml: str,
    targets: str | None,
    env: dict[str, str],
    fragments: tuple[str, ...],
) -> None:
    config = tmp_path / "metrictui.toml"
    config.write_text(toml)
    config.chmod(0o600)
    if targets is not None:
        (tmp_path / "targets.toml").write_text(targets)
        (tmp_path / "targets.toml").chmod(0o600)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    code = run(["--config", str(config), "check-config"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("metrictui: warning:")]
    assert code == 2
    assert len(errors) == 1, err
    assert errors[0].startswith("metrictui: ")
    assert "Traceback" not in err and SECRET not in err


def test_missing_config_file_via_real_binary_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        metrictui_cmd("--config", str(tmp_path / "nope.toml"), "--headless"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "nope.toml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_target_regex_via_real_binary_fails_before_connecting(tmp_path: Path) -> None:
    (tmp_path / "metrictui.toml").write_text(
        '[kafka]\nbootstrap_servers = "127.0.0.1:1"\n[postgres]\ndsn = "postgresql://x@127.0.0.1:1/x"\n'
    )
    (tmp_path / "targets.toml").write_text(
        '[[targets]]\nname = "a"\nurl = "http://127.0.0.1/"\nregex = "(unclosed"\n'
    )
    for f in tmp_path.iterdir():
        f.chmod(0o600)
    proc = subprocess.run(
        metrictui_cmd("--config", str(tmp_path / "metrictui.toml"), "--headless"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "regex" in proc.stderr


def test_version() -> None:
    proc = subprocess.run(metrictui_cmd("--version"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("metrictui ")


def test_engine_never_imports_textual_or_tui() -> None:
    code = (
        "import sys, importlib, pkgutil, engine\n"
        "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'tui')]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
