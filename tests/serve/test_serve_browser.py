"""`metrictui serve` in Debian's Chromium: the real engine on the local stack, real tabs.

What a tab shows is read back from the bytes its terminal received (tests/helpers/browser.py).
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page

from helpers.browser import TabScreen, chromium, new_context
from helpers.serve_proc import gone, start_engine, start_serve, stop_engine
from helpers.sites import LocalSites
from helpers.stack import Pipeline
from helpers.waiting import wait_for
from tui.screens.target_form import TEXT_FIELDS

HINTS = {field: hint for field, _, hint in TEXT_FIELDS}

pytestmark = pytest.mark.integration

RATE = re.compile(r"produced\s+([0-9.]+)")


def nonzero_rate(text: str) -> bool:
    match = RATE.search(text)
    return match is not None and float(match.group(1)) > 0


def press_until(
    page: Page, tab: TabScreen, key: str, shown: Callable[[str], bool], what: str
) -> None:
    """Press `key` until `shown` holds: under heavy load a key pressed while the tab is still
    taking in its focus can be dropped; a second press proves the same thing."""
    for _ in range(3):
        page.keyboard.press(key)
        try:
            tab.wait_for(shown, what, timeout=20)
            return
        except AssertionError:
            continue
    tab.wait_for(shown, what, timeout=1)


def test_browser_tab_shows_the_live_dashboard_and_adds_a_checked_target(
    pipeline: Pipeline, local_sites: LocalSites, tmp_path: Path
) -> None:
    pipeline.write_targets([{"name": "web-home", "url": local_sites.http_url("/"), "interval": 1}])
    engine = start_engine(pipeline, tmp_path / "engine.log")
    serve = start_serve(pipeline, tmp_path)
    requested: list[str] = []
    problems: list[str] = []
    try:
        with chromium() as browser:
            context = new_context(browser)
            page = context.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            response = page.goto(serve.url)
            assert response is not None and response.status == 200
            # The token left the address bar: a cookie (HttpOnly, SameSite=Strict) carries it.
            assert page.url == serve.base + "/"
            (cookie,) = context.cookies()
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert serve.url.split("token=")[1] not in page.content()

            tab = TabScreen(page)
            text = tab.wait_for(lambda t: "web-home" in t and nonzero_rate(t), "target + rate")
            assert f"attached to agent {pipeline.agent} (pid" in text

            page.locator("textarea.xterm-helper-textarea").focus()
            press_until(page, tab, "?", lambda t: "Keys" in t and "esc Close" in t, "help")
            page.keyboard.press("Escape")
            tab.wait_for(lambda t: "esc Close" not in t, "the dashboard again")

            press_until(page, tab, "a", lambda t: "Add target" in t, "the add-target form")
            for placeholder, value in (
                (HINTS["name"], "from-browser"),
                (HINTS["url"], local_sites.http_url("/status/200")),
                (HINTS["interval"], "1"),
            ):
                tab.click(placeholder)
                page.keyboard.type(value)
                tab.wait_for(lambda t, v=value: v in t, f"{value!r} typed into the form")
            page.keyboard.press("Control+s")
            tab.wait_for(
                lambda t: "Add target" not in t and "from-browser" in t, "the added target's row"
            )
            # Nothing came from anywhere but serve itself: the page loads offline.
            assert requested and all(u.startswith(serve.base + "/") for u in requested), requested
            assert any(u.endswith(".ttf") for u in requested), "the local font was not used"
            assert page.evaluate("document.fonts.check('16px \"Roboto Mono\"')")
            assert problems == [], problems
        wait_for(
            lambda: (
                pipeline.query(
                    "SELECT count(*) FROM checks_v WHERE target = 'from-browser' AND ok"
                )[0][0]
                > 0
            ),
            90,
            "rows of the browser-added target in checks_v",
        )
    finally:
        assert serve.stop() == 0
        stop_engine(engine)
    # The token was printed once, in the start line, and never logged.
    token = serve.url.split("token=")[1]
    assert sum(token in line for line in serve.stdout) == 1
    assert token not in serve.stderr_log.read_text()


def test_page_says_the_engine_is_missing_and_attaches_when_it_starts_and_returns(
    pipeline: Pipeline, local_sites: LocalSites, tmp_path: Path
) -> None:
    pipeline.write_targets([{"name": "web-home", "url": local_sites.http_url("/"), "interval": 1}])
    serve = start_serve(pipeline, tmp_path)
    engine = None
    try:
        with chromium() as browser:
            page = new_context(browser).new_page()
            page.goto(serve.url)
            tab = TabScreen(page)
            tab.wait_for(lambda t: "NO ENGINE RUNNING" in t, "the missing engine")
            engine = start_engine(pipeline, tmp_path / "engine.log")
            tab.wait_for(lambda t: "web-home" in t and "attached to" in t, "the attached engine")
            stop_engine(engine)
            tab.wait_for(lambda t: "ENGINE GONE" in t, "the engine gone")
            engine = start_engine(pipeline, tmp_path / "engine.log")
            tab.wait_for(lambda t: "attached to" in t, "the re-attached engine")
    finally:
        serve.stop()
        if engine is not None:
            stop_engine(engine)


@pytest.mark.timeout(900)  # 21 dashboard processes start one after another
def test_twenty_tab_cycles_leave_nothing_behind_and_sigterm_ends_every_tab(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    serve = start_serve(pipeline, tmp_path)
    try:
        with chromium() as browser:
            context = new_context(browser)
            baseline = None
            for cycle in range(21):
                page = context.new_page()
                page.goto(serve.url if cycle == 0 else serve.base + "/")
                page.wait_for_selector("body.-first-byte", timeout=120_000)  # it drew
                pids = [k.pid for k in serve.children()]
                assert len(pids) == 1, pids
                page.close()
                wait_for(lambda p=pids: gone(p) and not serve.children(), 30, "the tab's end")
                if cycle == 0:  # after one tab: lazily opened descriptors are open for good
                    baseline = serve.fds()
            assert serve.fds() <= (baseline or 0), "file descriptors leaked over 20 tabs"

            pages = [context.new_page() for _ in range(2)]
            for page in pages:
                page.goto(serve.base + "/")
                page.wait_for_selector("body.-first-byte", timeout=120_000)
            pids = [k.pid for k in serve.children()]
            assert len(pids) == 2
            serve.proc.send_signal(signal.SIGTERM)
            assert serve.proc.wait(timeout=5) == 0  # the contract: everything ends within 5 s
            assert gone(pids)
    finally:
        serve.stop()
