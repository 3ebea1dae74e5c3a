"""Website targets: the `[[targets]]` file the TUI edits, and the rules a target must obey.

Targets live in their own TOML file (not the hand-written main config) because the program
rewrites it when the operator adds or edits a target. Each rule lives in one `_check_*`
function, used both by `target_from_dict` (file loading: strict TOML types, raises
`ConfigError`) and by `target_field_problems` (the TUI form: strings as typed, returns inline
problems per field), so the form and the file can never disagree.
"""

from __future__ import annotations

import difflib
import math
import os
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engine.errors import ConfigError, escape_controls
from engine.targets.regex import regex_problem

NAME_MAX_CHARS = 100
URL_MAX_CHARS = 2048
MAX_SECONDS = 86400.0
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})


@dataclass(frozen=True, slots=True)
class Target:
    """One website to check: what to request, how often, and what counts as healthy."""

    name: str
    url: str
    interval: float = 30.0
    timeout: float = 10.0
    method: str = "GET"
    expect_status: tuple[int, ...] = ()
    regex: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    verify_tls: bool = True
    ca_file: str | None = None
    enabled: bool = True
    locations: tuple[str, ...] = ()
    """Fleet locations that check this target; empty means every location."""

    def checked_in(self, location: str) -> bool:
        """Whether agents of `location` check this target (a fleet restricts by `locations`)."""
        return not self.locations or location in self.locations


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Target))
_REQUIRED = ("name", "url")


class Problem(Exception):
    """A rule a single field broke; the text is the human explanation, without the field name."""


def _type_name(value: object) -> str:
    """How a TOML value's type is called in messages (TOML words, not Python ones)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _has_control_chars(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


# --- one function per rule -----------------------------------------------------------------


def _check_name(value: object, base_dir: Path) -> str:
    if not isinstance(value, str):
        raise Problem(f"must be a string, got {_type_name(value)}")
    if not value.strip():
        raise Problem("must not be empty")
    if value != value.strip():
        raise Problem(f"must not start or end with whitespace, got {value!r}")
    if len(value) > NAME_MAX_CHARS:
        raise Problem(f"must be at most {NAME_MAX_CHARS} characters, got {len(value)}")
    if _has_control_chars(value):
        raise Problem(f"must not contain control characters, got {value!r}")
    return value


def _check_url(value: object, base_dir: Path) -> str:
    if not isinstance(value, str):
        raise Problem(f"must be a string, got {_type_name(value)}")
    if not value:
        raise Problem("must not be empty; expected an http:// or https:// URL")
    if len(value) > URL_MAX_CHARS:
        raise Problem(f"must be at most {URL_MAX_CHARS} characters, got {len(value)}")
    if any(ch.isspace() for ch in value) or _has_control_chars(value):
        raise Problem(f"must not contain spaces or control characters, got {value!r}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise Problem(f"is not a valid URL ({exc}), got {value!r}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise Problem(f"must start with http:// or https://, got {value!r}")
    host = parts.hostname
    if not host:
        raise Problem(f"must name a host (http://host/...), got {value!r}")
    if port == 0:
        raise Problem(f"port must be 1..65535, got {value!r}")
    try:
        host.encode("idna")
    except UnicodeError:
        raise Problem(f"has an invalid host name {host!r}") from None
    return value


def _seconds(value: object, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Problem(f"must be a number of seconds, got {_type_name(value)}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0 or seconds > maximum:
        raise Problem(f"must be a number of seconds > 0 and <= {maximum:g}, got {value!r}")
    return seconds


def _check_interval(value: object, base_dir: Path) -> float:
    return _seconds(value, MAX_SECONDS)


def _check_timeout(value: object, base_dir: Path) -> float:
    return _seconds(value, MAX_SECONDS)


def _check_method(value: object, base_dir: Path) -> str:
    if not isinstance(value, str):
        raise Problem(f"must be a string, got {_type_name(value)}")
    method = value.upper()
    if method not in METHODS:
        raise Problem(f"must be one of {', '.join(METHODS)}, got {value!r}")
    return method


def _check_expect_status(value: object, base_dir: Path) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        raise Problem(f"must be an array of HTTP status codes, got {_type_name(value)}")
    codes: list[int] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise Problem(f"must contain integers 100..599, got {_type_name(item)}")
        if not 100 <= item <= 599:
            raise Problem(f"must contain status codes 100..599, got {item}")
        if item not in codes:
            codes.append(item)
    return tuple(codes)


def _check_regex(value: object, base_dir: Path) -> str | None:
    if not isinstance(value, str):
        raise Problem(f"must be a string (RE2 syntax), got {_type_name(value)}")
    if value == "":
        return None
    problem = regex_problem(value)
    if problem is not None:
        raise Problem(problem)
    return value


def _check_headers(value: object, base_dir: Path) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise Problem(f"must be a table of name = value strings, got {_type_name(value)}")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, header_value in value.items():
        if not isinstance(name, str) or not name or any(ch not in _TOKEN_CHARS for ch in name):
            raise Problem(f"header name {name!r} is not a valid HTTP token")
        if name.lower() in seen:
            raise Problem(f"header {name!r} is given twice")
        seen.add(name.lower())
        if not isinstance(header_value, str):
            raise Problem(f"header {name!r} must be a string, got {_type_name(header_value)}")
        if any(unicodedata.category(ch) == "Cc" and ch != "\t" for ch in header_value):
            raise Problem(f"header {name!r} must not contain control characters or newlines")
        pairs.append((name, header_value))
    return tuple(pairs)


def _check_bool(value: object, base_dir: Path) -> bool:
    if not isinstance(value, bool):
        raise Problem(f"must be true or false, got {_type_name(value)}")
    return value


def _check_ca_file(value: object, base_dir: Path) -> str | None:
    if not isinstance(value, str):
        raise Problem(f"must be a path string, got {_type_name(value)}")
    if value == "":
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise Problem(f"file not found: {path} (expected a PEM CA certificate)")
    if not os.access(path, os.R_OK):
        raise Problem(f"file is not readable: {path}")
    return str(path.resolve())


LOCATION_MAX_CHARS = 64


def check_location_name(value: object) -> str:
    """One location name: what `[agent] location` and a target's `locations` entries obey."""
    if not isinstance(value, str):
        raise Problem(f"must be a string, got {_type_name(value)}")
    if not value or len(value) > LOCATION_MAX_CHARS:
        raise Problem(f"must be 1..{LOCATION_MAX_CHARS} characters, got {value!r}")
    if any(not (ch.isalnum() or ch in "._-") for ch in value):
        raise Problem(f"must be letters, digits, '.', '_' or '-', got {value!r}")
    return value


