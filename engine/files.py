"""Our own files on disk: TOML read with one-line errors, and writes that a crash cannot tear."""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, escape_controls


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` via a temp file in the same directory, fsync, rename, and fsync
    of the directory, so a crash at any moment leaves the old file or the new one, never half
    of one, and the rename itself survives a power cut. The file gets `mode` (owner-only by
    default: the config and targets files can hold secrets).
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            os.fchmod(tmp.fileno(), mode)
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> str:
    """`line N: invalid TOML: <what>` from tomllib's '<what> (at line N, column M)'."""
    message = str(exc)
    what, sep, position = message.rpartition(" (at line ")
    if sep:
        line, _, column = position.rstrip(")").partition(", column ")
        where = f" (column {column})" if column else ""
        return f"line {line}: invalid TOML: {what}{where}"
    return f"invalid TOML: {message}"


def read_toml(path: Path, label: str) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into a one-line ConfigError naming `label`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: is a directory, expected a TOML file") from None
    except OSError as exc:
        raise ConfigError(escape_controls(f"{label}: cannot read: {exc.strerror or exc}")) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: invalid TOML: file is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(escape_controls(f"{label}: {_toml_error_line(exc)}")) from None
