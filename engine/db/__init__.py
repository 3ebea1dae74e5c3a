"""PostgreSQL outside the hot path: error policy, migrations, retention, history and reports.

Never imports agent, kafka or sink.
"""
