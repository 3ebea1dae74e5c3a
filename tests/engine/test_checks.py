"""Website checks against real local servers: every failure reason, phase timings, TLS, limits."""

from __future__ import annotations

import asyncio
import gc
import json
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import uvloop

from engine.agent.checks.checker import REASONS, Checker, squash_line
from engine.agent.checks.http1 import ResponseReader
from engine.records.check_result import RESULT_FIELDS, CheckResult
from engine.targets import Target
from helpers.sites import LocalSites


@asynccontextmanager
async def running_checker(**kwargs: int) -> AsyncIterator[Checker]:
    checker = Checker(**kwargs)
    await checker.start()
    try:
        yield checker
    finally:
        await checker.close()


async def check(target: Target, **kwargs: int) -> CheckResult:
    async with running_checker(**kwargs) as checker:
        return await checker.check(target)


def assert_failed(result: CheckResult, reason: str) -> None:
    assert reason in REASONS
    assert (result.ok, result.reason) == (False, reason), result.error
    assert result.error
    assert "\n" not in result.error


async def test_normal_page_is_ok_with_connect_and_ttfb_timed(sites: LocalSites) -> None:
    result = await check(Target(name="home", url=sites.http_url("/")))

    assert result.ok, result.error
    assert (result.status_code, result.reason, result.error) == (200, None, None)
    assert result.target == "home"
    assert result.url == sites.http_url("/")
    assert result.method == "GET"
    assert result.resolved_ip == "127.0.0.1"
    assert result.dns_ms is None  # an IP literal is not resolved
    assert result.tls_ms is None  # plain http has no handshake
    assert result.connect_ms is not None and result.connect_ms >= 0
    assert result.ttfb_ms is not None and result.ttfb_ms >= 0
    assert result.total_ms is not None
    assert result.total_ms >= result.connect_ms + result.ttfb_ms
    assert result.content_match is None  # no regex configured
    assert result.cert_expires_at is None
    assert result.started_at.tzinfo is not None


async def test_host_name_is_resolved_and_dns_is_timed(sites: LocalSites) -> None:
    result = await check(Target(name="named", url=sites.http_url("/", host="localhost")))

    assert result.ok, result.error
    assert result.dns_ms is not None and result.dns_ms >= 0
    assert result.resolved_ip == "127.0.0.1"


async def test_server_error_is_status_mismatch(sites: LocalSites) -> None:
    result = await check(Target(name="boom", url=sites.http_url("/status/500")))

    assert_failed(result, "status_mismatch")
    assert result.status_code == 500
    assert "500" in (result.error or "")


async def test_expected_status_list_decides_what_is_ok(sites: LocalSites) -> None:
    async with running_checker() as checker:
        wanted_500 = await checker.check(
            Target(name="t", url=sites.http_url("/status/500"), expect_status=(500, 503))
        )
        wanted_201 = await checker.check(
            Target(name="t", url=sites.http_url("/"), expect_status=(201,))
        )

    assert wanted_500.ok, wanted_500.error
    assert_failed(wanted_201, "status_mismatch")
    assert wanted_201.status_code == 200


async def test_regex_match_and_mismatch(sites: LocalSites) -> None:
    async with running_checker() as checker:
        match = await checker.check(Target(name="t", url=sites.http_url("/"), regex="all go+d"))
        mismatch = await checker.check(
            Target(name="t", url=sites.http_url("/"), regex="^everything is broken$")
        )

    assert match.ok and match.content_match is True
    assert_failed(mismatch, "content_mismatch")
    assert mismatch.content_match is False
    assert mismatch.status_code == 200


async def test_status_mismatch_wins_over_content_mismatch(sites: LocalSites) -> None:
    result = await check(Target(name="t", url=sites.http_url("/status/503"), regex="nope"))

    assert_failed(result, "status_mismatch")
    assert result.content_match is False


async def test_https_with_ca_file_times_tls_and_reports_real_cert_expiry(
    sites: LocalSites,
) -> None:
    result = await check(
        Target(name="tls", url=sites.https_url("/"), ca_file=str(sites.ca_file), regex="good")
    )

    assert result.ok, result.error
    assert result.content_match is True
    assert result.tls_ms is not None and result.tls_ms > 0
    assert result.connect_ms is not None and result.connect_ms >= 0
    assert result.ttfb_ms is not None
    assert result.cert_expires_at == sites.https_cert_expires_at
    assert result.resolved_ip == "127.0.0.1"


