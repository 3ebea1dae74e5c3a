"""The engine without a screen: the runner, status line, /metrics and /healthz.

Never imports tui.
"""
