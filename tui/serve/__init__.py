"""`metrictui serve`: the dashboard in a browser, one dashboard process per tab (textual-serve).

Each tab runs the same Textual app as the terminal, attached to the engine's control socket,
so the browser and the terminal share one UI and one code path (`--attach`).
"""

from tui.serve.server import run_serve
from tui.serve.settings import ServeSettings, serve_settings

__all__ = ["ServeSettings", "run_serve", "serve_settings"]