async def test_https_by_host_name_times_every_phase(sites: LocalSites) -> None:
    result = await check(
        Target(name="tls", url=sites.https_url("/", host="localhost"), ca_file=str(sites.ca_file))
    )

    assert result.ok, result.error
    phases = (result.dns_ms, result.connect_ms, result.tls_ms, result.ttfb_ms, result.total_ms)
    assert all(p is not None for p in phases), phases
    assert result.total_ms is not None
    assert sum(p for p in phases[:4] if p is not None) <= result.total_ms


async def test_https_without_the_ca_is_tls_error(sites: LocalSites) -> None:
    result = await check(Target(name="tls", url=sites.https_url("/")))

    assert_failed(result, "tls_error")


async def test_self_signed_cert_is_tls_error_when_verifying(sites: LocalSites) -> None:
    result = await check(Target(name="self", url=sites.self_signed_url("/")))

    assert_failed(result, "tls_error")
    assert "self-signed" in (result.error or "")
    assert result.status_code is None


async def test_self_signed_cert_is_ok_without_verification_and_expiry_still_read(
    sites: LocalSites,
) -> None:
    result = await check(Target(name="self", url=sites.self_signed_url("/"), verify_tls=False))

    assert result.ok, result.error
    assert result.tls_ms is not None
    assert result.cert_expires_at is not None
    assert result.cert_expires_at > datetime.now(UTC)


async def test_expired_cert_is_tls_error(sites: LocalSites) -> None:
    result = await check(Target(name="old", url=sites.expired_url("/"), ca_file=str(sites.ca_file)))

    assert_failed(result, "tls_error")
    assert "expired" in (result.error or "")


async def test_expired_cert_without_verification_reports_past_expiry(sites: LocalSites) -> None:
    result = await check(Target(name="old", url=sites.expired_url("/"), verify_tls=False))

    assert result.ok, result.error
    assert result.cert_expires_at is not None
    assert result.cert_expires_at < datetime.now(UTC)


async def test_unreadable_ca_file_is_tls_error(sites: LocalSites) -> None:
    result = await check(
        Target(name="tls", url=sites.https_url("/"), ca_file=str(sites.directory / "missing.pem"))
    )

    assert_failed(result, "tls_error")
    assert "missing.pem" in (result.error or "")


async def test_refused_port_is_connect_error(sites: LocalSites) -> None:
    result = await check(Target(name="closed", url=sites.refused_url))

    assert_failed(result, "connect_error")
    assert "refused" in (result.error or "").lower()
    assert result.connect_ms is None
    assert result.total_ms is not None


async def test_unresolvable_name_is_dns_error() -> None:
    result = await check(Target(name="nowhere", url="http://no-such-host.metrictui.invalid/"))

    assert_failed(result, "dns_error")
    assert result.resolved_ip is None


async def test_non_http_service_is_invalid_response(sites: LocalSites) -> None:
    result = await check(Target(name="ssh", url=sites.garbage_url))

    assert_failed(result, "invalid_response")
    assert result.connect_ms is not None  # the TCP connection itself worked
    assert "SSH-2.0-OpenSSH" in (result.error or "")  # says what answers there, escaped


async def test_endless_body_is_body_too_large(sites: LocalSites) -> None:
    result = await check(
        Target(name="endless", url=sites.http_url("/endless"), timeout=10),
        body_max_bytes=256 * 1024,
    )

    assert_failed(result, "body_too_large")
    assert result.status_code == 200


@pytest.mark.parametrize("chunked", ["0", "1"])
async def test_body_exactly_at_the_cap_is_read_and_one_byte_more_is_too_large(
    sites: LocalSites, chunked: str
) -> None:
    cap = 100_000
    async with running_checker(body_max_bytes=cap) as checker:
        at_cap = await checker.check(
            Target(name="t", url=sites.http_url(f"/bytes/{cap}?chunked={chunked}"))
        )
        over = await checker.check(
            Target(name="t", url=sites.http_url(f"/bytes/{cap + 1}?chunked={chunked}"))
        )

    assert at_cap.ok, at_cap.error
    assert_failed(over, "body_too_large")


async def test_dripping_body_times_out_within_the_timeout(sites: LocalSites) -> None:
    began = time.monotonic()
    result = await check(Target(name="drip", url=sites.http_url("/drip"), timeout=1.5))
    elapsed = time.monotonic() - began

    assert_failed(result, "timeout")
    assert result.status_code == 200  # headers came, the body never finished
    assert "body" in (result.error or "")
    assert result.total_ms is not None and 1400 <= result.total_ms <= 2500
    assert elapsed < 1.5 + 1.0


