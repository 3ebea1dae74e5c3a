"""`metrictui init`: a first config and targets file in the default place, never clobbering.

The config written is config.example.toml itself (shipped in the package as
engine/config.example.toml): every setting, commented, so it is valid as is and documents
itself. Both files are created owner-only (0600, directory 0700) because the config is where
the DSN and Kafka password usually end up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from engine.errors import UserError
from engine.files import write_atomic

EXAMPLE_TARGETS = """\
# Website targets checked by the metrictui producer (the format is described at the end of
# config.toml). The dashboard rewrites this file when you add, edit, delete or switch off a
# target there; comments are not kept when it does.

[[targets]]
name = "example"
url = "https://example.com/"
interval = 60
timeout = 10
regex = "Example Domain"

# [[targets]]
# name = "my api"
# url = "https://api.example.com/healthz"
# interval = 15
# expect_status = [200]
# regex = '"status":\\s*"ok"'
# headers = { "User-Agent" = "metrictui" }
"""


def default_config_path(env: Mapping[str, str]) -> Path:
    """$XDG_CONFIG_HOME/metrictui/config.toml, else ~/.config/metrictui/config.toml."""
    xdg = env.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"
    return base / "metrictui" / "config.toml"


def example_config_text() -> str:
    """The commented example config, from the installed package (or the source tree)."""
    return resources.files("engine").joinpath("config.example.toml").read_text(encoding="utf-8")


@dataclass(frozen=True)
class InitResult:
    config_path: Path
    targets_path: Path
    replaced: tuple[Path, ...]


def _write_private(path: Path, text: str) -> None:
    """Write owner-only and atomically, so a crash never leaves half a file."""
    write_atomic(path, text.encode("utf-8"))


def write_initial_config(config_path: Path, *, force: bool = False) -> InitResult:
    """Create config.toml and targets.toml (beside it); UserError if either exists and not force."""
    config_path = config_path.expanduser().absolute()
    targets_path = config_path.parent / "targets.toml"
    files = {config_path: example_config_text(), targets_path: EXAMPLE_TARGETS}
    for path in files:
        if path.is_dir():
            raise UserError(f"{path} is a directory; pass --path FILE to write elsewhere")
    existing = tuple(p for p in files if p.exists() or p.is_symlink())
    if existing and not force:
        names = " and ".join(str(p) for p in existing)
        raise UserError(f"{names} already exists; not overwriting (use --force to replace)")
    try:
        config_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path, text in files.items():
            _write_private(path, text)
    except OSError as exc:
        raise UserError(
            f"cannot write {exc.filename or config_path.parent}: {exc.strerror};"
            " pass --path to choose another place"
        ) from None
    return InitResult(config_path, targets_path, existing)


def next_steps(result: InitResult, default: bool) -> str:
    """What to edit and run next; `default` says whether --config is needed in the commands."""
    opt = "" if default else f" --config {result.config_path}"
    lines = [f"wrote {p} (mode 0600)" for p in (result.config_path, result.targets_path)]
    if result.replaced:
        lines.append("replaced: " + ", ".join(str(p) for p in result.replaced))
    lines += [
        "",
        "Next:",
        f"  1. Edit {result.config_path}:",
        "     [kafka] bootstrap_servers (plus security_protocol, ssl_* / sasl_* for a managed",
        "     Kafka such as Aiven) and [postgres] dsn (needed by the consumer role; or set",
        "     METRICTUI_POSTGRES__DSN). Every other setting has a working default.",
        f"  2. Edit {result.targets_path}: the websites to check (or add them in the dashboard).",
        f"  3. metrictui{opt} check-config    validate both files",
        f"     metrictui{opt} migrate         create the PostgreSQL schema",
        f"     metrictui{opt}                 the dashboard (--headless --role ... on servers)",
    ]
    return "\n".join(lines) + "\n"
