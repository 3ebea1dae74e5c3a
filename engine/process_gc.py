"""The cycle collector's settings for a long-running metrictui process (agent, sink, worker).

CPython's collector runs a pass every 700 net allocations of container objects by default. A
metrictui process allocates at a steady high rate (events, checks, futures), and almost
nothing it makes forms reference cycles: reference counting frees it within the second. So
each short-lived object was walked by a pass or more on its way, for nothing, while the
objects made at start-up (modules, clients, targets, caches) were walked again by every full
pass. Measured: a tenth of the sink's CPU (a million rows), and about a fifth of an agent's
checking 1,000 websites a second in its own process (`python -m bench.peers --only checks`).

It only pays where the hot paths make no cycles: a check's connection used to be one (see
`engine.agent.checks.http1.ResponseReader.connection_lost`), and a pass over thousands of
those paused the event loop for a fifth of a second. So it is for the processes on uvloop
(headless, the sink, the check workers), not for the dashboard's: asyncio's own socket
transports refer to themselves, and the dashboard must never pause that long.
"""

from __future__ import annotations

import gc

YOUNG_GENERATION = 100_000
"""Allocations between two passes of the young generation (CPython's default: 700)."""


def keep_startup_out_of_gc() -> None:
    """Freeze what exists now and make passes rare; call once the process runs.

    What exists once the process runs lives as long as it: it is frozen, out of the
    collector's full passes (collected first, so no garbage is frozen). The young generation
    is made `YOUNG_GENERATION` objects instead of 700: a pass comes seldom and finds the
    short-lived objects gone. Cycles others make (exceptions with tracebacks, the dashboard's
    widgets) are still collected, a little later. Safe to call again: the next call freezes
    what was made since."""
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, YOUNG_GENERATION), gen1, gen2)
