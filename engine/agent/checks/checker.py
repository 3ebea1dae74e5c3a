"""Website checks: one HTTP(S) request per target, timed phase by phase, never raising.

A check is a *measurement*, so nothing is shared between checks that would hide a phase:
no keep-alive, no DNS cache, no cookie jar. Every check resolves, connects and (for https)
handshakes itself, one phase per await so each is timed exactly, and one target's cookies or
broken connection can never leak into another target's result. Redirects are followed (each
hop on its own connection) up to `max_redirects`.

The bytes of the exchange live in engine.agent.checks.http1, phase timing in
engine.agent.checks.timing, failure reasons in engine.agent.checks.reasons.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import socket
import ssl
import time
from datetime import UTC, datetime

import re2
from cryptography import x509
from yarl import URL

from engine import __version__
from engine.agent.checks.http1 import ResponseReader, request_bytes
from engine.agent.checks.reasons import (
    REASONS,
    CheckFailure,
    Reason,
    classify_error,
    explain_check_error,
    os_error_text,
    squash_line,
)
from engine.agent.checks.timing import PooledResolver, Timeline, elapsed_ms
from engine.records.check_result import CheckResult
from engine.targets import Target
from engine.targets.regex import compile_regex, regex_error_text

log = logging.getLogger(__name__)

_USER_AGENT = f"metrictui/{__version__} (website check)"
_SCHEMES = {"http": False, "https": True}

__all__ = ["REASONS", "Checker", "Reason", "squash_line"]


@functools.lru_cache(maxsize=16384)
def _url(text: str) -> URL:
    """The parsed URL of a target (cached: URL parsing is a visible part of a check's CPU)."""
    return URL(text)


@functools.lru_cache(maxsize=16384)
def _ip_family(host: str) -> socket.AddressFamily | None:
    """The family of an IP literal, None for a name (which must be resolved)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def _cert_expiry(der: bytes | None) -> datetime | None:
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        return None


def _unverified_context() -> ssl.SSLContext:
    """TLS without verification (`verify_tls = false`): still TLS, the certificate still read."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Checker:
    """Runs checks; owns the TLS contexts and the DNS thread pool. Results carry `location`,
    the fleet location of the agent that checks.

    Call `start()` inside the event loop before the first `check()`, and `close()` at the end.
    """

    def __init__(
        self,
        *,
        body_max_bytes: int = 1_048_576,
        max_redirects: int = 10,
        location: str | None = None,
    ) -> None:
        self._body_max_bytes = body_max_bytes
        self._location = location
        self._max_redirects = max_redirects
        self._resolver: PooledResolver | None = None
        self._unverified = _unverified_context()
        self._ssl_contexts: dict[str, tuple[tuple[int, int], ssl.SSLContext]] = {}

    @functools.cached_property
    def _verified(self) -> ssl.SSLContext:
        """The system CAs, loaded on the first https check that verifies (not at start-up:
        loading them is tens of ms, and many agents check no https at all)."""
        return ssl.create_default_context()

    async def start(self) -> None:
        """Start the resolver's thread pool; checks are bounded by `asyncio.timeout`."""
        if self._resolver is None:
            self._resolver = PooledResolver()

    async def close(self) -> None:
        """Stop the resolver; safe to call twice."""
        resolver, self._resolver = self._resolver, None
        if resolver is not None:
            await resolver.close()

    async def check(self, target: Target) -> CheckResult:
        """Check `target` once. Site problems become a result with a reason, never an exception.

        The whole check (DNS, connect, TLS, headers, body, redirects) is bounded by
        `target.timeout`.
        """
        if self._resolver is None:
            raise RuntimeError("Checker.check() called before start()")
        started_at = datetime.now(UTC)
        began = time.perf_counter()
        timeline = Timeline()
        content_match: bool | None = None
        reason: Reason | None = None
        error: str | None = None
        try:
            try:
                async with asyncio.timeout(target.timeout):
                    content_match = await self._exchange(target, timeline)
            except TimeoutError:
                raise CheckFailure(
                    Reason.TIMEOUT,
                    f"no complete response within {target.timeout:g} s "
                    f"(timed out {timeline.stage})",
                ) from None
            reason, error = _judge(target, timeline.status, content_match)
        except CheckFailure as failure:
            reason, error = failure.reason, failure.message
        except (OSError, ValueError) as exc:
            reason, error = classify_error(exc), explain_check_error(exc)
        except Exception as exc:  # a bug or a corner case must not kill the scheduler
            log.exception("unexpected failure checking %s", target.name)
            reason, error = Reason.ERROR, explain_check_error(exc)
        return CheckResult(
            target=target.name,
            url=target.url,
            method=target.method,
            started_at=started_at,
            ok=reason is None,
            status_code=timeline.status,
            reason=None if reason is None else reason.value,  # a plain str crosses the pipes
            error=squash_line(error) if error is not None else None,
            dns_ms=timeline.dns_ms,
            connect_ms=timeline.connect_ms,
            tls_ms=timeline.tls_ms,
            ttfb_ms=timeline.ttfb_ms,
            total_ms=elapsed_ms(began, time.perf_counter()),
            content_match=content_match,
            cert_expires_at=_cert_expiry(timeline.cert_der),
            resolved_ip=timeline.resolved_ip,
            location=self._location,
        )

    async def _exchange(self, target: Target, timeline: Timeline) -> bool | None:
        """Request, follow redirects, read the last body; return whether the regex matched."""
        regex = None
        if target.regex is not None:
            try:
                regex = compile_regex(target.regex)
            except re2.error as exc:
                detail = regex_error_text(exc)
                raise CheckFailure(
                    Reason.ERROR, f"invalid regex {target.regex!r}: {detail}"
                ) from None
        url, method = _url(target.url), target.method
        hops = 0
        while True:
            reader = await self._connect(target, url, method, timeline)
            try:
                timeline.stage = "sending the request"
                if reader.transport is not None:  # else closed already: headers() says so
                    reader.transport.write(request_bytes(method, url, _USER_AGENT, target.headers))
                sent = time.perf_counter()
                timeline.stage = "waiting for the response headers"
                timeline.status = await reader.headers()
                timeline.ttfb_ms = elapsed_ms(sent, time.perf_counter())
                if reader.follow_redirect:
                    timeline.stage = "following a redirect"
                    response = await reader.body()
                    assert response.location is not None
                    if hops >= self._max_redirects:
                        raise CheckFailure(
                            Reason.TOO_MANY_REDIRECTS,
                            f"more than {self._max_redirects} redirects, the last at {url}",
                        )
                    url, method = _redirected(url, method, response.status, response.location)
                    hops += 1
                    continue
                timeline.stage = "reading the body"
                body = (await reader.body()).body
            finally:
                reader.close()
            if regex is None:
                return None
            return regex.search(body.decode("utf-8", errors="replace")) is not None

    async def _connect(
        self, target: Target, url: URL, method: str, timeline: Timeline
    ) -> ResponseReader:
        """Resolve, connect and (https) handshake, each phase timed; the connection's reader."""
        tls = _SCHEMES.get(url.scheme)
        if tls is None:
            raise CheckFailure(
                Reason.ERROR, f"unsupported URL scheme {url.scheme!r} in {url} (use http or https)"
            )
        host, port = url.host, url.port
        if not host or port is None:
            raise CheckFailure(Reason.ERROR, f"URL {url} has no host")
        context = self._ssl_for(target) if tls else None
        addresses = await self._addresses(host, port, timeline)
        loop = asyncio.get_running_loop()
        timeline.stage = "connecting"
        body_max, stop_at_redirect = self._body_max_bytes, self._max_redirects > 0
        failure: OSError | None = None
        for family, address in addresses:
            begun = time.perf_counter()
            try:
                _, reader = await loop.create_connection(
                    lambda: ResponseReader(method, body_max, stop_at_redirect),
                    address,
                    port,
                    family=family,
                )
            except OSError as exc:
                failure = exc
                continue
            timeline.add("connect", elapsed_ms(begun, time.perf_counter()))
            timeline.resolved_ip = address  # the address connected to: no getpeername call
            if context is not None:
                await self._handshake(loop, reader, context, host, port, timeline)
            return reader
        assert failure is not None
        raise CheckFailure(
            Reason.CONNECT_ERROR, f"cannot connect to {host}:{port}: {os_error_text(failure)}"
        )

    async def _addresses(
        self, host: str, port: int, timeline: Timeline
    ) -> list[tuple[socket.AddressFamily, str]]:
        family = _ip_family(host)
        if family is not None:
            return [(family, host)]
        assert self._resolver is not None
        timeline.stage = "resolving the host name"
        begun = time.perf_counter()
        try:
            found = await self._resolver.resolve(host, port)
        except socket.gaierror as exc:
            raise CheckFailure(
                Reason.DNS_ERROR, f"cannot resolve {host}: {os_error_text(exc)}"
            ) from None
        finally:
            timeline.add("dns", elapsed_ms(begun, time.perf_counter()))
        if not found:
            raise CheckFailure(Reason.DNS_ERROR, f"cannot resolve {host}: no IPv4/IPv6 address")
        return found

    async def _handshake(
        self,
        loop: asyncio.AbstractEventLoop,
        reader: ResponseReader,
        context: ssl.SSLContext,
        host: str,
        port: int,
        timeline: Timeline,
    ) -> None:
        """TLS over the connected socket, timed apart from the connect; keeps the peer's cert."""
        timeline.stage = "in the TLS handshake"
        if reader.transport is None:  # the server closed the connection right after accepting
            raise CheckFailure(
                Reason.TLS_ERROR, f"TLS handshake with {host}:{port} failed: connection closed"
            )
        begun = time.perf_counter()
        try:
            transport = await loop.start_tls(
                reader.transport, reader, context, server_hostname=host
            )
        except ssl.SSLCertVerificationError as exc:
            reader.close()
            detail = exc.verify_message or str(exc)
            raise CheckFailure(
                Reason.TLS_ERROR, f"TLS certificate of {host}:{port} rejected: {detail}"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            reader.close()
            raise CheckFailure(
                Reason.TLS_ERROR, f"TLS handshake with {host}:{port} failed: {exc}"
            ) from None
        except BaseException:
            reader.close()
            raise
        if transport is None:  # the connection closed during the handshake
            reader.close()
            raise CheckFailure(
                Reason.TLS_ERROR, f"TLS handshake with {host}:{port} failed: connection closed"
            )
        timeline.add("tls", elapsed_ms(begun, time.perf_counter()))
        reader.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            timeline.cert_der = ssl_object.getpeercert(binary_form=True)

    def _ssl_for(self, target: Target) -> ssl.SSLContext:
        """No verification, the system CAs, or a context that adds `ca_file` (cached until the
        file changes)."""
        if not target.verify_tls:
            return self._unverified
        if target.ca_file is None:
            return self._verified
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
            raise CheckFailure(Reason.TLS_ERROR, f"cannot load ca_file {path}: {exc}") from None
        self._ssl_contexts[path] = (stamp, context)
        return context


def _redirected(url: URL, method: str, status: int, location: str) -> tuple[URL, str]:
    """Where a redirect leads and with which method (303, and 301/302 after a POST, become
    GET, as browsers do)."""
    try:
        target = url.join(URL(location))
    except ValueError:
        raise CheckFailure(
            Reason.INVALID_RESPONSE, f"redirect to an invalid URL {location!r}"
        ) from None
    if target.scheme not in _SCHEMES:
        raise CheckFailure(
            Reason.INVALID_RESPONSE, f"redirect to {location!r}, which is not an http(s) URL"
        )
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"
    return target, method


def _judge(
    target: Target, status: int | None, content_match: bool | None
) -> tuple[Reason | None, str | None]:
    """Reason and message for a complete response, or (None, None) when it is ok."""
    assert status is not None
    if target.expect_status:
        if status not in target.expect_status:
            expected = ", ".join(str(code) for code in target.expect_status)
            return Reason.STATUS_MISMATCH, f"status {status}, expected one of {expected}"
    elif not 200 <= status <= 399:
        return Reason.STATUS_MISMATCH, f"status {status}, expected 2xx or 3xx"
    if content_match is False:
        return Reason.CONTENT_MISMATCH, f"body does not match regex {target.regex!r}"
    return None, None
