"""Website checks spread over worker processes, for agents with more targets than one core checks.

A new-connection check costs about 0.2 ms of CPU (Python, llhttp and the kernel's TCP setup),
so thousands of them a second would keep the event loop that also feeds Kafka and paints the
dashboard busy, and every check would start late. `CheckWorkerPool` runs the targets in
``[agent] check_workers`` processes (`engine.agent.checks.worker`), each with its own
scheduler, checker and uvloop, while this process keeps the Kafka producer, the stats and the
control API.

- **Sharding:** a target belongs to the worker its name hashes to (`shard_of`), so an edit
  moves no other target and a restart finds the same shard; the hash is independent of the
  one that places slots in the interval, so every worker gets an even share of each second.
- **Runtime edits:** `set_targets` (called by the engine on add/edit/toggle/delete) resends
  the shards that changed; each worker's own scheduler diffs them as the in-process one does.
- **Results:** each arrives once, with the Kafka event already encoded by the worker. A result
  for a target that was edited, disabled or deleted meanwhile is dropped, as in-process.
- **Worker death:** noticed at once (its pipe closes) or after `SILENT_LIMIT_S` without a
  frame (it sends one a second); said in one log line, recorded in the stats' errors, counted
  in `restarts`, and the worker is restarted (backing off if it keeps dying). Its checks in
  flight are lost, and that line says so.
- **Stopping:** closing a worker's stdin stops it; it cancels its checks and exits. Workers
  ignore SIGINT/SIGTERM and exit when the engine goes away, even when killed, so none is
  orphaned.

How many: `engine.agent.checks.sizing.worker_count`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import engine
from engine.agent.checks.wire import (
    MISSED,
    RESULT,
    SETUP,
    TARGETS,
    FrameError,
    FrameReader,
    frame,
    result_from_wire,
    targets_to_wire,
)
from engine.records.check_result import CheckResult
from engine.targets import Target

log = logging.getLogger("metrictui.checks")

SILENT_LIMIT_S = 15.0
"""A worker that sends nothing (not even its once-a-second report) this long is replaced."""

STOP_TIMEOUT_S = 5.0
"""`stop()` waits this long for workers to exit after their stdin closes, then kills them."""

RESTART_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Pause before restarting a worker, longer each time it dies within `STABLE_S` of starting."""

STABLE_S = 10.0

ResultHandler = Callable[[CheckResult, float, bytes], None]
"""Receives each result, its start lateness (s) and its encoded Kafka event."""


def shard_of(name: str, workers: int) -> int:
    """The worker that checks target `name`; stable across restarts and processes.

    A hash of its own, not `spread(name)`: the scheduler places each target's slot at
    `spread(name)` within the interval, so sharding by it too would hand one worker the first
    half of every interval and the other the second half, each idle half the time and doing
    twice the rate for the rest.
    """
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8, person=b"mtui-shard").digest()
    return int.from_bytes(digest, "big") % workers


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """What every worker needs besides its targets."""

    agent: str
    host: str
    body_max_bytes: int
    concurrency: int
    """For all workers together; each gets its share."""
    location: str = "default"
    clock_phase: bool = False
    """Slots on a wall-clock phase per target (fleet agents; see agent.scheduler)."""


class _Worker:
    """One worker slot: the current process (if any) and what it was last sent."""

    __slots__ = ("index", "missed", "missed_before", "proc", "sent", "task")

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.sent: list[Target] | None = None
        self.missed = 0
        self.missed_before = 0  # reported by earlier processes of this slot
        self.task: asyncio.Task[None] | None = None


