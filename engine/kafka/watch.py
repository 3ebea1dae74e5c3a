"""Name the cause when Kafka starts refusing us after start (rotated certificate, changed
password, replaced CA), instead of showing `kafka=down` and retrying in silence.

At start, a refused TLS handshake or SASL login is fatal with one line (engine.kafka.topics). Later
the producer and the consumer only see aiokafka's "Unable to bootstrap" or a timeout, which a
broker restart gives too. While a client is down, `SettingsWatch` runs the start-time probe
(`probe_settings`) in the background, never more than one at a time and with a back-off, and
records what it finds: a WARNING log line and one error entry per distinct cause, plus
`Stats.kafka_problems`, which the status line, /healthz and the dashboard show. The clients
keep retrying (operators fix credentials while the agent runs); once one connects, or a probe
gets through, the cause is cleared.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from engine.config import KafkaConfig
from engine.kafka.settings import Probe, probe_settings
from engine.stats import Problem, Stats
from engine.tasks import cancel_and_wait

log = logging.getLogger("metrictui.kafka")

# The first probe goes out as soon as a client is down, when a restarting broker often does
# not answer yet; the pause between probes doubles up to the cap while it stays down.
FIRST_PAUSE_S = 5.0
MAX_PAUSE_S = 30.0
PROBE_TIMEOUT_S = 10.0

ProbeFn = Callable[[KafkaConfig, float], Awaitable[Probe]]


class SettingsWatch:
    """One per Kafka client: `down()` on every failure, `up()` on every success; cheap and
    never blocking, so the send and consume paths can call them as often as they like."""

    def __init__(
        self,
        cfg: KafkaConfig,
        stats: Stats,
        source: str,
        probe: ProbeFn = probe_settings,
        *,
        first_pause_s: float = FIRST_PAUSE_S,
        max_pause_s: float = MAX_PAUSE_S,
    ) -> None:
        self.cfg = cfg
        self.stats = stats
        self.source = source
        self._probe = probe
        self._first_pause = first_pause_s
        self._max_pause = max_pause_s
        self._task: asyncio.Task[None] | None = None
        self._pause = first_pause_s
        self._next_at = 0.0  # monotonic time before which no new probe starts
        self.settings_work = False
        """A probe got through while the client was down: the settings as they are now (files
        read afresh) work, so a client still failing holds stale ones in memory."""

    def down(self) -> None:
        """The client failed to reach Kafka: probe in the background if one is due."""
        if self._task is not None and not self._task.done():
            return
        now = time.monotonic()
        if now < self._next_at:
            return
        self._next_at = now + self._pause
        self._pause = min(self._pause * 2, self._max_pause)
        self._task = asyncio.create_task(self._run(), name=f"{self.source}-kafka-probe")

    def up(self) -> None:
        """The client is connected: forget the back-off and any cause it had named."""
        self._pause = self._first_pause
        self._next_at = 0.0
        self.settings_work = False
        if self._task is not None and not self._task.done():
            self._task.cancel()  # its answer would be about a connection that now works
        self._clear()

    async def close(self) -> None:
        """Cancel a probe in flight (engine stop)."""
        if self._task is not None and not self._task.done():
            await cancel_and_wait(self._task)

    async def _run(self) -> None:
        try:
            result = await self._probe(self.cfg, PROBE_TIMEOUT_S)
        except Exception as exc:  # a probe bug must not end up as an unretrieved task error
            log.debug("Kafka settings probe failed: %s", type(exc).__name__)
            return
        self.settings_work = result.reached
        if result.problem is not None:
            self._name(result.problem)
        elif result.reached:
            self._clear()  # our settings work; the client reconnects on its next try

    def _name(self, problem: Problem) -> None:
        if self.stats.kafka_problems.get(self.source) == problem:
            return
        if self.stats.name_kafka_problem(self.source, problem):
            log.warning("%s; retrying until it is fixed", problem.line)
            self.stats.error("kafka", problem.line)

    def _clear(self) -> None:
        if self.stats.clear_kafka_problem(self.source):
            log.info("Kafka accepts the [kafka] settings again (%s)", self.source)
