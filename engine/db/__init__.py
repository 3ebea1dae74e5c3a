"""PostgreSQL outside the hot path: error policy, migrations, retention, history and reports.

Never imports agent, kafka or sink.
"""

from engine.db.history import fetch_host_summaries, fetch_target_history, fetch_target_names
from engine.db.migrate import migrate
from engine.db.pg_errors import is_fatal_postgres_error, postgres_error_line
from engine.db.report import build_report, format_report, report_to_json
from engine.db.retention import retention_loop, run_retention_once

__all__ = [
    "build_report",
    "fetch_host_summaries",
    "fetch_target_history",
    "fetch_target_names",
    "format_report",
    "is_fatal_postgres_error",
    "migrate",
    "postgres_error_line",
    "report_to_json",
    "retention_loop",
    "run_retention_once",
]
