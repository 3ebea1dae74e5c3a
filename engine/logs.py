"""Logging for headless runs: one line per event, human or JSON, always to stderr."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from engine.errors import describe_error


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (journald, Loki, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            doc["exc_type"] = record.exc_info[0].__name__
        return json.dumps(doc, ensure_ascii=False)


class OneLineFormatter(logging.Formatter):
    """Human lines that stay one line per event: an exception becomes `| Type: message`.

    At debug level the full traceback is kept (that is what debug is for).
    """

    def __init__(self, *, tracebacks: bool) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        if self.tracebacks or not record.exc_info:
            return super().format(record)
        exc = record.exc_info[1]
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text = saved
        return f"{line} | {describe_error(exc) if exc else 'error'}"


def setup_logging(fmt: str = "human", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(OneLineFormatter(tracebacks=level == "debug"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every reconnect attempt at ERROR/WARNING; our own lines say it once.
    if level != "debug":
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
