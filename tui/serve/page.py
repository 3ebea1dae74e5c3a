"""The one HTML page a tab loads, and its stylesheet: ours, with nothing from the internet.

textual-serve's own page pulls its font from Google Fonts; this one declares the same
"Roboto Mono" with `@font-face` on the copy textual-serve ships, and preloads it so the
terminal measures its cells with the right font. It has no inline script, so the Content
Security Policy can forbid every script but our own origin's.
"""

from __future__ import annotations

import html

from aiohttp import web

FONT = "/static/fonts/RobotoMono-VariableFont_wght.ttf"
FONT_ITALIC = "/static/fonts/RobotoMono-Italic-VariableFont_wght.ttf"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",  # xterm.js sizes its rows with inline styles
        "font-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

PAGE_CSS = f"""
@font-face {{
  font-family: "Roboto Mono";
  src: url("{FONT}") format("truetype");
  font-weight: 100 700;
  font-style: normal;
}}
@font-face {{
  font-family: "Roboto Mono";
  src: url("{FONT_ITALIC}") format("truetype");
  font-weight: 100 700;
  font-style: italic;
}}
html, body {{ margin: 0; height: 100%; background: #0c181f; overflow: hidden; }}
#terminal {{ position: absolute; inset: 0; }}
.ended {{
  display: none; position: absolute; inset: 0; z-index: 10;
  align-items: center; justify-content: center; flex-direction: column;
  background: rgba(12, 24, 31, 0.92); color: #e6e6e6;
  font: 16px "Roboto Mono", monospace;
}}
.ended a {{ color: #8ecbff; margin-top: 1em; }}
body.-closed .ended {{ display: flex; }}
"""


def page_html(websocket_url: str, font_size: int) -> str:
    """The page: textual-serve's terminal client pointed at our websocket."""
    ws = html.escape(websocket_url, quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>metrictui</title>
<link rel="preload" href="{FONT}" as="font" type="font/ttf" crossorigin>
<link rel="stylesheet" href="/static/css/xterm.css">
<link rel="stylesheet" href="/page.css">
<script src="/static/js/textual.js"></script>
</head>
<body>
<div id="terminal" class="textual-terminal" data-session-websocket-url="{ws}"
 data-font-size="{font_size}"></div>
<div class="ended"><div>This dashboard session has ended.</div><a href="/">Open it again</a></div>
</body>
</html>
"""


def websocket_url(request: web.Request, public_url: str | None) -> str:
    """Where the page's script connects: the same host the browser used, or `public_url`."""
    if public_url:
        base = public_url.rstrip("/")
        scheme, _, rest = base.partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"
    return f"{'wss' if request.secure else 'ws'}://{request.host}/ws"


def font_size(request: web.Request) -> int:
    """`?fontsize=N` (8..40) for wall screens; 16 otherwise."""
    text = request.query.get("fontsize", "")
    return int(text) if text.isdigit() and 8 <= int(text) <= 40 else 16
