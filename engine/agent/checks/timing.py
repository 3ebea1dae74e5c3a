"""Phase timing of one website check, all with `time.perf_counter`, summed over redirect hops.

The checker (`engine.agent.checks.checker`) runs each phase itself, one await per phase, so
each boundary is a plain `perf_counter()` around that await:

- ``dns_ms``: the lookup in our resolver (`PooledResolver`); an IP literal is not resolved and
  has ``dns_ms=None``. Lookups run on a thread pool of our own so slow or dead name servers of
  some targets cannot queue the lookups of the others behind them in the event loop's small
  default executor.
- ``connect_ms``: the TCP connect (the last address tried, when a name has several).
- ``tls_ms``: the TLS handshake, a separate `loop.start_tls` after the connect; ``None`` for
  plain http.
- ``ttfb_ms``: the request written -> the status line and headers parsed, of the last hop.
- ``total_ms``: start of the check -> body read (or failure).

Phases that did not complete are ``None``; ``total_ms`` is always set.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

DNS_THREADS = 32
"""Size of the resolver's own pool: getaddrinfo blocks a thread for as long as DNS takes."""

Phase = Literal["dns", "connect", "tls"]
"""The phases a hop repeats, whose times `Timeline.add` sums: each is the `<phase>_ms` slot."""


class Timeline:
    """Phase durations and what the check got so far; `stage` names the phase under way, for
    the timeout's message."""

    __slots__ = (
        "cert_der",
        "connect_ms",
        "dns_ms",
        "resolved_ip",
        "stage",
        "status",
        "tls_ms",
        "ttfb_ms",
    )

    def __init__(self) -> None:
        self.dns_ms: float | None = None
        self.connect_ms: float | None = None
        self.tls_ms: float | None = None
        self.ttfb_ms: float | None = None
        self.resolved_ip: str | None = None
        self.status: int | None = None
        self.cert_der: bytes | None = None
        self.stage = "starting"

    def add(self, phase: Phase, ms: float) -> None:
        """Add `ms` to the phase's time: each redirect hop resolves, connects and shakes hands
        again, and a check's timing is the sum over its hops (None until a hop completes it)."""
        name = f"{phase}_ms"
        so_far: float | None = getattr(self, name)
        setattr(self, name, ms if so_far is None else so_far + ms)


def elapsed_ms(start: float, end: float) -> float:
    return (end - start) * 1000.0


class PooledResolver:
    """getaddrinfo on a dedicated thread pool: the (family, address) pairs to try, in order."""

    def __init__(self, threads: int = DNS_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="metrictui-dns")

    async def resolve(self, host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
        """Addresses of `host` (raises `socket.gaierror`). A link-local IPv6 address keeps its
        scope id ("fe80::1%eth0"), which connecting needs."""
        infos = await asyncio.get_running_loop().run_in_executor(
            self._pool,
            functools.partial(
                socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG
            ),
        )
        found: list[tuple[socket.AddressFamily, str]] = []
        for family, _, _, _, address in infos:
            if family == socket.AF_INET6 and len(address) >= 4 and address[3]:
                numeric, _ = socket.getnameinfo(
                    address[:4], socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
                )
            elif family in (socket.AF_INET, socket.AF_INET6):
                numeric = str(address[0])
            else:
                continue
            if (family, numeric) not in found:
                found.append((family, numeric))
        return found

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
