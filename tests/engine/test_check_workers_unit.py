"""Check workers, the narrow parts: the pipe format, how many workers, which worker, the config
key, the saturation policy of the scheduler, and the engine/TUI boundary of the new modules."""

from __future__ import annotations

import asyncio
import marshal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import tomli_w

from engine.agent.checks.pool import shard_of
from engine.agent.checks.sizing import HTTP_CHECK_S, HTTPS_CHECK_S, check_load, worker_count
from engine.agent.checks.wire import (
    RESULT,
    FrameError,
    FrameReader,
    frame,
    result_from_wire,
    result_to_wire,
    targets_from_wire,
    targets_to_wire,
)
from engine.agent.scheduler import CheckScheduler, spread
from engine.config import load_config
from engine.errors import UserError
from engine.records.check_result import CheckResult
from engine.targets import Target


def a_result(**changes: object) -> CheckResult:
    base: dict[str, object] = {
        "target": "shop \u00e9\u4e2d",
        "url": "https://shop.example.com/?q=1",
        "method": "GET",
        "started_at": datetime(2026, 11, 22, 13, 51, 4, 123456, tzinfo=UTC),
        "ok": False,
        "status_code": 503,
        "reason": "status_mismatch",
        "error": "status 503, expected one of 200",
        "dns_ms": 1.25,
        "connect_ms": 0.5,
        "tls_ms": 3.75,
        "ttfb_ms": 12.0,
        "total_ms": 20.5,
        "content_match": None,
        "cert_expires_at": datetime(2027, 1, 22, 0, 0, 1, tzinfo=UTC),
        "resolved_ip": "2001:db8::1",
    }
    base.update(changes)
    return CheckResult(**base)  # type: ignore[arg-type]


def test_a_result_crosses_the_pipe_field_for_field() -> None:
    for result in (
        a_result(),
        a_result(
            ok=True,
            status_code=None,
            reason=None,
            error=None,
            dns_ms=None,
            connect_ms=None,
            tls_ms=None,
            ttfb_ms=None,
            content_match=True,
            cert_expires_at=None,
            resolved_ip=None,
        ),
        a_result(started_at=datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ):
        (message,) = FrameReader().feed(frame((RESULT, result_to_wire(result), 0.25, b"{}")))
        back = result_from_wire(message[1])
        assert back == result
        assert back.started_at.tzinfo is not None and back.to_payload() == result.to_payload()


def test_an_offset_datetime_comes_back_as_the_same_instant() -> None:
    moment = datetime(2026, 5, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))
    back = result_from_wire(result_to_wire(a_result(started_at=moment)))
    assert back.started_at == moment


def test_frames_are_split_whatever_the_chunking() -> None:
    messages = [
        (RESULT, result_to_wire(a_result(total_ms=float(i))), i / 10, b"x" * i) for i in range(50)
    ]
    stream = b"".join(frame(m) for m in messages)
    for step in (1, 3, 7, 64, len(stream)):
        reader = FrameReader()
        got: list[tuple[object, ...]] = []
        for at in range(0, len(stream), step):
            got += reader.feed(stream[at : at + step])
        assert got == messages and reader.pending == 0


def test_a_corrupt_stream_is_an_error_not_a_hang() -> None:
    with pytest.raises(FrameError):
        FrameReader().feed(b"\xff\xff\xff\xff")  # a 4 GiB frame announced
    with pytest.raises(FrameError):
        FrameReader().feed(b"\x00\x00\x00\x03abc")  # not marshal data
    body = marshal.dumps(5)
    with pytest.raises(FrameError):
        FrameReader().feed(len(body).to_bytes(4, "big") + body)  # not a tagged tuple
    torn = FrameReader()
    assert torn.feed(frame((RESULT, "x"))[:-1]) == [] and torn.pending > 0


def test_targets_cross_the_pipe_unchanged() -> None:
    targets = [
        Target(name="a", url="http://127.0.0.1/"),
        Target(
            name="b\u00e9",
            url="https://x.example/",
            interval=2.5,
            timeout=1.0,
            method="HEAD",
            expect_status=(200, 301),
            regex="ok|fine",
            headers=(("X-One", "1"), ("User-Agent", "me")),
            verify_tls=False,
            ca_file="/etc/ca.pem",
            enabled=False,
        ),
    ]
    (message,) = FrameReader().feed(frame((1, targets_to_wire(targets))))
    assert targets_from_wire(message[1]) == targets


