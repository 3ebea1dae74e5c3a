"""`metrictui init`: writes the commented config + example targets where metrictui looks,
owner-only, never over existing files without --force, and says what to edit."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from engine.config import load_config
from engine.config.init import example_config_text
from engine.targets import load_targets
from helpers.stack import ROOT, metrictui_cmd


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRICTUI_", "XDG_"))}
    return {**env, "HOME": str(home), **extra}


def _run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        metrictui_cmd(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_shipped_template_is_the_example_config() -> None:
    assert example_config_text() == (ROOT / "config.example.toml").read_text(encoding="utf-8")


def test_init_writes_private_files_in_the_default_place_and_they_load(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home)
    proc = _run(tmp_path, env, "init")
    assert proc.returncode == 0, proc.stderr
    folder = home / ".config" / "metrictui"
    config, targets = folder / "config.toml", folder / "targets.toml"
    assert config.read_text() == example_config_text()
    assert _mode(config) == 0o600 and _mode(targets) == 0o600 and _mode(folder) == 0o700
    assert [t.name for t in load_targets(targets)] == ["example"]
    assert str(config) in proc.stdout and str(targets) in proc.stdout
    for hint in ("[kafka] bootstrap_servers", "[postgres] dsn", "check-config", "migrate"):
        assert hint in proc.stdout
    assert "--config" not in proc.stdout  # the default location needs no --config

    loaded = load_config(config, {})
    assert loaded.targets_file == targets and loaded.warnings == ()
    check = _run(tmp_path, env, "check-config")  # found without --config
    assert check.returncode == 0, check.stderr
    assert str(config) in check.stdout and "1 targets" in check.stdout


def test_init_honours_xdg_config_home(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    proc = _run(tmp_path, _env(tmp_path / "home", XDG_CONFIG_HOME=str(xdg)), "init")
    assert proc.returncode == 0, proc.stderr
    assert (xdg / "metrictui" / "config.toml").is_file()
    assert not (tmp_path / "home").exists()


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    env = _env(tmp_path)
    config = tmp_path / "etc" / "deep" / "metrictui.toml"
    assert _run(tmp_path, env, "init", "--path", str(config)).returncode == 0
    targets = config.parent / "targets.toml"
    config.write_text("# mine\n")
    targets.write_text("# my targets\n")

    again = _run(tmp_path, env, "init", "--path", str(config))
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "--force" in again.stderr
    assert str(config) in again.stderr and str(targets) in again.stderr
    assert config.read_text() == "# mine\n" and targets.read_text() == "# my targets\n"

    only_targets = tmp_path / "other" / "config.toml"
    only_targets.parent.mkdir()
    (only_targets.parent / "targets.toml").write_text("# keep\n")
    refused = _run(tmp_path, env, "init", "--path", str(only_targets))
    assert refused.returncode == 1 and not only_targets.exists()

    forced = _run(tmp_path, env, "init", "--path", str(config), "--force")
    assert forced.returncode == 0, forced.stderr
    assert config.read_text() == example_config_text() and _mode(config) == 0o600
    assert "replaced" in forced.stdout and f"--config {config}" in forced.stdout
    assert not [p for p in config.parent.iterdir() if p.name.endswith(".tmp")]
