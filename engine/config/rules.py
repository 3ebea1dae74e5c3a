"""Rules for single values that a type alone does not say: topic names, schemas, DSNs, ..."""

from __future__ import annotations

import difflib
import re
from urllib.parse import urlsplit

from engine.agent.collectors import COLLECTOR_NAMES
from engine.config.keys import Problem, split_host_port

_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")
_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def suggest(word: str, valid: tuple[str, ...] | list[str]) -> str:
    """'did you mean ...?' for a near miss, else the list of valid words."""
    close = difflib.get_close_matches(word.lower(), list(valid), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"expected one of: {', '.join(valid)}"


def nonempty(value: str) -> None:
    if not value.strip():
        raise Problem("must not be empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise Problem(f"must not contain control characters, got {value!r}")


def topic(value: str) -> None:
    if not _TOPIC_RE.fullmatch(value) or value in (".", ".."):
        raise Problem(f"must be a Kafka topic name (letters, digits, '.', '_', '-'), got {value!r}")


def schema(value: str) -> None:
    if not _SCHEMA_RE.fullmatch(value):
        raise Problem(
            f"must be a lowercase SQL identifier (a-z, 0-9, _; at most 63), got {value!r}"
        )


def listen(value: str) -> None:
    if value == "":
        return
    try:
        split_host_port(value)
    except ValueError as exc:
        raise Problem(
            f"must be host:port like '127.0.0.1:9108' or empty for off ({exc}), got {value!r}"
        ) from None


def serve_listen(value: str) -> None:
    try:
        split_host_port(value)
    except ValueError as exc:
        raise Problem(f"must be host:port like '127.0.0.1:8640' ({exc}), got {value!r}") from None


def public_url(value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise Problem(f"must start with http:// or https://, got {value!r}")


def metrics(value: tuple[str, ...]) -> None:
    for name in value:
        if name not in COLLECTOR_NAMES:
            raise Problem(f"unknown metric {name!r}; {suggest(name, COLLECTOR_NAMES)}")


def dsn(value: str) -> None:
    # The DSN holds the password: no message here may include the value.
    text = value.strip()
    if text.lower().startswith(("postgresql://", "postgres://")):
        try:
            parts = urlsplit(text)
            _ = parts.port
        except ValueError:
            raise Problem("is not a valid postgresql:// URI (value not shown)") from None
        return
    if not re.search(r"(?:^|\s)[A-Za-z_]+\s*=", text):
        raise Problem(
            "must be a postgresql://user@host/db URI or libpq key=value pairs (value not shown)"
        )
