"""How each config key is typed and checked: one small `Key` class per kind of value.

A key's declaration (in engine/config/model.py) is an instance of one of these; it knows what it
expects in words, how to read an environment variable's text, and how to check and convert a
TOML value. Adding a kind of value means adding a class here, not a branch in three places.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from engine.config.secret import Secret

Rule = Callable[[Any], None]

_HOST_RE = re.compile(r"[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]")


def split_host_port(text: str) -> tuple[str, int]:
    """Split 'host:port' (host may be [IPv6]); raises ValueError with a short reason."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError("no host or no port")
    if not _HOST_RE.fullmatch(host):
        raise ValueError(f"invalid host {host!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be 1..65535, got {port_text!r}")
    return host.strip("[]"), int(port_text)


class Problem(Exception):
    """What is wrong with one value, without the file/key prefix."""


@dataclass(frozen=True, slots=True)
class Given:
    """One value as the user gave it, with where it came from (for messages and paths)."""

    value: object
    label: str
    base_dir: Path
    text: str | None = None  # the environment variable's text, shown in messages as given

    @property
    def shown(self) -> str:
        """The value as a range message repeats it: the env text if that is where it came from."""
        return repr(self.text) if self.text is not None else repr(self.value)


def shown_type(value: object) -> str:
    """A TOML value as a message shows it (never called for secrets)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


@dataclass(frozen=True, kw_only=True)
class Key:
    """One key's type and rule. `convert` returns what the config dataclass holds."""

    optional: bool = False
    rule: Rule | None = None
    words: ClassVar[str] = "a string"

    def expected(self) -> str:
        """What the key wants, in words, for 'must be ...' messages."""
        return self.words

    def type_error(self, value: object) -> Problem:
        return Problem(f"must be {self.expected()}, got {shown_type(value)}")

    def parse_env(self, text: str) -> object:
        """An environment variable's text as the TOML value it stands for."""
        if self.optional and text == "":
            return None
        return self.parse_env_text(text)

    def parse_env_text(self, text: str) -> object:
        return text

    def convert(self, given: Given) -> object:
        """Type-check one value, apply its rule, and return the value the dataclass holds."""
        if given.value is None:
            return None
        value = self.check(given.value, given)
        if self.rule is not None:
            self.rule(value)
        return self.wrap(value)

    def check(self, value: object, given: Given) -> object:
        if not isinstance(value, str):
            raise self.type_error(value)
        return value

    def wrap(self, value: object) -> object:
        return value


@dataclass(frozen=True, kw_only=True)
class StrKey(Key):
    """A string; with `choices`, one of them (matched case-insensitively, stored as declared)."""

    choices: tuple[str, ...] = ()

    def expected(self) -> str:
        return "one of " + ", ".join(self.choices) if self.choices else self.words

    def check(self, value: object, given: Given) -> object:
        text = super().check(value, given)
        assert isinstance(text, str)
        if not self.choices:
            return text
        for choice in self.choices:
            if choice.lower() == text.lower():
                return choice
        raise Problem(f"must be one of {', '.join(self.choices)}, got {text!r}")


@dataclass(frozen=True, kw_only=True)
class SecretKey(Key):
    """A string that is wrapped in `Secret`; `file_key` names the key that reads it from a file."""

    file_key: str = ""

    def check(self, value: object, given: Given) -> object:
        if not isinstance(value, str):
            raise Problem(f"must be {self.expected()}, got a value of the wrong type")
        return value

    def wrap(self, value: object) -> object:
        assert isinstance(value, str)
        return Secret(value)


@dataclass(frozen=True, kw_only=True)
class NumberKey(Key):
    """An int or float within bounds; `lo_open` makes the lower bound exclusive."""

    lo: float
    hi: float
    lo_open: bool = False
    noun: ClassVar[str] = "a number"

    def expected(self) -> str:
        low = f"> {self.lo:g}" if self.lo_open else f">= {self.lo:g}"
        return f"{self.noun} {low} and <= {self.hi:g}"

    def in_range(self, value: float, given: Given) -> None:
        too_low = value <= self.lo if self.lo_open else value < self.lo
        if too_low or value > self.hi:
            raise Problem(f"must be {self.expected()}, got {given.shown}")


