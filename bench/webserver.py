"""A fast local web server for the check and agent measurements: nginx, else aiohttp.

nginx (Debian's, installed with apt-get when missing and we are root) runs from a temporary
config on a free 127.0.0.1 port and answers every path with a tiny 200. Without nginx, a small
aiohttp server runs in its own process (`python -m bench.webserver PORT`), slower but enough
for the smoke run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from bench.env import ROOT, child_env

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_timeout 5;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def find_nginx(install: bool) -> str | None:
    """nginx on PATH or in /usr/sbin; installs Debian's nginx-light when allowed and root."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for package in ("nginx-light", "nginx"):
        done = subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
            env=env,
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            break
    return shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/bin")


class LocalWebServer:
    """`async with LocalWebServer() as server:` then `server.url` (ends with '/')."""

    def __init__(self, *, install: bool = True) -> None:
        self.install = install
        self.port = free_port()
        self.kind = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="metrictui-bench-web-"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def __aenter__(self) -> LocalWebServer:
        nginx = await asyncio.to_thread(find_nginx, self.install)
        if nginx is not None:
            conf = self._dir / "nginx.conf"
            conf.write_text(NGINX_CONF.format(root=self._dir, port=self.port))
            self._dir.chmod(0o755)
            argv = [nginx, "-p", str(self._dir), "-c", str(conf), "-e", str(self._dir / "e.log")]
            version = await asyncio.create_subprocess_exec(
                nginx, "-v", stderr=asyncio.subprocess.PIPE
            )
            _, err = await version.communicate()
            self.kind = err.decode().strip().replace("nginx version: ", "") or "nginx"
        else:
            argv = [sys.executable, "-m", "bench.webserver", str(self.port)]
            self.kind = "aiohttp (nginx not available)"
        self._proc = proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 20
        while not await asyncio.to_thread(_port_open, self.port):
            if proc.returncode is not None or time.monotonic() > deadline:
                if proc.returncode is None:
                    proc.kill()
                _, err = await proc.communicate()
                text = err.decode()[-500:]
                raise RuntimeError(f"{self.kind} did not start on port {self.port}: {text}")
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.communicate()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def serve(port: int) -> None:
    """The aiohttp fallback: 200 'ok' for every path."""
    from aiohttp import web

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
