"""A check worker process: the scheduler and checker for one shard of the website targets.

Started by `engine.agent.checks.pool` as ``python -m engine.agent.checks.worker``. An agent
with many targets spreads them over a few of these, so their CPU (about 0.2 ms a plain-HTTP
check) stays off the engine process, which keeps only Kafka, stats, control and the dashboard.
Each worker runs on uvloop, which it owns, for a cheaper event loop.

Protocol (see `engine.agent.checks.wire`): frames in on stdin, frames out on a private copy of
stdout (fd 1 itself is pointed at stderr so a stray print cannot corrupt the stream). Logs go to
stderr as plain lines, which the engine re-logs in its own format. The worker exits when stdin
closes: the engine stopping, or dying, which is why SIGINT and SIGTERM are ignored here (a
terminal's Ctrl-C or systemd's signal to the whole group must not kill a worker before the
engine has stopped asking it for results).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

import uvloop

from engine.agent.checks.checker import Checker
from engine.agent.checks.wire import (
    MISSED,
    RESULT,
    SETUP,
    TARGETS,
    FrameError,
    FrameReader,
    frame,
    result_to_wire,
    targets_from_wire,
)
from engine.agent.scheduler import CheckScheduler
from engine.envelope import encode_event
from engine.logs import OneLineFormatter
from engine.process_gc import keep_startup_out_of_gc
from engine.records.check_result import CheckResult

log = logging.getLogger("metrictui.check_worker")

LINE_FORMAT = "%(levelname)s %(name)s: %(message)s"
"""How the worker writes log lines to stderr (`engine.agent.checks.pool` parses the level back)."""

FLUSH_S = 0.01
"""Results wait at most this long in the worker before going down the pipe together."""

MISSED_EVERY_S = 1.0
"""How often the worker reports its skipped-slot count (which doubles as its heartbeat)."""


class _Out:
    """The result pipe to the engine. Frames are gathered for up to `FLUSH_S` and written
    together: one pipe write per result was a few percent of a worker's CPU."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport
        self._frames: list[bytes] = []
        self._flush_at: asyncio.TimerHandle | None = None

    def send(self, message: tuple[Any, ...]) -> None:
        self._frames.append(frame(message))
        if self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        frames, self._frames = self._frames, []
        if frames and not self._transport.is_closing():
            self._transport.write(b"".join(frames))

    def close(self) -> None:
        self.flush()
        self._transport.close()


async def serve(in_fd: int, out_fd: int) -> None:
    """Read the setup and target shards from `in_fd`, check, write results to `out_fd`."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(in_fd, "rb", buffering=0)
    )
    transport, _ = await loop.connect_write_pipe(
        asyncio.Protocol, os.fdopen(out_fd, "wb", buffering=0)
    )
    out = _Out(transport)
    frames = FrameReader()
    checker: Checker | None = None
    scheduler: CheckScheduler | None = None
    reporter: asyncio.Task[None] | None = None
    started = False
    try:
        while data := await reader.read(1 << 20):
            for message in frames.feed(data):
                if message[0] == SETUP and checker is None:
                    _, agent, host, body_max_bytes, concurrency, location, phase = message
                    checker = Checker(body_max_bytes=body_max_bytes, location=location)
                    await checker.start()
                    scheduler = CheckScheduler(
                        checker,
                        _sender(out, agent, host),
                        concurrency=concurrency,
                        clock_phase=phase,
                    )
                    reporter = asyncio.create_task(_report_missed(out, scheduler))
                elif message[0] == TARGETS and scheduler is not None:
                    scheduler.set_targets(targets_from_wire(message[1]), message[2])
                    if not started:
                        started = True
                        scheduler.start()
                        # Everything so far (modules, the shard's targets) lives as long as
                        # the process: out of the collector, whose passes would otherwise walk
                        # it again and again (engine.process_gc).
                        keep_startup_out_of_gc()
                else:
                    raise FrameError(f"unexpected message {message[0]!r}")
    finally:
        if reporter is not None:
            reporter.cancel()
        if scheduler is not None:
            await scheduler.stop()
            out.send((MISSED, scheduler.missed_slots))
        if checker is not None:
            await checker.close()
        out.close()


def _sender(out: _Out, agent: str, host: str) -> Any:
    """The scheduler's result callback: encode the Kafka event here, where the CPU is spare."""

    def on_result(result: CheckResult, lateness: float) -> None:
        event = encode_event("check", agent, host, result.started_at, result.to_payload())
        out.send((RESULT, result_to_wire(result), lateness, event))

    return on_result


async def _report_missed(out: _Out, scheduler: CheckScheduler) -> None:
    """Also the heartbeat: the engine replaces a worker that stays silent for long."""
    while True:
        await asyncio.sleep(MISSED_EVERY_S)
        out.send((MISSED, scheduler.missed_slots))


class _LineFormatter(OneLineFormatter):
    """``LEVEL logger: message`` on one line; the engine re-logs it with its own time stamp."""

    def __init__(self) -> None:
        super().__init__(tracebacks=False)
        self._style = logging.PercentStyle(LINE_FORMAT)
        self._fmt = LINE_FORMAT


def main() -> None:
    """Entry point of ``python -m engine.agent.checks.worker``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        uvloop.run(serve(0, out_fd))
    except FrameError as exc:
        log.error("check worker stopped: the engine sent a broken message (%s)", exc)
        sys.exit(3)


if __name__ == "__main__":
    main()
