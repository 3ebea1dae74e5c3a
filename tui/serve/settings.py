"""What `serve` listens on and which token guards it, checked before anything binds.

Anyone who can open the page can edit targets, so the rules live here, in one place: a bind
beyond loopback needs a token the operator chose (`token_file`); otherwise a random token is
made at each start and printed once.
"""

from __future__ import annotations

import ipaddress
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError

MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class ServeSettings:
    """Where to listen, the token, and the address to print (behind a proxy)."""

    host: str
    port: int
    token: str
    public_url: str | None = None

    def __repr__(self) -> str:  # the token never reaches a log through a repr
        return (
            f"ServeSettings(host={self.host!r}, port={self.port}, public_url={self.public_url!r})"
        )

    @property
    def base_url(self) -> str:
        """The page's address without the token: `public_url`, else the bound address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def login_url(self) -> str:
        """The one line printed at start: the address with the token."""
        return f"{self.base_url}/?token={self.token}"


def parse_listen(text: str, origin: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets) into its parts; a bad value is a one-line ConfigError."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"{origin}: must be host:port like '127.0.0.1:8640', got {text!r}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere: treat it as public


def read_token(path: Path, origin: str) -> str:
    """The token from `token_file`: one line, at least MIN_TOKEN_CHARS, not readable by others."""
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"{origin}: cannot read {path} ({reason})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{origin}: {path} is readable by others; chmod 600 it")
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ConfigError(
            f"{origin}: {path} must hold one token of at least {MIN_TOKEN_CHARS} characters"
            " without spaces (for example: openssl rand -hex 24)"
        )
    return token


def serve_settings(
    *,
    listen: str,
    token_file: Path | None,
    public_url: str | None,
    source: str,
    listen_origin: str = "[serve] listen",
) -> ServeSettings:
    """Validate the `[serve]` values (after --listen has overridden `listen`)."""
    host, port = parse_listen(listen, f"{source}: {listen_origin}")
    if token_file is None and not is_loopback(host):
        raise ConfigError(
            f"{source}: {listen_origin} {listen} is reachable from other machines; set"
            " [serve] token_file, or listen on 127.0.0.1 and use an SSH tunnel"
        )
    if public_url and not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"{source}: [serve] public_url: must start with http:// or https://")
    if token_file is not None:
        token = read_token(token_file, f"{source}: [serve] token_file")
    else:
        token = secrets.token_urlsafe(24)
    return ServeSettings(host=host, port=port, token=token, public_url=public_url or None)
