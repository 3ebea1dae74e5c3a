"""The wheel works on its own: built with `python -m build`, installed (not editable) into a
fresh virtualenv, it reports its version, migrates PostgreSQL from the SQL shipped inside it,
and runs a headless pipeline that fills PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from engine import __version__
from helpers.sites import LocalSites
from helpers.stack import ROOT, Pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# What a source checkout holds that the build needs; copied so the build never writes
# build/ or *.egg-info into the working tree other developers and tests are using.
SOURCES = ("pyproject.toml", "README.md", "config.example.toml", "engine", "tui", "sql")


def _copy_sources(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    dest.mkdir()
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    return dest


def _env() -> dict[str, str]:
    """The caller's environment without anything that points Python at the source tree."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("METRICTUI_")}


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.timeout(1200)
def test_wheel_in_a_fresh_venv_migrates_and_runs_a_pipeline(
    pipeline: Pipeline, local_sites: LocalSites, tmp_path: Path
) -> None:
    src = _copy_sources(tmp_path / "src")
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(src)], cwd=tmp_path)
    [wheel] = dist.glob("metrictui-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "engine/sql/001_init.sql" in names and "engine/config.example.toml" in names
    assert "tui/app.tcss" in names
    assert not [n for n in names if n.startswith(("tests/", "stack/", "bench/"))]

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    py, exe = venv / "bin" / "python", venv / "bin" / "metrictui"
    _run([str(py), "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path, timeout=900)
    where = _run(
        [str(py), "-c", "import engine, tui, sys; print(engine.__file__, tui.__file__, sys.path)"],
        cwd=tmp_path,
    ).stdout
    assert str(ROOT) not in where and "site-packages" in where.split()[0]
    assert f"metrictui {__version__}" in _run([str(exe), "--version"], cwd=tmp_path).stdout

    init = _run([str(exe), "init", "--path", str(tmp_path / "fresh" / "config.toml")], tmp_path)
    assert "wrote" in init.stdout and (tmp_path / "fresh" / "targets.toml").is_file()

    config = str(pipeline.config_path)
    migrated = _run([str(exe), "--config", config, "migrate"], cwd=tmp_path)
    assert "001_init.sql" in migrated.stdout
    assert pipeline.query("SELECT count(*) FROM schema_migrations")[0][0] >= 1

    pipeline.write_targets([{"name": "home", "url": local_sites.http_url("/"), "interval": 1}])
    log = tmp_path / "headless.log"
    proc = subprocess.Popen(
        [str(exe), "--config", config, "--headless", "--role", "all"],
        cwd=tmp_path,
        env=_env(),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            samples = pipeline.query("SELECT count(*) FROM samples_v")[0][0]
            checks = pipeline.query("SELECT count(*) FROM checks_v WHERE ok")[0][0]
            if samples > 0 and checks >= 2:
                break
            time.sleep(1)
        else:
            pytest.fail("no rows from the installed wheel:\n" + log.read_text()[-3000:])
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
    agents = {r[0] for r in pipeline.query("SELECT DISTINCT agent FROM samples_v")}
    assert agents == {pipeline.agent}
    assert "stopped cleanly" in log.read_text()


def test_every_source_package_is_listed_for_the_wheel() -> None:
    """pyproject.toml lists the packages by name: a new room left out of the list installs
    without its modules, which only the slow wheel test above would otherwise notice."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("engine", "tui")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)
