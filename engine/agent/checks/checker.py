"""Website checks: one HTTP(S) request per target, timed phase by phase, never raising.

A check is a *measurement*, so nothing is shared between checks that would hide a phase:
no keep-alive (`force_close`), no DNS cache, no cookie jar. Every check therefore resolves,
connects and (for https) handshakes itself, and one target's cookies or broken connection
can never leak into another target's result.

How the phases are timed (all with `time.perf_counter`, per check, summed over redirect hops).
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
import logging
import os
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import aiohttp
import re2
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from cryptography import x509
from multidict import CIMultiDict
from yarl import URL

from engine import __version__
from engine.check_result import CheckResult
from engine.targets.model import Target

log = logging.getLogger(__name__)

REASONS = (
    "dns_error",
    "connect_error",
    "tls_error",
    "timeout",
    "status_mismatch",
    "content_mismatch",
    "body_too_large",
    "too_many_redirects",
    "invalid_response",
    "error",
)

ERROR_MAX_CHARS = 300
"""`CheckResult.error` is capped so a hostile server cannot flood logs, Kafka or the UI."""

DNS_THREADS = 32
"""Size of the resolver's own pool: getaddrinfo blocks a thread for as long as DNS takes."""

_READ_CHUNK = 65536
_USER_AGENT = f"metrictui/{__version__} (website check)"


def one_line(text: str, limit: int = ERROR_MAX_CHARS) -> str:
    """Squash any text (possibly from a remote server) into one printable line of `limit` chars.

    Whitespace runs (newlines included) become one space and other control characters become
    U+FFFD, so the text stays literal and single-line in logs; the UI still escapes markup.
    """
    squashed = " ".join(text.split())
    cleaned = "".join(
        "\ufffd" if (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0) else ch for ch in squashed
    )
    if len(cleaned) > limit:
        return cleaned[: limit - 1] + "\u2026"
    return cleaned


class _Timeline:
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


_TIMELINE: contextvars.ContextVar[_Timeline | None] = contextvars.ContextVar(
    "metrictui_check_timeline", default=None
)
_REDIRECTS = frozenset((301, 302, 303, 307, 308))


def _ms(start: float, end: float) -> float:
    return (end - start) * 1000.0


def _plus(total: float | None, ms: float) -> float:
    return ms if total is None else total + ms


class _TimedConnector(aiohttp.TCPConnector):
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
        tl = _TIMELINE.get()
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
    timeline = _TIMELINE.get()
    if timeline is not None:
        now = time.perf_counter()
        timeline.tcp_done = now
        start = timeline.dns_end if timeline.dns_end is not None else timeline.create_start
        timeline.connect_ms = _plus(timeline.connect_ms, _ms(start, now))
        timeline.protocol = protocol
        timeline.stage = "in the TLS handshake"
    return protocol


def _connection_ready(tl: _Timeline) -> None:
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
            tl.tls_ms = _plus(tl.tls_ms, _ms(tl.tcp_done, now))
        tl.cert_der = ssl_object.getpeercert(binary_form=True)


class _TimedRequest(aiohttp.ClientRequest):
    """Notes when the request headers have been written (the start of `ttfb_ms`)."""

    async def send(self, conn: Connection) -> aiohttp.ClientResponse:
        response = await super().send(conn)
        tl = _TIMELINE.get()
        if tl is not None:
            tl.headers_sent = time.perf_counter()
            tl.stage = "waiting for the response headers"
        return response


class _TimedResponse(aiohttp.ClientResponse):
    """Notes when the status line and headers have been parsed (the end of `ttfb_ms`)."""

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        response = await super().start(connection)
        tl = _TIMELINE.get()
        if tl is not None:
            if tl.headers_sent is not None:
                tl.ttfb_ms = _ms(tl.headers_sent, time.perf_counter())
            tl.stage = "following a redirect" if self.status in _REDIRECTS else "reading the body"
        return response


class _PooledResolver(AbstractResolver):
    """getaddrinfo on a dedicated thread pool (same results as aiohttp's ThreadedResolver)."""

    def __init__(self, threads: int = DNS_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="metrictui-dns")

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        tl = _TIMELINE.get()
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
            tl.dns_ms = _plus(tl.dns_ms, _ms(tl.dns_start or now, now))
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


