"""The engine's first two steps, Kafka's topics and PostgreSQL's schema and connection, which
do not depend on each other and so run side by side: a sink's first rows come after the slower
of the two instead of after both (about a tenth of a second of every start; the first rows'
latency is one of the figures `make bench-peers` compares with Telegraf's)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import psycopg

from engine.config import Config
from engine.config.model import KafkaConfig
from engine.db.migrate import migrate
from engine.db.pg_errors import is_fatal_postgres_error, postgres_error_line
from engine.errors import ConnectError, UserError
from engine.kafka.settings import describe_kafka_error
from engine.kafka.topics import ensure_topics
from engine.sink.consume import Sink
from engine.stats import ConnState, Stats

log = logging.getLogger("metrictui.engine")

TOPICS_RETRY_S = 5.0
"""How often topics are tried again when Kafka was away at start."""


async def side_by_side(*steps: Awaitable[Any]) -> list[Any]:
    """Run `steps` concurrently and return their results. The first to fail cancels the rest
    and its exception is raised as it is: a UserError stays one line for the operator, not an
    ExceptionGroup, and no step goes on alone in the background."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


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


async def prepare_postgres(cfg: Config, sink: Sink, stats: Stats) -> None:
    """Migrate (if `migrate_on_start`) and connect the sink. PostgreSQL being away is not an
    error at start (the sink retries each batch); a wrong password or database is, since it
    does not fix itself: ConnectError, one line naming the setting."""
    dsn = cfg.postgres.dsn
    if dsn is None:
        raise UserError("[postgres] dsn is not set: the consumer role needs PostgreSQL")
    try:
        if cfg.postgres.migrate_on_start:
            await migrate(dsn.reveal(), cfg.postgres.schema)
        await sink.connect_postgres()
    except UserError:
        raise
    except (psycopg.Error, OSError) as exc:
        if isinstance(exc, psycopg.Error) and is_fatal_postgres_error(exc):
            raise ConnectError(postgres_error_line(exc) + "; check [postgres] dsn") from None
        stats.postgres_state = ConnState.DOWN
        log.warning("PostgreSQL not reachable at start; will retry")
