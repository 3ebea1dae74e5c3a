"""Spool faults (issue 4, cases 8-9): the spool reaches its cap while Kafka stays away, and
the spool's disk fills up or turns read-only. Every event is accounted for: in PostgreSQL
exactly once, or counted as dropped (the OLDEST ones, by policy); memory and disk stay bounded.

Accounting is exact because these agents send only check events (`metrics = []`): the final
status line's `checks=N` is every event the agent made, so N == (distinct events on the topic)
+ spool_dropped (up to the few events in doubt when the broker died), and the topic equals
PostgreSQL.
"""

from __future__ import annotations

import itertools
import os
import resource
import shutil
import signal
import struct
import subprocess
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psutil
import pytest

from engine.kafka.spool import Spool
from helpers.faults import (
    Agent,
    Agents,
    Servers,
    assert_conserved,
    config_variant,
    free_port,
    scrape,
    stored_count,
)
from helpers.sites import LocalSites
from helpers.stack import Pipeline
from helpers.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration]

IN_DOUBT_MAX = 25  # a few linger batches in flight when the broker was killed
PAD = "p" * 1700  # ~2 KB per check event: the spool fills in seconds, not minutes


def _targets(sites: LocalSites, n: int = 10) -> list[dict[str, object]]:
    return [
        {"name": f"t{i}", "url": sites.http_url(f"/?i={i}&pad={PAD}"), "interval": 0.1}
        for i in range(n)
    ]


def _status(agent: Agent, key: str) -> int:
    return int(agent.last_status().get(key, "-1"))


def _spool_files_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("seg-*.spool") if p.exists())


def _final_status(agent: Agent) -> dict[str, str]:
    """The status line the agent prints after it stopped (every event is placed by then)."""
    text = agent.text()
    assert "stopped cleanly" in text, agent.tail()
    return agent.statuses()[-1]


def _assert_accounted(p: Pipeline, agent: Agent) -> tuple[int, int, int]:
    """checks made == distinct check events delivered + dropped; delivered == PostgreSQL."""
    final = _final_status(agent)
    assert final["spool"] == "0", final
    made, dropped = int(final["checks"]), int(final["spool_dropped"])
    result = assert_conserved(p, min_events=1)
    assert result.metrics_events == 0
    # Never fewer (that would be an event silently lost). A few more are possible: events the
    # killed broker had written but not yet acknowledged are in doubt, so they were spooled,
    # and if the cap (or a full disk) then dropped them they are counted though delivered.
    in_doubt = result.check_events + dropped - made
    assert 0 <= in_doubt <= IN_DOUBT_MAX, (made, result.check_events, dropped)
    return made, result.check_events, dropped


def _spooled_records_are_clean(spool_dir: Path, copy: Path, pid: int | None = None) -> int:
    """Copy the spool (the agent frozen meanwhile) and check it: every segment is a clean
    run of checksummed records, except at most a torn tail of the newest segment (an append
    caught in the act, which open() cuts off); every record decodes. Returns the records."""
    if pid is not None:
        os.kill(pid, signal.SIGSTOP)
    try:
        shutil.copytree(spool_dir, copy)
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
    header = struct.Struct(">HII")
    segments = sorted(copy.glob("seg-*.spool"))
    for n, seg in enumerate(segments):
        data = seg.read_bytes()
        pos = 0
        while pos + header.size <= len(data):
            magic, length, crc = header.unpack_from(data, pos)
            body = data[pos + header.size : pos + header.size + length]
            if magic != 0x4D54 or len(body) < length:
                break
            assert zlib.crc32(body) == crc, f"{seg.name}: checksum error at byte {pos}"
            pos += header.size + length
        if pos < len(data):
            assert n == len(segments) - 1, f"{seg.name}: damaged at byte {pos}, not the newest"
            magic = int.from_bytes(data[pos : pos + 2], "big") if len(data) - pos >= 2 else None
            assert magic in (None, 0x4D54), f"{seg.name}: garbage at byte {pos}"
    spool = Spool(copy, 1 << 40)
    spool.open()
    count = 0
    while batch := spool.peek(500):
        for rec in batch:
            assert orjson.loads(rec.value)["type"] in ("check", "heartbeat")  # metrics are off
        count += len(batch)
        spool.ack(len(batch))
    spool.close()
    return count


