"""Rules for single values that a type alone does not say: topic names, schemas, DSNs, ..."""

from __future__ import annotations

import difflib
import re

from engine.agent.collector_names import COLLECTOR_NAMES
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


_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_DSN_INTEGERS = ("port", "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval")


def dsn(value: str) -> None:
    """Parse the DSN as libpq will, now: a DSN that cannot work is a config error, not an outage.

    libpq only reads the port, sslmode and so on when it connects; left to then, a typo makes
    `--headless` retry forever. The DSN holds the password: no message here may include the
    value (a keyword name may be shown, a value never).
    """
    from psycopg import ProgrammingError, conninfo

    text = value.strip()
    if not text:
        raise Problem("must not be empty (value not shown)")
    try:
        params = conninfo.conninfo_to_dict(text)
    except ProgrammingError as exc:
        raise Problem(_libpq_parse_problem(str(exc))) from None
    if not params:
        raise Problem("names no host, database or user (value not shown)")
    for key in _DSN_INTEGERS:
        for item in str(params.get(key, "0")).split(","):
            if not item.strip().isdigit():
                raise Problem(f"{key} must be a number (value not shown)")
    hosts = str(params.get("host", "x")).split(",")
    if any(not h.strip() for h in hosts):
        raise Problem("has an empty host (or host list) (value not shown)")
    ports = str(params.get("port", "1")).split(",")
    if len(ports) not in (1, len(hosts)):
        raise Problem(f"lists {len(hosts)} hosts but {len(ports)} ports (value not shown)")
    if "port" in params and any(not 1 <= int(p) <= 65535 for p in ports):
        raise Problem("port must be 1..65535 (value not shown)")
    sslmode = params.get("sslmode")
    if sslmode is not None and sslmode not in _SSLMODES:
        raise Problem(f"sslmode must be one of {', '.join(_SSLMODES)} (value not shown)")


def _libpq_parse_problem(message: str) -> str:
    """libpq's parse error, reduced to what cannot leak a secret."""
    unknown = re.search(
        r'invalid (?:connection option|URI query parameter):? "([A-Za-z_]{1,40})"', message
    )
    if unknown:
        return f"unknown keyword {unknown.group(1)!r} (value not shown)"
    if "unterminated quoted string" in message:
        return "has an unterminated quote (value not shown)"
    if "missing" in message and '"="' in message:
        return "must be a postgresql://user@host/db URI or libpq key=value pairs (value not shown)"
    return "cannot be parsed by libpq (value not shown)"
