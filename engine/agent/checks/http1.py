"""One HTTP/1.1 request and its response on a connection of its own: the wire part of a check.

Why not aiohttp's client here: a check is one request on a fresh connection, and aiohttp's
general machinery around it (session, connector with limits and happy eyeballs, request and
response objects, cookie and proxy handling) cost ~0.30 ms of CPU per check on this machine
against ~0.08 ms for this module (both on uvloop, same nginx, `bench.peers --only checks`).
At 1,000 checks a second that is most of a core. What a check needs is small and fixed:
write one request, parse the status line, headers and body with llhttp (through httptools,
the parser uvicorn uses), cap the body, undo gzip/deflate, and say precisely what went wrong.

The caller (`engine.agent.checks.checker`) owns DNS, connecting, TLS and timing; this module
owns the bytes: `request_bytes` builds the request, `ResponseReader` is the connection's
protocol and turns the server's bytes into a `Response` or a `CheckFailure`.
"""

from __future__ import annotations

import asyncio
import functools
import zlib
from dataclasses import dataclass
from typing import cast

import httptools
from yarl import URL

from engine.agent.checks.reasons import CheckFailure, Reason

HEADERS_MAX_BYTES = 65536
"""A status line plus headers longer than this is not a website answering a check."""

SHOWN_BYTES = 60
"""How much of an answer that is not HTTP its error quotes (as a bytes literal: escaped, so a
hostile server's control sequences stay text), to show what is listening there."""

ACCEPT_ENCODING = "gzip, deflate"
"""What we can decode (zlib); a browser sends more, but never gets less than this."""

_NO_BODY_METHODS = frozenset(("HEAD",))
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
_DECODABLE = frozenset((b"gzip", b"x-gzip", b"deflate"))


@dataclass(frozen=True, slots=True)
class Response:
    """The last response of an exchange (the body only when it was read)."""

    status: int
    location: str | None
    body: bytes


