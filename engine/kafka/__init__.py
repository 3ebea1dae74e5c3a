"""Everything that talks to Kafka on the producing side: settings, topics, the shipper, the spool.

Never imports agent, sink or db.
"""

from engine.kafka.settings import client_kwargs, probe_settings
from engine.kafka.shipper import Shipper
from engine.kafka.spool import Spool, SpoolError, SpoolRecord
from engine.kafka.topics import ensure_topics
from engine.kafka.watch import SettingsWatch

__all__ = [
    "SettingsWatch",
    "Shipper",
    "Spool",
    "SpoolError",
    "SpoolRecord",
    "client_kwargs",
    "ensure_topics",
    "probe_settings",
]
