#!/usr/bin/env python3
"""The local Kafka + PostgreSQL stack that `make run`, the tests and the benchmarks use.

One command starts, reuses, inspects and stops it:

    python3 stack/stack.py up [--secure]   start what is not running, reuse what is; write env.json
    python3 stack/stack.py down            stop everything (no-op when nothing runs)
    python3 stack/stack.py status [--json] what runs where
    python3 stack/stack.py dev-config      .stack/metrictui.toml + targets.toml for `make run`
    python3 stack/stack.py kafka-stop [--kill] | kafka-start | pg-stop [--kill] | pg-start
                                           fault-test helpers; each returns once that state holds

Kafka 4.x (KRaft, one combined broker+controller) runs from the jars that stack/pom.xml resolves
into stack/lib; PostgreSQL runs from the machine's binaries (installed with apt-get if missing),
as the `postgres` user when we are root. A demo website gives `make run` real targets.
Everything listens on 127.0.0.1 and lives under .stack/ (or $METRICTUI_STACK_DIR).

Stdlib only, so it runs before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parent.parent
STACK_SRC = REPO / "stack"
POM = STACK_SRC / "pom.xml"
LIB_DIR = STACK_SRC / "lib"
DEMO_SERVER = STACK_SRC / "demo_site" / "server.py"

HOST = "127.0.0.1"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
KAFKA_HEAP = ("-Xms128m", "-Xmx512m")
PG_SUPERUSER = "postgres"
APP_ROLE = "metrictui"
APP_PASSWORD = "metrictui"
APP_DB = "metrictui"
SCRAM_USER = "metrictui"
SCRAM_PASSWORD = "scram-secret"
LOG_ROTATE_BYTES = 50 * 1024 * 1024
LOG_TAIL_LINES = 40

ENV_DIR = "METRICTUI_STACK_DIR"
ENV_KAFKA_PORT = "METRICTUI_STACK_KAFKA_PORT"
ENV_PG_PORT = "METRICTUI_STACK_PG_PORT"
ENV_WEB_PORT = "METRICTUI_STACK_WEB_PORT"
ENV_PG_BIN = "METRICTUI_STACK_PG_BIN"
ENV_SECURE = "METRICTUI_STACK_SECURE"


class StackError(Exception):
    """A failure the user can act on; printed as one line (plus a log tail when there is one)."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


