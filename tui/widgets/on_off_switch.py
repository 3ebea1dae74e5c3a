"""A Switch with the word "on"/"off" beside it: readable in 16-colour terminals and over SSH."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static, Switch


def _word(value: bool) -> Text:
    return Text("on ", "bold green") if value else Text("off", "dim")


class OnOffSwitch(Horizontal):
    """Wraps a `Switch` (whose `Switch.Changed` still bubbles) and shows its state as a word."""

    DEFAULT_CSS = """
    OnOffSwitch { height: 1; width: auto; }
    OnOffSwitch Switch { border: none; height: 1; padding: 0; margin-right: 1; }
    OnOffSwitch .on-off-word { width: 4; }
    """

    def __init__(self, value: bool, *, switch_id: str) -> None:
        super().__init__()
        self._value = value
        self._switch_id = switch_id

    def compose(self) -> ComposeResult:
        yield Switch(self._value, id=self._switch_id)
        yield Static(_word(self._value), classes="on-off-word")

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.query_one(".on-off-word", Static).update(_word(event.value))
