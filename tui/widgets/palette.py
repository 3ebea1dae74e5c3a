"""Command-palette entries (ctrl+p) for the dashboard's main actions."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

# (title, help, action on the dashboard screen)
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("Add target", "Add a website target to check", "add_target"),
    ("Edit target", "Edit the selected target", "edit_target"),
    ("Delete target", "Delete the selected target (asks first)", "delete_target"),
    ("Enable/disable target", "Switch checks of the selected target on or off", "toggle_target"),
    ("Target detail", "Latency, uptime and failures of the selected target", "target_detail"),
    ("Metrics", "Switch host metric collectors on and off", "metrics"),
    ("Help", "Every key and what it does", "help"),
)


class DashboardCommands(Provider):
    """Offers the dashboard actions; each runs as if its key had been pressed."""

    async def _run(self, action: str) -> None:
        await self.app.run_action(action, self.screen)

    async def discover(self) -> Hits:
        for title, help_text, action in COMMANDS:
            yield DiscoveryHit(title, partial(self._run, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in COMMANDS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(title), partial(self._run, action), help=help_text
                )
