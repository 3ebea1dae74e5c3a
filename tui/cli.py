"""The `metrictui` command: argument parsing, config loading and one-line errors.

Every error a user can cause ends here as one line on stderr and an exit code (2 for bad
configuration, 1 for anything else), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import cast

from engine import __version__
from engine.config import Config, load_config, resolve_config_path
from engine.engine import ROLES, Role
from engine.errors import ConfigError, UserError
from engine.logs import JsonFormatter, setup_logging
from engine.targets import Target, load_targets
from tui import targets_cli


def _common(parser: argparse.ArgumentParser, sub: bool = False) -> None:
    """Options accepted before and after a subcommand.

    On a subcommand their default is SUPPRESS: a default of None there would overwrite what
    was given before the subcommand (`metrictui --log-format json migrate`).
    """
    default = argparse.SUPPRESS if sub else None
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="config file (default: $METRICTUI_CONFIG, ./metrictui.toml,"
        " ~/.config/metrictui/config.toml)",
    )
    parser.add_argument("--log-format", choices=("human", "json"), default=default)
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default=default
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metrictui",
        description="Host metrics and website checks through Kafka into PostgreSQL, live.",
    )
    parser.add_argument("--version", action="version", version=f"metrictui {__version__}")
    _common(parser)
    parser.add_argument("--headless", action="store_true", help="run without the dashboard")
    parser.add_argument("--role", choices=ROLES, default="all", help="pipeline role (default all)")
    parser.add_argument("--attach", metavar="PATH", help="attach to a headless engine's socket")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    mig = sub.add_parser("migrate", help="create or upgrade the PostgreSQL schema")
    _common(mig, sub=True)
    chk = sub.add_parser("check-config", help="validate the config and targets file, then exit")
    _common(chk, sub=True)
    rep = sub.add_parser(
        "report", help="uptime, latency and failures per target, cpu/memory per host"
    )
    _common(rep, sub=True)
    rep.add_argument(
        "--since",
        metavar="DURATION",
        type=_duration,
        default=3600.0,
        help="window to report on, like 30m, 1h, 7d (default 1h)",
    )
    rep.add_argument("--target", metavar="NAME", help="only this website target")
    rep.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    srv = sub.add_parser("serve", help="serve the dashboard to web browsers (one tab, one process)")
    _common(srv, sub=True)
    srv.add_argument(
        "--listen", metavar="HOST:PORT", help="address to serve on (default 127.0.0.1:8640)"
    )
    ini = sub.add_parser("init", help="write a commented config and an example targets file")
    _common(ini, sub=True)
    ini.add_argument(
        "--path",
        metavar="FILE",
        help="config file to create (default: $XDG_CONFIG_HOME or ~/.config/metrictui/config.toml)",
    )
    ini.add_argument("--force", action="store_true", help="replace existing files")
    ret = sub.add_parser(
        "retention", help="drop daily partitions older than [postgres] retention_days now"
    )
    _common(ret, sub=True)
    ret.add_argument("--dry-run", action="store_true", help="only list what would be dropped")
    ret.add_argument(
        "--days",
        metavar="N",
        type=_positive_int,
        help="keep N days instead of [postgres] retention_days (this run only)",
    )
    targets_cli.add_parser(sub, _common)
    return parser


def _positive_int(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 36500:
        raise argparse.ArgumentTypeError(f"expected a number of days 1..36500, got {text!r}")
    return int(text)


def _duration(text: str) -> float:
    from engine.db.report import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(args: argparse.Namespace) -> tuple[Config, list[Target]]:
    """Config and targets, both validated before anything connects; logging set up between."""
    path = resolve_config_path(args.config, os.environ)
    config = load_config(path, os.environ)
    _setup_logs(args, config)
    for warning in config.warnings:
        _tell(logging.WARNING, warning)
    return config, load_targets(config.targets_file)


def _tell(level: int, text: str) -> None:
    """A message for the operator on stderr: a JSON log line when logs are JSON, else plain.

    With `--log-format json` a log shipper reads stderr, so even the final error must be one
    JSON object; on a terminal it stays a plain `metrictui: ...` line.
    """
    if any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers):
        logging.getLogger("metrictui").log(level, "%s", text)
    else:
        prefix = "warning: " if level == logging.WARNING else ""
        print(f"metrictui: {prefix}{text}", file=sys.stderr)


def _setup_logs(args: argparse.Namespace, config: Config | None) -> None:
    fmt = args.log_format or (config.headless.log_format if config else "human")
    level = args.log_level or (config.headless.log_level if config else "info")
    setup_logging(fmt, level)


def _check_config(config: Config, targets: list[Target]) -> int:
    """Say what will fail later even though every value parses: each as a warning line."""
    if config.postgres.dsn is None:
        _tell(
            logging.WARNING,
            f"{config.source}: [postgres] dsn is not set; the consumer role, migrate, report"
            " and retention need it (fine for --role producer)",
        )
    if not config.targets_file.exists():
        _tell(
            logging.WARNING,
            f"{config.targets_file}: targets file not found; no website checks will run"
            " (create it, run `metrictui init`, or set targets_file)",
        )
    count = f"{len(targets)} target{'' if len(targets) == 1 else 's'}"
    print(
        f"{config.source}: ok ({count} in {config.targets_file}, role-independent settings valid)"
    )
    return 0


async def _migrate(config: Config) -> int:
    import psycopg

    from engine.db.migrate import migrate

    dsn = config.postgres.dsn
    if dsn is None:
        raise ConfigError(f"{config.source}: [postgres] dsn: required for migrate")
    try:
        applied = await migrate(dsn.reveal(), config.postgres.schema)
    except psycopg.Error as exc:
        from engine.db.pg_errors import postgres_error_line

        raise UserError(postgres_error_line(exc) + "; check [postgres] dsn") from None
    schema = config.postgres.schema
    if applied:
        print(f"schema {schema}: applied {', '.join(applied)}")
    else:
        print(f"schema {schema}: up to date")
    return 0


async def _report(config: Config, args: argparse.Namespace) -> int:
    import json

    from engine.db.report import build_report, format_report, missing_target_line, report_to_json

    dsn = config.postgres.dsn
    if dsn is None:
        raise ConfigError(f"{config.source}: [postgres] dsn: required for report")
    report = await build_report(dsn.reveal(), config.postgres.schema, args.since, args.target)
    if args.target is not None and not any(t.checks for t in report.targets):
        raise UserError(missing_target_line(report))  # a typo must not look like "all fine"
    if args.json:
        print(json.dumps(report_to_json(report), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(format_report(report))
    return 0


async def _retention(config: Config, args: argparse.Namespace) -> int:
    import psycopg

    from engine.db.pg_errors import postgres_error_line
    from engine.db.retention import run_retention_once

    dsn = config.postgres.dsn
    if dsn is None:
        raise ConfigError(f"{config.source}: [postgres] dsn: required for retention")
    days = args.days or config.postgres.retention_days
    schema = config.postgres.schema
    if days == 0:
        print(f"schema {schema}: retention is off ([postgres] retention_days = 0); kept everything")
        return 0
    try:
        result = await run_retention_once(dsn.reveal(), schema, days, dry_run=args.dry_run)
    except psycopg.Error as exc:
        raise UserError(postgres_error_line(exc) + "; check [postgres] dsn") from None
    cutoff = f"{result.cutoff:%Y-%m-%d %H:%M} UTC"
    if result.skipped_locked:
        raise UserError(f"schema {schema}: another metrictui is applying retention; try later")
    names = [p.name for p in result.expired] if args.dry_run else result.dropped
    verb = "would drop" if args.dry_run else "dropped"
    listed = (": " + ", ".join(names)) if names else ""
    print(f"schema {schema}: {verb} {len(names)} partitions older than {cutoff}{listed}")
    if result.busy:
        raise UserError(f"{', '.join(result.busy)} busy (lock timeout); run again later")
    return 0


def _init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.config.init import default_config_path, next_steps, write_initial_config

    default = default_config_path(os.environ)
    path = Path(args.path).expanduser() if args.path else default
    result = write_initial_config(path, force=args.force)
    sys.stdout.write(next_steps(result, default=result.config_path == default.absolute()))
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.attach and args.command is None and not args.headless:
            _setup_logs(args, None)
            from tui.launch import attach

            return attach(args.attach)
        if args.command == "init":
            return _init(args)
        if args.log_format == "json":  # so that even a config error is a JSON line
            setup_logging("json", args.log_level or "info")
        config, targets = _load(args)
        if args.command == "check-config":
            return _check_config(config, targets)
        if args.command == "migrate":
            return asyncio.run(_migrate(config))
        if args.command == "report":
            return asyncio.run(_report(config, args))
        if args.command == "retention":
            return asyncio.run(_retention(config, args))
        if args.command == "targets":
            return targets_cli.run_targets(config, args)
        if args.command == "serve":
            from tui.serve.command import serve_command

            return serve_command(config, args.listen)
        role = cast(Role, args.role)
        if args.headless:
            import uvloop

            from engine.headless.run import run_headless

            return uvloop.run(run_headless(config, role))
        from tui.launch import launch

        return launch(config, role)
    except UserError as exc:
        _tell(logging.ERROR, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


EXIT_BROKEN_PIPE = 141
"""What a shell reports for a program killed by SIGPIPE (128 + 13), as `seq | head` gives."""


def main() -> None:
    logging.captureWarnings(True)
    try:
        code = run()
        sys.stdout.flush()  # inside the try: a closed pipe often shows only at this flush
    except BrokenPipeError:
        # The reader went away (`metrictui report --json | head -1`): stop quietly. Later
        # flushes of stdout (at interpreter exit) must not fail again, so point it at devnull.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        code = EXIT_BROKEN_PIPE
    sys.exit(code)
