"""Website checks: the checker, its timing, failure reasons, and the worker processes."""

from engine.agent.checks.checker import Checker
from engine.agent.checks.pool import CheckWorkerPool
from engine.agent.checks.reasons import REASONS, Reason
from engine.agent.checks.sizing import worker_count

__all__ = [
    "REASONS",
    "CheckWorkerPool",
    "Checker",
    "Reason",
    "worker_count",
]