def say(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------------------------
# Settings and layout


def _port_from_env(env: Mapping[str, str], name: str, default: int, span: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1024 <= int(raw) <= 65535 - span:
        raise StackError(
            f"{name}={raw!r} is not a usable port; use a number in 1024-{65535 - span}"
        )
    return int(raw)


@dataclass(frozen=True)
class Settings:
    """What the environment asks for: where the stack lives and which ports it uses."""

    stack_dir: Path
    kafka_port: int
    pg_port: int
    web_port: int
    secure_env: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        raw_dir = env.get(ENV_DIR, "").strip()
        stack_dir = Path(raw_dir).expanduser().resolve() if raw_dir else REPO / ".stack"
        return cls(
            stack_dir=stack_dir,
            kafka_port=_port_from_env(env, ENV_KAFKA_PORT, 19092, 3),
            pg_port=_port_from_env(env, ENV_PG_PORT, 15432, 0),
            web_port=_port_from_env(env, ENV_WEB_PORT, 18080, 0),
            secure_env=env.get(ENV_SECURE, "").strip().lower() in ("1", "true", "yes", "on"),
        )

    @property
    def controller_port(self) -> int:
        return self.kafka_port + 1

    @property
    def kafka_ssl_port(self) -> int:
        return self.kafka_port + 2

    @property
    def kafka_sasl_port(self) -> int:
        return self.kafka_port + 3

    # Layout under the stack dir (PostgreSQL's data may live elsewhere: see pg_root()).
    @property
    def kafka_dir(self) -> Path:
        return self.stack_dir / "kafka"

    @property
    def web_dir(self) -> Path:
        return self.stack_dir / "web"

    @property
    def tls_dir(self) -> Path:
        return self.stack_dir / "tls"

    @property
    def env_json(self) -> Path:
        return self.stack_dir / "env.json"


def write_text_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Readers (tests, other developers' fixtures) never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def rotate_log(path: Path) -> None:
    """Keep one previous generation so a long-lived dev stack cannot fill the disk."""
    with contextlib.suppress(OSError):
        if path.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))


@contextlib.contextmanager
def stack_lock(settings: Settings) -> Iterator[None]:
    """Serialise commands that change the stack (two `make test` at once must not race)."""
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.stack_dir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another stack.py command to finish ...")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


# --------------------------------------------------------------------------------------------
# Processes and ports


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def pid_alive(pid: int | None, marker: str) -> bool:
    """True when `pid` is a live (not zombie) process whose command line contains `marker`.

    The marker guards against pid reuse after a reboot or a container restart.
    """
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state in ("Z", "X"):
        return False
    return marker.encode() in cmdline


def port_free(port: int) -> bool:
    """Can a server bind 127.0.0.1:port? (SO_REUSEADDR: TIME_WAIT leftovers do not count.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def spawn_daemon(argv: Sequence[str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start a detached server: own session, no terminal, output appended to `log_path`.

    It survives this script exiting (and a Ctrl-C in the terminal that ran `make`).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rotate_log(log_path)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )


def wait_for(
    what: str,
    ready: Callable[[], bool],
    *,
    alive: Callable[[], bool],
    log_path: Path,
    timeout: float = READY_TIMEOUT_S,
) -> float:
    """Poll `ready` with a progress line; fail with the server log's tail if it dies or stalls."""
    start = time.monotonic()
    if ready():
        return 0.0
    print(f"waiting for {what} ...", end="", flush=True)
    while True:
        time.sleep(0.2)
        elapsed = time.monotonic() - start
        if ready():
            print(f" ready ({elapsed:.1f} s)", flush=True)
            return elapsed
        if not alive():
            print(" failed", flush=True)
            raise StackError(f"{what}: the server exited; log: {log_path}", log_tail(log_path))
        if elapsed > timeout:
            print(" timed out", flush=True)
            raise StackError(
                f"{what}: not ready after {timeout:.0f} s; log: {log_path}", log_tail(log_path)
            )


def wait_gone(pid: int, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, marker):
            return True
        time.sleep(0.1)
    return not pid_alive(pid, marker)


def terminate(
    pid: int, marker: str, *, kill: bool = False, timeout: float = STOP_TIMEOUT_S
) -> None:
    """SIGTERM (or SIGKILL when `kill`), escalating to SIGKILL after `timeout`; waits for exit."""
    if not pid_alive(pid, marker):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    if wait_gone(pid, marker, 5.0 if kill else timeout):
        return
    say(f"pid {pid} ignored SIGTERM for {timeout:.0f} s; sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_gone(pid, marker, 10.0):
        raise StackError(f"pid {pid} does not exit even after SIGKILL")


def run(
    argv: Sequence[str],
    *,
    what: str,
    cwd: Path | None = None,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> str:
    """Run a short helper command; on failure raise with its output as the tail."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise StackError(f"{what}: {argv[0]} not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what}: no answer after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        raise StackError(f"{what} failed (exit {proc.returncode})", output[-4000:])
    return proc.stdout


def apt_install(packages: Sequence[str], why: str) -> None:
    """Install Debian packages non-interactively (CI machines may lack them)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise StackError(f"{why}: install {' '.join(packages)} (not root or no apt-get here)")
    say(f"{why}: installing {' '.join(packages)} with apt-get ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], what="apt-get update", env=env)
    run(
        [
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            *packages,
        ],
        what=f"apt-get install {' '.join(packages)}",
        env=env,
    )


# --------------------------------------------------------------------------------------------
# Kafka: jars, config, format, start, readiness


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        apt_install(["openjdk-17-jre-headless"], "Java 17+ is needed for Kafka")
        found = shutil.which("java")
    if not found:
        raise StackError(
            "java not found; install Java 17+ (apt-get install openjdk-17-jre-headless)"
        )
    return found


def kafka_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not match:
        raise StackError(f"{POM}: no <kafka.version> property")
    return match.group(1)


def ensure_kafka_jars() -> None:
    """Resolve the Kafka jars once (cached by the pom's hash); later calls return at once."""
    pom_hash = hashlib.sha256(POM.read_bytes()).hexdigest()
    stamp = LIB_DIR / ".resolved"
    with contextlib.suppress(OSError):
        if stamp.read_text().strip() == pom_hash:
            return
    mvn = shutil.which("mvn")
    if not mvn:
        apt_install(["maven"], "Maven fetches the Kafka jars")
        mvn = shutil.which("mvn")
    if not mvn:
        raise StackError("mvn not found; install Maven (apt-get install maven)")
    version = kafka_version()
    say(f"fetching Kafka {version} jars from Maven Central into {LIB_DIR} (once) ...")
    started = time.monotonic()
    tmp = LIB_DIR.with_name(f".lib.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-Dstack.lib.dir={tmp}",
            ],
            what="mvn dependency:copy-dependencies",
            cwd=STACK_SRC,
        )
        if not list(tmp.glob(f"kafka_2.13-{version}.jar")):
            raise StackError(f"Maven finished but {tmp} has no kafka_2.13-{version}.jar")
        (tmp / ".resolved").write_text(pom_hash + "\n")
        shutil.rmtree(LIB_DIR, ignore_errors=True)
        os.replace(tmp, LIB_DIR)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"Kafka jars ready ({time.monotonic() - started:.1f} s)")


def kafka_classpath() -> str:
    """Every jar, sorted: a stable class path is what lets the class-data archive match."""
    return os.pathsep.join(str(jar) for jar in sorted(LIB_DIR.glob("*.jar")))


def kafka_cds_args(java: str) -> list[str]:
    """JVM flags for an application class-data-sharing archive: Kafka starts ~2x faster.

    The first run records one at its (clean) exit into a `.pending` file; the next start checks
    it with `-Xshare:on` (a truncated archive would crash the JVM) and promotes it. Keyed by the
    java binary and the jar set, so a JDK upgrade or a new Kafka version makes a fresh one.
    """
    java_real = Path(os.path.realpath(java))
    stamp = (LIB_DIR / ".resolved").read_text().strip() if (LIB_DIR / ".resolved").exists() else ""
    key_src = f"{java_real}:{java_real.stat().st_mtime_ns}:{stamp}"
    key = hashlib.sha256(key_src.encode()).hexdigest()[:12]
    archive = LIB_DIR / f"kafka-{key}.jsa"
    pending = LIB_DIR / f"kafka-{key}.jsa.pending"
    if archive.exists():
        return [f"-XX:SharedArchiveFile={archive}"]
    if pending.exists():
        with tempfile.TemporaryDirectory() as scratch:
            check = subprocess.run(
                [
                    java,
                    "-Xshare:on",
                    f"-XX:SharedArchiveFile={pending}",
                    "-XX:-CreateCoredumpOnCrash",
                    "-cp",
                    kafka_classpath(),
                    "-version",
                ],
                capture_output=True,
                cwd=scratch,
            )
        if check.returncode == 0:
            for old in LIB_DIR.glob("kafka-*.jsa"):
                old.unlink(missing_ok=True)
            os.replace(pending, archive)
            return [f"-XX:SharedArchiveFile={archive}"]
        pending.unlink(missing_ok=True)
    return [f"-XX:ArchiveClassesAtExit={pending}"]


LOG4J2_PROPERTIES = """\
# Generated by stack/stack.py. Everything goes to stdout, which the launcher appends to kafka.log.
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRefs = out
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
# The full config dumps (200 lines, nine times per start); server.properties says the same.
logger.kafkaconfig.name = kafka.server.KafkaConfig
logger.kafkaconfig.level = WARN
logger.abstractconfig.name = org.apache.kafka.common.config.AbstractConfig
logger.abstractconfig.level = WARN
"""


@dataclass(frozen=True)
class KafkaFiles:
    """Where one stack dir keeps Kafka's config, data, log and pid."""

    root: Path

    @property
    def props(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.root / "log4j2.properties"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def format_info(self) -> Path:
        return self.root / "format.json"

    @property
    def log(self) -> Path:
        return self.root / "kafka.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"

    @property
    def started(self) -> Path:
        """Ports and mode of the running process, to notice when the wanted config differs."""
        return self.root / "started.json"

    @property
    def marker(self) -> str:
        return str(self.props)


def kafka_properties(settings: Settings, files: KafkaFiles, secure: bool) -> str:
    p = settings.kafka_port
    listeners = [f"PLAINTEXT://{HOST}:{p}", f"CONTROLLER://{HOST}:{settings.controller_port}"]
    advertised = [f"PLAINTEXT://{HOST}:{p}"]
    lines = [
        "# Generated by stack/stack.py on every start; edit the script, not this file.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers={HOST}:{settings.controller_port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={files.data}",
        "num.partitions=3",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=10",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=10",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "auto.create.topics.enable=false",
        "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=24",
        # The cleaner's default 128 MB buffer is a quarter of our heap and slows the start.
        "log.cleaner.dedupe.buffer.size=33554432",
        "num.network.threads=3",
        "num.io.threads=4",
    ]
    protocol_map = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
    if secure:
        tls = TlsFiles(settings.tls_dir)
        listeners += [f"SSL://{HOST}:{settings.kafka_ssl_port}"]
        listeners += [f"SASL_SSL://{HOST}:{settings.kafka_sasl_port}"]
        advertised += [f"SSL://{HOST}:{settings.kafka_ssl_port}"]
        advertised += [f"SASL_SSL://{HOST}:{settings.kafka_sasl_port}"]
        protocol_map += ["SSL:SSL", "SASL_SSL:SASL_SSL"]
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        lines += [
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={tls.kafka_keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls.ca}",
            "listener.name.ssl.ssl.client.auth=required",
            "listener.name.sasl_ssl.ssl.client.auth=none",
            "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram}",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}",
        ]
    lines += [
        f"listeners={','.join(listeners)}",
        f"advertised.listeners={','.join(advertised)}",
        f"listener.security.protocol.map={','.join(protocol_map)}",
    ]
    return "\n".join(lines) + "\n"


def kafka_uuid() -> str:
    """A random cluster id in Kafka's Uuid text form (url-safe base64, no padding, no leading -)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def kafka_java(java: str, files: KafkaFiles, *, heap: Sequence[str]) -> list[str]:
    return [
        java,
        *heap,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Xlog:cds=error",  # recording the class-data archive warns about every odd class
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={files.log4j}",
        f"-Dkafka.logs.dir={files.root}",
        "-cp",
        kafka_classpath(),
    ]


def format_kafka_storage(java: str, settings: Settings, files: KafkaFiles) -> None:
    """First start: format the log dir as a standalone KRaft controller with a fresh cluster id.

    The SCRAM users are always added here (cheap), so switching to --secure later needs no
    reformat.
    """
    shutil.rmtree(files.data, ignore_errors=True)
    files.format_info.unlink(missing_ok=True)
    cluster_id = kafka_uuid()
    say(f"formatting Kafka storage in {files.data} (cluster id {cluster_id}) ...")
    scram = f"[name={SCRAM_USER},password={SCRAM_PASSWORD}]"
    argv = [
        *kafka_java(java, files, heap=("-Xmx256m",)),
        "kafka.tools.StorageTool",
        "format",
        "--config",
        str(files.props),
        "--cluster-id",
        cluster_id,
        "--standalone",
        "--add-scram",
        f"SCRAM-SHA-256={scram}",
        "--add-scram",
        f"SCRAM-SHA-512={scram}",
    ]
    try:
        run(argv, what="Kafka storage format", cwd=files.root, timeout=120)
    except StackError:
        shutil.rmtree(files.data, ignore_errors=True)
        raise
    info = {"cluster_id": cluster_id, "scram_users": [SCRAM_USER], "formatted_at": time.time()}
    write_text_atomic(files.format_info, json.dumps(info, indent=2) + "\n")


def _kafka_string(data: bytes, offset: int) -> tuple[str | None, int]:
    (length,) = struct.unpack_from(">h", data, offset)
    offset += 2
    if length < 0:
        return None, offset
    return data[offset : offset + length].decode("utf-8", "replace"), offset + length


def kafka_metadata_brokers(
    port: int, timeout: float = 2.0, ssl_context: ssl.SSLContext | None = None
) -> list[tuple[int, str, int]]:
    """Ask 127.0.0.1:port for cluster metadata (Metadata v4, no topics); return its brokers.

    Request header v1: api_key, api_version, correlation_id, client_id. Body v4: topics = null
    (int32 -1), allow_auto_topic_creation = false. Response: correlation_id, throttle_time_ms,
    brokers [node_id, host, port, rack], ... (the rest is not needed). With `ssl_context` it
    talks to an SSL listener (tests use that to prove the certificate rules).
    """
    correlation_id = secrets.randbelow(2**31)
    client_id = b"metrictui-stack"
    header = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    request = header + struct.pack(">ib", -1, 0)
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((HOST, port), timeout=timeout))
        if ssl_context is not None:
            sock = stack.enter_context(ssl_context.wrap_socket(sock, server_hostname=HOST))
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 0 < size < 16 * 1024 * 1024:
            raise ValueError(f"implausible Metadata response size {size}")
        data = _recv_exact(sock, size)
    got_id, _throttle, count = struct.unpack_from(">iii", data, 0)
    if got_id != correlation_id:
        raise ValueError("Metadata response for another request")
    offset = 12
    brokers = []
    for _ in range(max(count, 0)):
        (node_id,) = struct.unpack_from(">i", data, offset)
        host, offset = _kafka_string(data, offset + 4)
        (broker_port,) = struct.unpack_from(">i", data, offset)
        _rack, offset = _kafka_string(data, offset + 4)
        brokers.append((node_id, host or "", broker_port))
    return brokers


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks += chunk
    return bytes(chunks)


def kafka_ready(port: int) -> bool:
    try:
        return len(kafka_metadata_brokers(port)) >= 1
    except (OSError, ValueError, struct.error):
        return False


def kafka_pid(settings: Settings) -> int | None:
    files = KafkaFiles(settings.kafka_dir)
    pid = read_pid(files.pid_file)
    return pid if pid_alive(pid, files.marker) else None


def kafka_started_info(settings: Settings) -> dict[str, Any]:
    return read_json(KafkaFiles(settings.kafka_dir).started) if kafka_pid(settings) else {}


def kafka_wanted_info(settings: Settings, secure: bool) -> dict[str, Any]:
    """What a running Kafka must have been started with to be reused as is."""
    return {
        "kafka_port": settings.kafka_port,
        "controller_port": settings.controller_port,
        "secure": secure,
        "tls": tls_fingerprint(settings) if secure else None,
    }


def kafka_ports(settings: Settings, secure: bool) -> list[tuple[int, str, str]]:
    ports = [
        (settings.kafka_port, "Kafka", ENV_KAFKA_PORT),
        (settings.controller_port, "Kafka controller, Kafka port + 1", ENV_KAFKA_PORT),
    ]
    if secure:
        ports += [
            (settings.kafka_ssl_port, "Kafka SSL, Kafka port + 2", ENV_KAFKA_PORT),
            (settings.kafka_sasl_port, "Kafka SASL_SSL, Kafka port + 3", ENV_KAFKA_PORT),
        ]
    return ports


@dataclass
class Launch:
    """A server this run started (or found running), for the readiness wait and the summary."""

    name: str
    action: str  # "started" | "reused" | "restarted"
    pid: int | None
    wait: Callable[[], float]


def start_kafka(settings: Settings, secure: bool) -> Launch:
    """Reuse a running Kafka with the wanted config; otherwise (re)start it. Does not wait."""
    files = KafkaFiles(settings.kafka_dir)
    wanted = kafka_wanted_info(settings, secure)
    action = "started"
    pid = kafka_pid(settings)
    if pid:
        if read_json(files.started) == wanted:
            return Launch("kafka", "reused", pid, lambda: _wait_kafka(settings, secure, pid, None))
        say(f"Kafka (pid {pid}) runs with other settings; restarting it")
        terminate(pid, files.marker)
        action = "restarted"
    java = find_java()
    ensure_kafka_jars()
    files.root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(files.props, kafka_properties(settings, files, secure))
    write_text_atomic(files.log4j, LOG4J2_PROPERTIES)
    formatted = (files.data / "meta.properties").exists() and files.format_info.exists()
    if (
        formatted
        and secure
        and SCRAM_USER not in read_json(files.format_info).get("scram_users", [])
    ):
        say("Kafka storage was formatted without the SCRAM users; formatting a fresh one")
        formatted = False
    if not formatted:
        format_kafka_storage(java, settings, files)
    java_cmd = kafka_java(java, files, heap=KAFKA_HEAP)
    argv = [java_cmd[0], *kafka_cds_args(java), *java_cmd[1:], "kafka.Kafka", str(files.props)]
    proc = spawn_daemon(argv, files.log, files.root)
    write_text_atomic(files.pid_file, f"{proc.pid}\n")
    write_text_atomic(files.started, json.dumps(wanted) + "\n")
    return Launch("kafka", action, proc.pid, lambda: _wait_kafka(settings, secure, proc.pid, proc))


def _wait_kafka(
    settings: Settings, secure: bool, pid: int, proc: subprocess.Popen[bytes] | None
) -> float:
    files = KafkaFiles(settings.kafka_dir)
    extra_ports = [settings.kafka_ssl_port, settings.kafka_sasl_port] if secure else []

    def ready() -> bool:
        return kafka_ready(settings.kafka_port) and all(port_open(p) for p in extra_ports)

    def alive() -> bool:
        if proc is not None and proc.poll() is not None:
            return False
        return pid_alive(pid, files.marker)

    return wait_for(
        f"Kafka (Metadata on {HOST}:{settings.kafka_port})",
        ready,
        alive=alive,
        log_path=files.log,
    )


def stop_kafka(settings: Settings, *, kill: bool = False) -> bool:
    files = KafkaFiles(settings.kafka_dir)
    pid = kafka_pid(settings)
    if not pid:
        return False
    print(f"stopping Kafka (pid {pid}{', SIGKILL' if kill else ''}) ...", end="", flush=True)
    started = time.monotonic()
    terminate(pid, files.marker, kill=kill)
    _wait_ports_closed([settings.kafka_port, settings.controller_port])
    files.pid_file.unlink(missing_ok=True)
    print(f" stopped ({time.monotonic() - started:.1f} s)", flush=True)
    return True


def _wait_ports_closed(ports: Sequence[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(port_open(p, 0.2) for p in ports):
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# PostgreSQL: binaries, initdb as `postgres`, config, start, roles


def find_pg_bin() -> Path:
    """$METRICTUI_STACK_PG_BIN, else Debian's newest /usr/lib/postgresql/<v>/bin (apt if none)."""
    override = os.environ.get(ENV_PG_BIN, "").strip()
    if override:
        if not (Path(override) / "initdb").exists():
            raise StackError(f"{ENV_PG_BIN}={override} has no initdb")
        return Path(override)
    found = _newest_pg_bin()
    if found is None:
        _install_postgresql()
        found = _newest_pg_bin()
    if found is None:
        raise StackError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
    return found


def _newest_pg_bin() -> Path | None:
    candidates = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if (path / "initdb").exists() and path.parent.name.isdigit():
            candidates.append((int(path.parent.name), path))
    return max(candidates)[1] if candidates else None


def _install_postgresql() -> None:
    """apt-get install postgresql without Debian's own cluster (we run our own data dir)."""
    conf = Path("/etc/postgresql-common/createcluster.conf")
    if os.geteuid() == 0 and not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            "# Written by metrictui stack/stack.py: no default cluster, the stack runs its own.\n"
            "create_main_cluster = false\n"
        )
    apt_install(["postgresql"], "PostgreSQL binaries are missing")


def pg_run_as() -> str | None:
    """PostgreSQL refuses to run as root: then its commands run as the `postgres` user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SUPERUSER)
    except KeyError as exc:
        raise StackError(
            "running as root but there is no `postgres` user to run PostgreSQL"
        ) from exc
    return PG_SUPERUSER


def as_pg_user(argv: Sequence[str]) -> list[str]:
    user = pg_run_as()
    if user is None:
        return list(argv)
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", user, "--", *argv]


def pg_env() -> dict[str, str]:
    """Our environment without PG* variables that could point libpq elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


def chown_to_pg(path: Path) -> None:
    user = pg_run_as()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True)
