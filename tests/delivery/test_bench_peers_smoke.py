"""The peer benchmark cannot rot: metrictui's sink and the Kafka Connect peer each drain a small
pre-filled topic of the same samples, and the rows are really in PostgreSQL with their values.

Telegraf is left out on purpose (it is built only by `make bench-peers`, ~12 minutes); the
Connect jars come from Maven Central like the stack's Kafka, cached outside the repository.
No timing is asserted: the figures of a smoke run on a shared machine say nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bench.env import BenchEnv, Endpoints
from bench.peers import wire
from bench.peers.run import PeerRun
from bench.peers.scale import SCALES
from bench.workload import iter_workload
from helpers.stack import StackInfo

pytestmark = pytest.mark.integration


def _landed(dsn: str, schema: str, relation: str) -> tuple[int, float]:
    """(rows, sum of value) of `schema.relation`, read back by the test itself."""
    query = sql.SQL("SELECT count(*), coalesce(sum(value), 0) FROM {}.{}").format(
        sql.Identifier(schema), sql.Identifier(relation)
    )
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0]), float(row[1])


def test_sink_and_connect_land_the_same_samples(stack: StackInfo, tmp_path: Path) -> None:
    scale = SCALES["smoke"]
    env = BenchEnv(Endpoints(stack.bootstrap, stack.dsn), tmp_path, scale.batch_max)
    peers = PeerRun(scale, env, ["metrictui", "connect"], pg_pid=None)

    async def scenario() -> dict[str, tuple[int, float]]:
        try:
            await asyncio.to_thread(peers.prepare_tools)
            await peers.prefill()
            sink, sink_schema = await peers.drain_once("metrictui", "sink-smoke")
            peer, peer_schema = await peers.drain_once("connect", "connect-smoke")
            assert sink.rows == peer.rows == peers.expected_rows
            return {
                "metrictui": _landed(stack.dsn, sink_schema, "samples_v"),
                "connect": _landed(stack.dsn, peer_schema, "samples"),
            }
        finally:
            await env.cleanup()

    landed = asyncio.run(scenario())
    rows = peers.expected_rows
    assert rows >= scale.sample_rows
    for system, (count, _) in landed.items():
        assert count == rows, f"{system}: {count} rows in PostgreSQL, {rows} sent"
    # The same values in both: each system got the same samples, in its own wire format.
    assert landed["connect"][1] == pytest.approx(landed["metrictui"][1], rel=1e-9)


def test_influx_lines_escape_tags_and_keep_every_sample() -> None:
    template = [
        ["disk.percent", {"mount": "/mnt/my disk", "device": "a,b=c"}, 12.5, "%"],
        ["load.1m", {}, 0.25, ""],
    ]
    spec = next(iter_workload(template, sample_rows=2, agents=1))
    lines = wire.influx_lines(spec).decode().splitlines()
    assert len(lines) == 2
    assert r"device=a\,b\=c" in lines[0] and r"mount=/mnt/my\ disk" in lines[0]
    assert ",unit=" not in lines[1]  # the line protocol has no empty tag value
    assert lines[1].startswith("samples,agent=bench-agent-00,")
    assert all(line.rsplit(" ", 2)[1].startswith("value=") for line in lines)
