"""The token gate of `metrictui serve`, over real HTTP on loopback (no browser needed).

No part of the dashboard, page, script, stylesheet, font or websocket, is served without the
token or its cookie; a right token becomes a cookie and leaves the address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from engine.errors import ConfigError
from helpers.faults import free_port
from tui.serve.server import DashboardServer
from tui.serve.settings import ServeSettings, is_loopback, serve_settings

TOKEN = "s3cret-token-for-the-gate-test"
PROTECTED = (
    "/",
    "/page.css",
    "/static/js/textual.js",
    "/static/css/xterm.css",
    "/static/fonts/RobotoMono-VariableFont_wght.ttf",
    "/ws",
)


@asynccontextmanager
async def serving() -> AsyncIterator[str]:
    """The real server app on a free loopback port, on the test's own event loop."""
    port = free_port()
    settings = ServeSettings(host="127.0.0.1", port=port, token=TOKEN)
    server = DashboardServer(settings, ["false"])
    runner = web.AppRunner(server.make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_without_the_token_nothing_of_the_dashboard_is_served() -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies of an IP address, as browsers do
    async with serving() as base, aiohttp.ClientSession(cookie_jar=jar) as http:
        for path in PROTECTED:
            async with http.get(base + path, allow_redirects=False) as r:
                body = await r.text()
                assert r.status == 401, path
                assert "textual" not in body.lower() and "<" not in body, (path, body)
        for path in PROTECTED:
            async with http.get(f"{base}{path}?token=wrong", allow_redirects=False) as r:
                assert r.status == 403, path
        http.cookie_jar.update_cookies({f"metrictui_serve_{base.rsplit(':', 1)[1]}": "forged"})
        for path in PROTECTED:
            async with http.get(base + path, allow_redirects=False) as r:
                assert r.status == 403, path


async def test_the_token_becomes_a_strict_httponly_cookie_and_leaves_the_address() -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies of an IP address, as browsers do
    async with serving() as base, aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{base}/?token={TOKEN}&fontsize=20", allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/?fontsize=20"
            cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        for path in PROTECTED[:-1]:
            async with http.get(base + path, allow_redirects=False) as r:
                assert r.status == 200, path
                assert TOKEN not in await r.text(errors="replace")
        async with http.get(base + "/") as r:
            assert "Content-Security-Policy" in r.headers
            assert "googleapis" not in await r.text()  # nothing loads from the internet
        # A websocket opened by another site's page is refused even with the cookie.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(base + "/ws", headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403


def test_a_public_bind_needs_a_token_file_and_a_good_one(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    with pytest.raises(ConfigError, match=r"\[serve\] token_file"):
        serve_settings(listen="0.0.0.0:8640", token_file=None, public_url=None, source="c.toml")
    token_file = tmp_path / "token"
    token_file.write_text("short\n")
    token_file.chmod(0o600)
    with pytest.raises(ConfigError, match="at least 16"):
        serve_settings(listen="0.0.0.0:8640", token_file=token_file, public_url=None, source="c")
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        serve_settings(listen="0.0.0.0:8640", token_file=token_file, public_url=None, source="c")
    token_file.chmod(0o600)
    settings = serve_settings(
        listen="[::]:8641", token_file=token_file, public_url="https://dash.example/", source="c"
    )
    assert settings.token == TOKEN and settings.port == 8641
    assert settings.login_url == f"https://dash.example/?token={TOKEN}"
    assert TOKEN not in repr(settings)
    one = serve_settings(listen="127.0.0.1:1", token_file=None, public_url=None, source="c")
    two = serve_settings(listen="127.0.0.1:1", token_file=None, public_url=None, source="c")
    assert one.token != two.token and len(one.token) >= 32
