"""metrictui engine: collectors, checks, Kafka producer/consumer and the PostgreSQL sink.

The engine never imports the TUI (or textual); a test enforces it.
"""

__version__ = "0.1.0"