def test_spool_cap_drops_the_oldest_counts_them_and_stays_bounded(
    pipeline: Pipeline, agents: Agents, servers: Servers, local_sites: LocalSites, tmp_path: Path
) -> None:
    port = free_port()
    agent_cfg = {"metrics": [], "spool_max_mb": 1, "spool_dir": str(pipeline.dir / "spool")}
    pipeline.write_config(agent=agent_cfg)
    producer_cfg = config_variant(
        pipeline, "producer.toml", agent=agent_cfg, headless={"listen": f"127.0.0.1:{port}"}
    )
    pipeline.write_targets(_targets(local_sites))
    spool_dir = pipeline.dir / "spool"
    consumer = agents.start("consumer")
    producer = agents.start("producer", config=producer_cfg)
    wait_for(lambda: stored_count(pipeline) >= 20, 60, "the first events in PostgreSQL")
    down_at = datetime.now(UTC)
    servers.kafka_stop(kill=True)
    assert producer.proc is not None
    proc = psutil.Process(producer.proc.pid)
    disk: list[int] = []
    rss: list[int] = []
    first_drop_at: float | None = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        disk.append(_spool_files_bytes(spool_dir))
        rss.append(proc.memory_info().rss)
        if first_drop_at is None and _status(producer, "spool_dropped") > 0:
            first_drop_at = time.monotonic()
            rss_at_first_drop = rss[-1]
            # Kafka takes longer to come back than we watch the full spool: start it now.
            servers.kafka_back_after(first_drop_at, servers.KAFKA_START_S)
        if first_drop_at is not None and time.monotonic() - first_drop_at > 5:
            break
        time.sleep(0.5)
    assert first_drop_at is not None, f"the spool never reached its cap: {producer.tail()}"
    cap = 1024 * 1024
    segment = Spool(spool_dir, cap).segment_bytes
    assert max(disk) <= cap + segment + 64 * 1024, (max(disk), cap, segment)
    growth = rss[-1] - rss_at_first_drop
    assert growth < 20 * 1024 * 1024, f"memory grew {growth / 1e6:.1f} MB while dropping"
    dropped_shown = _status(producer, "spool_dropped")
    assert dropped_shown > 0
    assert scrape(port)["metrictui_spool_dropped_total"] >= dropped_shown
    assert "spool reached its cap of 1 MB" in producer.text()
    assert "oldest events" in producer.text()
    servers.wait_kafka_back()
    wait_for(lambda: _status(producer, "spool") == 0, 60, "the kept events to be replayed")
    time.sleep(1)
    code, _ = producer.stop()
    assert code == 0, producer.tail()
    made, delivered, dropped = _assert_accounted(pipeline, producer)
    # The oldest were dropped: one hole, after Kafka went away, then an unbroken run to the end.
    times = [r[0] for r in pipeline.query("SELECT observed_at FROM events ORDER BY observed_at")]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    hole = max(range(len(gaps)), key=gaps.__getitem__)
    assert gaps[hole] > 2, "dropping left no hole at all?"
    # Events sent but not acknowledged when the broker died were spooled, so the hole may
    # start a moment (send timeout, linger) before the kill; never long before it.
    assert times[hole] >= down_at - timedelta(seconds=3), "events from before the outage lost"
    assert max(gaps[hole + 1 :]) < 2, "the newest events were kept without a gap"
    code, _ = consumer.stop()
    assert code == 0, consumer.tail()
    agents.assert_clean()
    print(f"made {made}, delivered {delivered}, dropped {dropped}; spool max {max(disk)} B")


class SpoolDisk:
    """The spool's filesystem, made to fill up and to turn read-only.

    As root: a 256 KiB tmpfs (ENOSPC), remounted larger, then read-only (EROFS). Otherwise
    (no mounting): the agent's file size limit lowered with prlimit (EFBIG) and raised again,
    then the spool directory and its files made read-only with chmod (EACCES), which root
    would ignore. The spool keeps no file open for writing between appends, so a read-only
    remount only has to wait for the append in progress.
    """

    def __init__(self, base: Path, spool_dir: Path) -> None:
        self.base = base
        self.spool_dir = spool_dir
        self.root = os.geteuid() == 0
        base.mkdir(parents=True, exist_ok=True)
        self.mounted = False
        if self.root:
            self._mount("-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(base))
            self.mounted = True

    @staticmethod
    def _mount(*args: str, attempts: int = 1) -> None:
        for attempt in range(attempts):
            proc = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
            if proc.returncode == 0:
                return
            if attempt + 1 < attempts:
                time.sleep(0.05)  # EBUSY: an append has the file open right now
        pytest.fail(f"mount {' '.join(args)} failed: {proc.stderr.strip()}")

    def full(self, pid: int) -> str:
        """Make the disk refuse more data; returns the error text the agent will see."""
        if self.root:
            return "No space left on device"  # the 256 KiB fill within a second or two
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (64 * 1024, hard))
        return "File too large"

    def room(self, pid: int) -> None:
        if self.root:
            self._mount("-o", "remount,size=64m", str(self.base))
        else:
            hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)[1]
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))

    def read_only(self) -> str:
        if self.root:
            self._mount("-o", "remount,ro", str(self.base), attempts=100)
            return "Read-only file system"
        for path in [self.spool_dir, *self.spool_dir.iterdir()]:
            path.chmod(0o500 if path.is_dir() else 0o400)
        return "Permission denied"

    def writable(self) -> None:
        if self.root:
            self._mount("-o", "remount,rw", str(self.base))
        else:
            for path in [self.spool_dir, *self.spool_dir.iterdir()]:
                path.chmod(0o700 if path.is_dir() else 0o600)

    def cleanup(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.base)], capture_output=True, timeout=30)
            self.mounted = False


