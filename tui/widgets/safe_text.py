"""Render untrusted text (target names, URLs, error messages) literally and harmlessly.

Everything here returns `rich.text.Text`, never a markup string, so `[bold]` or
`[@click=app.quit]` stays plain text. Control characters (ESC, BEL, C1, bidi overrides, line
breaks) become visible escapes such as `\\x1b`, so a hostile site cannot move the cursor,
retitle the terminal or reorder what the operator reads.
"""

from __future__ import annotations

import unicodedata

from rich.style import StyleType
from rich.text import Text

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def clean_text(value: str | None, *, max_chars: int | None = None) -> str:
    """`value` with every control/format character replaced by a visible escape, on one line.

    Tabs become a space; longer text is cut to `max_chars` with an ellipsis.
    """
    if not value:
        return ""
    out: list[str] = []
    for ch in value:
        if ch == "\t":
            out.append(" ")
        elif unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            out.append(_escape(ch))
        else:
            out.append(ch)
    text = "".join(out)
    if max_chars is not None and len(text) > max_chars:
        text = text[: max(0, max_chars - 1)] + "…"
    return text


def safe_text(value: str | None, style: StyleType = "", *, max_chars: int | None = None) -> Text:
    """A `Text` showing `value` literally (see `clean_text`), optionally styled."""
    return Text(clean_text(value, max_chars=max_chars), style=style)