@functools.lru_cache(maxsize=16384)
def request_bytes(
    method: str, url: URL, user_agent: str, headers: tuple[tuple[str, str], ...]
) -> bytes:
    """The request head: our defaults, each replaced by a configured header of the same name.

    Header names and values were validated when the target was loaded (tokens; no control
    characters), so nothing here can split the request. Cached: a target sends the same
    request every time.
    """
    defaults = {
        "host": ("Host", url.host_port_subcomponent or ""),
        "user-agent": ("User-Agent", user_agent),
        "accept": ("Accept", "*/*"),
        "accept-encoding": ("Accept-Encoding", ACCEPT_ENCODING),
        "connection": ("Connection", "close"),
    }
    if method in _BODY_METHODS:
        defaults["content-length"] = ("Content-Length", "0")
    for name, value in headers:
        defaults[name.lower()] = (name, value)
    lines = [f"{method} {url.raw_path_qs or '/'} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in defaults.values()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


class ResponseReader(asyncio.Protocol):
    """Protocol of one check connection: parses one response, with limits, then is done.

    A redirect's body is not read when it will be followed (`stop_at_redirect`).

    `headers()` waits for the status line and headers (the end of time-to-first-byte);
    `body()` for the rest. Both raise `CheckFailure` for an answer that is not valid HTTP,
    a body over `body_max` bytes (decoded), or a connection closed too early.
    """

    def __init__(self, method: str, body_max: int, stop_at_redirect: bool = True) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.WriteTransport | None = None
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._skip_body = method in _NO_BODY_METHODS
        self._stop_at_redirect = stop_at_redirect
        self._body_max = body_max
        self._head_bytes = 0
        self._status = 0
        self._location: bytes | None = None
        self._length: int | None = None
        self._chunked = False
        self._decoder: zlib._Decompress | None = None
        self._body = bytearray()
        self._headers_done: asyncio.Future[int] = loop.create_future()
        self._body_done: asyncio.Future[bytes] = loop.create_future()

    # -- what the checker awaits ------------------------------------------------------------

    async def headers(self) -> int:
        """The status code, once the headers are in."""
        return await self._headers_done

    async def body(self) -> Response:
        """The whole (decoded) body; a HEAD response or a redirect's is empty."""
        body = await self._body_done
        location = None if self._location is None else self._location.decode("latin-1")
        return Response(self._status, location, body)

    @property
    def follow_redirect(self) -> bool:
        """A redirect with a Location, and redirects are followed (`stop_at_redirect`)."""
        return (
            self._stop_at_redirect
            and self._location is not None
            and self._status in (301, 302, 303, 307, 308)
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's classes, hence the cast.
        self.transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        if self._body_done.done() or self._parser is None:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish()  # 101 Switching Protocols: the answer is the status itself
            return
        except httptools.HttpParserError as exc:
            if not self._body_done.done():  # a callback may have failed it already
                began = "" if self._head_bytes else f"; it began {data[:SHOWN_BYTES]!r}"
                self._fail(Reason.INVALID_RESPONSE, f"invalid HTTP response: {exc}{began}")
            return
        if not self._headers_done.done():
            # Counted after parsing, so a read holding the headers and some body is fine.
            self._head_bytes += len(data)
            if self._head_bytes > HEADERS_MAX_BYTES:
                self._fail(
                    Reason.INVALID_RESPONSE,
                    f"invalid HTTP response: status line and headers longer than "
                    f"{HEADERS_MAX_BYTES} bytes",
                )

    def eof_received(self) -> bool:
        self._closed_by_peer()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed_by_peer(exc)
        # The transport's last call. The reader, its parser (which holds four of the reader's
        # methods) and its transport refer to each other: a cycle that only the cycle
        # collector could free, ten objects a check, which made the collector's passes long
        # pauses of the event loop with many targets. Let go of them, and reference counting
        # frees the lot now.
        self._parser = None
        self.transport = None

    # -- httptools callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"location":
            self._location = value
        elif lower == b"content-length":
            try:
                self._length = int(value)
            except ValueError:
                self._length = None  # llhttp rejects it itself
        elif lower == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()
        elif lower == b"content-encoding" and value.strip().lower() in _DECODABLE:
            # 32 + MAX_WBITS: a gzip or a zlib stream, whichever the header says.
            self._decoder = zlib.decompressobj(32 + zlib.MAX_WBITS)

    def on_headers_complete(self) -> None:
        assert self._parser is not None  # called by the parser itself
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._reset_for_final_response()
            return
        self._status = status
        self._headers_done.set_result(status)
        if self._skip_body or self.follow_redirect:
            self._finish()
        elif self._length is not None and self._length > self._body_max:
            self._fail(Reason.BODY_TOO_LARGE, self._too_large)

    def on_body(self, chunk: bytes) -> None:
        if self._body_done.done():
            return
        if self._decoder is None:
            self._body += chunk
        else:
            try:
                self._body += self._decoder.decompress(chunk, self._body_max + 1 - len(self._body))
            except zlib.error as exc:
                self._fail(Reason.INVALID_RESPONSE, f"invalid HTTP response: bad gzip body: {exc}")
                return
        if len(self._body) > self._body_max or (
            self._decoder is not None and self._decoder.unconsumed_tail
        ):
            self._fail(Reason.BODY_TOO_LARGE, self._too_large)

    def on_message_complete(self) -> None:
        if self._headers_done.done():
            self._finish()

    # -- internals --------------------------------------------------------------------------

    @property
    def _too_large(self) -> str:
        return f"response body is larger than {self._body_max} bytes"

    def _reset_for_final_response(self) -> None:
        """A 1xx interim response (100 Continue, 103 Early Hints): the real one follows."""
        self._location, self._length, self._chunked, self._decoder = None, None, False, None
        self._head_bytes = 0

    def _closed_by_peer(self, exc: Exception | None = None) -> None:
        if self._body_done.done():
            return
        if self._headers_done.done() and self._length is None and not self._chunked:
            self._finish()  # no length, not chunked: the body ends where the connection does
            return
        detail = f" ({exc})" if exc is not None else ""
        self._fail(
            Reason.INVALID_RESPONSE,
            f"server closed the connection before a complete response{detail}",
        )

    def _finish(self) -> None:
        if self._body_done.done():
            return
        if not self._headers_done.done():
            if self._parser is not None:
                self._status = self._parser.get_status_code()
            self._headers_done.set_result(self._status)
        if self._decoder is not None:
            try:
                self._body += self._decoder.flush()
            except zlib.error as exc:
                self._fail(Reason.INVALID_RESPONSE, f"invalid HTTP response: bad gzip body: {exc}")
                return
            if len(self._body) > self._body_max:
                self._fail(Reason.BODY_TOO_LARGE, self._too_large)
                return
        self._body_done.set_result(bytes(self._body))
        self.close()

    def _fail(self, reason: Reason, message: str) -> None:
        failure = CheckFailure(reason, message)
        for future in (self._headers_done, self._body_done):
            if not future.done():
                future.set_exception(failure)
                future.exception()  # retrieved: a failure before headers() is awaited is fine
        self.close()
