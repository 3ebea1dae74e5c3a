"""Add or edit a website target: validates every field inline and saves nothing invalid.

Validation is `engine.targets.model.target_field_problems`, the same rules the targets file obeys,
so the form and the file cannot disagree. The engine (local or attached) applies and saves.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Static, Switch

from engine.control.protocol import Control
from engine.errors import ConfigError, UserError
from engine.targets import Target, target_field_problems, target_from_form
from tui.widgets.on_off_switch import OnOffSwitch
from tui.widgets.safe_text import safe_text

# (field, label, placeholder) of the text inputs, in form order.
TEXT_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("name", "Name", "unique name, e.g. api-health"),
    ("url", "URL", "https://example.com/health"),
    ("interval", "Interval (s)", "30"),
    ("timeout", "Timeout (s)", "10"),
    ("method", "Method", "GET"),
    ("expect_status", "Expect status", "200, 301   (empty: any 2xx/3xx)"),
    ("regex", "Content regex", "RE2, optional"),
    ("headers", "Headers", "Name: value; Name2: value"),
    ("ca_file", "CA file", "extra trusted CA (PEM), optional"),
)
SWITCH_FIELDS: tuple[tuple[str, str], ...] = (
    ("verify_tls", "Verify TLS"),
    ("enabled", "Enabled"),
)
FIELDS = tuple(f for f, _, _ in TEXT_FIELDS) + tuple(f for f, _ in SWITCH_FIELDS)
LABEL_WIDTH = 15

# A header starts after ';' only where "Name:" follows, so "Cookie: a=1; b=2" stays one header.
_HEADER_SPLIT = re.compile(r";\s*(?=[!#$%&'*+.^_`|~0-9A-Za-z-]+\s*:)")


def headers_to_lines(text: str) -> str:
    """'A: 1; B: 2' -> 'A: 1\\nB: 2', the form engine.targets parses."""
    return "\n".join(part.strip() for part in _HEADER_SPLIT.split(text) if part.strip())


def target_to_form(t: Target) -> dict[str, Any]:
    """The form's initial values for editing `t`."""
    return {
        "name": t.name,
        "url": t.url,
        "interval": f"{t.interval:g}",
        "timeout": f"{t.timeout:g}",
        "method": t.method,
        "expect_status": ", ".join(str(code) for code in t.expect_status),
        "regex": t.regex or "",
        "headers": "; ".join(f"{name}: {value}" for name, value in t.headers),
        "ca_file": t.ca_file or "",
        "verify_tls": t.verify_tls,
        "enabled": t.enabled,
    }


class TargetFormScreen(ModalScreen[str | None]):
    """Dismisses with the saved target's name, or None when cancelled."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="form-save", tooltip="Validate and save the target"),
        Binding("escape", "cancel", "Cancel", id="form-cancel", tooltip="Close without saving"),
    ]

    def __init__(
        self,
        control: Control,
        *,
        base_dir: Path,
        taken_names: Collection[str],
        original: Target | None = None,
    ) -> None:
        super().__init__()
        self._control = control
        self._base_dir = base_dir
        self._taken = frozenset(taken_names) - ({original.name} if original else set())
        self._original = original
        self._touched: set[str] = set()
        self._show_all = False

    def compose(self) -> ComposeResult:
        initial = target_to_form(self._original) if self._original else {}
        title = "Edit target" if self._original else "Add target"
        with Vertical(id="form-dialog", classes="dialog"):
            yield Static(Text(title, "bold"), classes="dialog-title")
            with VerticalScroll(id="form-fields"):
                for field, label, placeholder in TEXT_FIELDS:
                    with Horizontal(classes="form-row"):
                        yield Static(f"{label:<{LABEL_WIDTH}}", classes="form-label")
                        yield Input(
                            str(initial.get(field, "")),
                            placeholder=placeholder,
                            id=f"field-{field}",
                            compact=True,
                        )
                    yield Static("", id=f"problem-{field}", classes="form-problem")
                for field, label in SWITCH_FIELDS:
                    with Horizontal(classes="form-row"):
                        yield Static(f"{label:<{LABEL_WIDTH}}", classes="form-label")
                        yield OnOffSwitch(
                            bool(initial.get(field, True)), switch_id=f"field-{field}"
                        )
                    yield Static("", id=f"problem-{field}", classes="form-problem")
            yield Static("", id="form-error", classes="form-error")
            with Horizontal(classes="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")
        yield Footer()

    def values(self) -> dict[str, Any]:
        """What the form holds now, as engine.targets.target_field_problems takes it."""
        raw: dict[str, Any] = {}
        for field, _, _ in TEXT_FIELDS:
            text = self.query_one(f"#field-{field}", Input).value
            raw[field] = headers_to_lines(text) if field == "headers" else text
        for field, _ in SWITCH_FIELDS:
            raw[field] = self.query_one(f"#field-{field}", Switch).value
        return raw

    def problems(self) -> dict[str, str]:
        """Problems per field of the current values ({} when the target can be saved)."""
        return target_field_problems(self.values(), self._base_dir, taken_names=self._taken)

    def _show_problems(self, problems: dict[str, str]) -> None:
        for field in FIELDS:
            problem = problems.get(field) if (self._show_all or field in self._touched) else None
            widget = self.query_one(f"#problem-{field}", Static)
            widget.update(safe_text(f"{field} {problem}", "red") if problem else "")
            widget.set_class(bool(problem), "-shown")
        stray = [f"{k} {v}" for k, v in problems.items() if k not in FIELDS and self._show_all]
        self._set_error("; ".join(stray))

    def _set_error(self, message: str) -> None:
        error = self.query_one("#form-error", Static)
        error.update(safe_text(message, "bold red"))
        error.set_class(bool(message), "-shown")

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        self._touched.add((event.input.id or "").removeprefix("field-"))
        self._show_problems(self.problems())

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        self._touched.add((event.switch.id or "").removeprefix("field-"))
        self._show_problems(self.problems())

    @on(Input.Submitted)
    def _input_submitted(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        """Validate everything; only a valid target goes to the engine."""
        self._show_all = True
        problems = self.problems()
        self._show_problems(problems)
        if problems:
            first = next(iter(problems))
            if first in FIELDS:
                self.query_one(f"#field-{first}").focus()
            return
        try:
            target = target_from_form(self.values(), self._base_dir)
        except ConfigError as exc:
            self._set_error(str(exc))
            return
        self._submit(target)

    @work(exclusive=True, group="target-form")
    async def _submit(self, target: Target) -> None:
        save = self.query_one("#save", Button)
        save.disabled = True
        self._set_error("")
        try:
            if self._original is None:
                await self._control.add_target(target)
            else:
                await self._control.update_target(self._original.name, target)
        except UserError as exc:
            self._set_error(str(exc))
            save.disabled = False
            return
        self.dismiss(target.name)
