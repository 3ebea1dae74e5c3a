"""`metrictui targets import|export|list`: the fleet's targets topic from the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import tomli_w
from aiokafka.errors import KafkaError

from engine.config.model import Config
from engine.errors import ConnectError
from engine.fleet.importing import read_import_file
from engine.fleet.publish import publish_targets
from engine.fleet.table import TargetsTable, read_table
from engine.kafka.topics import ensure_topics
from engine.targets import Target, save_targets, target_to_dict


def add_parser(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[..., None],
) -> None:
    """The `targets` subcommand and its three actions."""
    tgt = sub.add_parser("targets", help="the fleet's targets topic: import, export, list")
    common(tgt, sub=True)
    actions = tgt.add_subparsers(dest="targets_action", metavar="ACTION", required=True)
    imp = actions.add_parser("import", help="publish every target of a targets file")
    common(imp, sub=True)
    imp.add_argument("file", metavar="FILE", help="a targets file ([[targets]] entries)")
    imp.add_argument(
        "--prune", action="store_true", help="delete (tombstone) targets that are not in FILE"
    )
    exp = actions.add_parser("export", help="write the topic's targets as a targets file")
    common(exp, sub=True)
    exp.add_argument("--output", metavar="FILE", help="file to write (default: stdout)")
    lst = actions.add_parser("list", help="list the topic's targets")
    common(lst, sub=True)
    lst.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def run_targets(config: Config, args: argparse.Namespace) -> int:
    """Run one `targets` action; returns the exit code."""
    if args.targets_action == "import":
        targets, problems = read_import_file(Path(args.file))
        if problems:
            for line in problems:
                print(f"metrictui: {line}", file=sys.stderr)
            print(f"metrictui: {len(problems)} problems; nothing published", file=sys.stderr)
            return 2
        return asyncio.run(_import(config, targets, prune=args.prune))
    table = asyncio.run(_read(config))
    if args.targets_action == "export":
        targets = [table.targets[name] for name in sorted(table.targets)]
        if args.output:
            save_targets(Path(args.output), targets)
            print(f"{len(targets)} targets written to {args.output}")
        else:
            sys.stdout.write(tomli_w.dumps({"targets": [target_to_dict(t) for t in targets]}))
        return 0
    rows = [
        {**target_to_dict(table.targets[n]), "partition": table.partition_of[n]}
        for n in sorted(table.targets)
    ]
    if args.json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    for row in rows:
        where = ",".join(row.get("locations", [])) or "every location"
        state = "" if row.get("enabled", True) else "  (disabled)"
        print(f"{row['name']}\t{row['url']}\tevery {row.get('interval', 30.0):g} s\t{where}{state}")
    if table.bad_total:
        print(f"({table.bad_total} malformed records skipped)", file=sys.stderr)
    return 0


async def _read(config: Config) -> TargetsTable:
    try:
        await ensure_topics(config.kafka, targets=True)
        return await read_table(config.kafka, config.targets_file.parent)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise ConnectError(_unreachable(config, exc)) from None


async def _import(config: Config, targets: list[Target], *, prune: bool) -> int:
    try:
        await ensure_topics(config.kafka, targets=True)
        deletes: list[str] = []
        if prune:
            table = await read_table(config.kafka, config.targets_file.parent)
            wanted = {t.name for t in targets}
            deletes = sorted(name for name in table.targets if name not in wanted)
        count = await publish_targets(config.kafka, targets, deletes)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise ConnectError(_unreachable(config, exc)) from None
    pruned = f", {len(deletes)} deleted" if prune else ""
    topic = config.kafka.targets_topic
    print(f"{len(targets)} targets published to {topic}{pruned} ({count} records)")
    return 0


def _unreachable(config: Config, exc: BaseException) -> str:
    return (
        f"Kafka at {config.kafka.bootstrap_servers} did not answer for the targets topic "
        f"({type(exc).__name__}); check [kafka] bootstrap_servers"
    )