class PgFiles:
    """Where PostgreSQL's data, log and superuser password live for one stack dir."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "pg"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def password_file(self) -> Path:
        return self.root / "pg-superuser.pw"

    @property
    def conf(self) -> Path:
        return self.data / "metrictui-stack.conf"

    @property
    def socket_dir(self) -> Path:
        return self.data

    @property
    def marker(self) -> str:
        return str(self.data)


def fallback_pg_root(settings: Settings) -> Path:
    digest = hashlib.sha256(str(settings.stack_dir).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"metrictui-stack-{digest}"


def _pg_user_can_enter(path: Path) -> bool:
    user = pg_run_as()
    if user is None:
        return True
    proc = subprocess.run(as_pg_user(["test", "-x", str(path)]), capture_output=True, cwd="/")
    return proc.returncode == 0


_told_fallback = False


def pg_files(settings: Settings, *, creating: bool = False) -> PgFiles:
    """The stack dir, unless the `postgres` user cannot reach it (say, a repo under /root).

    Then the data lives under /var/tmp/metrictui-stack-<hash of the stack dir>/.
    """
    global _told_fallback
    local = PgFiles(settings.stack_dir)
    fallback = PgFiles(fallback_pg_root(settings))
    if (local.data / "PG_VERSION").exists():
        return local
    if (fallback.data / "PG_VERSION").exists():
        return fallback
    if not creating:
        return local
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    if _pg_user_can_enter(settings.stack_dir):
        return local
    if not _told_fallback:
        say(
            f"note: the postgres user cannot enter {settings.stack_dir}; "
            f"PostgreSQL data goes to {fallback.root} instead"
        )
        _told_fallback = True
    fallback.root.mkdir(mode=0o755, parents=True, exist_ok=True)
    return fallback


def pg_pid(files: PgFiles) -> int | None:
    pid = read_pid(files.data / "postmaster.pid")
    return pid if pid_alive(pid, files.marker) else None


def pg_running_port(files: PgFiles) -> int | None:
    try:
        lines = (files.data / "postmaster.pid").read_text().splitlines()
        return int(lines[3])
    except (OSError, IndexError, ValueError):
        return None


def pg_superuser_password(files: PgFiles) -> str:
    """Random per data dir, kept beside it (root-only); created on first use."""
    try:
        text = files.password_file.read_text().strip()
        if text:
            return text
    except OSError:
        pass
    password = secrets.token_urlsafe(18)
    write_text_atomic(files.password_file, password + "\n", mode=0o600)
    return password


def pg_conf_text(settings: Settings, files: PgFiles, secure: bool) -> str:
    lines = [
        "# Generated by stack/stack.py on every start (included from postgresql.conf).",
        f"listen_addresses = '{HOST}'",
        f"port = {settings.pg_port}",
        f"unix_socket_directories = '{files.socket_dir}'",
        "unix_socket_permissions = 0700",
        "max_connections = 200",
        "shared_buffers = 128MB",
        "password_encryption = 'scram-sha-256'",
        "logging_collector = off",
        "log_line_prefix = '%m [%p] %q%u@%d '",
        "log_timezone = 'UTC'",
        "timezone = 'UTC'",
    ]
    if secure:
        lines += [
            "ssl = on",
            "ssl_cert_file = 'server.crt'",
            "ssl_key_file = 'server.key'",
        ]
    else:
        lines.append("ssl = off")
    return "\n".join(lines) + "\n"


PG_HBA = """\
# Generated by stack/stack.py. The socket sits in the 0700 data dir with 0700 permissions, so only
# the server's own OS user (and root) can reach it: trust there, passwords (SCRAM) over TCP.
local   all   all                 trust
host    all   all   127.0.0.1/32  scram-sha-256
"""


def write_pg_file(path: Path, text: str, mode: int = 0o600) -> None:
    write_text_atomic(path, text, mode=mode)
    chown_to_pg(path)


def initdb(pg_bin: Path, files: PgFiles) -> None:
    say(f"initialising PostgreSQL data in {files.data} ...")
    if files.data.exists():
        shutil.rmtree(files.data)
    files.root.mkdir(parents=True, exist_ok=True)
    files.data.mkdir(mode=0o700)
    chown_to_pg(files.data)
    run(
        as_pg_user(
            [
                str(pg_bin / "initdb"),
                "-D",
                str(files.data),
                "-U",
                PG_SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-instructions",
            ]
        ),
        what="initdb",
        cwd=files.root,
        env=pg_env(),
        timeout=180,
    )
    conf = files.data / "postgresql.conf"
    with open(conf, "a", encoding="utf-8") as f:
        f.write("\n# metrictui stack settings (regenerated on every start)\n")
        f.write(f"include_if_exists = '{files.conf.name}'\n")


def pg_ctl(pg_bin: Path, files: PgFiles, *args: str, what: str, timeout: float = 120) -> str:
    return run(
        as_pg_user([str(pg_bin / "pg_ctl"), "-D", str(files.data), *args]),
        what=what,
        cwd=files.root,
        env=pg_env(),
        timeout=timeout,
    )


def pg_ready(pg_bin: Path, port: int) -> bool:
    proc = subprocess.run(
        [str(pg_bin / "pg_isready"), "-q", "-h", HOST, "-p", str(port), "-t", "2"],
        capture_output=True,
        env=pg_env(),
    )
    return proc.returncode == 0


def start_pg(settings: Settings, secure: bool) -> Launch:
    """Reuse a running PostgreSQL on the wanted port; otherwise init/(re)start it. Does not wait."""
    pg_bin = find_pg_bin()
    files = pg_files(settings, creating=True)
    action = "started"
    pid = pg_pid(files)
    if pid and pg_running_port(files) != settings.pg_port:
        say(f"PostgreSQL (pid {pid}) listens on port {pg_running_port(files)}; restarting it")
        stop_pg(settings)
        action = "restarted"
        pid = None
    if not (files.data / "PG_VERSION").exists():
        initdb(pg_bin, files)
    tls_changed = install_pg_tls(settings, files) if secure else False
    conf_text = pg_conf_text(settings, files, secure)
    conf_changed = tls_changed or _read_or_empty(files.conf) != conf_text
    if conf_changed:
        write_pg_file(files.conf, conf_text)
    if _read_or_empty(files.data / "pg_hba.conf") != PG_HBA:
        write_pg_file(files.data / "pg_hba.conf", PG_HBA)
        conf_changed = True
    if pid:
        if conf_changed:
            say("PostgreSQL settings changed; reloading")
            pg_ctl(pg_bin, files, "reload", what="pg_ctl reload")
            action = "reloaded"
        else:
            action = "reused"
        return Launch("postgres", action, pid, lambda: _wait_pg(settings, pg_bin, files, secure))
    # A postmaster.pid whose process is gone (kill -9, container restart) would block the start.
    if (files.data / "postmaster.pid").exists():
        (files.data / "postmaster.pid").unlink()
    rotate_log(files.log)
    if not files.log.exists():
        files.log.touch(mode=0o600)
    chown_to_pg(files.log)
    _spawn_pg(pg_bin, files)
    return Launch("postgres", action, None, lambda: _wait_pg(settings, pg_bin, files, secure))


def _read_or_empty(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def _spawn_pg(pg_bin: Path, files: PgFiles) -> None:
    """pg_ctl start -W in a new session: the postmaster outlives us and any terminal Ctrl-C."""
    proc = subprocess.run(
        as_pg_user(
            [str(pg_bin / "pg_ctl"), "-D", str(files.data), "-l", str(files.log), "-W", "start"]
        ),
        cwd=files.root,
        env=pg_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=60,
    )
    if proc.returncode != 0:
        raise StackError(
            f"pg_ctl start failed (exit {proc.returncode}); log: {files.log}",
            ((proc.stdout + proc.stderr).strip() + "\n" + log_tail(files.log)).strip(),
        )


def _wait_pg(settings: Settings, pg_bin: Path, files: PgFiles, secure: bool) -> float:
    started = time.monotonic()

    def alive() -> bool:
        # Give the postmaster a moment to write its pid file before judging it dead.
        return time.monotonic() - started < 3.0 or pg_pid(files) is not None

    elapsed = wait_for(
        f"PostgreSQL (connections on {HOST}:{settings.pg_port})",
        lambda: pg_ready(pg_bin, settings.pg_port),
        alive=alive,
        log_path=files.log,
    )
    ensure_pg_roles(settings, pg_bin, files)
    # A reload applies asynchronously, and a bad key would leave TLS off: check what is in force.
    want = "on" if secure else "off"
    deadline = time.monotonic() + 10
    while (got := psql_admin(settings, pg_bin, files, "SHOW ssl;", "SHOW ssl").strip()) != want:
        if time.monotonic() > deadline:
            raise StackError(
                f"PostgreSQL has ssl={got}, wanted {want}; log: {files.log}", log_tail(files.log)
            )
        time.sleep(0.2)
    return elapsed


def psql_admin(settings: Settings, pg_bin: Path, files: PgFiles, sql: str, what: str) -> str:
    """Run SQL as the superuser over the private Unix socket (no password needed there)."""
    argv = [
        str(pg_bin / "psql"),
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        str(files.socket_dir),
        "-p",
        str(settings.pg_port),
        "-U",
        PG_SUPERUSER,
        "-d",
        "postgres",
        "-f",
        "-",
    ]
    return run(as_pg_user(argv), what=what, cwd=files.root, input_text=sql, env=pg_env())


def ensure_pg_roles(settings: Settings, pg_bin: Path, files: PgFiles) -> None:
    """Superuser password, app role and database: idempotent, so every `up` can run it."""
    password = pg_superuser_password(files)
    sql = f"""
