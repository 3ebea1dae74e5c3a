"""Logs: `--log-format json` is one JSON object per line (even warnings and the final error),
`--log-level` filters, and no secret reaches stderr even at debug level while connections fail.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from helpers.stack import Pipeline, metrictui_cmd

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line must be a JSON object with the documented keys."""
    docs = []
    for line in text.splitlines():
        doc = json.loads(line)  # raises (fails the test) on a non-JSON line
        assert isinstance(doc, dict) and {"ts", "level", "logger", "msg"} <= set(doc), line
        docs.append(doc)
    return docs


def _run_for(p: Pipeline, seconds: float, *args: str) -> tuple[int, str]:
    """Run the real headless binary for `seconds`, SIGTERM it; (exit code, stderr)."""
    err = p.dir / f"stderr-{uuid.uuid4().hex[:6]}.log"
    with err.open("wb") as sink:
        proc = subprocess.Popen(
            metrictui_cmd("--config", str(p.config_path), "--headless", *args),
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    return proc.returncode, err.read_text()


def test_json_logs_are_one_object_per_line_including_config_warnings(pipeline: Pipeline) -> None:
    pipeline.config_path.chmod(0o644)  # provokes the "readable by others" warning
    code, err = _run_for(pipeline, 8, "--log-format", "json")
    assert code == 0
    docs = _json_lines(err)
    assert len(docs) >= 5
    assert any(d["level"] == "warning" and "chmod 600" in d["msg"] for d in docs), err[:2000]
    assert any(d["msg"].startswith("status role=all") for d in docs)
    assert docs[-1]["msg"] == "stopped cleanly"


def test_log_level_warning_hides_info_lines(pipeline: Pipeline) -> None:
    code, err = _run_for(pipeline, 5, "--log-format", "json", "--log-level", "warning")
    assert code == 0
    docs = _json_lines(err)
    assert all(d["level"] in ("warning", "error", "critical") for d in docs), docs[:5]
    assert not any(d["msg"].startswith("status ") for d in docs)


def test_config_error_in_json_mode_is_a_json_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        metrictui_cmd(
            "--config", str(tmp_path / "nope.toml"), "--log-format", "json", "--headless"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    [doc] = _json_lines(proc.stderr)
    assert doc["level"] == "error" and "nope.toml" in doc["msg"]


@pytest.mark.parametrize("fmt", ["json", "human"])
def test_no_secret_in_debug_logs_while_postgres_and_kafka_refuse(
    pipeline: Pipeline, fmt: str
) -> None:
    pg_secret = f"PgSecret-{uuid.uuid4().hex}"
    sasl_secret = f"SaslSecret-{uuid.uuid4().hex}"
    pipeline.write_config(
        postgres={"dsn": f"postgresql://metrictui:{pg_secret}@127.0.0.1:{_closed_port()}/x"},
        kafka={
            # the stack's listener is PLAINTEXT: the SASL handshake fails on every attempt
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "metrictui",
            "sasl_password": sasl_secret,
            "request_timeout_s": 2.0,
        },
    )
    code, err = _run_for(pipeline, 8, "--log-format", fmt, "--log-level", "debug")
    assert code == 0, err[-2000:]
    assert pg_secret not in err and sasl_secret not in err
    for fragment in (pg_secret[9:], sasl_secret[11:]):  # not even a part of it
        assert fragment[:16] not in err
    if fmt == "json":
        docs = _json_lines(err)
        assert any(d["level"] == "debug" for d in docs)  # debug really was on
        assert any("PostgreSQL not reachable" in d["msg"] for d in docs)
        assert any("Kafka" in d["msg"] and d["level"] == "warning" for d in docs)
    else:
        assert " DEBUG " in err and "PostgreSQL not reachable" in err


def _wrong_password_dsn(p: Pipeline, secret: str) -> str:
    parts = urlsplit(p.stack.dsn)
    netloc = f"{parts.username}:{secret}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.parametrize("fmt", ["json", "human"])
def test_wrong_postgres_password_is_named_without_the_password(
    pipeline: Pipeline, fmt: str
) -> None:
    secret = f"Wrong-{uuid.uuid4().hex}"
    dsn = _wrong_password_dsn(pipeline, secret)
    pipeline.write_config(postgres={"dsn": dsn, "migrate_on_start": False})
    started = time.monotonic()
    args = ("--role", "consumer", "--log-format", fmt, "--log-level", "debug")
    code, err = _run_for(pipeline, 60, *args)
    assert code == 1 and time.monotonic() - started < 60, err[-2000:]
    assert secret not in err and secret[6:22] not in err
    assert "password authentication failed" in err and "[postgres] dsn" in err
    if fmt == "json":
        docs = _json_lines(err)
        assert docs[-1]["level"] == "error" and "password authentication failed" in docs[-1]["msg"]
    else:
        assert err.splitlines()[-1].startswith("metrictui: PostgreSQL")

    for command in ("migrate", "report"):
        proc = subprocess.run(
            metrictui_cmd("--config", str(pipeline.config_path), "--log-level", "debug", command),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1 and secret not in proc.stderr + proc.stdout
        assert "password authentication failed" in proc.stderr, (command, proc.stderr)


def test_wrong_postgres_password_while_migrating_at_start_is_fatal_and_leaks_nothing(
    pipeline: Pipeline,
) -> None:
    secret = f"Wrong-{uuid.uuid4().hex}"
    pipeline.write_config(postgres={"dsn": _wrong_password_dsn(pipeline, secret)})
    code, err = _run_for(pipeline, 60, "--role", "consumer", "--log-level", "debug")
    assert " DEBUG " in err
    assert secret not in err and secret[6:22] not in err
    assert code == 1, err[-2000:]
    last = err.splitlines()[-1]
    assert last.startswith("metrictui: PostgreSQL") and "password authentication failed" in last


def test_human_log_lines_keep_exceptions_on_one_line() -> None:
    import io
    import logging

    from engine.logs import OneLineFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(tracebacks=False))
    logger = logging.getLogger("metrictui.test-one-line")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logger.exception("check crashed")
    text = stream.getvalue()
    assert text.count("\n") == 1 and "check crashed | ValueError: boom" in text
