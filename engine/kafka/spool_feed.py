"""The shipper's way into the spool: append, count what could not be kept, and say so.

A full or unwritable disk fails every append and a spool at its cap drops its oldest records
on every append, so each trouble is said once and then at most every SPOOL_ERROR_EVERY_S,
with the count of events it cost; the counts themselves are always exact in Stats.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from engine.kafka.spool import Spool, SpoolError, SpoolRecord, size_text
from engine.stats import Stats

log = logging.getLogger("metrictui.producer")

SPOOL_ERROR_EVERY_S = 30.0


class SpoolFeed:
    """Puts the shipper's records into the spool and keeps the spool's figures in Stats."""

    def __init__(self, spool: Spool, stats: Stats) -> None:
        self.spool = spool
        self.stats = stats
        self.dropped_total = 0
        """Events lost on the producer side: refused by the spool, or by Kafka for good."""
        self._failing = False  # the last append failed (disk full, unwritable)
        self._failed_since_log = 0
        self._dropped_while_failing = 0
        self._error_logged_at = -SPOOL_ERROR_EVERY_S
        self._error_logged: str | None = None
        self._cap_dropped_logged = 0

    def put(self, records: Sequence[SpoolRecord]) -> None:
        """Append `records` to the spool; what it cannot take is counted as dropped."""
        try:
            self.spool.append(records)
        except SpoolError as exc:
            self.dropped_total += len(records)
            self._failed(str(exc), len(records))
        else:
            if self._failing:
                self._failing = False
                log.warning(
                    "spool is writable again; %d events were dropped while it was not",
                    self._dropped_while_failing,
                )
                self._failed_since_log = self._dropped_while_failing = 0
        self.sync_stats()

    def _failed(self, message: str, lost: int) -> None:
        """Say it once, then at most every SPOOL_ERROR_EVERY_S: a full disk fails every batch."""
        self._failed_since_log += lost
        self._dropped_while_failing += lost
        now = time.monotonic()
        # The interval holds across short recoveries too: a nearly full disk alternates between
        # taking a small batch and refusing the next, which must not flood the log.
        repeat = message == self._error_logged
        if not repeat or now - self._error_logged_at >= SPOOL_ERROR_EVERY_S:
            self._error_logged = message
            line = f"{message} ({self._failed_since_log} events dropped)"
            log.error("%s", line)
            self.stats.error("spool", line)
            self._error_logged_at = now
            self._failed_since_log = 0
        self._failing = True

    def sync_stats(self) -> None:
        """Copy the spool's figures into Stats; say once in a while that the cap drops events."""
        self.stats.spool_depth = self.spool.depth
        self.stats.spool_bytes = self.spool.bytes
        self.stats.spool_dropped_total = self.spool.dropped_total + self.dropped_total
        over_cap = self.spool.dropped_total - self._cap_dropped_logged
        if over_cap > 0 and (
            self._cap_dropped_logged == 0
            or time.monotonic() - self._error_logged_at >= SPOOL_ERROR_EVERY_S
        ):
            line = (
                f"spool reached its cap of {size_text(self.spool.max_bytes)}"
                f" ([agent] spool_max_mb): dropped the {over_cap} oldest events"
                f" ({self.spool.dropped_total} in all)"
            )
            log.warning("%s", line)
            self.stats.error("spool", line)
            self._cap_dropped_logged = self.spool.dropped_total
            self._error_logged_at = time.monotonic()
