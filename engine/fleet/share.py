"""Which targets one fleet agent checks, and the fleet agent's view of the table.

An agent checks a target when the target's record lives in a partition the group assigned to
it, the target is enabled, and its `locations` include this agent's location (empty: every
location). Every agent of a location sees the same table and the partitions are split without
overlap, so each target of a location is checked by exactly one agent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from aiokafka.errors import KafkaError

from engine.config.model import Config
from engine.errors import UserError
from engine.fleet.membership import GroupMember
from engine.fleet.publish import publish_targets
from engine.fleet.table import TargetsTable
from engine.targets.model import Target

log = logging.getLogger("metrictui.fleet")


def targets_to_check(
    targets: Mapping[str, Target],
    partition_of: Mapping[str, int],
    partitions: Collection[int],
    location: str,
) -> list[Target]:
    """This agent's share of the table (see the module docstring)."""
    return [
        t
        for name, t in targets.items()
        if t.enabled and partition_of.get(name) in partitions and t.checked_in(location)
    ]


class FleetTargets:
    """A fleet agent's targets: the whole table (`table`) and its group membership (`member`).

    `on_change` is called whenever the table or the assignment changed; `mine()` is then the
    list to schedule.
    """

    def __init__(
        self,
        config: Config,
        client_id: str,
        on_change: Callable[[], None],
        on_problem: Callable[[str], None],
        *,
        member: bool = True,
    ) -> None:
        self.location = config.agent.location
        self._kafka = config.kafka
        base_dir = config.targets_file.parent if config.targets_file else Path.cwd()
        self._on_change = on_change
        self._on_problem = on_problem
        self.table = TargetsTable(config.kafka, client_id, base_dir, on_change, on_problem)
        self.member: GroupMember | None = None
        if member:
            self.member = GroupMember(
                config.kafka,
                self.location,
                client_id,
                config.agent.session_timeout_s,
                self._assigned,
                on_problem,
            )
        self._said_idle = False

    @property
    def targets(self) -> dict[str, Target]:
        return self.table.targets

    @property
    def idle(self) -> bool:
        """Member of a group that gave it no partition: more agents than partitions."""
        return self.member is not None and self.member.partitions == frozenset()

    def mine(self) -> list[Target]:
        if self.member is None or not self.member.partitions:
            return []
        return targets_to_check(
            self.table.targets, self.table.partition_of, self.member.partitions, self.location
        )

    def take_catch_up(self) -> float | None:
        """Once per assignment: from when the slots of targets gained from a departed agent
        may have gone unchecked (`GroupMember.catch_up_after`); None when nothing was gained."""
        if self.member is None:
            return None
        since, self.member.catch_up_after = self.member.catch_up_after, None
        return since

    def _assigned(self, partitions: frozenset[int]) -> None:
        if not partitions and not self.table.partitions:
            # The group was formed before the targets topic existed (or before its metadata
            # reached the leader): nothing to share yet, not too many agents. The leader
            # rejoins once it sees the partitions (GroupMember's metadata refresh).
            log.info("fleet: the targets topic has no partitions yet; waiting for it")
            self._on_change()
            return
        if not partitions and not self._said_idle:
            line = (
                f"no partition of the targets topic for this agent: location {self.location!r} "
                f"has more agents than the topic has partitions ({self.table.partitions}); "
                "it stays idle until one leaves"
            )
            log.warning("%s", line)
            self._on_problem(line)
        self._said_idle = not partitions
        log.info("fleet: %d partitions of the targets topic assigned", len(partitions))
        self._on_change()

    async def publish_edit(self, old: Mapping[str, Target], new: Mapping[str, Target]) -> None:
        """Publish what changed between two versions of the table (a dashboard edit); raises
        UserError when Kafka does not take it, so the edit is refused visibly."""
        upserts = [t for name, t in new.items() if old.get(name) != t]
        deletes = [name for name in old if name not in new]
        try:
            await publish_targets(self._kafka, upserts, deletes, timeout=15.0)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise UserError(
                f"cannot publish the change to the targets topic ({type(exc).__name__}); "
                "Kafka must be reachable to edit a fleet's targets"
            ) from None

    def start(self) -> None:
        self.table.start()
        if self.member is not None:
            self.member.start()

    async def stop(self) -> None:
        """Leave the group first (survivors take over now), then stop reading the table."""
        if self.member is not None:
            await self.member.stop()
        await self.table.stop()
