"""Website checks: the checker, its timing, failure reasons, and the worker processes."""

from engine.agent.checks.checker import Checker
from engine.agent.checks.pool import CheckWorkerPool, worker_count
from engine.agent.checks.reasons import REASONS, Reason

__all__ = [
    "REASONS",
    "CheckWorkerPool",
    "Checker",
    "Reason",
    "worker_count",
]
