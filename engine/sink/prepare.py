"""The sink's PostgreSQL at start: the schema migrated and the first connection made.

PostgreSQL being away is not an error at start (the sink retries each batch); a wrong password
or database is, since it does not fix itself. The engine runs this beside the creation of
Kafka's topics (`engine.tasks.side_by_side`): a sink's first rows come after the slower of the
two instead of after both, about a tenth of a second of every start (the first rows' latency
is one of the figures `make bench-peers` compares with Telegraf's).
"""

from __future__ import annotations

import logging

import psycopg

from engine.config import Config
from engine.db.migrate import migrate
from engine.db.pg_errors import is_fatal_postgres_error, postgres_error_line
from engine.errors import ConnectError, UserError
from engine.sink.consume import Sink
from engine.stats import ConnState, Stats

log = logging.getLogger("metrictui.engine")


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
