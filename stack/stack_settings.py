"""What the stack launcher is configured by: paths, fixed names, ports from the environment.

Also the error type every stack module raises and the one-line progress printer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STACK_SRC = REPO / "stack"
POM = STACK_SRC / "pom.xml"
LIB_DIR = STACK_SRC / "lib"
DEMO_SERVER = STACK_SRC / "demo_site" / "server.py"

HOST = "127.0.0.1"
# How long a server may take to answer after a start. A Kafka node SIGKILLed under load
# recovers its logs first, which on a busy 2-core box can take minutes: the cluster tools
# raise it with METRICTUI_STACK_READY_TIMEOUT.
READY_TIMEOUT_S = float(os.environ.get("METRICTUI_STACK_READY_TIMEOUT", "") or 90.0)
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
ENV_BROKERS = "METRICTUI_STACK_BROKERS"

# A cluster's first node gets these ports unless METRICTUI_STACK_KAFKA_PORT says otherwise, so a
# developer's single-node stack (19092-19095) and a cluster can run side by side.
SINGLE_KAFKA_PORT = 19092
CLUSTER_KAFKA_PORT = 19192
PORTS_PER_NODE = 4  # broker, controller, SSL, SASL_SSL
MAX_BROKERS = 5


class StackError(Exception):
    """A failure the user can act on; printed as one line (plus a log tail when there is one)."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


def say(message: str) -> None:
    print(message, flush=True)


def _port_from_env(env: Mapping[str, str], name: str, default: int, span: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1024 <= int(raw) <= 65535 - span:
        raise StackError(
            f"{name}={raw!r} is not a usable port; use a number in 1024-{65535 - span}"
        )
    return int(raw)


def _brokers_from_env(env: Mapping[str, str]) -> int:
    raw = env.get(ENV_BROKERS, "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_BROKERS:
        raise StackError(f"{ENV_BROKERS}={raw!r}: use 1 (the default) or 3 (a cluster)")
    return int(raw)


@dataclass(frozen=True)
class KafkaNode:
    """One Kafka process (broker + controller): its id, its folder and its four ports."""

    node_id: int
    root: Path
    port: int

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def ssl_port(self) -> int:
        return self.port + 2

    @property
    def sasl_port(self) -> int:
        return self.port + 3

    @property
    def name(self) -> str:
        return "kafka" if self.root.name == "kafka" else f"kafka-{self.node_id}"


@dataclass(frozen=True)
class Settings:
    """What the environment asks for: where the stack lives and which ports it uses."""

    stack_dir: Path
    kafka_port: int
    pg_port: int
    web_port: int
    secure_env: bool
    brokers: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        raw_dir = env.get(ENV_DIR, "").strip()
        stack_dir = Path(raw_dir).expanduser().resolve() if raw_dir else REPO / ".stack"
        brokers = _brokers_from_env(env)
        default_kafka = SINGLE_KAFKA_PORT if brokers == 1 else CLUSTER_KAFKA_PORT
        span = PORTS_PER_NODE * brokers - 1
        return cls(
            stack_dir=stack_dir,
            kafka_port=_port_from_env(env, ENV_KAFKA_PORT, default_kafka, span),
            pg_port=_port_from_env(env, ENV_PG_PORT, 15432, 0),
            web_port=_port_from_env(env, ENV_WEB_PORT, 18080, 0),
            secure_env=env.get(ENV_SECURE, "").strip().lower() in ("1", "true", "yes", "on"),
            brokers=brokers,
        )

    @property
    def cluster(self) -> bool:
        return self.brokers > 1

    @property
    def replication_factor(self) -> int:
        """3 on a cluster, as managed Kafka runs it; 1 on a single node."""
        return min(3, self.brokers)

    @property
    def min_insync_replicas(self) -> int:
        """2 of 3 on a cluster: acks=all survives one broker down, not two."""
        return max(1, self.replication_factor - 1)

    @property
    def kafka_nodes(self) -> list[KafkaNode]:
        """The nodes this stack runs: one in .stack/kafka, or kafka-1..N of a cluster, node i
        on the ports base + 4 (i - 1) .. + 3."""
        if not self.cluster:
            return [KafkaNode(1, self.stack_dir / "kafka", self.kafka_port)]
        return [
            KafkaNode(i, self.stack_dir / f"kafka-{i}", self.kafka_port + PORTS_PER_NODE * (i - 1))
            for i in range(1, self.brokers + 1)
        ]

    @property
    def other_layout_nodes(self) -> list[KafkaNode]:
        """Nodes of the other layout (single vs cluster) in this stack dir, which may still run
        after the broker count changed and hold the ports we want."""
        if self.cluster:
            return [KafkaNode(1, self.stack_dir / "kafka", self.kafka_port)]
        return [KafkaNode(i, self.stack_dir / f"kafka-{i}", 0) for i in range(1, MAX_BROKERS + 1)]

    def kafka_node(self, node_id: int) -> KafkaNode:
        for node in self.kafka_nodes:
            if node.node_id == node_id:
                return node
        raise StackError(f"no Kafka node {node_id} in this stack ({self.brokers} broker(s))")

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{HOST}:{n.port}" for n in self.kafka_nodes)

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
