"""Phase timing of one website check, all with `time.perf_counter`, per check, summed over
redirect hops.

No aiohttp trace signals: with a trace config aiohttp builds a parameter object and awaits a
signal for every step of every request, a few percent of a check's CPU at 1,000 checks/s.
Instead, small subclasses note each boundary on the check's `_Timeline`, which a `ContextVar`
ties to the check running in the current task:

- ``dns_ms``: around the lookup in our resolver (`_PooledResolver`); aiohttp only resolves host
  names, so an IP literal has ``dns_ms=None``. Lookups run on a thread pool of our own so slow
  or dead name servers of some targets cannot queue the lookups of the others behind them in
  the event loop's small default executor.
- ``connect_ms``: end of DNS (or the start of the connector's `_create_connection` for an IP
  literal) -> the moment the TCP socket is connected. aiohttp has no hook for that moment, so
  the connector's protocol factory is wrapped (`_TimedConnector`): asyncio's
  `loop.create_connection(sock=...)` calls the protocol factory right after the TCP connect and
  *before* it starts the TLS handshake.
- ``tls_ms``: that same factory call -> `_create_connection` returning, i.e. the TLS handshake;
  ``None`` for plain http (the connection has no ``ssl_object``).
- ``ttfb_ms``: the request headers written (`_TimedRequest.send` returned) -> the response
  status line and headers parsed (`_TimedResponse.start` returned), of the last hop.
- ``total_ms``: start of the check -> body read (or failure).

Phases that did not complete are ``None``; ``total_ms`` is always set.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace

DNS_THREADS = 32
"""Size of the resolver's own pool: getaddrinfo blocks a thread for as long as DNS takes."""


class Timeline:
    """Marks and phase durations of one check, filled in by trace callbacks."""

    __slots__ = (
        "cert_der",
        "connect_ms",
        "create_start",
        "dns_end",
        "dns_ms",
        "dns_start",
        "headers_sent",
        "protocol",
        "resolved_ip",
        "stage",
        "status",
        "tcp_done",
        "tls_ms",
        "ttfb_ms",
    )

    def __init__(self) -> None:
        self.dns_ms: float | None = None
        self.connect_ms: float | None = None
        self.tls_ms: float | None = None
        self.ttfb_ms: float | None = None
        self.resolved_ip: str | None = None
        self.status: int | None = None
        self.cert_der: bytes | None = None
        self.stage = "starting"
        self.create_start = 0.0
        self.dns_start: float | None = None
        self.dns_end: float | None = None
        self.tcp_done: float | None = None
        self.headers_sent: float | None = None
        self.protocol: ResponseHandler | None = None


TIMELINE: contextvars.ContextVar[Timeline | None] = contextvars.ContextVar(
    "metrictui_check_timeline", default=None
)
_REDIRECTS = frozenset((301, 302, 303, 307, 308))


def elapsed_ms(start: float, end: float) -> float:
    return (end - start) * 1000.0


def _plus(total: float | None, ms: float) -> float:
    return ms if total is None else total + ms


class TimedConnector(aiohttp.TCPConnector):
    """TCPConnector that notes when a connection starts, when its TCP connect finished (before
    any TLS handshake), and when it is ready, with the peer address and certificate.

    aiohttp passes `self._factory` to `loop.create_connection(sock=connected_socket, ssl=...)`,
    which calls it first and only then runs the handshake; wrapping it gives the boundary
    between `connect_ms` and `tls_ms` without reimplementing connection setup.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._factory = functools.partial(_timed_protocol, self._factory)

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        tl = TIMELINE.get()
        if tl is None:
            return await super()._create_connection(req, traces, timeout)
        tl.create_start = time.perf_counter()
        tl.dns_start = tl.dns_end = tl.tcp_done = None
        tl.protocol = None
        tl.stage = "connecting"
        protocol = await super()._create_connection(req, traces, timeout)
        _connection_ready(tl)
        return protocol


def _timed_protocol(make: functools.partial[ResponseHandler]) -> ResponseHandler:
    protocol = make()
    timeline = TIMELINE.get()
    if timeline is not None:
        now = time.perf_counter()
        timeline.tcp_done = now
        start = timeline.dns_end if timeline.dns_end is not None else timeline.create_start
        timeline.connect_ms = _plus(timeline.connect_ms, elapsed_ms(start, now))
        timeline.protocol = protocol
        timeline.stage = "in the TLS handshake"
    return protocol


def _connection_ready(tl: Timeline) -> None:
    """The connection is up (TLS done): note the TLS time, the peer address and certificate."""
    now = time.perf_counter()
    tl.stage = "sending the request"
    transport = tl.protocol.transport if tl.protocol is not None else None
    if transport is None:
        return
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        tl.resolved_ip = str(peer[0])
    ssl_object = transport.get_extra_info("ssl_object")
    if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        if tl.tcp_done is not None:
            tl.tls_ms = _plus(tl.tls_ms, elapsed_ms(tl.tcp_done, now))
        tl.cert_der = ssl_object.getpeercert(binary_form=True)


class TimedRequest(aiohttp.ClientRequest):
    """Notes when the request headers have been written (the start of `ttfb_ms`)."""

    async def send(self, conn: Connection) -> aiohttp.ClientResponse:
        response = await super().send(conn)
        tl = TIMELINE.get()
        if tl is not None:
            tl.headers_sent = time.perf_counter()
            tl.stage = "waiting for the response headers"
        return response


class TimedResponse(aiohttp.ClientResponse):
    """Notes when the status line and headers have been parsed (the end of `ttfb_ms`)."""

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        response = await super().start(connection)
        tl = TIMELINE.get()
        if tl is not None:
            if tl.headers_sent is not None:
                tl.ttfb_ms = elapsed_ms(tl.headers_sent, time.perf_counter())
            tl.stage = "following a redirect" if self.status in _REDIRECTS else "reading the body"
        return response


class PooledResolver(AbstractResolver):
    """getaddrinfo on a dedicated thread pool (same results as aiohttp's ThreadedResolver)."""

    def __init__(self, threads: int = DNS_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="metrictui-dns")

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        tl = TIMELINE.get()
        if tl is not None:
            tl.dns_start = time.perf_counter()
            tl.stage = "resolving the host name"
        infos = await loop.run_in_executor(
            self._pool,
            functools.partial(
                socket.getaddrinfo,
                host,
                port,
                family,
                socket.SOCK_STREAM,
                0,
                socket.AI_ADDRCONFIG,
            ),
        )
        if tl is not None:
            tl.dns_end = now = time.perf_counter()
            tl.dns_ms = _plus(tl.dns_ms, elapsed_ms(tl.dns_start or now, now))
            tl.stage = "connecting"
        hosts: list[ResolveResult] = []
        for fam, _, proto, _, address in infos:
            if fam == socket.AF_INET6 and len(address) >= 4 and address[3]:
                # Link-local IPv6 needs its scope id in the host string ("fe80::1%eth0").
                resolved, port_str = socket.getnameinfo(
                    address[:4],
                    socket.NI_NUMERICHOST | socket.NI_NUMERICSERV,
                )
                resolved_port = int(port_str)
            elif fam in (socket.AF_INET, socket.AF_INET6):
                resolved, resolved_port = str(address[0]), int(address[1])
            else:
                continue
            hosts.append(
                ResolveResult(
                    hostname=host,
                    host=resolved,
                    port=resolved_port,
                    family=fam,
                    proto=proto,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        return hosts

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
