"""How a dashboard reads and steers an engine: the protocol, in-process and over a socket.

Never imports tui.
"""

from engine.control.client import SocketControl
from engine.control.local import LocalControl
from engine.control.protocol import Control
from engine.control.server import ControlServer, socket_is_live, start_control_server

__all__ = [
    "Control",
    "ControlServer",
    "LocalControl",
    "SocketControl",
    "socket_is_live",
    "start_control_server",
]
