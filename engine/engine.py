"""The engine: owns every task of one metrictui process and starts/stops them in order.

Roles: "producer" (collectors + checks -> Kafka, spool when away), "consumer" (Kafka ->
PostgreSQL), "all" (both, for a laptop). The engine is steered at runtime (targets, metrics)
through the methods below, which the TUI reaches via engine.control.local or the control socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from engine.agent.collector_names import COLLECTOR_NAMES
from engine.agent.recent_checks import RecentChecks
from engine.config import Config
from engine.db.retention import retention_loop
from engine.envelope import encode_event, metrics_payload
from engine.errors import UserError
from engine.kafka.topics import prepare_topics, topics_later
from engine.process_gc import keep_startup_out_of_gc
from engine.records.check_result import CheckResult
from engine.sink.consume import Sink
from engine.sink.prepare import prepare_postgres
from engine.stats import ConnState, LatestSample, Stats, StatsSnapshot, TargetStatus
from engine.targets import Target, load_targets, save_targets
from engine.targets.metric_state import load_enabled, save_enabled
from engine.tasks import side_by_side

if TYPE_CHECKING:  # the producer's parts are imported when a producer starts (`_start_producing`)
    from engine.agent.checks.checker import Checker
    from engine.agent.checks.pool import CheckWorkerPool
    from engine.agent.collectors import HostCollector
    from engine.agent.scheduler import CheckScheduler
    from engine.fleet.share import FleetTargets
    from engine.kafka.shipper import Shipper

Role = Literal["all", "producer", "consumer"]
ROLES: tuple[Role, ...] = ("all", "producer", "consumer")
log = logging.getLogger("metrictui.engine")


class Engine:
    """One metrictui pipeline process. `start()` then `stop()`; both bounded in time."""

    def __init__(self, config: Config, role: Role = "all", *, dashboard: bool = False) -> None:
        self.config = config
        self.role = role
        self.dashboard = dashboard
        """The dashboard runs in this process (its repaints share the event loop)."""
        self.agent = config.agent.name
        self.host = socket.gethostname()
        self.stats = Stats(role, self.agent)
        self.recent_checks = RecentChecks()
        self._targets: dict[str, Target] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.shipper: Shipper | None = None
        self.sink: Sink | None = None
        self.checker: Checker | None = None
        self.scheduler: CheckScheduler | CheckWorkerPool | None = None
        self.collector: HostCollector | None = None
        self.fleet: FleetTargets | None = None
        """Set when targets_source = "kafka": the shared table and this agent's share of it."""
        self._last_check_at: datetime | None = None
        self._metrics_wakeup = asyncio.Event()
        self._started = False
        self.on_change: Callable[[], None] | None = None

    @property
    def produces(self) -> bool:
        return self.role in ("all", "producer")

    @property
    def consumes(self) -> bool:
        return self.role in ("all", "consumer")

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every part of this role. Raises UserError for problems the user must fix."""
        cfg = self.config
        client_id = f"metrictui-{self.agent}"
        if self.produces:
            self.stats.set_kafka_state("producer", ConnState.CONNECTING)
        if self.consumes:
            self.stats.set_kafka_state("consumer", ConnState.CONNECTING)
            self.stats.postgres_state = ConnState.CONNECTING
        fleet = cfg.targets_source == "kafka"
        if self.produces and not fleet:  # validate before anything connects
            self._targets = {t.name: t for t in load_targets(cfg.targets_file)}
        enabled = load_enabled(cfg.targets_file, cfg.agent.metrics)
        for name in COLLECTOR_NAMES:
            self.stats.metrics_enabled[name] = name in enabled
        steps: list[Awaitable[Any]] = [prepare_topics(cfg.kafka, targets=fleet)]
        if self.consumes:
            if cfg.postgres.dsn is None:
                raise UserError("[postgres] dsn is not set: the consumer role needs PostgreSQL")
            self.sink = Sink(cfg, self.stats, client_id, tune_gc=not self.dashboard)
            steps.append(prepare_postgres(cfg, self.sink, self.stats))
        topics_ready, *_ = await side_by_side(*steps)
        if not topics_ready:
            later = topics_later(cfg.kafka, self.stats, targets=fleet)
            self._tasks.append(asyncio.create_task(later, name="topics"))
        if self.sink is not None:
            self._tasks.append(asyncio.create_task(self.sink.run(), name="sink"))
            if cfg.postgres.retention_days > 0:  # drop expired daily partitions, hourly
                loop = retention_loop(cfg, self.stats)
                self._tasks.append(asyncio.create_task(loop, name="retention"))
        if self.produces:
            await self._start_producing(client_id, enabled, fleet)
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="stats"))
        self._started = True
        # Once per start (a full pass): the sink does it when it runs, after its own start-up.
        # Not under the dashboard: see engine.process_gc.
        if self.sink is None and not self.dashboard:
            keep_startup_out_of_gc()

    async def _start_producing(self, client_id: str, enabled: tuple[str, ...], fleet: bool) -> None:
        """The producer's parts: shipper, collectors, checks, fleet membership, heartbeat.

        Imported here, not at the top: a sink never loads the checks, collectors and
        producer (tens of ms of every start, before its first rows)."""
        from engine.agent.checks.checker import Checker
        from engine.agent.checks.pool import CheckWorkerPool, WorkerSetup
        from engine.agent.checks.sizing import worker_count
        from engine.agent.collectors import HostCollector
        from engine.agent.heartbeat import heartbeat_loop
        from engine.agent.scheduler import CheckScheduler
        from engine.fleet.share import FleetTargets
        from engine.kafka.shipper import Shipper
        from engine.kafka.spool import Spool

        cfg = self.config
        spool = Spool(cfg.agent.spool_dir, cfg.agent.spool_max_mb * 1024 * 1024)
        self.shipper = Shipper(cfg.kafka, spool, self.stats, client_id)
        await self.shipper.start()
        self.collector = HostCollector(enabled)
        body_max = cfg.agent.check_body_max_kb * 1024
        targets = self._targets.values()
        workers = worker_count(cfg.agent.check_workers, targets, dashboard=self.dashboard)
        if workers:  # many targets: check in worker processes (engine.agent.checks.pool)
            concurrency, where = cfg.agent.check_concurrency, cfg.agent.location
            setup = WorkerSetup(self.agent, self.host, body_max, concurrency, where, fleet)
            self.scheduler = CheckWorkerPool(
                workers, setup, self._on_check, lambda line: self.stats.error("checks", line)
            )
            log.info("checking websites in %d worker processes", workers)
        else:
            self.checker = Checker(body_max_bytes=body_max, location=cfg.agent.location)
            await self.checker.start()
            concurrency = cfg.agent.check_concurrency
            self.scheduler = CheckScheduler(
                self.checker, self._on_check, concurrency=concurrency, clock_phase=fleet
            )
        self._publish_targets()
        self.scheduler.start()
        if fleet:
            self.fleet = FleetTargets(
                cfg,
                client_id,
                self._fleet_changed,
                lambda line: self.stats.error("fleet", line),
            )
            self.fleet.start()
        self._tasks.append(asyncio.create_task(self._collect_loop(), name="collect"))
        beat = heartbeat_loop(
            cfg.agent, self.stats, self.host, lambda: self._last_check_at, self._send_beat
        )
        self._tasks.append(asyncio.create_task(beat, name="heartbeat"))

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop collecting, flush the producer (or spool), finish the sink batch, close."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Checks stop and the group is left together: survivors take our targets at once and
        # catch up the slots from the rebalance's start (engine.fleet.membership).
        await asyncio.gather(
            *(part.stop() for part in (self.scheduler, self.fleet) if part is not None)
        )
        for task in self._tasks:
            if task.get_name() in ("collect", "topics", "stats", "heartbeat"):
                task.cancel()
        if self.shipper is not None:
            await self.shipper.stop(timeout=max(1.0, (deadline - loop.time()) * 0.6))
        if self.checker is not None:
            await self.checker.close()
        if self.sink is not None:
            await self.sink.stop()
            sink_task = next((t for t in self._tasks if t.get_name() == "sink"), None)
            if sink_task is not None:
                try:
                    async with asyncio.timeout(max(0.5, deadline - loop.time() - 1)):
                        await asyncio.shield(sink_task)
                except TimeoutError:
                    sink_task.cancel()
            await self.sink.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    # -- loops ------------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.shipper is not None:
                self.stats.spool_depth = self.shipper.spool.depth
            self.stats.tick()

    async def _collect_loop(self) -> None:
        assert self.collector is not None and self.shipper is not None
        interval = self.config.agent.metrics_interval
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            observed_at = datetime.now(UTC)
            try:
                samples = await asyncio.to_thread(self.collector.collect)
            except Exception as exc:  # a collector bug must not stop the agent
                self.stats.error("collector", f"collecting metrics failed: {exc!r}"[:300])
                samples = []
            if samples:
                value = encode_event(
                    "metrics", self.agent, self.host, observed_at, metrics_payload(samples)
                )
                self.shipper.submit(self.config.kafka.metrics_topic, self.agent.encode(), value)
                for s in samples:
                    self.stats.metrics[(s.metric, s.labels)] = LatestSample(
                        s.metric, s.labels, s.value, s.unit
                    )
            next_at += interval
            delay = next_at - loop.time()
            if delay < 0:
                next_at = loop.time()
                delay = 0
            self._metrics_wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._metrics_wakeup.wait()

    def _on_check(self, result: CheckResult, lateness_s: float, event: bytes | None = None) -> None:
        """Ship one result and note it in the stats; `event` is its Kafka value when a check
        worker encoded it already."""
        assert self.shipper is not None
        self.stats.checks_total += 1
        self._last_check_at = result.started_at
        target = self._targets.get(result.target)
        if target is None:
            return  # deleted while the check ran
        value = event
        if value is None:  # checked in this process
            value = encode_event(
                "check", self.agent, self.host, result.started_at, result.to_payload()
            )
        self.shipper.submit(self.config.kafka.checks_topic, result.target.encode(), value)
        cert_days = None
        if result.cert_expires_at is not None:
            cert_days = (result.cert_expires_at - datetime.now(UTC)).total_seconds() / 86400
        self.recent_checks.record(target.name, result.started_at, result.ok)
        self.stats.targets[target.name] = TargetStatus(
            name=target.name,
            url=target.url,
            enabled=target.enabled,
            interval=target.interval,
            ok=result.ok,
            status_code=result.status_code,
            total_ms=result.total_ms,
            content_match=result.content_match,
            cert_days_left=cert_days,
            last_checked=result.started_at,
            reason=result.reason,
            error=result.error,
            recent=self.recent_checks.last(target.name),
            uptime_1h_pct=self.recent_checks.uptime_pct(target.name, result.started_at),
        )

    # -- control ----------------------------------------------------------------------------

    def snapshot(self) -> StatsSnapshot:
        return self.stats.snapshot()

    def targets(self) -> list[Target]:
        return list(self._targets.values())

    def get_target(self, name: str) -> Target:
        try:
            return self._targets[name]
        except KeyError:
            raise UserError(f"no target named {name!r}") from None

    def _publish_targets(self) -> None:
        """Push the target list to the scheduler and the stats (keeping last results)."""
        checked = self.fleet.mine() if self.fleet is not None else list(self._targets.values())
        if self.scheduler is not None:
            catch_up = self.fleet.take_catch_up() if self.fleet is not None else None
            self.scheduler.set_targets(checked, catch_up)
        self.stats.targets_assigned = sum(1 for t in checked if t.enabled)
        old = self.stats.targets
        self.stats.targets = {}
        for t in self._targets.values():
            prev = old.get(t.name)
            if prev is not None and prev.url == t.url:
                self.stats.targets[t.name] = replace(prev, enabled=t.enabled, interval=t.interval)
            else:
                self.stats.targets[t.name] = TargetStatus(t.name, t.url, t.enabled, t.interval)

    def _send_beat(self, value: bytes) -> None:
        if self.shipper is not None:
            self.shipper.submit(self.config.kafka.metrics_topic, self.agent.encode(), value)

    def _fleet_changed(self) -> None:
        """The shared table or this agent's partitions changed: check the new share."""
        assert self.fleet is not None
        self._targets = dict(self.fleet.targets)
        self.stats.fleet_idle = self.fleet.idle
        self.stats.targets_bad_total = self.fleet.table.bad_total
        self._publish_targets()
        if self.on_change is not None:
            self.on_change()

    async def _save(self, targets: dict[str, Target]) -> None:
        """Keep an edit: on the targets topic when it is the source (every agent follows, and
        the table confirms it a moment later), else in the targets file."""
        if self.fleet is not None:
            await self.fleet.publish_edit(self._targets, targets)
        else:
            try:
                save_targets(self.config.targets_file, list(targets.values()))
            except OSError as exc:
                raise UserError(
                    f"cannot save {self.config.targets_file}: {exc.strerror}; check the directory"
                ) from None
        self._targets = targets
        self._publish_targets()
        if self.on_change is not None:
            self.on_change()

    async def add_target(self, target: Target) -> None:
        if target.name in self._targets:
            raise UserError(f"a target named {target.name!r} exists already; pick another name")
        await self._save({**self._targets, target.name: target})

    async def update_target(self, name: str, target: Target) -> None:
        self.get_target(name)
        if target.name != name and target.name in self._targets:
            raise UserError(f"a target named {target.name!r} exists already; pick another name")
        updated = {
            (target.name if k == name else k): (target if k == name else v)
            for k, v in self._targets.items()
        }
        await self._save(updated)

    async def delete_target(self, name: str) -> None:
        self.get_target(name)
        await self._save({k: v for k, v in self._targets.items() if k != name})
        self.stats.targets.pop(name, None)
        self.recent_checks.forget(name)

    async def set_target_enabled(self, name: str, enabled: bool) -> None:
        await self.update_target(name, replace(self.get_target(name), enabled=enabled))

    async def set_metric_enabled(self, name: str, enabled: bool) -> None:
        """Switch a collector on/off now, and remember it in the state file."""
        if name not in COLLECTOR_NAMES:
            raise UserError(f"unknown metric {name!r}; known: {', '.join(COLLECTOR_NAMES)}")
        if self.collector is not None:
            self.collector.set_enabled(name, enabled)
            if not enabled:
                for key in [k for k in self.stats.metrics if k[0].split(".", 1)[0] == name]:
                    del self.stats.metrics[key]
        self.stats.metrics_enabled[name] = enabled
        try:
            save_enabled(
                self.config.targets_file, [n for n, on in self.stats.metrics_enabled.items() if on]
            )
        except OSError as exc:
            raise UserError(f"cannot save the metric switches: {exc.strerror}") from None
        if self.on_change is not None:
            self.on_change()