def location_problem(value: object) -> str | None:
    """Why `value` is not a valid location name (one line), or None."""
    try:
        check_location_name(value)
    except Problem as exc:
        return str(exc)
    return None


def _check_locations(value: object, base_dir: Path) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise Problem(f"must be an array of location names, got {_type_name(value)}")
    names: list[str] = []
    for item in value:
        try:
            name = check_location_name(item)
        except Problem as exc:
            raise Problem(f"entry {exc}") from None
        if name not in names:
            names.append(name)
    return tuple(names)


_CHECKS: dict[str, Callable[[object, Path], object]] = {
    "name": _check_name,
    "url": _check_url,
    "interval": _check_interval,
    "timeout": _check_timeout,
    "method": _check_method,
    "expect_status": _check_expect_status,
    "regex": _check_regex,
    "headers": _check_headers,
    "verify_tls": _check_bool,
    "ca_file": _check_ca_file,
    "enabled": _check_bool,
    "locations": _check_locations,
}


def _unknown_key_problem(key: str) -> str:
    close = difflib.get_close_matches(key, FIELD_NAMES, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(FIELD_NAMES)}"
    return f"unknown key; {hint}"


def validate(raw: Mapping[str, Any], base_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Apply every rule; return (parsed values, problems by field) in a stable order."""
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for key in raw:
        if key not in _CHECKS:
            problems[str(key)] = _unknown_key_problem(str(key))
    for key in _REQUIRED:
        if key not in raw:
            problems[key] = "is required"
    for key, check in _CHECKS.items():
        if key in raw:
            try:
                values[key] = check(raw[key], base_dir)
            except Problem as exc:
                problems[key] = escape_controls(str(exc))
    return values, problems


def target_from_dict(raw: Mapping[str, Any], *, where: str, base_dir: Path) -> Target:
    """Build a Target from one TOML table; `where` prefixes the error ("targets.toml: ...").

    Raises ConfigError naming the first broken field. Relative `ca_file` paths are resolved
    against `base_dir` (the targets file's directory) and stored absolute.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(escape_controls(f"{where}: must be a table, got {_type_name(raw)}"))
    values, problems = validate(raw, base_dir)
    if problems:
        field, problem = next(iter(problems.items()))
        raise ConfigError(escape_controls(f"{where} {field}: {problem}"))
    return Target(**values)


def _plain_number(value: float) -> int | float:
    """10.0 -> 10: the file says `interval = 10`, as a person writes it, not `10.0`."""
    return int(value) if value.is_integer() else value


def target_to_dict(t: Target) -> dict[str, Any]:
    """A TOML-ready table for `t`, leaving out values equal to the defaults."""
    out: dict[str, Any] = {"name": t.name, "url": t.url}
    if t.interval != 30.0:
        out["interval"] = _plain_number(t.interval)
    if t.timeout != 10.0:
        out["timeout"] = _plain_number(t.timeout)
    if t.method != "GET":
        out["method"] = t.method
    if t.expect_status:
        out["expect_status"] = list(t.expect_status)
    if t.regex is not None:
        out["regex"] = t.regex
    if t.headers:
        out["headers"] = dict(t.headers)
    if not t.verify_tls:
        out["verify_tls"] = False
    if t.ca_file is not None:
        out["ca_file"] = t.ca_file
    if not t.enabled:
        out["enabled"] = False
    if t.locations:
        out["locations"] = list(t.locations)
    return out
