"""Create the metrictui topics when they are missing (and the config allows it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    PolicyViolationError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    for_code,
)

from engine.config import KafkaConfig
from engine.errors import ConnectError, UserError, describe_error
from engine.kafka.settings import client_kwargs, connection_problem, describe_kafka_error
from engine.stats import Stats

_FORBIDDEN = (
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    PolicyViolationError,
)


log = logging.getLogger("metrictui.engine")


async def ensure_topics(
    cfg: KafkaConfig, timeout: float = 20.0, *, targets: bool = False
) -> list[str]:
    """Create missing topics; returns the names created. Raises UserError if forbidden.

    `targets`: the fleet's targets topic too, compacted (the latest record per target name is
    the table), with `targets_partitions` partitions (the most agents a location can use).
    """
    wanted = [cfg.metrics_topic, cfg.checks_topic] + ([cfg.targets_topic] if targets else [])
    admin = AIOKafkaAdminClient(**client_kwargs(cfg, "metrictui-admin"))
    async with asyncio.timeout(timeout):
        try:
            await admin.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await admin.close()
            # A wrong CA, client certificate or password must not pass for "Kafka is away".
            problem = await connection_problem(cfg, timeout=max(2.0, timeout / 2))
            if problem is not None:
                raise ConnectError(problem) from None
            raise exc from None
        try:
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if not missing:
                return []
            if not cfg.create_topics:
                raise UserError(
                    f"Kafka topic(s) {', '.join(missing)} do not exist and [kafka] create_topics"
                    " is false: create them, or set create_topics = true"
                )
            new = [_new_topic(cfg, t) for t in missing]
            try:
                response = await admin.create_topics(new)
            except TopicAlreadyExistsError:
                return []
            except _FORBIDDEN as exc:
                raise _forbidden(missing, cfg, exc) from None
            for topic, code, *rest in getattr(response, "topic_errors", []) or []:
                if code in (0, TopicAlreadyExistsError.errno):
                    continue
                detail = rest[0] if rest and isinstance(rest[0], str) else ""
                raise _forbidden([topic], cfg, for_code(code)(detail))
            return missing
        finally:
            await admin.close()


def _new_topic(cfg: KafkaConfig, name: str) -> NewTopic:
    if name == cfg.targets_topic:
        compacted = {"cleanup.policy": "compact"}
        return NewTopic(name, cfg.targets_partitions, cfg.replication_factor, None, compacted)
    return NewTopic(name, cfg.partitions, cfg.replication_factor)


def _forbidden(topics: list[str], cfg: KafkaConfig, exc: Exception) -> UserError:
    why = describe_error(exc)
    return UserError(
        f"Kafka refused to create topic(s) {', '.join(topics)} ({why}): create them in your"
        f" Kafka console ({cfg.partitions} partitions), or fix [kafka] partitions /"
        " replication_factor, or grant the create permission; then start again"
    )


TOPICS_RETRY_S = 5.0
"""How often topics are tried again when Kafka was away at start."""


async def prepare_topics(cfg: KafkaConfig, *, targets: bool) -> bool:
    """Create missing topics (`targets`: the fleet's targets topic too). False when Kafka is
    away: the producer spools meanwhile, the consumer retries, and `topics_later` creates them.
    Raises UserError when Kafka refuses (no permission, create_topics off)."""
    try:
        created = await ensure_topics(cfg, targets=targets)
    except UserError:
        raise
    except Exception as exc:
        log.warning(
            "Kafka not reachable at %s at start (%s); will retry",
            cfg.bootstrap_servers,
            describe_kafka_error(exc),
        )
        return False
    if created:
        log.info("created Kafka topics %s", ", ".join(created))
    return True


async def topics_later(cfg: KafkaConfig, stats: Stats, *, targets: bool) -> None:
    """`prepare_topics` until Kafka answers; a refusal is shown once, as an error."""
    while True:
        await asyncio.sleep(TOPICS_RETRY_S)
        try:
            await ensure_topics(cfg, targets=targets)
            return
        except UserError as exc:
            stats.error("kafka", str(exc))
            return
        except Exception:  # still away; try again
            continue
