"""The Telegraf peer: its binary (built once from the Go module proxy, cached) and its configs.

Telegraf is only ever built by `make bench-peers`; `make test` never needs it. The sink config
is what a Telegraf user would write for this job: `inputs.kafka_consumer` reading influx lines
into `outputs.postgresql` with tags as foreign keys (one tag table, as metrictui's `series`).
The checks config runs `inputs.http_response` over the targets in groups (each instance checks
its URLs one after another, so groups give concurrency), spread over the interval by jitter,
with results sent to Kafka, as metrictui's agent sends its checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from bench.peers.cache import cache_dir, one_line_error

VERSION = "1.37.2"
MODULE = "github.com/influxdata/telegraf/cmd/telegraf"
KAFKA_VERSION = "3.6.0"
"""Sarama's protocol level; Kafka 4 refuses the default (0.10.2.0) and the consumer sees EOF."""


def binary_path() -> Path:
    return cache_dir() / "bin" / "telegraf"


def installed_version(binary: Path) -> str:
    """What the binary says of its version. `go install` stamps none (`--version` prints
    "Telegraf unknown"), so the module version is then read from its Go build info."""
    if not binary.exists():
        return ""
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    said = done.stdout.strip()
    go = _go()
    if VERSION in said or go is None:
        return said
    info = subprocess.run(
        [go, "version", "-m", binary], capture_output=True, text=True, check=False
    )
    for line in info.stdout.splitlines():
        fields = line.split()
        if fields[:2] == ["mod", MODULE.removesuffix("/cmd/telegraf")] and len(fields) > 2:
            return f"Telegraf {fields[2].lstrip('v')} (go install)"
    return said


def _go() -> str | None:
    return shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")


def ensure_telegraf(say: Callable[[str], None]) -> Path:
    """The cached Telegraf binary, built with `go install` (niced: ~12 min, ~4 GB) if absent."""
    binary = binary_path()
    if VERSION in installed_version(binary):
        return binary
    go = _go()
    if go is None:
        raise RuntimeError(
            f"Telegraf v{VERSION} needs Go 1.25+ to build: install Go (go.dev/dl or apt) or put"
            f" a telegraf {VERSION} binary at {binary}"
        )
    log = cache_dir() / "telegraf-build.log"
    say(f"building Telegraf v{VERSION} with {go} (once, ~12 min; log {log}) ...")
    env = {**os.environ, "GOBIN": str(binary.parent), "CGO_ENABLED": "0"}
    with log.open("wb") as out:
        done = subprocess.run(
            ["nice", "-n", "19", go, "install", f"{MODULE}@v{VERSION}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0 or VERSION not in installed_version(binary):
        raise RuntimeError(
            f"Telegraf v{VERSION} did not build (go install exit {done.returncode}:"
            f" {one_line_error(log)}); check the Go module proxy is reachable and disk has"
            f" ~4 GB free, then run make bench-peers again"
        )
    return binary


def _q(text: str) -> str:
    """A TOML basic string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sink_config(
    bootstrap: str, topic: str, group: str, dsn: str, schema: str, connections: int
) -> str:
    """kafka_consumer (influx lines) -> postgresql, batches of 5,000 like the other tools.

    `connections`: the plugin's `pool_max_conns` (its default is 1): with more, it writes
    batches side by side. The bench gives it as many as metrictui's sink holds."""
    dsn = with_pool_size(dsn, connections)
    return f"""\
[agent]
  interval = "1s"
  round_interval = false
  metric_batch_size = 5000
  metric_buffer_limit = 200000
  flush_interval = "1s"
  flush_jitter = "0s"
  omit_hostname = true
  quiet = true

[[inputs.kafka_consumer]]
  brokers = [{_q(bootstrap)}]
  topics = [{_q(topic)}]
  consumer_group = {_q(group)}
  offset = "oldest"
  kafka_version = {_q(KAFKA_VERSION)}
  max_undelivered_messages = 1000
  max_message_len = 0
  data_format = "influx"

[[outputs.postgresql]]
  connection = {_q(dsn)}
  schema = {_q(schema)}
  tags_as_foreign_keys = true
  timestamp_column_type = "timestamp with time zone"
"""


def with_pool_size(dsn: str, connections: int) -> str:
    """`dsn` (a URI or key=value) with Telegraf's non-standard `pool_max_conns` parameter."""
    if "://" in dsn:
        return f"{dsn}{'&' if '?' in dsn else '?'}pool_max_conns={connections}"
    return f"{dsn} pool_max_conns={connections}"


def checks_config(urls: list[str], interval_s: float, bootstrap: str, topic: str) -> str:
    """http_response over `urls` in groups of 100, spread over the interval by jitter, results
    as influx lines to Kafka (one message per result)."""
    interval = f"{interval_s:g}s"
    parts = [
        f"""\
[agent]
  interval = {_q(interval)}
  round_interval = false
  collection_jitter = {_q(interval)}
  metric_batch_size = 1000
  metric_buffer_limit = 100000
  flush_interval = "1s"
  omit_hostname = true
  quiet = true

[[outputs.kafka]]
  brokers = [{_q(bootstrap)}]
  topic = {_q(topic)}
  version = {_q(KAFKA_VERSION)}
  data_format = "influx"
"""
    ]
    for start in range(0, len(urls), 100):
        group = ", ".join(_q(u) for u in urls[start : start + 100])
        parts.append(
            f"""
[[inputs.http_response]]
  urls = [{group}]
  response_timeout = "5s"
  method = "GET"
"""
        )
    return "".join(parts)