def test_worker_count_auto_keeps_checks_in_process_until_they_need_half_a_core() -> None:
    few = [Target(name=f"t{i}", url="http://x/", interval=10) for i in range(20)]
    many = [Target(name=f"t{i}", url="http://x/", interval=10) for i in range(10_000)]
    tls = [Target(name=f"s{i}", url="https://x/", interval=10) for i in range(10_000)]
    assert check_load(many) == pytest.approx(1_000 * HTTP_CHECK_S)
    assert check_load(tls) == pytest.approx(1_000 * HTTPS_CHECK_S)
    assert worker_count("auto", few, cpus=8) == 0
    # 1,000 plain-HTTP checks a second (0.3 of a core): one process is cheaper than workers...
    assert worker_count("auto", many, cpus=2) == 0
    # ...unless the dashboard shares that process's event loop.
    assert worker_count("auto", many, cpus=2, dashboard=True) == 2
    # 1,000 HTTPS checks a second (1.3 cores): workers, half a core's checks each.
    assert worker_count("auto", tls, cpus=2) == 2
    assert worker_count("auto", tls, cpus=64) == 3
    assert worker_count("auto", [*many, *many[:8_000]], cpus=8) == 2  # 0.54 of a core
    disabled = [
        Target(name=f"t{i}", url="http://x/", interval=1, enabled=False) for i in range(9999)
    ]
    assert worker_count("auto", disabled, cpus=8) == 0
    assert worker_count("auto", tls, cpus=1) == 0  # one core: in-process
    assert worker_count(0, many) == 0 and worker_count(1, many) == 0
    assert worker_count(3, few) == 3


def test_shards_are_stable_in_range_and_balanced() -> None:
    names = [f"target-{i}" for i in range(10_000)]
    shards = [shard_of(name, 2) for name in names]
    assert shards == [shard_of(name, 2) for name in names]
    counts = Counter(shards)
    assert set(counts) == {0, 1} and min(counts.values()) > 4_500
    assert {shard_of(name, 5) for name in names} == {0, 1, 2, 3, 4}


def test_each_worker_gets_an_even_share_of_every_part_of_the_interval() -> None:
    """Slots sit at `spread(name)` within the interval; a worker's shard must not be one part
    of it, or that worker works at twice the rate half the time while the other idles."""
    names = [f"t{i:05d}" for i in range(10_000)]
    for workers in (2, 3):
        for w in range(workers):
            phases = [spread(n) for n in names if shard_of(n, workers) == w]
            tenths = Counter(int(p * 10) for p in phases)
            assert len(tenths) == 10
            expected = len(names) / workers / 10
            assert all(0.8 * expected < c < 1.2 * expected for c in tenths.values()), tenths


def _config(tmp_path: Path, agent: dict[str, object], env: dict[str, str] | None = None) -> object:
    path = tmp_path / "metrictui.toml"
    path.write_text(tomli_w.dumps({"agent": agent}))
    (tmp_path / "targets.toml").write_text("")
    return load_config(path, env or {}).agent.check_workers


def test_check_workers_config_key(tmp_path: Path) -> None:
    assert _config(tmp_path, {}) == "auto"
    assert _config(tmp_path, {"check_workers": "auto"}) == "auto"
    assert _config(tmp_path, {"check_workers": 4}) == 4
    assert _config(tmp_path, {}, {"METRICTUI_AGENT__CHECK_WORKERS": "2"}) == 2
    assert _config(tmp_path, {}, {"METRICTUI_AGENT__CHECK_WORKERS": "Auto"}) == "auto"
    for bad in ("many", 65, -1, True, 2.5):
        with pytest.raises(UserError) as caught:
            _config(tmp_path, {"check_workers": bad})
        text = str(caught.value)
        assert "check_workers" in text and '"auto" or an integer' in text and "\n" not in text


class _Blocker:
    """Checks of "hog" hold the only concurrency slot for `hold` seconds; others are instant."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.starts: list[tuple[str, float]] = []

    async def check(self, target: Target) -> CheckResult:
        self.starts.append((target.name, asyncio.get_running_loop().time()))
        if target.name == "hog":
            await asyncio.sleep(self.hold)
        return a_result(target=target.name, started_at=datetime.now(UTC))


async def test_saturated_scheduler_skips_slots_it_cannot_start_within_an_interval() -> None:
    checker = _Blocker(hold=1.0)
    lateness: list[tuple[str, float]] = []
    scheduler = CheckScheduler(checker, lambda r, late: lateness.append((r.target, late)), 1)
    scheduler.set_targets(
        [
            Target(name="hog", url="http://x/", interval=5.0),
            Target(name="quick", url="http://x/", interval=0.2),
        ]
    )
    scheduler.start()
    await asyncio.sleep(2.5)
    await scheduler.stop()
    quick = [late for name, late in lateness if name == "quick"]
    assert quick, "the quick target ran once the hog released the slot"
    # While the hog held the only slot for 1 s, the quick target's slots could not start;
    # they were skipped (counted), not run late in a burst.
    assert max(quick) < 0.2, quick
    assert scheduler.missed_slots >= 3


def test_new_modules_keep_the_engine_free_of_textual() -> None:
    code = (
        "import sys, engine.agent.checks.pool, engine.agent.checks.worker,"
        " engine.agent.checks.wire\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'tui')]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
