"""deploy/: the systemd units are valid, hardened, and start the commands this version has.

`systemd-analyze verify` (and the offline security score) run when systemd-analyze is on the
machine; the INI structure, the hardening keys, the ExecStart arguments (parsed by the real
CLI parser) and the environment overrides (parsed by the real config loader) are checked
everywhere.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import load_config
from tui.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = {role: DEPLOY / f"metrictui-{role}.service" for role in ("producer", "consumer")}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0077",
}
Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """systemd's INI dialect: [Section], Key=Value, repeatable keys, # and ; comments."""
    sections: Unit = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if match := re.fullmatch(r"\[([A-Za-z]+)\]", line):
            current = sections.setdefault(match.group(1), {})
            continue
        assert current is not None, f"line {number}: key outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key), f"line {number}: {raw!r}"
        current.setdefault(key, []).append(value)
    return sections


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_runs_the_role_headless_as_a_dedicated_user_with_bounded_restarts(role: str) -> None:
    unit = parse_unit(UNITS[role].read_text())
    assert set(unit) == {"Unit", "Service", "Install"}
    service = {k: v[-1] for k, v in unit["Service"].items()}
    assert service["User"] == "metrictui" and service["Group"] == "metrictui"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # bad config: restarting cannot help
    assert service["KillSignal"] == "SIGTERM" and service["TimeoutStopSec"] == "15"
    assert service["StateDirectory"] == "metrictui"
    assert service["RuntimeDirectory"] == f"metrictui-{role}"
    assert "/var/lib/metrictui" in service["ReadWritePaths"].split()
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in unit["Unit"]["After"][0].split()

    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/metrictui")
    args = build_parser().parse_args(argv[1:])
    assert args.headless and args.role == role and args.log_format == "json"


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_has_every_hardening_option(role: str) -> None:
    service = parse_unit(UNITS[role].read_text())["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == [value], key
    assert any(v.startswith("@system-service") for v in service["SystemCallFilter"])
    assert "~@privileged @resources" in service["SystemCallFilter"]
    families = service["RestrictAddressFamilies"][0].split()
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(families) and "AF_PACKET" not in families


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_environment_is_a_valid_config_override(role: str, tmp_path: Path) -> None:
    service = parse_unit(UNITS[role].read_text())["Service"]
    env = dict(item.split("=", 1) for item in service["Environment"])
    config_file = tmp_path / "config.toml"
    config_file.write_text("")
    config = load_config(config_file, env)
    assert config.headless.control_socket == Path(f"/run/metrictui-{role}/control.sock")
    assert config.agent.spool_dir == Path("/var/lib/metrictui/spool")  # in StateDirectory


def test_units_pass_systemd_analyze_verify_where_available(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # the structural tests above still ran
        return
    binary = Path(sys.executable).parent / "metrictui"  # verify insists ExecStart exists
    for role, path in UNITS.items():
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace("/opt/metrictui/bin/metrictui", str(binary)))
        proc = subprocess.run(
            [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
        )
        # verify exits 0 even for unknown keys; it warns on stderr, so that must be empty too
        assert proc.returncode == 0 and proc.stderr.strip() == "", (role, proc.stderr)
        security = subprocess.run(
            [analyze, "security", "--offline=true", str(copy)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
        if security.returncode == 0 and found:  # --offline needs systemd >= 250
            assert float(found.group(1)) <= 2.0, (role, security.stdout[-3000:])


def test_sysusers_file_creates_the_metrictui_user(tmp_path: Path) -> None:
    conf = DEPLOY / "metrictui.sysusers.conf"
    lines = [ln for ln in conf.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 1 and lines[0].split()[:2] == ["u", "metrictui"]
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        return
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        (tmp_path / "etc" / name).write_text("")
    proc = subprocess.run(
        [sysusers, f"--root={tmp_path}", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    [entry] = (tmp_path / "etc" / "passwd").read_text().splitlines()
    assert entry.startswith("metrictui:") and entry.endswith(
        ":/var/lib/metrictui:/usr/sbin/nologin"
    )
