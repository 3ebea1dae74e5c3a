"""Content regexes: RE2, compiled once, with one way of saying why a pattern is refused.

RE2 matches in linear time, so a page crafted against a backtracking pattern such as
``(a+)+$`` cannot pin a core. The targets file, the form and the checker all go through here.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

from engine.errors import escape_controls


@functools.lru_cache(maxsize=16384)
def compile_regex(pattern: str) -> Any:
    """RE2-compile a content regex once (cached); raises `re2.error` when it is invalid."""
    options = re2.Options()
    options.log_errors = False  # the reason goes into the result or the message, not to stderr
    return re2.compile(pattern, options)


def regex_problem(pattern: str) -> str | None:
    """Why RE2 rejects `pattern` (one line), or None when it compiles."""
    try:
        compile_regex(pattern)
    except re2.error as exc:
        return escape_controls(f"is not a valid RE2 regex: {regex_error_text(exc)}")
    return None


def regex_error_text(exc: Exception) -> str:
    """RE2's reason as text (it may come as bytes, or not at all)."""
    detail = exc.args[0] if exc.args else "invalid pattern"
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return str(detail)
