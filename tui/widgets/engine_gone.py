"""The banner an attached dashboard shows while its engine is gone: impossible to miss.

Without it every value just freezes ("Kafka up", "checked 4s ago") and the dashboard looks
healthy. The banner says when the engine was last heard from, and that it is being retried.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.text import Text

from tui.widgets.line import Line
from tui.widgets.units import human_age


def engine_gone_text(last_contact: datetime | None, now: datetime) -> Text:
    """'ENGINE GONE · last contact 12:03:04 UTC, 35s ago · stale values · re-attaching…'."""
    text = Text("ENGINE GONE", "bold")
    if last_contact is not None:
        text.append(f" · last contact {last_contact.astimezone(UTC):%H:%M:%S} UTC, ")
        text.append(human_age(last_contact, now))
    text.append(" · stale values · re-attaching…")
    return text


class EngineGoneBanner(Line):
    """One red line under the header, shown only while the attached engine cannot be reached."""

    DEFAULT_CSS = """
    EngineGoneBanner {
        display: none;
        background: $error;
        color: $text;
        padding: 0 1;
    }
    """