ALTER ROLE {PG_SUPERUSER} PASSWORD '{password}';
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    CREATE ROLE {APP_ROLE} LOGIN CREATEDB CREATEROLE PASSWORD '{APP_PASSWORD}';
  ELSE
    ALTER ROLE {APP_ROLE} LOGIN CREATEDB CREATEROLE PASSWORD '{APP_PASSWORD}';
  END IF;
END $$;
SELECT 'CREATE DATABASE {APP_DB} OWNER {APP_ROLE}'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{APP_DB}')\\gexec
"""
    psql_admin(settings, pg_bin, files, sql, "creating the PostgreSQL roles and database")


def stop_pg(settings: Settings, *, kill: bool = False) -> bool:
    files = pg_files(settings)
    pid = pg_pid(files)
    if not pid:
        return False
    pg_bin = find_pg_bin()
    mode = "immediate" if kill else "fast"
    print(f"stopping PostgreSQL (pid {pid}, mode {mode}) ...", end="", flush=True)
    started = time.monotonic()
    pg_ctl(pg_bin, files, "stop", "-m", mode, "-w", "-t", "60", what="pg_ctl stop")
    wait_gone(pid, files.marker, 10.0)
    print(f" stopped ({time.monotonic() - started:.1f} s)", flush=True)
    return True


# --------------------------------------------------------------------------------------------
# Demo website


def web_pid(settings: Settings) -> int | None:
    pid = read_pid(settings.web_dir / "web.pid")
    return pid if pid_alive(pid, str(DEMO_SERVER)) else None


def web_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def start_web(settings: Settings) -> Launch:
    started_file = settings.web_dir / "started.json"
    wanted = {"web_port": settings.web_port}
    action = "started"
    pid = web_pid(settings)
    if pid:
        if read_json(started_file) == wanted:
            return Launch("demo-web", "reused", pid, lambda: _wait_web(settings, pid, None))
        terminate(pid, str(DEMO_SERVER))
        action = "restarted"
    argv = [sys.executable, str(DEMO_SERVER), "--host", HOST, "--port", str(settings.web_port)]
    proc = spawn_daemon(argv, settings.web_dir / "web.log", settings.web_dir)
    write_text_atomic(settings.web_dir / "web.pid", f"{proc.pid}\n")
    write_text_atomic(started_file, json.dumps(wanted) + "\n")
    return Launch("demo-web", action, proc.pid, lambda: _wait_web(settings, proc.pid, proc))


def _wait_web(settings: Settings, pid: int, proc: subprocess.Popen[bytes] | None) -> float:
    def alive() -> bool:
        if proc is not None and proc.poll() is not None:
            return False
        return pid_alive(pid, str(DEMO_SERVER))

    return wait_for(
        f"demo website (http://{HOST}:{settings.web_port}/)",
        lambda: web_ready(settings.web_port),
        alive=alive,
        log_path=settings.web_dir / "web.log",
    )


def stop_web(settings: Settings) -> bool:
    pid = web_pid(settings)
    if not pid:
        return False
    terminate(pid, str(DEMO_SERVER), timeout=5)
    (settings.web_dir / "web.pid").unlink(missing_ok=True)
    say(f"stopped demo website (pid {pid})")
    return True


# --------------------------------------------------------------------------------------------
# TLS material for --secure: a CA, server and client certificates (openssl CLI)

CERT_DAYS = 825
CA_DAYS = 3650
RENEW_WITHIN_S = 30 * 86400


@dataclass(frozen=True)
class TlsFiles:
    """Certificates under .stack/tls; the client ones named as Aiven hands them out.

    ca.pem + service.cert + service.key is what a client needs; server.* serve Kafka (as
    server-keystore.pem: key + chain, a PEM keystore) and PostgreSQL. wrong/ holds a second,
    unrelated CA with its own client certificate, for tests that must be refused.
    """

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def kafka_keystore(self) -> Path:
        return self.root / "server-keystore.pem"

    @property
    def client_cert(self) -> Path:
        return self.root / "service.cert"

    @property
    def client_key(self) -> Path:
        return self.root / "service.key"

    @property
    def wrong(self) -> TlsFiles:
        return TlsFiles(self.root / "wrong")


def find_openssl() -> str:
    found = shutil.which("openssl")
    if not found:
        apt_install(["openssl"], "--secure makes certificates with the openssl CLI")
        found = shutil.which("openssl")
    if not found:
        raise StackError("openssl not found; install it (apt-get install openssl)")
    return found


def _cert_fresh(openssl: str, cert: Path, ca: Path) -> bool:
    """Present, signed by `ca`, and valid for at least another 30 days."""
    if not cert.exists() or not ca.exists():
        return False
    checkend = subprocess.run(
        [openssl, "x509", "-checkend", str(RENEW_WITHIN_S), "-noout", "-in", str(cert)],
        capture_output=True,
    )
    if checkend.returncode != 0:
        return False
    verify = subprocess.run(
        [openssl, "verify", "-CAfile", str(ca), str(cert)], capture_output=True, text=True
    )
    return verify.returncode == 0


def _make_ca(openssl: str, tls: TlsFiles, name: str) -> None:
    tls.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    run(
        [
            openssl,
            "req",
            "-x509",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            str(CA_DAYS),
            "-subj",
            f"/O=metrictui/CN={name}",
            "-keyout",
            str(tls.ca_key),
            "-out",
            str(tls.ca),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ],
        what=f"openssl: making {name}",
    )
    os.chmod(tls.ca_key, 0o600)


def _make_leaf(
    openssl: str, tls: TlsFiles, cert: Path, key: Path, cn: str, extensions: Sequence[str]
) -> None:
    """A key + certificate signed by `tls`'s CA (PKCS#8 key, like Aiven's service.key)."""
    csr = cert.with_suffix(".csr")
    ext = cert.with_suffix(".ext")
    base_ext = [
        "basicConstraints=critical,CA:FALSE",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid,issuer",
    ]
    ext.write_text("\n".join([*base_ext, *extensions]) + "\n")
    try:
        run(
            [
                openssl,
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                f"/O=metrictui/CN={cn}",
                "-keyout",
                str(key),
                "-out",
                str(csr),
            ],
            what=f"openssl: key for {cn}",
        )
        os.chmod(key, 0o600)
        run(
            [
                openssl,
                "x509",
                "-req",
                "-sha256",
                "-days",
                str(CERT_DAYS),
                "-in",
                str(csr),
                "-CA",
                str(tls.ca),
                "-CAkey",
                str(tls.ca_key),
                "-set_serial",
                f"0x{secrets.token_hex(16)}",
                "-extfile",
                str(ext),
                "-out",
                str(cert),
            ],
            what=f"openssl: certificate for {cn}",
        )
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)


SERVER_EXTENSIONS = (
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth,clientAuth",
)
CLIENT_EXTENSIONS = (
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=clientAuth",
)


def ensure_tls(settings: Settings) -> None:
    """Make (once) or renew (near expiry) the CA and certificates; cheap when all are fresh."""
    openssl = find_openssl()
    tls = TlsFiles(settings.tls_dir)
    made = False
    for pki, ca_name in ((tls, "metrictui local stack CA"), (tls.wrong, "metrictui WRONG CA")):
        if not (pki.ca_key.exists() and _cert_fresh(openssl, pki.ca, pki.ca)):
            say(f"making {ca_name} in {pki.root} ...")
            _make_ca(openssl, pki, ca_name)
            made = True
        if not _cert_fresh(openssl, pki.client_cert, pki.ca):
            _make_leaf(
                openssl, pki, pki.client_cert, pki.client_key, "metrictui-client", CLIENT_EXTENSIONS
            )
            made = True
    if not _cert_fresh(openssl, tls.server_cert, tls.ca):
        _make_leaf(openssl, tls, tls.server_cert, tls.server_key, "localhost", SERVER_EXTENSIONS)
        made = True
    keystore = tls.server_key.read_text() + tls.server_cert.read_text() + tls.ca.read_text()
    if _read_or_empty(tls.kafka_keystore) != keystore:
        write_text_atomic(tls.kafka_keystore, keystore, mode=0o600)
    if made:
        say(f"certificates ready in {tls.root} (ca.pem, service.cert, service.key; wrong/)")


def tls_fingerprint(settings: Settings) -> str:
    """Changes when the server certificate does: Kafka must then restart to pick it up."""
    tls = TlsFiles(settings.tls_dir)
    return hashlib.sha256(_read_or_empty(tls.kafka_keystore).encode()).hexdigest()[:16]


def install_pg_tls(settings: Settings, files: PgFiles) -> bool:
    """Copy the server key pair into the data dir (PostgreSQL insists on owning its key)."""
    tls = TlsFiles(settings.tls_dir)
    changed = False
    for src, name in ((tls.server_cert, "server.crt"), (tls.server_key, "server.key")):
        text = src.read_text()
        if _read_or_empty(files.data / name) != text:
            write_pg_file(files.data / name, text, mode=0o600)
            changed = True
    return changed


# --------------------------------------------------------------------------------------------
# Commands


def check_ports(wanted: Sequence[tuple[int, str, str]], ours: set[int]) -> None:
    """One clear line (and exit 1) when something that is not our stack holds a port we need."""
    for port, what, env_name in wanted:
        if port in ours:
            continue
        if not port_free(port):
            raise StackError(
                f"port {port} ({what}) on {HOST} is taken by another program; "
                f"set {env_name} to a free port"
            )


def our_ports(settings: Settings) -> set[int]:
    """Ports held by our own running servers: they are free again once we restart those."""
    ports: set[int] = set()
    info = kafka_started_info(settings)
    if info:
        k = int(info.get("kafka_port", 0))
        ports |= {k, k + 1, k + 2, k + 3} if info.get("secure") else {k, k + 1}
    files = pg_files(settings)
    if pg_pid(files):
        port = pg_running_port(files)
        if port:
            ports.add(port)
    if web_pid(settings):
        ports.add(int(read_json(settings.web_dir / "started.json").get("web_port", 0)))
    return ports


def running_secure(settings: Settings) -> bool:
    """A plain `up` keeps a secure stack secure (its plain listeners work as well)."""
    if kafka_started_info(settings).get("secure"):
        return True
    files = pg_files(settings)
    return pg_pid(files) is not None and "ssl = on" in _read_or_empty(files.conf)


def cmd_up(settings: Settings, secure_flag: bool) -> int:
    started = time.monotonic()
    with stack_lock(settings):
        secure = secure_flag or settings.secure_env or running_secure(settings)
        ports = [
            *kafka_ports(settings, secure),
            (settings.pg_port, "PostgreSQL", ENV_PG_PORT),
            (settings.web_port, "demo website", ENV_WEB_PORT),
        ]
        check_ports(ports, our_ports(settings))
        if secure:
            ensure_tls(settings)
        launches = [start_pg(settings, secure), start_kafka(settings, secure), start_web(settings)]
        for launch in launches:
            launch.wait()
        env = write_env_json(settings, secure)
    for launch in launches:
        pid = launch.pid or pg_pid(pg_files(settings))
        say(f"{launch.name:<9} {launch.action:<9} pid {pid}")
    kafka = env["kafka_bootstrap"]
    if secure:
        kafka += f" (SSL :{env['kafka_ssl_port']}, SASL_SSL :{env['kafka_sasl_ssl_port']})"
    pg = f"{HOST}:{env['pg_port']}" + (" (TLS)" if secure else "")
    say(
        f"stack up in {time.monotonic() - started:.1f} s: Kafka {kafka}, PostgreSQL {pg}, "
        f"demo web {env['web_url']}; see {settings.env_json}"
    )
    return 0


def env_info(settings: Settings, secure: bool) -> dict[str, Any]:
    files = pg_files(settings)
    password = pg_superuser_password(files) if files.password_file.exists() else ""
    pg = f"{HOST}:{settings.pg_port}"
    info: dict[str, Any] = {
        "kafka_bootstrap": f"{HOST}:{settings.kafka_port}",
        "pg_dsn": f"postgresql://{APP_ROLE}:{APP_PASSWORD}@{pg}/{APP_DB}",
        "pg_admin_dsn": f"postgresql://{PG_SUPERUSER}:{password}@{pg}/postgres",
        "pg_bin": str(find_pg_bin()),
        "pg_data": str(files.data),
        "pg_log": str(files.log),
        "pg_socket_dir": str(files.socket_dir),
        "kafka_port": settings.kafka_port,
        "kafka_controller_port": settings.controller_port,
        "kafka_version": kafka_version(),
        "kafka_log": str(KafkaFiles(settings.kafka_dir).log),
        "kafka_data": str(KafkaFiles(settings.kafka_dir).data),
        "pg_port": settings.pg_port,
        "pg_superuser_run_as": pg_run_as() or pwd.getpwuid(os.geteuid()).pw_name,
        "web_port": settings.web_port,
        "web_url": f"http://{HOST}:{settings.web_port}/",
        "stack_dir": str(settings.stack_dir),
        "secure": secure,
    }
    if secure:
        tls = TlsFiles(settings.tls_dir)
        ca_q = urllib.parse.quote(str(tls.ca), safe="/")
        info |= {
            "tls_dir": str(tls.root),
            "tls_ca": str(tls.ca),
            "tls_client_cert": str(tls.client_cert),
            "tls_client_key": str(tls.client_key),
            "tls_server_cert": str(tls.server_cert),
            "tls_wrong_ca": str(tls.wrong.ca),
            "tls_wrong_client_cert": str(tls.wrong.client_cert),
            "tls_wrong_client_key": str(tls.wrong.client_key),
            "kafka_ssl_port": settings.kafka_ssl_port,
            "kafka_ssl_bootstrap": f"{HOST}:{settings.kafka_ssl_port}",
            "kafka_sasl_ssl_port": settings.kafka_sasl_port,
            "kafka_sasl_ssl_bootstrap": f"{HOST}:{settings.kafka_sasl_port}",
            "kafka_sasl_mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-512"],
            "kafka_sasl_username": SCRAM_USER,
            "kafka_sasl_password": SCRAM_PASSWORD,
            "pg_dsn_tls": (
                f"postgresql://{APP_ROLE}:{APP_PASSWORD}@{pg}/{APP_DB}"
                f"?sslmode=verify-full&sslrootcert={ca_q}"
            ),
        }
    return info


def write_env_json(settings: Settings, secure: bool) -> dict[str, Any]:
    info = env_info(settings, secure)
    # 0600: it holds the superuser password.
    write_text_atomic(settings.env_json, json.dumps(info, indent=2) + "\n", mode=0o600)
    return info


def cmd_down(settings: Settings) -> int:
    with stack_lock(settings):
        stopped = [stop_web(settings), stop_kafka(settings), stop_pg(settings)]
    if not any(stopped):
        say("stack: nothing running")
    return 0


def status_info(settings: Settings) -> dict[str, Any]:
    kfiles = KafkaFiles(settings.kafka_dir)
    kpid = kafka_pid(settings)
    kinfo = read_json(kfiles.started) if kpid else {}
    pfiles = pg_files(settings)
    ppid = pg_pid(pfiles)
    wpid = web_pid(settings)
    winfo = read_json(settings.web_dir / "started.json") if wpid else {}
    return {
        "kafka": {
            "running": kpid is not None,
            "pid": kpid,
            "port": kinfo.get("kafka_port"),
            "controller_port": kinfo.get("controller_port"),
            "secure": bool(kinfo.get("secure")),
            "ready": bool(kpid) and kafka_ready(int(kinfo.get("kafka_port", 0))),
            "log": str(kfiles.log),
        },
        "postgres": {
            "running": ppid is not None,
            "pid": ppid,
            "port": pg_running_port(pfiles) if ppid else None,
            "data": str(pfiles.data),
            "log": str(pfiles.log),
            "ssl": bool(ppid) and "ssl = on" in _read_or_empty(pfiles.conf),
        },
        "web": {
            "running": wpid is not None,
            "pid": wpid,
            "port": winfo.get("web_port"),
        },
        "env_json": str(settings.env_json) if settings.env_json.exists() else None,
    }


def cmd_status(settings: Settings, as_json: bool) -> int:
    info = status_info(settings)
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    k, p, w = info["kafka"], info["postgres"], info["web"]
    if k["running"]:
        extra = f" SSL :{k['port'] + 2} SASL_SSL :{k['port'] + 3}" if k["secure"] else ""
        state = "ready" if k["ready"] else "not answering"
        say(
            f"kafka     running  pid {k['pid']:<8} {HOST}:{k['port']} ({state}; controller "
            f":{k['controller_port']}{extra})  log {k['log']}"
        )
    else:
        say("kafka     stopped")
    if p["running"]:
        tls = " (TLS on)" if p["ssl"] else ""
        say(f"postgres  running  pid {p['pid']:<8} {HOST}:{p['port']}{tls}  data {p['data']}")
    else:
        say("postgres  stopped")
    if w["running"]:
        say(f"demo-web  running  pid {w['pid']:<8} http://{HOST}:{w['port']}/")
    else:
        say("demo-web  stopped")
    if info["env_json"]:
        say(f"env       {info['env_json']}")
    return 0


def cmd_kafka_start(settings: Settings) -> int:
    secure = bool(read_json(KafkaFiles(settings.kafka_dir).started).get("secure"))
    with stack_lock(settings):
        if kafka_pid(settings) is None:
            check_ports(kafka_ports(settings, secure), set())
        launch = start_kafka(settings, secure)
        launch.wait()
    say(f"kafka {launch.action} (pid {launch.pid})")
    return 0


def cmd_kafka_stop(settings: Settings, kill: bool) -> int:
    with stack_lock(settings):
        if not stop_kafka(settings, kill=kill):
            say("kafka: not running")
    return 0


def cmd_pg_start(settings: Settings) -> int:
    secure = running_secure(settings) or settings.secure_env
    with stack_lock(settings):
        if pg_pid(pg_files(settings)) is None:
            check_ports([(settings.pg_port, "PostgreSQL", ENV_PG_PORT)], set())
        launch = start_pg(settings, secure)
        launch.wait()
    say(f"postgres {launch.action} (pid {pg_pid(pg_files(settings))})")
    return 0


def cmd_pg_stop(settings: Settings, kill: bool) -> int:
    with stack_lock(settings):
        if not stop_pg(settings, kill=kill):
            say("postgres: not running")
    return 0


def toml_str(value: str | Path) -> str:
    """A TOML basic string (JSON's escapes are a subset of TOML's)."""
    return json.dumps(str(value))


def cmd_dev_config(settings: Settings, secure: bool) -> int:
    env = read_json(settings.env_json)
    if not env:
        raise StackError(f"{settings.env_json} is missing; run `python3 stack/stack.py up` first")
    secure = secure or settings.secure_env
    if secure and not env.get("secure"):
        raise StackError(
            "the stack runs without TLS; run `python3 stack/stack.py up --secure` first"
        )
    stack = settings.stack_dir
    config_path = stack / "metrictui.toml"
    targets_path = stack / "targets.toml"
    if secure:
        # Like an Aiven service: TLS with a client certificate, PostgreSQL verified by our CA.
        kafka = [
            f"bootstrap_servers = {toml_str(env['kafka_ssl_bootstrap'])}",
            'security_protocol = "SSL"',
            f"ssl_cafile = {toml_str(env['tls_ca'])}",
            f"ssl_certfile = {toml_str(env['tls_client_cert'])}",
            f"ssl_keyfile = {toml_str(env['tls_client_key'])}",
        ]
        dsn = env["pg_dsn_tls"]
    else:
        kafka = [f"bootstrap_servers = {toml_str(env['kafka_bootstrap'])}"]
        dsn = env["pg_dsn"]
    config = "\n".join(
        [
            "# Generated by `stack/stack.py dev-config` for `make run` against the local stack.",
            "# Rewritten when the stack ports change; override keys by METRICTUI_<SECTION>__<KEY>.",
            f"targets_file = {toml_str(targets_path)}",
            "",
            "[kafka]",
            *kafka,
            "",
            "[postgres]",
            f"dsn = {toml_str(dsn)}",
            "",
            "[agent]",
            f"spool_dir = {toml_str(stack / 'spool')}",
            "metrics_interval = 5",
            "",
            "[headless]",
            "status_interval = 5",
            f"control_socket = {toml_str(stack / 'control.sock')}",
            "",
        ]
    )
    if _read_or_empty(config_path) != config:
        write_text_atomic(config_path, config, mode=0o600)
        say(f"wrote {config_path}")
    else:
        say(f"{config_path} is up to date")
    if targets_path.exists():
        say(f"kept {targets_path} (never overwritten)")
    else:
        write_text_atomic(targets_path, demo_targets(env), mode=0o600)
        say(f"wrote {targets_path}")
    return 0


def demo_targets(env: Mapping[str, Any]) -> str:
    web = str(env.get("web_url", "http://127.0.0.1:18080/")).rstrip("/")
    kafka = str(env["kafka_bootstrap"])
    entries = [
        ("demo-home", f"{web}/", ["interval = 10", 'regex = "metrictui demo"']),
        ("demo-500", f"{web}/status/500", ["interval = 10"]),
        ("demo-slow", f"{web}/slow", ["interval = 10", "timeout = 5"]),
        # Kafka's port speaks its own binary protocol, not HTTP: a target that fails instructively.
        ("kafka-port", f"http://{kafka}/", ["interval = 30", "timeout = 5"]),
    ]
    out = [
        "# Demo targets for `make run` (stack/stack.py dev-config); edit freely, never rewritten."
    ]
    for name, url, extra in entries:
        out += ["", "[[targets]]", f"name = {toml_str(name)}", f"url = {toml_str(url)}", *extra]
    return "\n".join(out) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stack.py",
        description="Local Kafka + PostgreSQL (+ demo website) for metrictui development.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start (or reuse) the stack and write .stack/env.json")
    up.add_argument(
        "--secure",
        action="store_true",
        help=f"also TLS/SCRAM listeners and PostgreSQL TLS (or {ENV_SECURE}=1)",
    )
    sub.add_parser("down", help="stop everything (no-op when nothing runs)")
    status = sub.add_parser("status", help="what runs where")
    status.add_argument("--json", action="store_true", help="machine-readable")
    dev = sub.add_parser("dev-config", help="write .stack/metrictui.toml and .stack/targets.toml")
    dev.add_argument(
        "--secure", action="store_true", help="connect over SSL (client cert) and PostgreSQL TLS"
    )
    ks = sub.add_parser("kafka-stop", help="stop Kafka (SIGTERM; --kill: SIGKILL) and wait")
    ks.add_argument("--kill", action="store_true")
    sub.add_parser("kafka-start", help="start Kafka and wait until it answers")
    ps = sub.add_parser("pg-stop", help="stop PostgreSQL (fast; --kill: immediate) and wait")
    ps.add_argument("--kill", action="store_true")
    sub.add_parser("pg-start", help="start PostgreSQL and wait until it accepts connections")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stderr) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        if args.command == "up":
            return cmd_up(settings, args.secure)
        if args.command == "down":
            return cmd_down(settings)
        if args.command == "status":
            return cmd_status(settings, args.json)
        if args.command == "dev-config":
            return cmd_dev_config(settings, args.secure)
        if args.command == "kafka-stop":
            return cmd_kafka_stop(settings, args.kill)
        if args.command == "kafka-start":
            return cmd_kafka_start(settings)
        if args.command == "pg-stop":
            return cmd_pg_stop(settings, args.kill)
        if args.command == "pg-start":
            return cmd_pg_start(settings)
    except StackError as exc:
        if exc.log_tail:
            print(f"--- last lines ---\n{exc.log_tail}\n---", file=out)
        print(f"stack: {exc}", file=out)
        return 1
    except KeyboardInterrupt:
        print("stack: interrupted", file=out)
        return 130
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
