"""Debian's Chromium driven by Playwright, and the text a tab's terminal shows.

xterm.js draws the dashboard on a canvas, so there is no DOM text to read. Instead an init
script records every byte the page's websocket receives and every size it reports, and
`screen_text` replays those bytes through pyte (a VT100 emulator): the same stream xterm.js
drew from, read back as lines of text.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyte
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Without the background-networking flags Chromium keeps dialling Google on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

RECORD_WEBSOCKET = """
(() => {
  const Native = window.WebSocket;
  window.__received = [];
  window.__sent = [];
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      this.addEventListener("message", (event) => {
        if (typeof event.data !== "string") {
          window.__received.push(Array.from(new Uint8Array(event.data)));
        }
      });
    }
    send(data) { window.__sent.push(data); return super.send(data); }
  };
})();
"""


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium (Debian's package) for one test."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_context(browser: Browser) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(RECORD_WEBSOCKET)
    return context


class TabScreen:
    """What one tab's terminal shows, kept up to date from the recorded websocket bytes."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self._screen = pyte.Screen(80, 24)
        self._stream = pyte.ByteStream(self._screen)

    def text(self) -> str:
        """The terminal's lines now (bytes received since the last call are applied)."""
        sent: list[str] = self.page.evaluate("window.__sent.splice(0)")
        for message in sent:
            if message.startswith('["resize"'):
                size = json.loads(message)[1]
                self._screen.resize(size["height"], size["width"])
        chunks: list[list[int]] = self.page.evaluate("window.__received.splice(0)")
        self._stream.feed(b"".join(bytes(chunk) for chunk in chunks))
        return "\n".join(self._screen.display)

    def click(self, text: str) -> None:
        """Click the middle of the first place where `text` shows (focuses an input there)."""
        lines = self.text().split("\n")
        row, col = next((i, line.index(text)) for i, line in enumerate(lines) if text in line)
        box = self.page.locator(".xterm-screen").bounding_box()
        assert box is not None
        cell_w, cell_h = box["width"] / self._screen.columns, box["height"] / self._screen.lines
        x = box["x"] + (col + len(text) / 2) * cell_w
        self.page.mouse.click(x, box["y"] + (row + 0.5) * cell_h)

    def wait_for(self, check: Callable[[str], Any], what: str, timeout: float = 60.0) -> str:
        """Poll until `check(text)` holds; fail showing the screen if it never does."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if check(text):
                return text
            self.page.wait_for_timeout(300)
        raise AssertionError(f"{what} never showed; the tab shows:\n{text}")
