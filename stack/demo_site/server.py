#!/usr/bin/env python3
"""A tiny local website for `make run`: real targets to check without any network.

Started (daemonised) by `stack/stack.py up`. Stdlib only. Pages:
  /              HTML containing "metrictui demo" (a content-regex target that matches)
  /slow          the same page after 2 s (a latency target)
  /status/<code> an empty response with that HTTP status (200-599), e.g. /status/500
  /healthz       "ok"
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

HOME_PAGE = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>metrictui demo</title></head>
<body>
<h1>metrictui demo</h1>
<p>A local page served by stack/demo_site/server.py so the website checks have something real
to look at. Try <a href="/slow">/slow</a> (2 s) and <a href="/status/500">/status/500</a>.</p>
</body>
</html>
"""

SLOW_SECONDS = 2.0


class DemoHandler(BaseHTTPRequestHandler):
    """Routes the few demo paths; everything else is 404."""

    server_version = "metrictui-demo/1"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._respond(with_body=True)

    def do_HEAD(self) -> None:
        self._respond(with_body=False)

    def _respond(self, *, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(200, HOME_PAGE, "text/html; charset=utf-8", with_body)
        elif path == "/slow":
            time.sleep(SLOW_SECONDS)
            self._send(200, HOME_PAGE, "text/html; charset=utf-8", with_body)
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8", with_body)
        elif path.startswith("/status/") and path[8:].isdigit() and 200 <= int(path[8:]) <= 599:
            code = int(path[8:])
            try:
                phrase = HTTPStatus(code).phrase
            except ValueError:
                phrase = "Status"
            body = b"" if code in (204, 304) else f"{code} {phrase}\n".encode()
            self._send(code, body, "text/plain; charset=utf-8", with_body)
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8", with_body)

    def _send(self, code: int, body: bytes, content_type: str, with_body: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        if code not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body and body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the checks hit this every few seconds; an access log would only grow."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), DemoHandler)
    server.daemon_threads = True

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() blocks until serve_forever returns, so call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"demo site on http://{args.host}:{args.port}/", flush=True)
    server.serve_forever(poll_interval=0.5)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
