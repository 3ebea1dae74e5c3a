"""The engine's rooms keep to their layers: each subpackage imports only what it may.

The rooms, lowest first: records (check results, heartbeats), the base modules at the top of
engine/ (errors, files, envelope, stats, logs, tasks, process_gc), then config and targets,
then agent, kafka, db and fleet, then sink, then engine.py (which assembles a running
engine), then control and headless. Nothing in the engine imports the TUI. The rules are
checked on the source (every import statement, also inside functions), so a violation fails
here before it becomes an import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "engine"
ROOMS = (
    "records",
    "agent",
    "kafka",
    "sink",
    "db",
    "control",
    "headless",
    "config",
    "targets",
    "fleet",
)

# What each room must never import (a room name, "engine.py", or a top-level package).
FORBIDDEN: dict[str, set[str]] = {
    "records": {*ROOMS, "engine.py"} - {"records"},
    "base": {*ROOMS, "engine.py"} - {"config", "targets", "records"},
    "config": {"kafka", "sink", "db", "control", "headless", "engine.py", "fleet"},
    "targets": {"kafka", "sink", "db", "control", "headless", "engine.py", "fleet"},
    "agent": {"kafka", "sink", "db", "control", "headless", "engine.py", "fleet"},
    "kafka": {"agent", "sink", "db", "control", "headless", "engine.py", "fleet"},
    "db": {"agent", "kafka", "sink", "control", "headless", "engine.py", "fleet"},
    # The fleet's targets topic and group sit on kafka, config and targets (beside sink).
    "fleet": {"agent", "sink", "db", "control", "headless", "engine.py"},
    "sink": {"agent", "control", "headless", "engine.py", "fleet"},
    "engine.py": {"control", "headless"},
    "control": {"headless"},
    "headless": set(),
}
EVERYWHERE = {"tui", "textual"}


def _room(module: str) -> str:
    """The room a module `engine.x.y` belongs to."""
    parts = module.split(".")
    if len(parts) < 2:
        return "base"
    if parts[1] in ROOMS:
        return parts[1]
    return "engine.py" if parts[1] == "engine" else "base"


def _module_name(path: Path, engine: Path = ENGINE) -> str:
    parts = path.relative_to(engine.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            if node.module == "engine":  # `from engine import config` names a room
                names += [f"engine.{alias.name}" for alias in node.names]
    return names


def _violations(engine: Path = ENGINE) -> list[str]:
    found: list[str] = []
    for path in sorted(engine.rglob("*.py")):
        module = _module_name(path, engine)
        room = _room(module)
        for imported in _imports(path):
            top = imported.split(".")[0]
            if top in EVERYWHERE:
                found.append(f"{module} imports {imported} (the engine never imports the TUI)")
            elif top == "engine" and imported != "engine":
                target = _room(imported)
                if target != room and target in FORBIDDEN[room]:
                    found.append(f"{module} ({room}) imports {imported} ({target})")
    return found


def test_every_room_imports_only_what_its_layer_allows() -> None:
    assert _violations() == []


def test_every_engine_module_belongs_to_a_known_room() -> None:
    flat = sorted(p.name for p in ENGINE.glob("*.py"))
    # The base modules, engine.py and __init__.py; more at the top means a room is missing.
    assert len(flat) <= 9, flat
    for path in ENGINE.rglob("*.py"):
        assert _room(_module_name(path)) in FORBIDDEN, path


@pytest.mark.parametrize(
    ("where", "line"),
    [
        ("agent/checks/checker.py", "from engine.sink.store import Store"),
        ("sink/consume.py", "import engine.agent.collectors"),
        ("control/server.py", "from tui.app import MetricTuiApp"),
        ("db/report.py", "from engine.sink.consume import Sink"),
        ("headless/run.py", "    import textual"),
    ],
)
def test_the_rules_catch_a_forbidden_import(where: str, line: str, tmp_path: Path) -> None:
    engine = tmp_path / "engine"
    module = engine / where
    module.parent.mkdir(parents=True)
    body = f"def f() -> None:\n{line}\n" if line.startswith(" ") else f"{line}\n"
    module.write_text(body, encoding="utf-8")
    assert len(_violations(engine)) == 1
