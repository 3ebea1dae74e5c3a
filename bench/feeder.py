"""A paced producer in its own process, for the freshness measurement.

    python -m bench.feeder CONFIG RATE SECONDS

Runs the real producer path (`encode_event` + `Shipper`) at RATE events per second (one metrics
event to two check events), stamping `observed_at` when each event is made. Prints `ready` once
connected and a JSON summary at the end. A separate process, so its CPU does not slow the sink
being measured any more than a real agent on the same machine would.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.workload import TARGETS_PER_AGENT, check_payload, sample_template
from engine.config import load_config
from engine.envelope import encode_event
from engine.kafka.shipper import Shipper
from engine.kafka.spool import Spool
from engine.stats import Stats

TICK_S = 0.005


async def feed(config_path: Path, rate: float, seconds: float) -> dict[str, int]:
    config = load_config(config_path, env={})
    k = config.kafka
    metrics = {"samples": sample_template()}
    rng = random.Random(3)
    now = datetime.now(UTC)
    checks = [check_payload(rng, "feeder", i, now) for i in range(TARGETS_PER_AGENT)]
    stats = Stats("producer", "feeder")
    spool = Spool(config.agent.spool_dir, 256 * 1024 * 1024)
    shipper = Shipper(k, spool, stats, "bench-feeder")
    await shipper.start()
    print("ready", flush=True)
    started = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        for _ in range(int(rate * elapsed) - sent):
            observed = datetime.now(UTC)
            if sent % 3 == 0:
                value = encode_event("metrics", "feeder", "feeder-host", observed, metrics)
                shipper.submit(k.metrics_topic, b"feeder", value)
            else:
                payload = checks[sent % TARGETS_PER_AGENT]
                value = encode_event("check", "feeder", "feeder-host", observed, payload)
                shipper.submit(k.checks_topic, payload["target"].encode(), value)
            sent += 1
        await asyncio.sleep(TICK_S)
    await shipper.stop(timeout=30)
    return {"sent": sent, "produced": stats.produced.total, "spooled": spool.depth}


def main() -> int:
    path, rate, seconds = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    summary = asyncio.run(feed(path, rate, seconds))
    print(orjson.dumps(summary).decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
