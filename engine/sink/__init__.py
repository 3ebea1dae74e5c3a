"""The consuming side: Kafka batches into PostgreSQL exactly once (the sink and its store).

Never imports agent.
"""

from engine.sink.consume import Sink
from engine.sink.store import DeadLetter, Store, WriteResult

__all__ = [
    "DeadLetter",
    "Sink",
    "Store",
    "WriteResult",
]
