"""Exceptions whose message is meant for the user.

A `UserError` is something the operator can fix (bad config, unreachable server, bad
certificate). Its `str()` is one line that names the cause and what to do; the CLI prints it
without a traceback and exits with `exit_code`.
"""

import unicodedata


class UserError(Exception):
    """An error the user caused or can fix; printed as one line, no traceback."""

    exit_code = 1


class ConfigError(UserError):
    """The configuration (file, env override or targets file) is invalid."""

    exit_code = 2


class ConnectError(UserError):
    """A server (Kafka, PostgreSQL) could not be reached or refused us."""

    exit_code = 1


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, cut at `limit` characters; "" if it has none.

    Library errors (libpq, aiokafka) can run to many lines; a log line or a status field
    wants the first, which names the problem.
    """
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else ""


def describe_error(exc: BaseException, limit: int = 200) -> str:
    """'<ExceptionName>: <first line>', or just the name when the message is empty."""
    detail = first_line(exc, limit)
    name = type(exc).__name__
    return f"{name}: {detail}" if detail else name


def escape_controls(text: str) -> str:
    """Make text safe for a one-line message: control characters become visible escapes."""
    out: list[str] = []
    for ch in text:
        if ch in "\r\n\t" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(repr(ch)[1:-1])
        else:
            out.append(ch)
    return "".join(out)
