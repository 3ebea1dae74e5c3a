"""The peer harness's pure parts: the landing curve's arithmetic, the peers' configs, /proc CPU.

These need no servers and no Telegraf binary, so the Telegraf configs are at least proven to be
valid TOML with the keys its plugins read, even where Telegraf is never built.
"""

from __future__ import annotations

import os
import tomllib

import pytest

from bench.peers import connect, telegraf
from bench.peers.landing import Landing
from bench.peers.procstat import own_cpu_s, tree_cpu_s


def test_steady_rate_ignores_start_up_and_from_start_includes_it() -> None:
    # Launch at 0; nothing for 10 s (start-up), then 1,000 rows/s (100 bytes each) for 10 s.
    curve = [(float(t), 0) for t in range(11)]
    curve += [(10.0 + t, t * 100_000) for t in range(1, 11)]
    landing = Landing(rows=10_000, started=0.0, curve=curve)
    assert landing.rows_per_s_steady == pytest.approx(1_000.0)
    assert landing.rows_per_s_from_start == pytest.approx(500.0)
    assert landing.first_rows_s == pytest.approx(10.01)  # 0.1 % of the heap
    assert landing.last_growth == 20.0


def test_telegraf_sink_config_names_its_kafka_version_and_tag_table() -> None:
    text = telegraf.sink_config("127.0.0.1:9092", "t", "g", "postgresql://u:p@h/db", "s", 3)
    doc = tomllib.loads(text)
    consumer = doc["inputs"]["kafka_consumer"][0]
    assert consumer["kafka_version"] == telegraf.KAFKA_VERSION
    assert consumer["data_format"] == "influx" and consumer["topics"] == ["t"]
    output = doc["outputs"]["postgresql"][0]
    assert output["tags_as_foreign_keys"] is True and output["schema"] == "s"
    # As many connections as metrictui's sink holds, not the plugin's default of one.
    assert output["connection"] == "postgresql://u:p@h/db?pool_max_conns=3"
    assert telegraf.with_pool_size("host=h dbname=db", 2) == "host=h dbname=db pool_max_conns=2"
    assert telegraf.with_pool_size("postgresql://h/db?sslmode=require", 2).endswith(
        "&pool_max_conns=2"
    )


def test_telegraf_checks_config_covers_every_url_once_in_groups() -> None:
    urls = [f"http://127.0.0.1:1/t/{i}" for i in range(250)]
    doc = tomllib.loads(telegraf.checks_config(urls, 10.0, "127.0.0.1:9092", "checks"))
    groups = doc["inputs"]["http_response"]
    assert [len(g["urls"]) for g in groups] == [100, 100, 50]
    assert sorted(u for g in groups for u in g["urls"]) == sorted(urls)
    assert doc["agent"]["collection_jitter"] == "10s"
    assert doc["outputs"]["kafka"][0]["version"] == telegraf.KAFKA_VERSION


def test_connect_sink_writes_into_its_own_schema() -> None:
    props = connect.connector_properties(
        "n", "topic", "postgresql://user:pw@127.0.0.1:5433/db", "bench_x"
    )
    lines = dict(line.split("=", 1) for line in props.splitlines())
    assert lines["connection.url"] == "jdbc:postgresql://127.0.0.1:5433/db?currentSchema=bench_x"
    # Qualified: Debezium otherwise finds a same-named table in another schema.
    assert lines["collection.name.format"] == "bench_x.samples"
    assert lines["connection.username"] == "user" and lines["batch.size"] == "5000"


def test_process_cpu_is_read_from_proc() -> None:
    sum(i * i for i in range(200_000))  # burn a little CPU
    own = own_cpu_s(os.getpid())
    assert own > 0
    assert tree_cpu_s(os.getpid()) >= own_cpu_s(os.getpid(), reaped=False)
