"""`metrictui serve`: from the loaded config to a running server, with one-line errors."""

from __future__ import annotations

from pathlib import Path

from engine.config import Config
from engine.errors import ConfigError
from tui.serve.server import run_serve
from tui.serve.settings import serve_settings


def serve_command(config: Config, listen: str | None) -> int:
    """Validate `[serve]` (with `--listen` over `listen`), then serve until SIGTERM/SIGINT."""
    socket = config.headless.control_socket
    if str(socket) in ("", "."):
        raise ConfigError(
            f"{config.source}: [headless] control_socket: empty, but serve attaches through it"
        )
    settings = serve_settings(
        listen=listen or config.serve.listen,
        token_file=config.serve.token_file,
        public_url=config.serve.public_url,
        source=str(config.source),
        listen_origin="--listen" if listen else "[serve] listen",
    )
    return run_serve(settings, Path(socket), config.tui.refresh_hz, config.targets_file)
