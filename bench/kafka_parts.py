"""Kafka-side measurements: pre-filling, raw consume, raw send and the real producer path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.measure import Throughput
from bench.workload import EventSpec, Message
from engine.config import Config, KafkaConfig
from engine.envelope import encode_event
from engine.kafka.settings import client_kwargs
from engine.kafka.shipper import Shipper
from engine.kafka.spool import Spool
from engine.stats import Stats

TIMEOUT_S = 600.0


def producer_kwargs(cfg: KafkaConfig) -> dict[str, Any]:
    """The settings engine/kafka/shipper.py uses, so the baseline sends exactly like the engine."""
    return {
        **client_kwargs(cfg, "bench-raw-producer"),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if cfg.compression == "none" else cfg.compression,
        "linger_ms": cfg.linger_ms,
        "max_batch_size": cfg.max_batch_bytes,
        "max_request_size": max(1_048_576, cfg.max_batch_bytes),
    }


async def raw_send(cfg: KafkaConfig, messages: Sequence[Message]) -> Throughput:
    """aiokafka sending pre-encoded messages (also how topics get pre-filled)."""
    producer = AIOKafkaProducer(**producer_kwargs(cfg))
    await producer.start()
    try:
        started = time.perf_counter()
        async with asyncio.timeout(TIMEOUT_S):
            futures = []
            for m in messages:
                topic = cfg.metrics_topic if m.is_metrics else cfg.checks_topic
                futures.append(await producer.send(topic, m.value, key=m.key))
            await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return Throughput(len(messages), sum(m.rows for m in messages), elapsed)


async def real_producer(
    cfg: KafkaConfig, specs: Sequence[EventSpec], spool_dir: Path
) -> Throughput:
    """The engine's path: `encode_event` + `Shipper.submit`, until Kafka confirmed them all."""
    stats = Stats("producer", "bench")
    shipper = Shipper(cfg, Spool(spool_dir, 256 * 1024 * 1024), stats, "bench-producer")
    await shipper.start()
    try:
        started = time.perf_counter()
        async with asyncio.timeout(TIMEOUT_S):
            for i, s in enumerate(specs):
                value = encode_event(s.kind, s.agent, s.host, s.observed_at, s.payload)
                topic = cfg.metrics_topic if s.kind == "metrics" else cfg.checks_topic
                shipper.submit(topic, s.key, value)
                if i % 500 == 499:
                    await asyncio.sleep(0)  # collectors and checks submit between other work
            while stats.produced.total < len(specs):
                if shipper.spool.depth:
                    raise RuntimeError("the producer spooled during the benchmark: Kafka failed")
                await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
    finally:
        await shipper.stop()
    return Throughput(len(specs), sum(s.rows for s in specs), elapsed)


async def wait_assigned(consumer: Callable[[], AIOKafkaConsumer | None]) -> float:
    """Until `consumer` has partitions: timing starts there for every consumer alike, so a
    group join (the sink) or its absence (the baselines) does not count."""
    while (c := consumer()) is None or not c.assignment():
        await asyncio.sleep(0.001)
    return time.perf_counter()


def consumer_kwargs(config: Config, client_id: str) -> dict[str, Any]:
    """Fetch settings of engine/sink/consume.py, without a consumer group."""
    return {
        **client_kwargs(config.kafka, client_id),
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": config.consumer.batch_max,
        "fetch_max_wait_ms": min(500, config.consumer.flush_ms),
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }


async def raw_consume(config: Config, expected: int) -> Throughput:
    """aiokafka `getmany` over both topics until `expected` messages; nothing is decoded."""
    k = config.kafka
    consumer = AIOKafkaConsumer(
        k.metrics_topic, k.checks_topic, **consumer_kwargs(config, "bench-raw-consumer")
    )
    await consumer.start()
    try:
        count = 0
        async with asyncio.timeout(TIMEOUT_S):
            started = await wait_assigned(lambda: consumer)
            while count < expected:
                batch = await consumer.getmany(
                    timeout_ms=config.consumer.flush_ms, max_records=config.consumer.batch_max
                )
                count += sum(len(messages) for messages in batch.values())
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return Throughput(count, 0, elapsed)