def test_spool_disk_full_then_read_only_clear_error_no_corruption_and_recovery(
    pipeline: Pipeline, agents: Agents, servers: Servers, local_sites: LocalSites, tmp_path: Path
) -> None:
    disk = SpoolDisk(tmp_path / "spoolfs", tmp_path / "spoolfs" / "spool")
    try:
        spool_dir = disk.spool_dir
        pipeline.write_config(agent={"metrics": [], "spool_dir": str(spool_dir)})
        pipeline.write_targets(_targets(local_sites))
        consumer = agents.start("consumer")
        producer = agents.start("producer")
        assert producer.proc is not None
        wait_for(lambda: stored_count(pipeline) >= 20, 60, "the first events in PostgreSQL")
        error_text = disk.full(producer.proc.pid)
        servers.kafka_stop(kill=True)
        wait_for(lambda: error_text in producer.text(), 30, f"the {error_text!r} error")
        time.sleep(4)
        assert producer.running, producer.tail()
        errors = [line for line in producer.text().splitlines() if error_text in line]
        assert len(errors) <= 2, "the error is said once, not once per batch"
        assert f"spool directory {spool_dir}: cannot " in errors[0]
        assert "events are being dropped and counted" in errors[0]
        dropped_full = _status(producer, "spool_dropped")
        assert dropped_full > 0
        kept = _spooled_records_are_clean(spool_dir, tmp_path / "copy-full", producer.proc.pid)
        assert kept > 0
        # Space returns: the spool takes events again, nothing else to do.
        mark = len(producer.text())
        disk.room(producer.proc.pid)
        wait_for(lambda: "spool is writable again" in producer.text()[mark:], 30, "recovery")
        depth = _status(producer, "spool")
        wait_for(lambda: _status(producer, "spool") > depth + 20, 30, "spooling to resume")
        # The disk turns read-only: a clear error again, events dropped and counted.
        ro_error = disk.read_only()
        wait_for(lambda: ro_error in producer.text(), 30, f"the {ro_error!r} error")
        wait_for(
            lambda: _status(producer, "spool_dropped") > dropped_full + 20, 30, "drops counted"
        )
        _spooled_records_are_clean(spool_dir, tmp_path / "copy-ro", producer.proc.pid)
        # Kafka returns while the disk is still read-only: the spool replays all the same.
        servers.kafka_start()
        wait_for(lambda: _status(producer, "spool") == 0, 60, "replay from a read-only disk")
        disk.writable()
        _spooled_records_are_clean(spool_dir, tmp_path / "copy-end")
        time.sleep(1)
        code, _ = producer.stop()
        assert code == 0, producer.tail()
        made, delivered, dropped = _assert_accounted(pipeline, producer)
        code, _ = consumer.stop()
        assert code == 0, consumer.tail()
        agents.assert_clean()
        print(f"made {made}, delivered {delivered}, dropped {dropped}")
    finally:
        agents.kill_all()
        disk.cleanup()


def test_cap_never_drops_records_that_are_out_for_sending(tmp_path: Path) -> None:
    """Replay peeks a batch, new events push the spool over its cap while the batch is in
    flight: the batch's segment is spared, so nothing is both delivered and counted dropped,
    and `ack` never skips a record that was not sent."""
    from engine.kafka.spool import SpoolRecord

    def rec(i: int) -> SpoolRecord:
        return SpoolRecord("t", None, f"{i:08d}".encode() + b"x" * 200)

    spool = Spool(tmp_path, max_bytes=4000, segment_bytes=1000)
    spool.open()
    spool.append([rec(i) for i in range(10)])
    appended = 10
    delivered: list[int] = []
    while True:
        batch = spool.peek(3)
        if not batch:
            break
        if appended < 200:  # events keep arriving while the batch is sent
            spool.append([rec(appended + i) for i in range(5)])
            appended += 5
        delivered += [int(r.value[:8]) for r in batch]
        spool.ack(len(batch))
    assert len(delivered) == len(set(delivered))
    assert delivered == sorted(delivered), "replayed in order"
    assert len(delivered) + spool.dropped_total == appended
    assert spool.dropped_total > 0 and delivered[-1] == appended - 1
    assert spool.bytes <= 4000 + 1000


def test_ack_after_a_cap_overflow_acknowledges_exactly_the_peeked_records(tmp_path: Path) -> None:
    from engine.kafka.spool import SpoolRecord

    def rec(i: int) -> SpoolRecord:
        return SpoolRecord("t", None, f"{i:08d}".encode() + b"x" * 200)

    spool = Spool(tmp_path, max_bytes=4000, segment_bytes=1000)
    spool.open()
    spool.append([rec(i) for i in range(10)])  # one segment, the head
    assert [int(r.value[:8]) for r in spool.peek(3)] == [0, 1, 2]
    for i in range(10, 40):  # while 0-2 are being sent, the spool overflows
        spool.append([rec(i)])
    spool.ack(3)
    following = spool.peek(100)
    assert int(following[0].value[:8]) == 3, "records 3.. of the spared head come next"
    assert spool.dropped_total > 0
    assert spool.depth + spool.dropped_total + 3 == 40
