"""The gate in front of every route: no token, no byte of the dashboard.

The token arrives once in the address (`/?token=…`). A right token is swapped at once for a
cookie (HttpOnly, SameSite=Strict) and a redirect to the same page without the token, so it
leaves the address bar and the history. Everything, the page, its scripts, fonts and the
websocket, needs the cookie: static assets would at least reveal what runs here. Comparisons
are constant-time (`hmac.compare_digest`). A websocket must also come from our own origin.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiDict

TOKEN_PARAM = "token"

NO_TOKEN = (
    "metrictui serve: this page needs the token. Open the address that `metrictui serve`"
    " printed when it started.\n"
)
WRONG_TOKEN = "metrictui serve: wrong token.\n"

# Sent with every answer, allowed or not: nothing is cached, framed, or leaks a Referer.
COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


class TokenGate:
    """Checks the token or its cookie on every request (an aiohttp middleware)."""

    def __init__(self, token: str, port: int, *, public_url: str | None = None) -> None:
        self._token = token.encode()
        # Browsers share cookies between ports of one host: the port keeps two serves apart.
        self.cookie_name = f"metrictui_serve_{port}"
        # The cookie holds a value derived from the token, so the token itself crosses the
        # wire only once per browser.
        self._cookie_text = hmac.new(
            self._token, b"metrictui serve cookie", hashlib.sha256
        ).hexdigest()
        self._secure = bool(public_url and public_url.startswith("https://"))
        self._public_host = urlsplit(public_url).netloc if public_url else None

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._token)

    def cookie_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._cookie_text.encode())

    def _same_origin(self, request: web.Request) -> bool:
        """A websocket opened by another site's page is refused even if a cookie rode along."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser page (browsers always send Origin on websockets)
        host = urlsplit(origin).netloc
        return host in (request.host, self._public_host)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await self._check(request, handler)
        for name, value in COMMON_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def _check(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.query.get(TOKEN_PARAM)
        if given is not None:
            if not self.token_matches(given):
                return web.Response(status=403, text=WRONG_TOKEN)
            return self._login(request)
        cookie = request.cookies.get(self.cookie_name)
        if cookie is None:
            return web.Response(status=401, text=NO_TOKEN)
        if not self.cookie_matches(cookie) or not self._same_origin(request):
            return web.Response(status=403, text=WRONG_TOKEN)
        return await handler(request)

    def _login(self, request: web.Request) -> web.Response:
        """Swap the token in the address for the cookie, and send the browser back without it."""
        query = MultiDict(request.query)
        query.popall(TOKEN_PARAM)
        location = request.rel_url.with_query(query)
        response = web.Response(status=303, headers={"Location": str(location)})
        response.set_cookie(
            self.cookie_name,
            self._cookie_text,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self._secure,
        )
        return response