async def test_server_that_never_answers_times_out(sites: LocalSites) -> None:
    result = await check(Target(name="silent", url=sites.silent_url, timeout=0.5))

    assert_failed(result, "timeout")
    assert result.status_code is None
    assert result.ttfb_ms is None


async def test_redirect_loop_is_too_many_redirects(sites: LocalSites) -> None:
    result = await check(Target(name="loop", url=sites.http_url("/redirect-loop")))

    assert_failed(result, "too_many_redirects")


async def test_redirects_up_to_the_limit_are_followed(sites: LocalSites) -> None:
    async with running_checker(max_redirects=3) as checker:
        three = await checker.check(Target(name="t", url=sites.http_url("/redirect/3")))
        four = await checker.check(Target(name="t", url=sites.http_url("/redirect/4")))

    assert three.ok, three.error
    assert three.status_code == 200
    assert_failed(four, "too_many_redirects")


async def test_max_redirects_zero_reports_the_redirect_itself(sites: LocalSites) -> None:
    result = await check(Target(name="t", url=sites.http_url("/redirect/1")), max_redirects=0)

    assert result.ok, result.error
    assert result.status_code == 302


async def test_backtracking_regex_finishes_fast_because_re2(sites: LocalSites) -> None:
    target = Target(name="redos", url=sites.http_url("/a-run/100000"), regex="(a+)+$")
    began = time.monotonic()
    result = await check(target)
    elapsed = time.monotonic() - began

    assert_failed(result, "content_mismatch")
    assert result.content_match is False
    assert elapsed < 5.0  # a backtracking engine would take longer than the universe's age


async def test_invalid_regex_is_error_not_exception(sites: LocalSites) -> None:
    result = await check(Target(name="t", url=sites.http_url("/"), regex="(unclosed"))

    assert_failed(result, "error")
    assert "regex" in (result.error or "")
    assert "missing )" in (result.error or "")


async def test_configured_headers_are_sent(sites: LocalSites) -> None:
    result = await check(
        Target(
            name="t",
            url=sites.http_url("/headers"),
            headers=(("X-Probe", "metrictui-42"),),
            regex='"X-Probe": "metrictui-42"',
        )
    )

    assert result.ok, result.error
    assert result.content_match is True


async def test_unsupported_scheme_is_error(sites: LocalSites) -> None:
    result = await check(Target(name="t", url="ftp://127.0.0.1/file"))

    assert_failed(result, "error")


async def test_hostile_site_does_not_slow_a_concurrent_normal_check(sites: LocalSites) -> None:
    async with running_checker() as checker:
        drip = asyncio.create_task(
            checker.check(Target(name="drip", url=sites.http_url("/drip"), timeout=3))
        )
        endless = asyncio.create_task(
            checker.check(Target(name="endless", url=sites.http_url("/endless"), timeout=3))
        )
        await asyncio.sleep(0.2)
        normal = await checker.check(Target(name="home", url=sites.http_url("/"), timeout=3))
        assert not drip.done()
        await asyncio.gather(drip, endless)

    assert normal.ok, normal.error
    assert normal.total_ms is not None and normal.total_ms < 1000


async def test_cancelling_a_check_propagates_cancellation(sites: LocalSites) -> None:
    async with running_checker() as checker:
        task = asyncio.create_task(
            checker.check(Target(name="drip", url=sites.http_url("/drip"), timeout=30))
        )
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_error_text_is_one_line_and_capped() -> None:
    hostile = "line one\r\nline two\x1b[31m red\x00" + "x" * 1000

    text = squash_line(hostile)

    assert len(text) == 300
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\x00" not in text
    assert text.startswith("line one line two\ufffd[31m red\ufffd")


async def test_a_gzip_body_is_decoded_before_the_regex(sites: LocalSites) -> None:
    result = await check(Target(name="t", url=sites.http_url("/gzip"), regex="all good"))

    assert result.ok, result.error
    assert result.content_match is True


async def test_a_body_that_is_not_the_gzip_it_claims_is_invalid_response(
    sites: LocalSites,
) -> None:
    result = await check(Target(name="t", url=sites.scripted_url("bad-gzip"), regex="x"))

    assert_failed(result, "invalid_response")
    assert "gzip" in (result.error or "")