@dataclass(frozen=True, kw_only=True)
class IntKey(NumberKey):
    noun: ClassVar[str] = "an integer"

    def parse_env_text(self, text: str) -> object:
        try:
            return int(text.strip())
        except ValueError:
            raise Problem(f"must be {self.expected()}, got {text!r}") from None

    def check(self, value: object, given: Given) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.type_error(value)
        self.in_range(value, given)
        return value


@dataclass(frozen=True, kw_only=True)
class FloatKey(NumberKey):
    lo_open: bool = True

    def parse_env_text(self, text: str) -> object:
        try:
            return float(text.strip())
        except ValueError:
            raise Problem(f"must be {self.expected()}, got {text!r}") from None

    def check(self, value: object, given: Given) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.type_error(value)
        number = float(value)
        if not math.isfinite(number):
            raise Problem(f"must be {self.expected()}, got {given.shown}")
        self.in_range(number, given)
        return number


@dataclass(frozen=True, kw_only=True)
class WorkersKey(NumberKey):
    """``"auto"`` or a process count within bounds."""

    def expected(self) -> str:
        return f'"auto" or an integer >= {self.lo:g} and <= {self.hi:g}'

    def parse_env_text(self, text: str) -> object:
        return int(text.strip()) if text.strip().lstrip("-").isdigit() else text

    def check(self, value: object, given: Given) -> object:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.type_error(value)
        if not self.lo <= value <= self.hi:
            raise Problem(f"must be {self.expected()}, got {given.shown}")
        return value


@dataclass(frozen=True, kw_only=True)
class BoolKey(Key):
    words: ClassVar[str] = "true or false"

    def parse_env_text(self, text: str) -> object:
        word = text.strip().lower()
        if word in ("true", "1", "yes"):
            return True
        if word in ("false", "0", "no"):
            return False
        raise Problem(f"must be true/false/1/0/yes/no, got {text!r}")

    def check(self, value: object, given: Given) -> object:
        if not isinstance(value, bool):
            raise self.type_error(value)
        return value


@dataclass(frozen=True, kw_only=True)
class PathKey(Key):
    """A path, relative to the file that gave it; `empty_means_off`: "" turns the feature off.

    `env_default` computes the default from the environment the config is loaded with (XDG
    directories), so tests that pass their own environment get their own default.
    """

    empty_means_off: bool = False
    env_default: Callable[[Mapping[str, str]], Path] | None = None
    words: ClassVar[str] = "a path string"

    def check(self, value: object, given: Given) -> object:
        if not isinstance(value, str):
            raise self.type_error(value)
        if not value.strip():
            if self.empty_means_off:
                return Path("")  # callers treat "" (shown as ".") as off
            raise Problem("must not be empty; expected a path")
        path = Path(value).expanduser()
        return path if path.is_absolute() else given.base_dir / path


@dataclass(frozen=True, kw_only=True)
class ListKey(Key):
    """An array of strings (a comma-separated list in an environment variable), de-duplicated."""

    words: ClassVar[str] = "an array of strings"

    def parse_env_text(self, text: str) -> object:
        return [item.strip() for item in text.split(",") if item.strip()]

    def check(self, value: object, given: Given) -> object:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.type_error(value)
        return tuple(dict.fromkeys(value))


@dataclass(frozen=True, kw_only=True)
class ServersKey(Key):
    """Kafka bootstrap servers: host:port, as a comma-separated string or an array."""

    words: ClassVar[str] = "host:port or a list of host:port"

    def check(self, value: object, given: Given) -> object:
        if isinstance(value, str):
            items = [item.strip() for item in value.split(",")]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            items = [item.strip() for item in value]
        else:
            raise self.type_error(value)
        if not any(items):
            raise Problem("must list at least one host:port")
        for item in items:
            try:
                split_host_port(item)
            except ValueError as exc:
                raise Problem(f"must be host:port[,host:port...] ({exc}), got {item!r}") from None
        return ",".join(items)
