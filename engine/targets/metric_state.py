"""Runtime metric toggles, saved beside the targets file (the main config is never rewritten).

`metrics_state.toml` holds `enabled = [...]`; when present it wins over `[agent] metrics`, so a
collector switched off in the TUI stays off after a restart.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path

import tomli_w

from engine.agent.collector_names import COLLECTOR_NAMES
from engine.files import write_atomic


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
    """Atomically write the enabled list (engine.files.write_atomic)."""
    path = state_path(targets_file)
    write_atomic(path, tomli_w.dumps({"enabled": sorted(enabled)}).encode("utf-8"))
