"""Why a website check failed: the reasons, and turning an exception into one with its text."""

from __future__ import annotations

import os
import socket
import ssl
from enum import StrEnum


class Reason(StrEnum):
    """Why a check failed: the `reason` column of checks_v and the dashboard's reason."""

    DNS_ERROR = "dns_error"
    CONNECT_ERROR = "connect_error"
    TLS_ERROR = "tls_error"
    TIMEOUT = "timeout"
    STATUS_MISMATCH = "status_mismatch"
    CONTENT_MISMATCH = "content_mismatch"
    BODY_TOO_LARGE = "body_too_large"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    INVALID_RESPONSE = "invalid_response"
    ERROR = "error"


REASONS: tuple[str, ...] = tuple(Reason)

ERROR_MAX_CHARS = 300
"""`CheckResult.error` is capped so a hostile server cannot flood logs, Kafka or the UI."""


def squash_line(text: str, limit: int = ERROR_MAX_CHARS) -> str:
    """Squash any text (possibly from a remote server) into one printable line of `limit` chars.

    Whitespace runs (newlines included) become one space and other control characters become
    U+FFFD, so the text stays literal and single-line in logs; the UI still escapes markup.
    """
    squashed = " ".join(text.split())
    cleaned = "".join(
        "\ufffd" if (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0) else ch for ch in squashed
    )
    if len(cleaned) > limit:
        return cleaned[: limit - 1] + "\u2026"
    return cleaned


class CheckFailure(Exception):
    """A check outcome that ends the check early with a `Reason`."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def os_error_text(error: OSError) -> str:
    """`Connection refused` rather than asyncio's `Connect call failed ('1.2.3.4', 80)`."""
    if isinstance(error, socket.gaierror):
        return str(error.strerror or error)
    if error.errno:
        return os.strerror(error.errno)
    return str(error)


def explain_check_error(exc: BaseException) -> str:
    """A human sentence for an unexpected exception while checking a site (not yet one-lined).

    The checker raises `CheckFailure` with its own sentence for everything it expects; this
    covers what is left (a connection reset mid-exchange, a bug)."""
    if isinstance(exc, OSError) and exc.errno:
        return f"connection failed: {os_error_text(exc)}"
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def classify_error(exc: BaseException) -> Reason:
    """Map an unexpected exception raised while checking a site to a reason from `REASONS`."""
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return Reason.TLS_ERROR
    if isinstance(exc, socket.gaierror):
        return Reason.DNS_ERROR
    if isinstance(exc, ConnectionError | OSError):
        # The connection was made but then reset or broken mid-exchange.
        return Reason.CONNECT_ERROR
    if isinstance(exc, TimeoutError):
        return Reason.TIMEOUT
    return Reason.ERROR
