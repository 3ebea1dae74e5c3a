"""Where PostgreSQL keeps data, log and superuser password; what the running server says."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stack_files import write_text_atomic
from stack_pg_bin import as_pg_user, chown_to_pg, pg_run_as
from stack_procs import pid_alive, read_pid
from stack_settings import Settings, say


@dataclass(frozen=True)
class PgFiles:
    """Where PostgreSQL's data, log and superuser password live for one stack dir."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "pg"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def password_file(self) -> Path:
        return self.root / "pg-superuser.pw"

    @property
    def conf(self) -> Path:
        return self.data / "metrictui-stack.conf"

    @property
    def socket_dir(self) -> Path:
        return self.data

    @property
    def marker(self) -> str:
        return str(self.data)


def fallback_pg_root(settings: Settings) -> Path:
    digest = hashlib.sha256(str(settings.stack_dir).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"metrictui-stack-{digest}"


def _pg_user_can_enter(path: Path) -> bool:
    user = pg_run_as()
    if user is None:
        return True
    proc = subprocess.run(as_pg_user(["test", "-x", str(path)]), capture_output=True, cwd="/")
    return proc.returncode == 0


_told_fallback = False


def pg_files(settings: Settings, *, creating: bool = False) -> PgFiles:
    """The stack dir, unless the `postgres` user cannot reach it (say, a repo under /root).

    Then the data lives under /var/tmp/metrictui-stack-<hash of the stack dir>/.
    """
    global _told_fallback
    local = PgFiles(settings.stack_dir)
    fallback = PgFiles(fallback_pg_root(settings))
    if (local.data / "PG_VERSION").exists():
        return local
    if (fallback.data / "PG_VERSION").exists():
        return fallback
    if not creating:
        return local
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    if _pg_user_can_enter(settings.stack_dir):
        return local
    if not _told_fallback:
        say(
            f"note: the postgres user cannot enter {settings.stack_dir}; "
            f"PostgreSQL data goes to {fallback.root} instead"
        )
        _told_fallback = True
    fallback.root.mkdir(mode=0o755, parents=True, exist_ok=True)
    return fallback


def pg_pid(files: PgFiles) -> int | None:
    pid = read_pid(files.data / "postmaster.pid")
    return pid if pid_alive(pid, files.marker) else None


def pg_running_port(files: PgFiles) -> int | None:
    try:
        lines = (files.data / "postmaster.pid").read_text().splitlines()
        return int(lines[3])
    except (OSError, IndexError, ValueError):
        return None


def pg_superuser_password(files: PgFiles) -> str:
    """Random per data dir, kept beside it (root-only); created on first use."""
    try:
        text = files.password_file.read_text().strip()
        if text:
            return text
    except OSError:
        pass
    password = secrets.token_urlsafe(18)
    write_text_atomic(files.password_file, password + "\n", mode=0o600)
    return password


def write_pg_file(path: Path, text: str, mode: int = 0o600) -> None:
    write_text_atomic(path, text, mode=mode)
    chown_to_pg(path)
