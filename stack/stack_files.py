"""Files under the stack dir: atomic writes, JSON and text reads, log tails and rotation.

Also the lock that serialises the commands that change the stack.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stack_settings import LOG_ROTATE_BYTES, LOG_TAIL_LINES, Settings, say


def write_text_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Readers (tests, other developers' fixtures) never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def rotate_log(path: Path) -> None:
    """Keep one previous generation so a long-lived dev stack cannot fill the disk."""
    with contextlib.suppress(OSError):
        if path.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))


@contextlib.contextmanager
def stack_lock(settings: Settings) -> Iterator[None]:
    """Serialise commands that change the stack (two `make test` at once must not race)."""
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.stack_dir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another stack.py command to finish ...")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def read_or_empty(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""
