"""The fleet's group membership on real Kafka, in-process: how many rebalances a join costs.

Three agents starting together once rebalanced for minutes (`make bench` on a fresh stack, CI):
with a fallback assignor offered, aiokafka sends a second JoinGroup after each join, and each
of those starts another rebalance. These tests count generations, which are the broker's own
count of rebalances, so they fail on any join that costs more than one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from engine.config.model import KafkaConfig
from engine.fleet.membership import METADATA_MAX_AGE_MS, GroupMember
from helpers.stack import StackInfo

PARTITIONS = 6


async def _create_topic(admin: AIOKafkaAdminClient, topic: str) -> None:
    """Create `topic` and wait until the broker's metadata has every partition with a leader:
    on a fresh stack that lags creation, and a leader that does not know the topic yet
    assigns nothing (the case the last test covers)."""
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    deadline = time.monotonic() + 30
    while True:
        (described,) = await admin.describe_topics([topic])
        leaders = [p["leader"] for p in described["partitions"]]
        if described["error_code"] == 0 and len(leaders) == PARTITIONS and min(leaders) >= 0:
            return
        assert time.monotonic() < deadline, f"{topic} not in the metadata after 30 s"
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _fresh_topic(stack: StackInfo) -> AsyncIterator[tuple[KafkaConfig, AIOKafkaAdminClient]]:
    """A targets topic name of its own (6 partitions, not created yet), deleted afterwards.
    In the test's own loop: aiokafka clients must not cross event loops."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    topic = f"membership-{uuid.uuid4().hex[:8]}"
    try:
        yield KafkaConfig(bootstrap_servers=stack.bootstrap, targets_topic=topic), admin
        with contextlib.suppress(KafkaError):
            await admin.delete_topics([topic])
    finally:
        await admin.close()


def _member(cfg: KafkaConfig, location: str, name: str) -> GroupMember:
    return GroupMember(cfg, location, name, 3.0, on_assign=lambda partitions: None)


def _generation(member: GroupMember) -> int:
    """The broker's generation of the group as this member last joined it (aiokafka keeps it
    on the coordinator; no public accessor)."""
    consumer = member._consumer
    assert consumer is not None
    return int(consumer._coordinator.generation)


async def _until_assigned(members: list[GroupMember], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        owned = [m.partitions for m in members]
        if all(owned) and sum(len(p or ()) for p in owned) == PARTITIONS:
            return
        assert time.monotonic() < deadline, f"not all assigned after {timeout:g} s: {owned}"
        await asyncio.sleep(0.1)


async def test_a_lone_member_is_assigned_in_the_first_generation(stack: StackInfo) -> None:
    async with _fresh_topic(stack) as (kafka, admin):
        await _create_topic(admin, kafka.targets_topic)
        await _lone_member(kafka)


async def _lone_member(kafka: KafkaConfig) -> None:
    member = _member(kafka, f"loc-{uuid.uuid4().hex[:6]}", "solo")
    member.start()
    try:
        await _until_assigned([member])
        assert member.partitions == frozenset(range(PARTITIONS))
        assert _generation(member) == 1, "the join cost more than one rebalance"
        assert member.rebalances == 1
    finally:
        await member.stop()


async def test_three_members_starting_together_settle_and_stay_settled(
    stack: StackInfo,
) -> None:
    async with _fresh_topic(stack) as (kafka, admin):
        await _create_topic(admin, kafka.targets_topic)
        await _three_members(kafka)


async def _three_members(kafka: KafkaConfig) -> None:
    location = f"loc-{uuid.uuid4().hex[:6]}"
    members = [_member(kafka, location, f"agent{i}") for i in range(3)]
    for m in members:
        m.start()
    try:
        await _until_assigned(members)
        owned = [m.partitions or frozenset() for m in members]
        assert frozenset().union(*owned) == frozenset(range(PARTITIONS))
        assert all(len(p) == PARTITIONS // 3 for p in owned), owned
        # At most one generation per member joining, and none once settled (a heartbeat is
        # 0.5 s: three seconds is six chances to hear of a rebalance).
        settled = [_generation(m) for m in members]
        assert max(settled) <= 3, f"joining took generations {settled}"
        await asyncio.sleep(3.0)
        assert [_generation(m) for m in members] == settled
    finally:
        await asyncio.gather(*(m.stop() for m in members))


async def test_members_that_joined_before_the_topic_existed_take_it_when_it_appears(
    stack: StackInfo,
) -> None:
    """Agents started before the topic was created (Kafka away at their start, or an operator
    importing targets later) are first assigned nothing; they must not stay idle until the
    client's periodic metadata refresh of a minute or more."""
    async with _fresh_topic(stack) as (kafka, admin):
        await _late_topic(kafka, admin)


async def _late_topic(kafka: KafkaConfig, admin: AIOKafkaAdminClient) -> None:
    location = f"loc-{uuid.uuid4().hex[:6]}"
    members = [_member(kafka, location, f"agent{i}") for i in range(2)]
    for m in members:
        m.start()
    try:
        deadline = time.monotonic() + 30
        while not all(m.partitions == frozenset() for m in members):
            assert time.monotonic() < deadline, "members never joined the group"
            await asyncio.sleep(0.1)
        await _create_topic(admin, kafka.targets_topic)
        await _until_assigned(members, timeout=METADATA_MAX_AGE_MS / 1000 + 10)
    finally:
        await asyncio.gather(*(m.stop() for m in members))
