"""The main configuration: declared once (model), checked per key (keys, rules), loaded (load).

The public surface: the `Config` dataclasses, `Secret`, `load_config`, `resolve_config_path`
and `split_host_port`; `metrictui init` lives in engine.config.init.
"""

from engine.config.keys import split_host_port
from engine.config.load import ENV_PREFIX, load_config, resolve_config_path
from engine.config.model import (
    AgentConfig,
    Config,
    ConsumerConfig,
    HeadlessConfig,
    KafkaConfig,
    PostgresConfig,
    ServeConfig,
    TuiConfig,
)
from engine.config.secret import Secret

__all__ = [
    "ENV_PREFIX",
    "AgentConfig",
    "Config",
    "ConsumerConfig",
    "HeadlessConfig",
    "KafkaConfig",
    "PostgresConfig",
    "Secret",
    "ServeConfig",
    "TuiConfig",
    "load_config",
    "resolve_config_path",
    "split_host_port",
]
