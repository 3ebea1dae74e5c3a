"""PostgreSQL roles and database: SQL as the superuser over the private Unix socket."""

from __future__ import annotations

from pathlib import Path

from stack_pg_bin import as_pg_user, pg_env
from stack_pg_files import PgFiles, pg_superuser_password
from stack_procs import run
from stack_settings import APP_DB, APP_PASSWORD, APP_ROLE, PG_SUPERUSER, Settings


def psql_admin(settings: Settings, pg_bin: Path, files: PgFiles, sql: str, what: str) -> str:
    """Run SQL as the superuser over the private Unix socket (no password needed there)."""
    argv = [
        str(pg_bin / "psql"),
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        str(files.socket_dir),
        "-p",
        str(settings.pg_port),
        "-U",
        PG_SUPERUSER,
        "-d",
        "postgres",
        "-f",
        "-",
    ]
    return run(as_pg_user(argv), what=what, cwd=files.root, input_text=sql, env=pg_env())


def ensure_pg_roles(settings: Settings, pg_bin: Path, files: PgFiles) -> None:
    """Superuser password, app role and database: idempotent, so every `up` can run it."""
    password = pg_superuser_password(files)
    sql = f"""
ALTER ROLE {PG_SUPERUSER} PASSWORD '{password}';
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    CREATE ROLE {APP_ROLE} LOGIN CREATEDB CREATEROLE PASSWORD '{APP_PASSWORD}';
  ELSE
    ALTER ROLE {APP_ROLE} LOGIN CREATEDB CREATEROLE PASSWORD '{APP_PASSWORD}';
  END IF;
END $$;
SELECT 'CREATE DATABASE {APP_DB} OWNER {APP_ROLE}'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{APP_DB}')\\gexec
"""
    psql_admin(settings, pg_bin, files, sql, "creating the PostgreSQL roles and database")
