"""The engine without a screen: the runner, status line, /metrics and /healthz.

Never imports tui.
"""

from engine.headless.health import HealthJudge
from engine.headless.http_status import start_status_server
from engine.headless.prom import render_metrics
from engine.headless.run import run_headless
from engine.headless.status_line import status_line

__all__ = [
    "HealthJudge",
    "render_metrics",
    "run_headless",
    "start_status_server",
    "status_line",
]
