"""How a dashboard reads and steers an engine: the protocol, in-process and over a socket.

Never imports tui.
"""
