"""The demo website that gives `make run` real targets: start, wait, stop."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

from stack_files import read_json, write_text_atomic
from stack_procs import Launch, pid_alive, read_pid, spawn_daemon, terminate, wait_for
from stack_settings import DEMO_SERVER, HOST, Settings, say


def web_pid(settings: Settings) -> int | None:
    pid = read_pid(settings.web_dir / "web.pid")
    return pid if pid_alive(pid, str(DEMO_SERVER)) else None


def web_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def start_web(settings: Settings) -> Launch:
    started_file = settings.web_dir / "started.json"
    wanted = {"web_port": settings.web_port}
    action = "started"
    pid = web_pid(settings)
    if pid:
        if read_json(started_file) == wanted:
            return Launch("demo-web", "reused", pid, lambda: _wait_web(settings, pid, None))
        terminate(pid, str(DEMO_SERVER))
        action = "restarted"
    argv = [sys.executable, str(DEMO_SERVER), "--host", HOST, "--port", str(settings.web_port)]
    proc = spawn_daemon(argv, settings.web_dir / "web.log", settings.web_dir)
    write_text_atomic(settings.web_dir / "web.pid", f"{proc.pid}\n")
    write_text_atomic(started_file, json.dumps(wanted) + "\n")
    return Launch("demo-web", action, proc.pid, lambda: _wait_web(settings, proc.pid, proc))


def _wait_web(settings: Settings, pid: int, proc: subprocess.Popen[bytes] | None) -> float:
    def alive() -> bool:
        if proc is not None and proc.poll() is not None:
            return False
        return pid_alive(pid, str(DEMO_SERVER))

    return wait_for(
        f"demo website (http://{HOST}:{settings.web_port}/)",
        lambda: web_ready(settings.web_port),
        alive=alive,
        log_path=settings.web_dir / "web.log",
    )


def stop_web(settings: Settings) -> bool:
    pid = web_pid(settings)
    if not pid:
        return False
    terminate(pid, str(DEMO_SERVER), timeout=5)
    (settings.web_dir / "web.pid").unlink(missing_ok=True)
    say(f"stopped demo website (pid {pid})")
    return True
