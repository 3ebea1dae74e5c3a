"""Where the peers' builds and jars are kept: outside the repository, shared by every clone.

`$METRICTUI_PEERS_CACHE`, else `~/.cache/metrictui-peers`. Telegraf's build takes ~12 minutes
and ~4 GB, so a fresh clone must not redo it, and `git clean` must not throw it away.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "metrictui-peers"
    path = Path(os.environ.get("METRICTUI_PEERS_CACHE") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def one_line_error(log: Path, *, width: int = 240) -> str:
    """The most telling line of a failed tool's log: its last line that reads like an error,
    else its last line (for one-line failure messages)."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return f"no log at {log}"
    if not lines:
        return f"{log} is empty"
    words = ("error", "exception", "failed", "fatal", "refused", "cannot", "could not")
    errors = [
        ln
        for ln in lines
        if any(w in ln.lower() for w in words) and not ln.startswith(("at ", "..."))
    ]
    return (errors or lines)[-1][:width]
