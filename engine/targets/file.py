"""The targets file: `[[targets]]` tables read with the model's rules, written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import tomli_w

from engine.errors import ConfigError, escape_controls
from engine.files import read_toml, write_atomic
from engine.targets.model import Target, target_from_dict, target_to_dict


def load_targets(path: Path) -> list[Target]:
    """Read `[[targets]]` from `path`; a missing file means no targets yet."""
    label = str(path)
    if not path.exists():
        return []
    doc = read_toml(path, label)
    for key in doc:
        if key != "targets":
            close = "did you mean 'targets'? " if key.lower().startswith("target") else ""
            raise ConfigError(
                escape_controls(
                    f"{label}: {key}: unknown key; {close}expected only [[targets]] entries"
                )
            )
    entries = doc.get("targets", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{label}: targets: must be an array of tables ([[targets]])")
    targets: list[Target] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"{label}: [[targets]] #{number}"
        target = target_from_dict(entry, where=where, base_dir=path.parent)
        if target.name in seen:
            raise ConfigError(
                escape_controls(f"{where} name: duplicate target name {target.name!r}")
            )
        seen.add(target.name)
        targets.append(target)
    return targets


_HEADER = (
    "# metrictui website targets. The program rewrites this file when targets change in the\n"
    "# TUI: values are kept, comments are not. See config.example.toml for every key.\n\n"
)


def save_targets(path: Path, targets: Sequence[Target]) -> None:
    """Write `targets` atomically (temp file in the same dir, fsync, rename), mode 0600.

    A crash at any moment leaves either the old file or the new one, never half of one.
    """
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate target names: {', '.join(map(repr, duplicates))}")
    text = _HEADER + tomli_w.dumps({"targets": [target_to_dict(t) for t in targets]})
    write_atomic(path, text.encode("utf-8"))
