"""PostgreSQL's binaries (installed with apt-get if missing) and the OS user that runs them."""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Sequence
from pathlib import Path

from stack_procs import apt_install
from stack_settings import ENV_PG_BIN, PG_SUPERUSER, StackError


def find_pg_bin() -> Path:
    """$METRICTUI_STACK_PG_BIN, else Debian's newest /usr/lib/postgresql/<v>/bin (apt if none)."""
    override = os.environ.get(ENV_PG_BIN, "").strip()
    if override:
        if not (Path(override) / "initdb").exists():
            raise StackError(f"{ENV_PG_BIN}={override} has no initdb")
        return Path(override)
    found = _newest_pg_bin()
    if found is None:
        _install_postgresql()
        found = _newest_pg_bin()
    if found is None:
        raise StackError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
    return found


def _newest_pg_bin() -> Path | None:
    candidates = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if (path / "initdb").exists() and path.parent.name.isdigit():
            candidates.append((int(path.parent.name), path))
    return max(candidates)[1] if candidates else None


def _install_postgresql() -> None:
    """apt-get install postgresql without Debian's own cluster (we run our own data dir)."""
    conf = Path("/etc/postgresql-common/createcluster.conf")
    if os.geteuid() == 0 and not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            "# Written by metrictui stack/stack.py: no default cluster, the stack runs its own.\n"
            "create_main_cluster = false\n"
        )
    apt_install(["postgresql"], "PostgreSQL binaries are missing")


def pg_run_as() -> str | None:
    """PostgreSQL refuses to run as root: then its commands run as the `postgres` user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SUPERUSER)
    except KeyError as exc:
        raise StackError(
            "running as root but there is no `postgres` user to run PostgreSQL"
        ) from exc
    return PG_SUPERUSER


def as_pg_user(argv: Sequence[str]) -> list[str]:
    user = pg_run_as()
    if user is None:
        return list(argv)
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", user, "--", *argv]


def pg_env() -> dict[str, str]:
    """Our environment without PG* variables that could point libpq elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


def chown_to_pg(path: Path) -> None:
    user = pg_run_as()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
