"""This agent's membership in its location's consumer group on the targets topic.

Kafka's group protocol is the whole coordination: the broker's group coordinator notices a
member that left (at once, on a graceful stop: `stop()` sends LeaveGroup) or died (after
`session_timeout_s` without heartbeats) and the group's leader hands out the partitions again.
We read nothing through the group; it only tells us which partitions are ours.

The assignor is sticky (aiokafka's StickyPartitionAssignor) and the only one offered: members
keep their partitions across rebalances, so when an agent leaves only its partitions move, and
when one joins it only takes some. Offering a second assignor as a fallback would cost a storm:
aiokafka 0.14 sends one JoinGroup per offered assignor (aio-libs/aiokafka PR #1168), the second
one changes the member's metadata after the group settled, which starts another rebalance, and
with three agents starting together that can go on for minutes. Every member runs our code, so
there is no mixed group to fall back for. On a rebalance the old
assignment stays in force until the new one arrives (revocation is not acted on): targets that
stay keep their schedule untouched. Partitions gained after the first assignment came from an
agent that left; `catch_up_after` then says from when their slots may have gone unchecked (the
rebalance's start, less one heartbeat: this member hears of it up to a heartbeat late), and the
scheduler runs those slots at once.

Session timeout: 3 s by default, so a killed agent's targets move within seconds. Brokers refuse
sessions shorter than their `group.min.session.timeout.ms` (6 s by default); on that refusal
the member says so once and joins again with 6 s, then 10 s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import InvalidSessionTimeoutError, KafkaError

from engine.config.model import KafkaConfig
from engine.fleet.consumer_task import ConsumerTask
from engine.kafka.settings import client_kwargs

log = logging.getLogger("metrictui.fleet")

FALLBACK_SESSIONS_S = (6.0, 10.0)
"""Session timeouts tried, in order, when the broker refuses a shorter one."""

METADATA_MAX_AGE_MS = 5_000
"""How often the group's leader looks at the targets topic's partitions again."""


def group_id(location: str) -> str:
    """The consumer group of one location's agents."""
    return f"metrictui-agents-{location}"


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, member: GroupMember) -> None:
        self._member = member

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Kept until the new assignment arrives (see the module docstring)."""
        self._member.rebalance_began()

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._member.assigned_now(frozenset(tp.partition for tp in assigned))


class GroupMember(ConsumerTask):
    """Owns the group consumer's task; `partitions` is the current assignment (None: none yet)."""

    task_name = "fleet-member"

    def __init__(
        self,
        cfg: KafkaConfig,
        location: str,
        client_id: str,
        session_timeout_s: float,
        on_assign: Callable[[frozenset[int]], None],
        on_problem: Callable[[str], None] = lambda line: None,
    ) -> None:
        super().__init__()
        self._cfg = cfg
        self.group = group_id(location)
        self._client_id = client_id
        self.session_timeout_s = session_timeout_s
        self._on_assign = on_assign
        self._on_problem = on_problem
        self.partitions: frozenset[int] | None = None
        self.rebalances = 0
        self.catch_up_after: float | None = None
        """Wall time from which the slots of partitions just gained may have gone unchecked."""
        self._rebalance_at: float | None = None
        # aiokafka's sticky assignor keeps this member's assignment in class attributes: a
        # class of our own per member keeps two members in one process apart.
        self._sticky = type(
            "StickyAssignor",
            (StickyPartitionAssignor,),
            {"member_assignment": None, "generation": -1, "_latest_partition_movements": None},
        )

    def rebalance_began(self) -> None:
        self._rebalance_at = time.time()

    def assigned_now(self, partitions: frozenset[int]) -> None:
        before, began = self.partitions, self._rebalance_at
        self.rebalances += 1
        self.partitions = partitions
        self.catch_up_after = None
        if before is not None and began is not None and partitions - before:
            self.catch_up_after = began - self.session_timeout_s / 6 - 0.1
        self._on_assign(partitions)

    def _make_consumer(self) -> AIOKafkaConsumer:
        session_ms = int(self.session_timeout_s * 1000)
        kwargs = client_kwargs(self._cfg, f"{self._client_id}-member")
        # The group's leader assigns from its own metadata: a topic it did not know yet
        # (created after this agent started) gives every member nothing until the leader's
        # next refresh notices the partitions and rejoins. A minute for our other clients.
        kwargs["metadata_max_age_ms"] = METADATA_MAX_AGE_MS
        return AIOKafkaConsumer(
            **kwargs,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(100, session_ms // 6),
            # A member that dies mid-rebalance must not hold the others up for long.
            max_poll_interval_ms=max(10_000, session_ms * 2),
            rebalance_timeout_ms=max(10_000, session_ms * 2),
            max_partition_fetch_bytes=64 * 1024,
            partition_assignment_strategy=(self._sticky,),  # one only: see the docstring
        )

    async def _run(self) -> None:
        backoff = 0.5
        fallbacks = [s for s in FALLBACK_SESSIONS_S if s > self.session_timeout_s]
        while True:
            consumer = self._make_consumer()
            self._consumer = consumer
            try:
                async with asyncio.timeout(self._cfg.request_timeout_s + 5):
                    await consumer.start()
                consumer.subscribe([self._cfg.targets_topic], listener=_Listener(self))
                while True:  # we read nothing; polling keeps us a member within max_poll
                    await consumer.getmany(timeout_ms=1000, max_records=1)
                    backoff = 0.5
            except InvalidSessionTimeoutError:
                if not fallbacks:
                    line = (
                        f"Kafka refuses the fleet group's session timeout of "
                        f"{self.session_timeout_s:g} s; set [agent] session_timeout_s within "
                        "the broker's group.min/max.session.timeout.ms"
                    )
                    self._on_problem(line)
                    log.error("%s", line)
                    await self._close()
                    await asyncio.sleep(30)
                    continue
                was, self.session_timeout_s = self.session_timeout_s, fallbacks.pop(0)
                line = (
                    f"Kafka refuses a {was:g} s group session (group.min.session.timeout.ms); "
                    f"using {self.session_timeout_s:g} s: a killed agent's targets move later"
                )
                log.warning("%s", line)
                self._on_problem(line)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("fleet group membership lost (%s); joining again", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            await self._close()
