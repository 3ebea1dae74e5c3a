"""The `?` screen: every key of every screen, built from the bindings themselves."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

# Keys that are not dashboard bindings but that people need to know about.
GENERAL_KEYS = (
    ("up/down", "Move through the targets table"),
    ("tab", "Move focus between widgets and form fields"),
    ("ctrl+s", "Save the target form"),
    ("escape", "Close a form, detail view, metrics or this help"),
    ("ctrl+p", "Command palette: every action by name"),
    ("ctrl+q", "Quit from anywhere"),
)


def key_label(key: str) -> str:
    """How a binding's key is written for people ('question_mark' -> '?')."""
    names = {"question_mark": "?", "space": "space", "enter": "enter"}
    return ", ".join(names.get(part, part) for part in key.split(","))


KeySections = list[tuple[str, list[BindingType]]]
"""(screen title, that screen's bindings), in the order the help lists them."""


def keys_table(sections: KeySections) -> Table:
    """Key and what it does (tooltip or description), screen by screen, then the general keys.

    Built from each screen's own BINDINGS, so a key added to a screen cannot be missing here.
    """
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for title, bindings in sections:
        table.add_row(Text(title, "bold underline"), "")
        for binding in bindings:
            if isinstance(binding, Binding):
                table.add_row(key_label(binding.key), binding.tooltip or binding.description)
    table.add_row(Text("Everywhere", "bold underline"), "")
    for key, what in GENERAL_KEYS:
        table.add_row(key, what)
    return table


class HelpScreen(ModalScreen[None]):
    """Lists the keys; any of escape, q or ? closes it."""

    BINDINGS = [
        Binding("escape,q,question_mark", "close", "Close", id="help-close", tooltip="Close"),
    ]

    def __init__(self, sections: KeySections) -> None:
        super().__init__()
        self._keys = sections

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            yield Static(Text("Keys", "bold"), classes="dialog-title")
            with VerticalScroll():
                yield Static(keys_table(self._keys), id="help-keys")
            yield Static(
                Text("escape closes · the footer shows the keys of each screen", "dim"),
                classes="dialog-hint",
            )
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
