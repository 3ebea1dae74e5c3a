"""The producing side's sources: host metrics (psutil collectors) and website checks.

May import the engine's base (config, targets, envelope, stats, errors); never kafka, sink or db.
"""

from engine.agent.collectors import COLLECTOR_NAMES, HostCollector, Sample
from engine.agent.scheduler import CheckScheduler

__all__ = [
    "COLLECTOR_NAMES",
    "CheckScheduler",
    "HostCollector",
    "Sample",
]
