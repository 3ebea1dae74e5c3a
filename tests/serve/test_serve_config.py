"""`[serve]` and `--listen` through the real `metrictui serve` command: one-line errors, exit 2,
and a token file that really is the token."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from helpers.faults import free_port
from helpers.stack import metrictui_cmd

TOKEN = "token-from-the-file-0123456789"


def _config(tmp_path: Path, serve: str = "") -> Path:
    path = tmp_path / "metrictui.toml"
    path.write_text(f'[headless]\ncontrol_socket = "{tmp_path}/control.sock"\n\n[serve]\n{serve}')
    path.chmod(0o600)
    (tmp_path / "targets.toml").write_text("")
    (tmp_path / "targets.toml").chmod(0o600)
    return path


def _serve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        metrictui_cmd("serve", "--config", str(config), *args),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_public_listen_without_token_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, serve in ((("--listen", "0.0.0.0:8640"), ""), ((), 'listen = "[::]:8640"\n')):
        done = _serve(_config(tmp_path, serve), *args)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert "token_file" in line and "Traceback" not in line


def test_bad_serve_keys_name_the_key(tmp_path: Path) -> None:
    for serve, key in (
        ('listen = "nowhere"\n', "listen"),
        ('public_url = "ftp://x"\n', "public_url"),
        (f'token_file = "{tmp_path}/missing"\n', "token_file"),
    ):
        done = _serve(_config(tmp_path, serve))
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.splitlines()
        assert f"[serve] {key}" in line or f"{key}:" in line, line


def test_token_file_is_the_token_and_allows_a_public_listen(tmp_path: Path) -> None:
    token_file = tmp_path / "serve.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    port = free_port()
    config = _config(
        tmp_path, f'token_file = "{token_file}"\npublic_url = "https://dash.example"\n'
    )
    proc = subprocess.Popen(
        metrictui_cmd("serve", "--config", str(config), "--listen", f"0.0.0.0:{port}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"metrictui serve: open https://dash.example/?token={TOKEN} ")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert TOKEN not in out + err
