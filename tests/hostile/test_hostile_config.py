"""Malformed configurations (issue 4, case 12), beyond the table in test_config.py: through the
real binary, each is one line naming the file or key, exit code 2, and nothing connects."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from helpers.stack import metrictui_cmd

pytestmark = pytest.mark.faults

# name -> (config text, targets text, words the one line must contain)
MORE_BAD_CONFIGS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "spool cap zero": ("[agent]\nspool_max_mb = 0\n", "", ("spool_max_mb",)),
    "batch of zero": ("[consumer]\nbatch_max = 0\n", "", ("batch_max",)),
    "empty dsn": ('[postgres]\ndsn = ""\n', "", ("dsn", "value not shown")),
    "client cert without key": (
        '[kafka]\nsecurity_protocol = "SSL"\nssl_certfile = "{dir}/cert.pem"\n',
        "",
        ("ssl_keyfile",),
    ),
    "zero request timeout": ("[kafka]\nrequest_timeout_s = 0\n", "", ("request_timeout_s",)),
    "no bootstrap servers": ("[kafka]\nbootstrap_servers = []\n", "", ("bootstrap_servers",)),
    "listen port out of range": ('[headless]\nlisten = "127.0.0.1:99999"\n', "", ("listen",)),
    "empty agent name": ('[agent]\nname = ""\n', "", ("name",)),
    "not UTF-8": ("\udcff\udcfe[kafka]\n", "", ("UTF-8",)),
    "dsn_file is a directory": ('[postgres]\ndsn_file = "{dir}"\n', "", ("dsn_file",)),
    "empty secret file": ('[kafka]\nsasl_password_file = "{dir}/empty"\n', "", ("empty",)),
    "targets_file is a directory": ('targets_file = "{dir}"\n', "", ("targets_file",)),
    "target interval infinite": (
        "",
        '[[targets]]\nname = "a"\nurl = "http://x/"\ninterval = inf\n',
        ("interval",),
    ),
    "target empty name": ("", '[[targets]]\nname = ""\nurl = "http://x/"\n', ("name",)),
    "target header with newline": (
        "",
        '[[targets]]\nname = "a"\nurl = "http://x/"\nheaders = {X = "a\\nb"}\n',
        ("headers",),
    ),
    "target url scheme": ("", '[[targets]]\nname = "a"\nurl = "ftp://x/"\n', ("url",)),
    # Only found when the agent opens its spool, still exit 2 with the key named:
    "spool_dir is a file": ('[agent]\nspool_dir = "{dir}/empty"\n', "", ("spool_dir",)),
}


@pytest.mark.parametrize("name", list(MORE_BAD_CONFIGS))
def test_more_bad_configs_are_one_line_and_exit_2_from_the_real_binary(
    tmp_path: Path, name: str
) -> None:
    text, targets, words = MORE_BAD_CONFIGS[name]
    (tmp_path / "empty").write_text("")
    (tmp_path / "cert.pem").write_text("")
    config = tmp_path / "metrictui.toml"
    # Unreachable servers: a config error must be reported before anything connects.
    base = (
        '[kafka]\nbootstrap_servers = "127.0.0.1:1"\n'
        '[postgres]\ndsn = "postgresql://x@127.0.0.1:1/x"\n'
        f'[agent]\nspool_dir = "{tmp_path}/spool"\n'
    )
    body = text.replace("{dir}", str(tmp_path))
    merged = _merge(base, body)
    config.write_bytes(merged.encode("utf-8", "surrogateescape"))
    (tmp_path / "targets.toml").write_text(targets)
    for f in tmp_path.iterdir():
        f.chmod(0o600)
    proc = subprocess.run(
        metrictui_cmd("--config", str(config), "--headless", "--role", "producer"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    logs = [ln for ln in proc.stderr.splitlines() if re.match(r"\d\d:\d\d:\d\d ", ln)]
    if name != "spool_dir is a file":  # the others fail before the engine even starts
        assert not logs, proc.stderr
    lines = [
        ln
        for ln in proc.stderr.splitlines()
        if not ln.startswith("metrictui: warning:") and ln not in logs
    ]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("metrictui: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _merge(base: str, body: str) -> str:
    """`body`'s sections replace the same keys of `base` (TOML forbids repeating a table)."""
    if not body.strip() or not body.lstrip().startswith(("[", "targets_file")):
        return body + base if body.startswith("\udcff") else base + body
    sections: dict[str, list[str]] = {}
    order: list[str] = []
    for chunk in (base, body):
        current = ""
        for line in chunk.splitlines():
            if line.startswith("["):
                current = line
                if current not in sections:
                    sections[current] = []
                    order.append(current)
                continue
            if current == "" and "" not in sections:
                sections[""] = []
                order.insert(0, "")
            key = line.split("=", 1)[0].strip()
            kept = [ln for ln in sections[current] if ln.split("=", 1)[0].strip() != key]
            sections[current] = [*kept, line]
    out: list[str] = []
    for name in order:
        if name:
            out.append(name)
        out += sections[name]
    return "\n".join(out) + "\n"
