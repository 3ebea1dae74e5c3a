"""Apply the numbered SQL migrations in sql/ to the configured schema, once each.

Each migration runs in its own transaction under an advisory lock (two consumers starting at
once do not race) and is recorded in `<schema>.schema_migrations`; running again changes
nothing. The SQL files ship inside the wheel as the `engine.sql` package data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import sql

log = logging.getLogger("metrictui.migrate")
_LOCK_KEY = 0x6D747569  # "mtui"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    text: str


def available_migrations() -> list[Migration]:
    """Migrations in order, from the installed package or the source tree."""
    try:
        files = [
            (f.name, f.read_text(encoding="utf-8"))
            for f in resources.files("engine.sql").iterdir()
            if f.name.endswith(".sql")
        ]
    except (ModuleNotFoundError, FileNotFoundError):
        root = Path(__file__).resolve().parents[2] / "sql"
        files = [(p.name, p.read_text(encoding="utf-8")) for p in root.glob("*.sql")]
    out = []
    for name, text in files:
        number = name.split("_", 1)[0]
        if number.isdigit():
            out.append(Migration(int(number), name, text))
    return sorted(out, key=lambda m: m.version)


async def migrate(dsn: str, schema: str) -> list[str]:
    """Bring the schema up to date; returns the names of the migrations applied now."""
    applied_now: list[str] = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        ident = sql.Identifier(schema)
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
            await conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(ident)
            )
            cur = await conn.execute(
                sql.SQL("SELECT version FROM {}.schema_migrations").format(ident)
            )
            done = {row[0] for row in await cur.fetchall()}
            for m in available_migrations():
                if m.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(ident))
                    await conn.execute(m.text.encode())
                    await conn.execute(
                        sql.SQL(
                            "INSERT INTO {}.schema_migrations (version, name) VALUES (%s, %s)"
                        ).format(ident),
                        (m.version, m.name),
                    )
                log.info("applied migration %s to schema %s", m.name, schema)
                applied_now.append(m.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
