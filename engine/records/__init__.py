"""What agents report, declared once: a check's result and an agent's heartbeat.

They sit at the engine's base because the producing side makes them and the sink, the stats
and the dashboard read them; nothing here imports any other room.
"""

from engine.records.check_result import CHECK_FIELDS, RESULT_FIELDS, CheckResult
from engine.records.heartbeats import FleetAgent, Heartbeat, state_counts

__all__ = [
    "CHECK_FIELDS",
    "RESULT_FIELDS",
    "CheckResult",
    "FleetAgent",
    "Heartbeat",
    "state_counts",
]