@functools.lru_cache(maxsize=16384)
def _url(text: str) -> URL:
    """The parsed URL of a target (cached: yarl parsing is a visible part of a check's CPU)."""
    return URL(text)


@functools.lru_cache(maxsize=16384)
def compile_regex(pattern: str) -> Any:
    """RE2-compile a content regex once (cached); raises `re2.error` when it is invalid.

    RE2 matches in linear time, so a page crafted against a backtracking pattern such as
    ``(a+)+$`` cannot pin a core.
    """
    options = re2.Options()
    options.log_errors = False  # the reason goes into the result, not to stderr
    return re2.compile(pattern, options)


def _cert_expiry(der: bytes | None) -> datetime | None:
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        return None


class _Failure(Exception):
    """A check outcome that ends the check early with a reason from `REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _os_text(error: OSError) -> str:
    """`Connection refused` rather than asyncio's `Connect call failed ('1.2.3.4', 80)`."""
    if isinstance(error, socket.gaierror):
        return str(error.strerror or error)
    if error.errno:
        return os.strerror(error.errno)
    return str(error)


def describe_error(exc: BaseException) -> str:
    """A human sentence for an exception raised while checking a site (not yet one-lined)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
        detail = getattr(cause, "verify_message", None) or str(cause)
        return f"TLS certificate of {exc.host}:{exc.port} rejected: {detail}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {exc.host}: {_os_text(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS handshake with {exc.host}:{exc.port} failed: {exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}: {_os_text(exc.os_error)}"
    if isinstance(exc, aiohttp.TooManyRedirects):
        last = exc.history[-1].url if exc.history else exc.request_info.real_url
        return f"more than {len(exc.history) - 1} redirects, the last at {last}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection before a complete response"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"invalid HTTP response: {exc.message}"
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def classify_error(exc: BaseException) -> str:
    """Map an exception raised while checking a site to a reason from `REASONS`.

    Order matters: aiohttp's certificate/SSL errors and DNS errors are subclasses of
    `ClientConnectorError`, and `TooManyRedirects` is a `ClientResponseError`.
    """
    if isinstance(
        exc,
        aiohttp.ClientConnectorCertificateError
        | aiohttp.ClientSSLError
        | aiohttp.ServerFingerprintMismatch
        | ssl.SSLError
        | ssl.CertificateError,
    ):
        return "tls_error"
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return "dns_error"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too_many_redirects"
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return "connect_error"
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientResponseError
        | aiohttp.ClientPayloadError
        | aiohttp.http_exceptions.HttpProcessingError,
    ):
        return "invalid_response"
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        # The connection was made but then reset or broken mid-exchange.
        return "connect_error"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "error"


class Checker:
    """Runs checks over one aiohttp session; owns the session, connector and DNS pool.

    Call `start()` inside the event loop before the first `check()`, and `close()` at the end.
    """

    def __init__(self, *, body_max_bytes: int = 1_048_576, max_redirects: int = 10) -> None:
        self._body_max_bytes = body_max_bytes
        self._max_redirects = max_redirects
        self._session: aiohttp.ClientSession | None = None
        self._resolver: _PooledResolver | None = None
        self._ssl_contexts: dict[str, tuple[tuple[int, int], ssl.SSLContext]] = {}

    async def start(self) -> None:
        """Create the session; checks are bounded by `asyncio.timeout`, not aiohttp timeouts."""
        if self._session is not None:
            return
        self._resolver = _PooledResolver()
        connector = _TimedConnector(
            force_close=True,
            use_dns_cache=False,
            limit=0,  # the scheduler's semaphore bounds concurrency
            resolver=self._resolver,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None),
            cookie_jar=aiohttp.DummyCookieJar(),
            request_class=_TimedRequest,
            response_class=_TimedResponse,
            headers={"User-Agent": _USER_AGENT},
            trust_env=False,
        )

    async def close(self) -> None:
        """Close the session and its connections; safe to call twice."""
        session, self._session = self._session, None
        resolver, self._resolver = self._resolver, None
        if session is not None:
            await session.close()
        if resolver is not None:  # aiohttp closes only resolvers it created itself
            await resolver.close()

    async def check(self, target: Target) -> CheckResult:
        """Check `target` once. Site problems become a result with a reason, never an exception.

        The whole check (DNS, connect, TLS, headers, body) is bounded by `target.timeout`.
        """
        if self._session is None:
            raise RuntimeError("Checker.check() called before start()")
        started_at = datetime.now(UTC)
        began = time.perf_counter()
        timeline = _Timeline()
        content_match: bool | None = None
        reason: str | None = None
        error: str | None = None
        token = _TIMELINE.set(timeline)
        try:
            try:
                async with asyncio.timeout(target.timeout):
                    content_match = await self._exchange(self._session, target, timeline)
            except TimeoutError:
                raise _Failure(
                    "timeout",
                    f"no complete response within {target.timeout:g} s "
                    f"(timed out {timeline.stage})",
                ) from None
            reason, error = _judge(target, timeline.status, content_match)
        except _Failure as failure:
            reason, error = failure.reason, failure.message
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            reason, error = classify_error(exc), describe_error(exc)
        except Exception as exc:  # a bug or an aiohttp corner case must not kill the scheduler
            log.exception("unexpected failure checking %s", target.name)
            reason, error = "error", describe_error(exc)
        finally:
            _TIMELINE.reset(token)
        return CheckResult(
            target=target.name,
            url=target.url,
            method=target.method,
            started_at=started_at,
            ok=reason is None,
            status_code=timeline.status,
            reason=reason,
            error=one_line(error) if error is not None else None,
            dns_ms=timeline.dns_ms,
            connect_ms=timeline.connect_ms,
            tls_ms=timeline.tls_ms,
            ttfb_ms=timeline.ttfb_ms,
            total_ms=_ms(began, time.perf_counter()),
            content_match=content_match,
            cert_expires_at=_cert_expiry(timeline.cert_der),
            resolved_ip=timeline.resolved_ip,
        )

    async def _exchange(
        self, session: aiohttp.ClientSession, target: Target, timeline: _Timeline
    ) -> bool | None:
        """Send the request, read the body up to the cap, return whether the regex matched."""
        regex = None
        if target.regex is not None:
            try:
                regex = compile_regex(target.regex)
            except re2.error as exc:
                detail = exc.args[0] if exc.args else "invalid pattern"
                if isinstance(detail, bytes):
                    detail = detail.decode("utf-8", "replace")
                raise _Failure("error", f"invalid regex {target.regex!r}: {detail}") from None
        async with session.request(
            target.method,
            _url(target.url),
            headers=CIMultiDict(target.headers) if target.headers else None,
            ssl=self._ssl_for(target),
            allow_redirects=self._max_redirects > 0,
            # aiohttp raises on reaching its limit; +1 so `max_redirects` hops are followed.
            max_redirects=self._max_redirects + 1,
        ) as response:
            timeline.status = response.status
            timeline.stage = "reading the body"
            body = await self._read_body(response)
            if regex is None:
                return None
            return regex.search(body.decode("utf-8", errors="replace")) is not None

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self._body_max_bytes
        too_large = _Failure("body_too_large", f"response body is larger than {limit} bytes")
        if response.content_length is not None and response.content_length > limit:
            raise too_large
        body = bytearray()
        while chunk := await response.content.read(_READ_CHUNK):
            body += chunk
            if len(body) > limit:
                raise too_large
        return bytes(body)

    def _ssl_for(self, target: Target) -> ssl.SSLContext | bool:
        """`False` (no verification), `True` (system CAs) or a context that adds `ca_file`."""
        if not target.verify_tls:
            return False
        if target.ca_file is None:
            return True
        path = target.ca_file
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
            cached = self._ssl_contexts.get(path)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            context = ssl.create_default_context()
            context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            raise _Failure("tls_error", f"cannot load ca_file {path}: {exc}") from None
        self._ssl_contexts[path] = (stamp, context)
        return context


def _judge(
    target: Target, status: int | None, content_match: bool | None
) -> tuple[str | None, str | None]:
    """Reason and message for a complete response, or (None, None) when it is ok."""
    assert status is not None
    if target.expect_status:
        if status not in target.expect_status:
            expected = ", ".join(str(code) for code in target.expect_status)
            return "status_mismatch", f"status {status}, expected one of {expected}"
    elif not 200 <= status <= 399:
        return "status_mismatch", f"status {status}, expected 2xx or 3xx"
    if content_match is False:
        return "content_mismatch", f"body does not match regex {target.regex!r}"
    return None, None
