"""Exceptions whose message is meant for the user.

A `UserError` is something the operator can fix (bad config, unreachable server, bad
certificate). Its `str()` is one line that names the cause and what to do; the CLI prints it
without a traceback and exits with `exit_code`.
"""


class UserError(Exception):
    """An error the user caused or can fix; printed as one line, no traceback."""

    exit_code = 1


class ConfigError(UserError):
    """The configuration (file, env override or targets file) is invalid."""

    exit_code = 2


class ConnectError(UserError):
    """A server (Kafka, PostgreSQL) could not be reached or refused us."""

    exit_code = 1
