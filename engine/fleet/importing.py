"""`metrictui targets import`: a targets file checked whole before anything is published.

Unlike loading (which stops at the first problem), an import lists every problem, one line
each, so a large file is fixed in one pass; and it publishes nothing unless all of it is valid.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import ConfigError
from engine.errors import escape_controls as one_line
from engine.files import read_toml
from engine.targets import Target, target_field_problems, target_from_dict


def read_import_file(path: Path) -> tuple[list[Target], list[str]]:
    """The file's targets, and every problem found (no targets are returned if any)."""
    label = str(path)
    try:
        doc = read_toml(path, label)
    except ConfigError as exc:
        return [], [str(exc)]
    problems = [
        one_line(f"{label}: {key}: unknown key; expected only [[targets]] entries")
        for key in doc
        if key != "targets"
    ]
    entries = doc.get("targets", [])
    if not isinstance(entries, list):
        return [], [*problems, f"{label}: targets: must be an array of tables ([[targets]])"]
    targets: list[Target] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"{label}: [[targets]] #{number}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        found = target_field_problems(entry, path.parent)
        problems += [one_line(f"{where} {field}: {problem}") for field, problem in found.items()]
        if found:
            continue
        target = target_from_dict(entry, where=where, base_dir=path.parent)
        if target.name in seen:
            problems.append(one_line(f"{where} name: duplicate target name {target.name!r}"))
        seen.add(target.name)
        targets.append(target)
    return ([] if problems else targets), problems
