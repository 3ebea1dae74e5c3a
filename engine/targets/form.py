"""Targets typed into the TUI form: strings as typed -> typed values, with problems per field.

The rules are the targets file's own (engine.targets.model); this only reads what a person
types ("200, 301", "Name: value" lines, "yes") into the values those rules check.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, escape_controls
from engine.targets.model import (
    FALSE_WORDS,
    TRUE_WORDS,
    Problem,
    Target,
    target_from_dict,
    validate,
)


def _form_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise Problem(f"must be true or false, got {text!r}")


def _form_number(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise Problem(f"must be a number of seconds, got {text!r}") from None


def _form_status_codes(text: str) -> list[int]:
    codes: list[int] = []
    for word in text.replace(",", " ").split():
        try:
            codes.append(int(word))
        except ValueError:
            raise Problem(f"must be status codes like 200, 301; got {word!r}") from None
    return codes


def _form_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise Problem(f"each line must be 'Name: value', got {line!r}")
        name = name.strip()
        if name.lower() in (known.lower() for known in headers):
            raise Problem(f"header {name!r} is given twice")
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
        except Problem as exc:
            problems[key] = escape_controls(str(exc))
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
    _, rule_problems = validate(typed, base_dir)
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
        raise ConfigError(escape_controls(f"target {field}: {problem}"))
    return target_from_dict(typed, where="target", base_dir=base_dir)
