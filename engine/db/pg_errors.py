"""PostgreSQL's errors, judged once: what a user may read, what is fatal, what is the data's fault.

Every place that talks to PostgreSQL (the sink, migrate, retention, report, the CLI) asks
these functions instead of keeping its own list of SQLSTATEs, so the policy is one policy.
"""

from __future__ import annotations

import psycopg

from engine.errors import first_line
from engine.stats import Problem

_AUTH_SQLSTATES = {"28P01", "28000", "3D000", "42501"}


def postgres_error_line(exc: psycopg.Error) -> str:
    """One secret-free line for a PostgreSQL connection/auth problem."""
    state = getattr(exc, "sqlstate", None)
    text = first_line(exc, limit=100_000) or type(exc).__name__
    # libpq messages can echo the host and user, never the password; drop any DSN echo anyway.
    text = text.split("password=")[0].strip()
    return f"PostgreSQL: {text[:240]}" + (f" (SQLSTATE {state})" if state else "")


def rejects_content(exc: psycopg.Error) -> bool:
    """The database refused the data itself (SQLSTATE class 22 data exception, 23 integrity
    violation, 54 program limit such as an oversized index row): dead-letter, do not retry."""
    state = getattr(exc, "sqlstate", None) or ""
    return state[:2] in ("22", "23", "54")


def postgres_problem(exc: psycopg.Error) -> Problem | None:
    """The cause and what to fix, when retrying will not help until the operator acts (a
    password changed or a server certificate that stopped verifying after start); else None.
    """
    state = getattr(exc, "sqlstate", None)
    text = str(exc)
    if state in ("28P01", "28000") or "password authentication failed" in text:
        code, fix = "password", "check the user and password in [postgres] dsn"
    elif state == "3D000":
        code, fix = "database", "check the database name in [postgres] dsn"
    elif state == "42501":
        code, fix = "privileges", "grant the sink's role its privileges (README: least privilege)"
    elif "certificate" in text:
        code = "server_certificate"
        fix = "check sslrootcert in [postgres] dsn (the CA that signed the server's certificate)"
    else:
        return None
    return Problem(code, f"{postgres_error_line(exc)}; {fix}")


def is_fatal_postgres_error(exc: psycopg.Error) -> bool:
    """Wrong password, unknown database or missing privilege will not fix itself by retrying."""
    state = getattr(exc, "sqlstate", None)
    if state in _AUTH_SQLSTATES:
        return True
    text = str(exc)
    return "password authentication failed" in text or "certificate" in text
