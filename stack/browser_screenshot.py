"""Take docs/browser.png: Debian's Chromium on a running `metrictui serve` (the README's picture).

metrictui --config .stack/metrictui.toml --headless &
metrictui --config .stack/metrictui.toml serve --listen 127.0.0.1:8640   # prints URL
.venv/bin/python stack/browser_screenshot.py URL docs/browser.png
"""

from __future__ import annotations

import sys

from playwright.sync_api import sync_playwright

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(url: str, out: str) -> int:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(url)
        page.wait_for_selector("body.-first-byte", timeout=120_000)
        # Focused, as under a user's hand: Textual hides the key hints while the page is blurred.
        page.focus("textarea.xterm-helper-textarea")
        page.wait_for_timeout(12_000)  # a few seconds of sparklines and the first checks
        page.screenshot(path=out)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
