"""Runtime metric toggles, saved beside the targets file (the main config is never rewritten).

`metrics_state.toml` holds `enabled = [...]`; when present it wins over `[agent] metrics`, so a
collector switched off in the TUI stays off after a restart.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path

import tomli_w

from engine.agent.collectors import COLLECTOR_NAMES


def state_path(targets_file: Path) -> Path:
    return targets_file.with_name("metrics_state.toml")


def load_enabled(targets_file: Path, default: Iterable[str]) -> tuple[str, ...]:
    """Enabled collector names: the saved state if readable, else the config's list."""
    try:
        with state_path(targets_file).open("rb") as f:
            saved = tomllib.load(f).get("enabled")
    except (OSError, tomllib.TOMLDecodeError):
        return tuple(default)
    if not isinstance(saved, list):
        return tuple(default)
    return tuple(n for n in saved if n in COLLECTOR_NAMES)


def save_enabled(targets_file: Path, enabled: Iterable[str]) -> None:
    """Atomically write the enabled list (temp file + rename)."""
    path = state_path(targets_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".metrics_state.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            tomli_w.dump({"enabled": sorted(enabled)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
