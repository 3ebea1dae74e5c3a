"""What the stack launcher is configured by: paths, fixed names, ports from the environment.

Also the error type every stack module raises and the one-line progress printer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
