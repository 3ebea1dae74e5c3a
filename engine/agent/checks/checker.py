"""Website checks: one HTTP(S) request per target, timed phase by phase, never raising.

A check is a *measurement*, so nothing is shared between checks that would hide a phase:
no keep-alive (`force_close`), no DNS cache, no cookie jar. Every check therefore resolves,
connects and (for https) handshakes itself, and one target's cookies or broken connection
can never leak into another target's result.

Phase timing lives in engine.agent.checks.timing, failure reasons in engine.agent.checks.reasons.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import ssl
import time
from datetime import UTC, datetime

import aiohttp
import re2
from cryptography import x509
from multidict import CIMultiDict
from yarl import URL

from engine import __version__
from engine.agent.checks.reasons import (
    REASONS,
    CheckFailure,
    Reason,
    classify_error,
    explain_check_error,
    squash_line,
)
from engine.agent.checks.timing import (
    TIMELINE,
    PooledResolver,
    TimedConnector,
    TimedRequest,
    TimedResponse,
    Timeline,
    elapsed_ms,
)
from engine.records.check_result import CheckResult
from engine.targets import Target
from engine.targets.regex import compile_regex, regex_error_text

log = logging.getLogger(__name__)

_READ_CHUNK = 65536
_USER_AGENT = f"metrictui/{__version__} (website check)"

__all__ = ["REASONS", "Checker", "Reason", "squash_line"]


@functools.lru_cache(maxsize=16384)
def _url(text: str) -> URL:
    """The parsed URL of a target (cached: yarl parsing is a visible part of a check's CPU)."""
    return URL(text)


def _cert_expiry(der: bytes | None) -> datetime | None:
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        return None


class Checker:
    """Runs checks over one aiohttp session; owns the session, connector and DNS pool.

    Call `start()` inside the event loop before the first `check()`, and `close()` at the end.
    """

    def __init__(self, *, body_max_bytes: int = 1_048_576, max_redirects: int = 10) -> None:
        self._body_max_bytes = body_max_bytes
        self._max_redirects = max_redirects
        self._session: aiohttp.ClientSession | None = None
        self._resolver: PooledResolver | None = None
        self._ssl_contexts: dict[str, tuple[tuple[int, int], ssl.SSLContext]] = {}

    async def start(self) -> None:
        """Create the session; checks are bounded by `asyncio.timeout`, not aiohttp timeouts."""
        if self._session is not None:
            return
        self._resolver = PooledResolver()
        connector = TimedConnector(
            force_close=True,
            use_dns_cache=False,
            limit=0,  # the scheduler's semaphore bounds concurrency
            resolver=self._resolver,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None),
            cookie_jar=aiohttp.DummyCookieJar(),
            request_class=TimedRequest,
            response_class=TimedResponse,
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
        timeline = Timeline()
        content_match: bool | None = None
        reason: Reason | None = None
        error: str | None = None
        token = TIMELINE.set(timeline)
        try:
            try:
                async with asyncio.timeout(target.timeout):
                    content_match = await self._exchange(self._session, target, timeline)
            except TimeoutError:
                raise CheckFailure(
                    Reason.TIMEOUT,
                    f"no complete response within {target.timeout:g} s "
                    f"(timed out {timeline.stage})",
                ) from None
            reason, error = _judge(target, timeline.status, content_match)
        except CheckFailure as failure:
            reason, error = failure.reason, failure.message
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            reason, error = classify_error(exc), explain_check_error(exc)
        except Exception as exc:  # a bug or an aiohttp corner case must not kill the scheduler
            log.exception("unexpected failure checking %s", target.name)
            reason, error = Reason.ERROR, explain_check_error(exc)
        finally:
            TIMELINE.reset(token)
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
        )

    async def _exchange(
        self, session: aiohttp.ClientSession, target: Target, timeline: Timeline
    ) -> bool | None:
        """Send the request, read the body up to the cap, return whether the regex matched."""
        regex = None
        if target.regex is not None:
            try:
                regex = compile_regex(target.regex)
            except re2.error as exc:
                detail = regex_error_text(exc)
                raise CheckFailure(
                    Reason.ERROR, f"invalid regex {target.regex!r}: {detail}"
                ) from None
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
        too_large = CheckFailure(
            Reason.BODY_TOO_LARGE, f"response body is larger than {limit} bytes"
        )
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
            raise CheckFailure(Reason.TLS_ERROR, f"cannot load ca_file {path}: {exc}") from None
        self._ssl_contexts[path] = (stamp, context)
        return context


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
