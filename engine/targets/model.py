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
import tempfile
import tomllib
import unicodedata
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import re2
import tomli_w

from engine.errors import ConfigError

NAME_MAX_CHARS = 100
URL_MAX_CHARS = 2048
MAX_SECONDS = 86400.0
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


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


class _Problem(Exception):
    """A rule a single field broke; the text is the human explanation, without the field name."""


def one_line(text: str) -> str:
    """Make text safe for a one-line message: control characters become visible escapes."""
    out: list[str] = []
    for ch in text:
        if ch in "\r\n\t" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(repr(ch)[1:-1])
        else:
            out.append(ch)
    return "".join(out)


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
        raise _Problem(f"must be a string, got {_type_name(value)}")
    if not value.strip():
        raise _Problem("must not be empty")
    if value != value.strip():
        raise _Problem(f"must not start or end with whitespace, got {value!r}")
    if len(value) > NAME_MAX_CHARS:
        raise _Problem(f"must be at most {NAME_MAX_CHARS} characters, got {len(value)}")
    if _has_control_chars(value):
        raise _Problem(f"must not contain control characters, got {value!r}")
    return value


def _check_url(value: object, base_dir: Path) -> str:
    if not isinstance(value, str):
        raise _Problem(f"must be a string, got {_type_name(value)}")
    if not value:
        raise _Problem("must not be empty; expected an http:// or https:// URL")
    if len(value) > URL_MAX_CHARS:
        raise _Problem(f"must be at most {URL_MAX_CHARS} characters, got {len(value)}")
    if any(ch.isspace() for ch in value) or _has_control_chars(value):
        raise _Problem(f"must not contain spaces or control characters, got {value!r}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise _Problem(f"is not a valid URL ({exc}), got {value!r}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _Problem(f"must start with http:// or https://, got {value!r}")
    host = parts.hostname
    if not host:
        raise _Problem(f"must name a host (http://host/...), got {value!r}")
    if port == 0:
        raise _Problem(f"port must be 1..65535, got {value!r}")
    try:
        host.encode("idna")
    except UnicodeError:
        raise _Problem(f"has an invalid host name {host!r}") from None
    return value


def _seconds(value: object, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Problem(f"must be a number of seconds, got {_type_name(value)}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0 or seconds > maximum:
        raise _Problem(f"must be a number of seconds > 0 and <= {maximum:g}, got {value!r}")
    return seconds


def _check_interval(value: object, base_dir: Path) -> float:
    return _seconds(value, MAX_SECONDS)


def _check_timeout(value: object, base_dir: Path) -> float:
    return _seconds(value, MAX_SECONDS)


def _check_method(value: object, base_dir: Path) -> str:
    if not isinstance(value, str):
        raise _Problem(f"must be a string, got {_type_name(value)}")
    method = value.upper()
    if method not in METHODS:
        raise _Problem(f"must be one of {', '.join(METHODS)}, got {value!r}")
    return method


def _check_expect_status(value: object, base_dir: Path) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        raise _Problem(f"must be an array of HTTP status codes, got {_type_name(value)}")
    codes: list[int] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise _Problem(f"must contain integers 100..599, got {_type_name(item)}")
        if not 100 <= item <= 599:
            raise _Problem(f"must contain status codes 100..599, got {item}")
        if item not in codes:
            codes.append(item)
    return tuple(codes)


def regex_problem(pattern: str) -> str | None:
    """Why RE2 rejects `pattern` (one line), or None when it compiles."""
    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return one_line(f"is not a valid RE2 regex: {detail}")
    return None


def _check_regex(value: object, base_dir: Path) -> str | None:
    if not isinstance(value, str):
        raise _Problem(f"must be a string (RE2 syntax), got {_type_name(value)}")
    if value == "":
        return None
    problem = regex_problem(value)
    if problem is not None:
        raise _Problem(problem)
    return value


def _check_headers(value: object, base_dir: Path) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise _Problem(f"must be a table of name = value strings, got {_type_name(value)}")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, header_value in value.items():
        if not isinstance(name, str) or not name or any(ch not in _TOKEN_CHARS for ch in name):
            raise _Problem(f"header name {name!r} is not a valid HTTP token")
        if name.lower() in seen:
            raise _Problem(f"header {name!r} is given twice")
        seen.add(name.lower())
        if not isinstance(header_value, str):
            raise _Problem(f"header {name!r} must be a string, got {_type_name(header_value)}")
        if any(unicodedata.category(ch) == "Cc" and ch != "\t" for ch in header_value):
            raise _Problem(f"header {name!r} must not contain control characters or newlines")
        pairs.append((name, header_value))
    return tuple(pairs)


def _check_bool(value: object, base_dir: Path) -> bool:
    if not isinstance(value, bool):
        raise _Problem(f"must be true or false, got {_type_name(value)}")
    return value


def _check_ca_file(value: object, base_dir: Path) -> str | None:
    if not isinstance(value, str):
        raise _Problem(f"must be a path string, got {_type_name(value)}")
    if value == "":
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise _Problem(f"file not found: {path} (expected a PEM CA certificate)")
    if not os.access(path, os.R_OK):
        raise _Problem(f"file is not readable: {path}")
    return str(path.resolve())


LOCATION_MAX_CHARS = 64


def check_location_name(value: object) -> str:
    """One location name: what `[agent] location` and a target's `locations` entries obey."""
    if not isinstance(value, str):
        raise _Problem(f"must be a string, got {_type_name(value)}")
    if not value or len(value) > LOCATION_MAX_CHARS:
        raise _Problem(f"must be 1..{LOCATION_MAX_CHARS} characters, got {value!r}")
    if any(not (ch.isalnum() or ch in "._-") for ch in value):
        raise _Problem(f"must be letters, digits, '.', '_' or '-', got {value!r}")
    return value


def location_problem(value: object) -> str | None:
    """Why `value` is not a valid location name (one line), or None."""
    try:
        check_location_name(value)
    except _Problem as exc:
        return str(exc)
    return None


def _check_locations(value: object, base_dir: Path) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise _Problem(f"must be an array of location names, got {_type_name(value)}")
    names: list[str] = []
    for item in value:
        try:
            name = check_location_name(item)
        except _Problem as exc:
            raise _Problem(f"entry {exc}") from None
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


def _validate(raw: Mapping[str, Any], base_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
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
            except _Problem as exc:
                problems[key] = one_line(str(exc))
    return values, problems


def target_from_dict(raw: Mapping[str, Any], *, where: str, base_dir: Path) -> Target:
    """Build a Target from one TOML table; `where` prefixes the error ("targets.toml: ...").

    Raises ConfigError naming the first broken field. Relative `ca_file` paths are resolved
    against `base_dir` (the targets file's directory) and stored absolute.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(one_line(f"{where}: must be a table, got {_type_name(raw)}"))
    values, problems = _validate(raw, base_dir)
    if problems:
        field, problem = next(iter(problems.items()))
        raise ConfigError(one_line(f"{where} {field}: {problem}"))
    return Target(**values)


# --- the TUI form ----------------------------------------------------------------------------


def _form_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise _Problem(f"must be true or false, got {text!r}")


def _form_number(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise _Problem(f"must be a number of seconds, got {text!r}") from None


def _form_status_codes(text: str) -> list[int]:
    codes: list[int] = []
    for word in text.replace(",", " ").split():
        try:
            codes.append(int(word))
        except ValueError:
            raise _Problem(f"must be status codes like 200, 301; got {word!r}") from None
    return codes


def _form_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _Problem(f"each line must be 'Name: value', got {line!r}")
        name = name.strip()
        if name.lower() in (known.lower() for known in headers):
            raise _Problem(f"header {name!r} is given twice")
        headers[name] = value.strip()
    return headers


_OPTIONAL_IF_BLANK = ("interval", "timeout", "method", "regex", "ca_file")


def _coerce_form(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn form strings into TOML-typed values; blank optional fields mean the default."""
    typed: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            typed[key] = value
            continue
        text = value if key == "regex" else value.strip()
        if key in _OPTIONAL_IF_BLANK and text == "":
            continue
        try:
            if key in ("interval", "timeout"):
                typed[key] = _form_number(text)
            elif key in ("verify_tls", "enabled"):
                typed[key] = _form_bool(text)
            elif key == "expect_status":
                typed[key] = _form_status_codes(text)
            elif key == "locations":
                typed[key] = [word for word in text.replace(",", " ").split() if word]
            elif key == "headers":
                typed[key] = _form_headers(value)
            else:
                typed[key] = text
        except _Problem as exc:
            problems[key] = one_line(str(exc))
    return typed, problems


def target_field_problems(
    raw: Mapping[str, Any], base_dir: Path, *, taken_names: Collection[str] = ()
) -> dict[str, str]:
    """Problems per field of a target typed into the TUI form ({} when it is valid).

    Values may be strings as typed (numbers, "200, 301", "Name: value" lines for headers,
    "true"/"false") or already typed values. `taken_names` lets the form flag a name that
    another target already uses.
    """
    typed, problems = _coerce_form(raw)
    _, rule_problems = _validate(typed, base_dir)
    for key, problem in rule_problems.items():
        problems.setdefault(key, problem)
    name = typed.get("name")
    if "name" not in problems and isinstance(name, str) and name in taken_names:
        problems["name"] = f"another target is already called {name!r}"
    return problems


def target_from_form(raw: Mapping[str, Any], base_dir: Path) -> Target:
    """Build a Target from form values (strings as typed); raises ConfigError like the file does."""
    typed, problems = _coerce_form(raw)
    if problems:
        field, problem = next(iter(problems.items()))
        raise ConfigError(one_line(f"target {field}: {problem}"))
    return target_from_dict(typed, where="target", base_dir=base_dir)


# --- the file --------------------------------------------------------------------------------


def target_to_dict(t: Target) -> dict[str, Any]:
    """A TOML-ready table for `t`, leaving out values equal to the defaults."""
    out: dict[str, Any] = {"name": t.name, "url": t.url}
    if t.interval != 30.0:
        out["interval"] = t.interval
    if t.timeout != 10.0:
        out["timeout"] = t.timeout
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
        raise ConfigError(one_line(f"{label}: cannot read: {exc.strerror or exc}")) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: invalid TOML: file is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(one_line(f"{label}: {_toml_error_line(exc)}")) from None


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
                one_line(f"{label}: {key}: unknown key; {close}expected only [[targets]] entries")
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
            raise ConfigError(one_line(f"{where} name: duplicate target name {target.name!r}"))
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
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            os.fchmod(tmp.fileno(), 0o600)
            tmp.write(text.encode("utf-8"))
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