async def test_head_ends_at_the_headers_although_a_length_is_announced(sites: LocalSites) -> None:
    result = await check(Target(name="t", url=sites.http_url("/"), method="HEAD", timeout=2))

    assert result.ok, result.error
    assert (result.status_code, result.total_ms is not None) == (200, True)
    assert result.total_ms is not None and result.total_ms < 1000  # not waiting for a body


async def test_see_other_after_a_post_is_followed_with_get(sites: LocalSites) -> None:
    result = await check(
        Target(name="t", url=sites.http_url("/see-other"), method="POST", regex="^GET$")
    )

    assert result.ok, result.error
    assert result.content_match is True


async def test_a_body_that_ends_with_the_connection_is_read(sites: LocalSites) -> None:
    result = await check(Target(name="t", url=sites.scripted_url("until-close"), regex="all good"))

    assert result.ok, result.error
    assert result.content_match is True


async def test_interim_responses_are_skipped_for_the_final_one(sites: LocalSites) -> None:
    result = await check(Target(name="t", url=sites.scripted_url("interim"), regex="all good$"))

    assert result.ok, result.error
    assert (result.status_code, result.content_match) == (200, True)


async def test_a_body_cut_short_is_invalid_response(sites: LocalSites) -> None:
    result = await check(Target(name="t", url=sites.scripted_url("cut-short")))

    assert_failed(result, "invalid_response")
    assert "before a complete response" in (result.error or "")
    assert result.status_code == 200


async def test_headers_that_never_end_are_invalid_response(sites: LocalSites) -> None:
    result = await check(Target(name="t", url=sites.scripted_url("header-flood")))

    assert_failed(result, "invalid_response")
    assert "headers longer than" in (result.error or "")


def test_checks_on_uvloop_as_in_the_worker_processes(sites: LocalSites) -> None:
    """The workers run the checker on uvloop, whose transports are not asyncio's classes."""

    async def both() -> tuple[CheckResult, CheckResult]:
        async with running_checker() as checker:
            plain = await checker.check(Target(name="h", url=sites.http_url("/"), regex="good"))
            tls = await checker.check(
                Target(name="s", url=sites.https_url("/"), ca_file=str(sites.ca_file))
            )
        return plain, tls

    plain, tls = uvloop.run(both())

    assert plain.ok and plain.content_match, plain.error
    assert tls.ok, tls.error
    assert tls.tls_ms is not None and tls.cert_expires_at == sites.https_cert_expires_at


async def test_payload_is_json_ready_with_offset_datetimes(sites: LocalSites) -> None:
    result = await check(
        Target(name="tls", url=sites.https_url("/"), ca_file=str(sites.ca_file), regex="good")
    )

    payload = json.loads(json.dumps(result.to_payload()))

    assert payload["target"] == "tls"
    assert payload["ok"] is True
    assert payload["content_match"] is True
    started = datetime.fromisoformat(payload["started_at"])
    assert started.utcoffset() is not None
    expires = datetime.fromisoformat(payload["cert_expires_at"])
    assert expires == sites.https_cert_expires_at
    assert set(payload) == set(RESULT_FIELDS)


def test_a_finished_check_leaves_nothing_for_the_cycle_collector(
    sites: LocalSites, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check's reader, its parser and its transport are freed by reference counting when the
    connection closes. They used to refer to each other, so every check left about ten objects
    that only the cycle collector could free: with thousands of targets its passes paused the
    event loop for a fifth of a second (engine.process_gc)."""
    readers: list[weakref.ref[ResponseReader]] = []
    made = ResponseReader.__init__

    def tracked(self: ResponseReader, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        readers.append(weakref.ref(self))

    monkeypatch.setattr(ResponseReader, "__init__", tracked)

    async def main() -> None:
        async with running_checker() as checker:
            for path in ("/", "/redirect/2", "/status/500"):
                await checker.check(Target(name="t", url=sites.http_url(path)))
            ca = str(sites.ca_file)
            await checker.check(Target(name="s", url=sites.https_url("/"), ca_file=ca))
            await asyncio.sleep(0.05)  # the transports' last callbacks

    gc.collect()
    gc.disable()
    try:
        uvloop.run(main())  # as headless and the check workers run
        assert len(readers) >= 3
        assert [ref for ref in readers if ref() is not None] == []
    finally:
        gc.enable()