class CheckWorkerPool:
    """The scheduler's interface (`set_targets`, `start`, `stop`, `missed_slots`) over workers."""

    def __init__(
        self,
        workers: int,
        setup: WorkerSetup,
        on_result: ResultHandler,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self._setup = setup
        self._on_result = on_result
        self._on_error = on_error
        self._workers = [_Worker(i) for i in range(workers)]
        self._wanted: dict[str, Target] = {}
        self._shard: dict[str, int] = {}
        self._started = False
        self._stopping = asyncio.Event()
        self.restarts = 0
        """Workers restarted after dying or going silent."""

    @property
    def workers(self) -> int:
        return len(self._workers)

    @property
    def missed_slots(self) -> int:
        """Slots skipped in all workers, as last reported (about once a second)."""
        return sum(w.missed_before + w.missed for w in self._workers)

    @property
    def scheduled(self) -> tuple[Target, ...]:
        return tuple(self._wanted.values()) if self._started else ()

    def pids(self) -> list[int]:
        """Process ids of the running workers (for tests and diagnostics)."""
        return [
            w.proc.pid for w in self._workers if w.proc is not None and w.proc.returncode is None
        ]

    def set_targets(self, targets: Sequence[Target], catch_up_after: float | None = None) -> None:
        """Replace the target list; only the shards that changed are sent to their workers
        (with `catch_up_after`, as `CheckScheduler.set_targets` takes it)."""
        self._wanted = {t.name: t for t in targets if t.enabled}
        if self._started:
            for worker in self._workers:
                self._send_shard(worker, catch_up_after)

    def start(self) -> None:
        """Start the workers; call from inside the running event loop."""
        if self._started:
            return
        self._started = True
        for worker in self._workers:
            worker.task = asyncio.create_task(
                self._supervise(worker), name=f"check-worker-{worker.index}"
            )

    async def stop(self) -> None:
        """Stop every worker (stdin closed, then killed after `STOP_TIMEOUT_S`); no orphans."""
        self._stopping.set()
        for worker in self._workers:
            proc = worker.proc
            if proc is not None and proc.stdin is not None:
                proc.stdin.close()
        tasks = [w.task for w in self._workers if w.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
        for task in pending:
            task.cancel()  # the supervisor kills its process on the way out
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if pending:
            log.warning("%d check workers did not stop within %.0f s", len(pending), STOP_TIMEOUT_S)

    # -- one worker ---------------------------------------------------------------------------

    def _shard_for(self, worker: _Worker) -> list[Target]:
        count, shard = len(self._workers), self._shard
        mine: list[Target] = []
        for name, target in self._wanted.items():
            index = shard.get(name)
            if index is None:
                index = shard[name] = shard_of(name, count)
            if index == worker.index:
                mine.append(target)
        return mine

    def _send(self, worker: _Worker, message: tuple[object, ...]) -> bool:
        proc = worker.proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return False
        try:
            proc.stdin.write(frame(message))
        except (OSError, RuntimeError):  # it died; the supervisor notices and restarts it
            return False
        return True

    def _send_shard(self, worker: _Worker, catch_up_after: float | None = None) -> None:
        shard = self._shard_for(worker)
        message = (TARGETS, targets_to_wire(shard), catch_up_after)
        if shard != worker.sent and self._send(worker, message):
            worker.sent = shard

    async def _supervise(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        quick_deaths = 0
        try:
            while not self._stopping.is_set():
                began = loop.time()
                ended = await self._run_once(worker)
                if self._stopping.is_set():
                    return
                quick = loop.time() - began < STABLE_S
                delay = RESTART_DELAYS_S[min(quick_deaths, len(RESTART_DELAYS_S) - 1)]
                quick_deaths = quick_deaths + 1 if quick else 0
                self.restarts += 1
                line = (
                    f"check worker {worker.index} {ended}; restarting it (restart"
                    f" {self.restarts}); the checks it had in flight are lost"
                )
                log.error("%s", line)
                if self._on_error is not None:
                    self._on_error(line)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
        finally:
            proc = worker.proc
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    async with asyncio.timeout(2):
                        await proc.wait()

    async def _run_once(self, worker: _Worker) -> str:
        """Run one process of this slot until it ends; returns how it ended, for the log."""
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "engine.agent.checks.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=_child_env(),
            )
        except OSError as exc:
            return f"could not be started ({exc.strerror or exc})"
        worker.proc, worker.sent = proc, None
        worker.missed_before += worker.missed
        worker.missed = 0
        setup = self._setup
        share = max(1, math.ceil(setup.concurrency / len(self._workers)))
        self._send(
            worker,
            (
                SETUP,
                setup.agent,
                setup.host,
                setup.body_max_bytes,
                share,
                setup.location,
                setup.clock_phase,
            ),
        )
        self._send_shard(worker)
        if self._stopping.is_set() and proc.stdin is not None:
            proc.stdin.close()
        assert proc.stdout is not None and proc.stderr is not None
        relay = asyncio.create_task(_relay_logs(worker.index, proc.stderr))
        fault: str | None = None
        try:
            fault = await self._read_results(worker, proc.stdout)
        finally:
            if fault is not None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await proc.wait()
                    await relay
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                relay.cancel()
        if fault is not None:
            return f"(pid {proc.pid}) {fault}, so it was killed"
        return f"(pid {proc.pid}) exited with code {proc.returncode}"

    async def _read_results(self, worker: _Worker, stream: asyncio.StreamReader) -> str | None:
        """Hand every result to the engine until EOF (None) or a fault (its description)."""
        frames = FrameReader()
        wanted = self._wanted
        on_result = self._on_result
        while True:
            try:
                async with asyncio.timeout(SILENT_LIMIT_S):
                    data = await stream.read(1 << 20)
            except TimeoutError:
                return f"sent nothing for {SILENT_LIMIT_S:.0f} s"
            if not data:
                return None if frames.pending == 0 else "ended in the middle of a message"
            try:
                messages = frames.feed(data)
            except FrameError as exc:
                return f"sent a broken message ({exc})"
            wanted = self._wanted
            for message in messages:
                tag = message[0]
                if tag == RESULT:
                    result = result_from_wire(message[1])
                    target = wanted.get(result.target)
                    if target is None or target.url != result.url:
                        continue  # edited, disabled or deleted while it ran
                    try:
                        on_result(result, message[2], message[3])
                    except Exception:
                        log.exception("handling the check result of %s failed", result.target)
                elif tag == MISSED:
                    worker.missed = message[1]


async def _relay_logs(index: int, stream: asyncio.StreamReader) -> None:
    """Re-log a worker's stderr lines (``LEVEL logger: message``) through this process's logging,
    so they follow the engine's format (JSON or human) and never scribble over the dashboard."""
    while line := await stream.readline():
        text = line.decode("utf-8", "replace").rstrip()
        word, _, rest = text.partition(" ")
        level = logging.getLevelName(word)
        if isinstance(level, int):
            log.log(level, "check worker %d: %s", index, rest)
        elif text:
            log.warning("check worker %d: %s", index, text)


def _child_env() -> dict[str, str]:
    """This environment, with the directory holding `engine` first on the path, so the worker
    imports this very code whether metrictui is installed or run from a source tree."""
    root = str(Path(engine.__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
